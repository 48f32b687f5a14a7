//! Model files: permissions and atomic writes, interoperability with the safetensors crate,
//! and one plain line for every kind of damaged or mismatched file, before any allocation.
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

mod common;

use common::{card, logits, model, temp_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use strata_nn::file::{self, ModelFileError};
use strata_nn::net::Architecture;
use strata_nn::{NnError, Precision};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn both_files_get_the_ordinary_mode_and_no_temporaries_remain() {
    let dir = temp_dir("modes");
    let net = model(Architecture::Mlp, Precision::Float, 1);
    let (wp, jp) = file::save(&dir.join("m"), &net, &card(&net)).unwrap();
    // The reference: what std::fs::write gives a new file here (0666 less the umask).
    let reference = dir.join("reference");
    std::fs::write(&reference, b"x").unwrap();
    assert_eq!(mode(&wp), mode(&jp));
    assert_eq!(mode(&wp), mode(&reference));
    // Saving again replaces both and still leaves only the two files and the reference.
    file::save(&dir.join("m"), &net, &card(&net)).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["m.json", "m.safetensors", "reference"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_are_standard_safetensors_and_round_trip_exactly() {
    let dir = temp_dir("roundtrip");
    for (arch, precision) in [
        (Architecture::Mlp, Precision::W1A1),
        (Architecture::Cnn, Precision::Float),
    ] {
        let mut net = model(arch, precision, 7);
        let (wp, _) = file::save(&dir.join("m"), &net, &card(&net)).unwrap();
        // The safetensors crate (an independent reader) sees every tensor with its values.
        let bytes = std::fs::read(&wp).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), 5 * net.blocks.len());
        for b in &net.blocks {
            let v = st.tensor(&format!("{}.bn.running_var", b.name)).unwrap();
            assert_eq!(v.dtype(), safetensors::Dtype::F32);
            let got: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(got, b.bn.running_var.to_vec1::<f32>().unwrap());
            let w = st.tensor(&format!("{}.weight", b.name)).unwrap();
            assert_eq!(w.shape(), b.w.as_tensor().dims());
        }
        let (mut back, c) = file::load(&dir.join("m")).unwrap();
        assert_eq!(c.config, net.config);
        assert_eq!(logits(&mut back, 3).unwrap(), logits(&mut net, 3).unwrap());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Save a fresh model, let `damage` alter the files, and return the load error.
fn load_after(tag: &str, damage: impl FnOnce(&Path, &Path)) -> ModelFileError {
    let dir = temp_dir(tag);
    let net = model(Architecture::Mlp, Precision::Float, 2);
    let (wp, jp) = file::save(&dir.join("m"), &net, &card(&net)).unwrap();
    damage(&wp, &jp);
    let t = std::time::Instant::now();
    let e = file::load(&wp)
        .err()
        .expect("a damaged model must not load");
    assert!(
        t.elapsed().as_secs() < 5,
        "refused only after {:?}",
        t.elapsed()
    );
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.starts_with(&dir.display().to_string()), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
    e
}

fn edit_card(jp: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(jp).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(jp, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn a_truncated_weights_file_is_named_in_plain_english() {
    let e = load_after("trunc-header", |wp, _| {
        let b = std::fs::read(wp).unwrap();
        std::fs::write(wp, &b[..20]).unwrap();
    });
    let msg = e.to_string();
    assert!(
        msg.contains(" bytes but only 12 follow the length prefix (truncated or corrupt file)"),
        "{msg}"
    );
    assert!(
        msg.contains("m.safetensors: ") && msg.ends_with("; retrain the model or copy it again"),
        "{msg}"
    );
    assert!(e.is_corrupt() && e.path().ends_with("m.safetensors"));

    let e = load_after("trunc-data", |wp, _| {
        let b = std::fs::read(wp).unwrap();
        std::fs::write(wp, &b[..b.len() - 3]).unwrap();
    });
    assert!(e.to_string().contains("(truncated file)"), "{e}");
    let e = load_after("trunc-empty", |wp, _| std::fs::write(wp, b"").unwrap());
    assert!(e.to_string().contains("8-byte length prefix"), "{e}");
    let e = load_after("appended", |wp, _| {
        let mut b = std::fs::read(wp).unwrap();
        b.extend_from_slice(b"tail");
        std::fs::write(wp, &b).unwrap();
    });
    assert!(e.to_string().contains("extra bytes appended"), "{e}");
}

#[test]
fn a_shape_mismatch_names_the_tensor_and_both_shapes() {
    let e = load_after("mismatch", |_, jp| {
        edit_card(jp, |v| v["config"]["widths"] = serde_json::json!([10, 8]))
    });
    assert!(matches!(e, ModelFileError::Mismatch { .. }));
    assert!(
        e.to_string().ends_with(
            "m.safetensors: tensor 'fc2.weight' has shape [10, 7] but the model card implies \
             [10, 8]; the weights and the card come from different models"
        ),
        "{e}"
    );
    let e = load_after("fewer", |_, jp| {
        edit_card(jp, |v| v["config"]["widths"] = serde_json::json!([10]))
    });
    assert!(matches!(e, ModelFileError::Mismatch { .. }), "{e}");
    let e = load_after("more", |_, jp| {
        edit_card(jp, |v| {
            v["config"]["widths"] = serde_json::json!([10, 7, 5])
        })
    });
    assert!(
        e.to_string().contains("has no tensor named 'fc3.weight'"),
        "{e}"
    );
    let e = load_after("dtype", |wp, _| {
        let b = std::fs::read(wp).unwrap();
        let s = String::from_utf8_lossy(&b).replacen("\"F32\"", "\"I32\"", 1);
        std::fs::write(wp, s.as_bytes()).unwrap();
    });
    assert!(e.to_string().contains("is stored as I32"), "{e}");
}

#[test]
fn absurd_cards_are_refused_before_anything_is_allocated() {
    let e = load_after("huge-input", |_, jp| {
        edit_card(jp, |v| {
            v["config"]["input_shape"] = serde_json::json!([1, 100000, 100000])
        })
    });
    assert!(
        matches!(
            &e,
            ModelFileError::Config {
                source: NnError::TooLarge { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().ends_with(
        "m.json: input shape [1, 100000, 100000] elements per example: 10000000000 is more \
         than the 16777216 allowed"
    ));
    // Under the caps but 29 GB to build: refused for memory, or (on a machine with that much
    // free) by the weights' shapes, still before allocating.
    let e = load_after("wide", |_, jp| {
        edit_card(jp, |v| {
            v["config"]["widths"] = serde_json::json!([60000, 60000])
        })
    });
    assert!(
        matches!(
            &e,
            ModelFileError::Config {
                source: NnError::Memory { .. },
                ..
            } | ModelFileError::Mismatch { .. }
        ),
        "{e}"
    );
    for (field, value, says) in [
        ("input_shape", serde_json::json!([0, 6, 6]), "at least 1"),
        (
            "input_shape",
            serde_json::json!([-1, 6, 6]),
            "not a strata model card",
        ),
        ("input_shape", serde_json::json!([36]), "three dimensions"),
        (
            "classes",
            serde_json::json!(0),
            "classes: must be at least 1",
        ),
        (
            "precision",
            serde_json::json!("W3A3"),
            "unknown variant `W3A3`",
        ),
        (
            "widths",
            serde_json::json!(vec![1; 65]),
            "hidden layers: 65 is more",
        ),
        (
            "widths",
            serde_json::json!([100000000]),
            "width of hidden layer 1",
        ),
    ] {
        let e = load_after("field", |_, jp| {
            edit_card(jp, |v| v["config"][field] = value)
        });
        assert!(e.to_string().contains(says), "{field}: {e}");
        assert!(e.is_corrupt() && e.path().ends_with("m.json"), "{e}");
    }
    let e = load_after("format", |_, jp| {
        edit_card(jp, |v| v["format"] = "other".into())
    });
    assert!(
        e.to_string()
            .contains("format 'other' is not strata-model-1"),
        "{e}"
    );
    let e = load_after("missing", |_, jp| {
        edit_card(jp, |v| {
            v["config"].as_object_mut().unwrap().remove("classes");
        })
    });
    assert!(e.to_string().contains("missing field `classes`"), "{e}");
    let e = load_after("gone", |wp, _| std::fs::remove_file(wp).unwrap());
    assert!(matches!(
        e,
        ModelFileError::Io {
            kind: std::io::ErrorKind::NotFound,
            ..
        }
    ));
    assert!(!e.is_corrupt());
}

#[test]
fn a_linear_logits_layer_round_trips_and_older_cards_mean_batch_norm() {
    use strata_nn::net::{LogitsLayer, Net, NetConfig};
    let dir = temp_dir("linear-logits");
    let base = model(Architecture::Mlp, Precision::W1A1, 4);
    let config = NetConfig {
        logits: LogitsLayer::Linear,
        ..base.config.clone()
    };
    let mut net = Net::new(config, 4).unwrap();
    let (_, jp) = file::save(&dir.join("m"), &net, &card(&net)).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jp).unwrap()).unwrap();
    assert_eq!(v["config"]["logits"], "linear");
    let (mut back, c) = file::load(&dir.join("m")).unwrap();
    assert_eq!(c.config.logits, LogitsLayer::Linear);
    let last = back.blocks.len() - 1;
    assert!(!back.blocks[last].bn.normalize);
    assert_eq!(logits(&mut back, 3).unwrap(), logits(&mut net, 3).unwrap());
    // Batch norm logits are the default and left out of the card, as before the option.
    let (_, jp) = file::save(&dir.join("b"), &base, &card(&base)).unwrap();
    let text = std::fs::read_to_string(&jp).unwrap();
    assert!(!text.contains("\"logits\""), "{text}");
    let (b, _) = file::load(&dir.join("b")).unwrap();
    assert_eq!(b.config.logits, LogitsLayer::BatchNorm);
    assert!(b.blocks.iter().all(|b| b.bn.normalize));
    // An unknown value is one plain line.
    edit_card(&jp, |v| v["config"]["logits"] = "softmax".into());
    let e = file::load(&dir.join("b")).err().unwrap().to_string();
    assert!(!e.contains('\n') && e.contains("softmax"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
