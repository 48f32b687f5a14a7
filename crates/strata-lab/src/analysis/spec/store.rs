//! `[[store]]`: activation files made elsewhere (the Python package's `StoreWriter`, a PyTorch
//! capture, `strata collect`) that `[[compare]]` names like the spec's own models.
//!
//! Parsing checks the names, the path and the layer list as written; [`open`] reads the files
//! (before anything trains) and [`check_examples`] checks that the two sides of every pair hold
//! the same number of examples.

use super::{is_clean, Analysis, Ctx, Instance, SpecError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use toml::Spanned;

/// `[[store]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    name: Spanned<String>,
    path: Spanned<String>,
    layers: Option<Spanned<Vec<String>>>,
}

/// A checked `[[store]]`: an activation file compared like a trained model's.
#[derive(Clone, Debug, Serialize)]
pub struct StoreSpec {
    /// The name `[[compare]]` uses for it.
    pub name: String,
    /// The path as written (relative to the spec's folder unless absolute).
    pub path: String,
    /// The path resolved against the spec's folder.
    pub file: PathBuf,
    /// The layers compared, in this order (`None`: every layer, in file order).
    pub layers: Option<Vec<String>>,
    /// Line of `path` in the spec, for errors about the file.
    #[serde(skip)]
    pub path_line: usize,
    /// Line of `layers` (else of `path`), for errors about layer names.
    #[serde(skip)]
    pub layers_line: usize,
}

/// Check every `[[store]]` table: clean names that no other store and no model instance has, a
/// path, and a layer list without repeats. `spec_dir` is the folder paths are relative to.
pub(super) fn check(
    cx: &Ctx,
    raw: &[Spanned<RawStore>],
    instances: &[Instance],
    spec_dir: &Path,
) -> Result<Vec<StoreSpec>, SpecError> {
    let mut out: Vec<StoreSpec> = Vec::new();
    for r in raw {
        let r = r.get_ref();
        let name = r.name.get_ref();
        let err = |span: std::ops::Range<usize>, msg: String| {
            cx.err(span, format!("[[store]] '{name}' {msg}"))
        };
        if !is_clean(name) {
            return Err(err(
                r.name.span(),
                "name: use letters, digits, '-', '_', '.' (not first)".into(),
            ));
        }
        if out.iter().any(|s| &s.name == name) {
            return Err(err(
                r.name.span(),
                "name: another [[store]] has this name".into(),
            ));
        }
        if instances.iter().any(|i| &i.name == name) {
            return Err(err(
                r.name.span(),
                "name: a [[model]] instance has this name; [[compare]] could not tell them apart"
                    .into(),
            ));
        }
        let path = r.path.get_ref();
        if path.trim().is_empty() {
            return Err(err(r.path.span(), "path: must name a file".into()));
        }
        if let Some(l) = &r.layers {
            let v = l.get_ref();
            if v.is_empty() {
                return Err(err(
                    l.span(),
                    "layers: list at least one layer (or omit the key for all)".into(),
                ));
            }
            let dup = v.iter().enumerate().find(|(k, x)| v[..*k].contains(x));
            if let Some((_, dup)) = dup {
                return Err(err(l.span(), format!("layers: '{dup}' is listed twice")));
            }
        }
        let path_line = cx.line(r.path.span().start);
        out.push(StoreSpec {
            name: name.clone(),
            path: path.clone(),
            file: spec_dir.join(path),
            layers: r.layers.as_ref().map(|l| l.get_ref().clone()),
            path_line,
            layers_line: r
                .layers
                .as_ref()
                .map_or(path_line, |l| cx.line(l.span().start)),
        });
    }
    Ok(out)
}

/// A `[[store]]` as read from disk: what the run compares and the manifest records.
#[derive(Clone, Debug)]
pub struct OpenedStore {
    /// The file's size in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Examples (rows) in every layer.
    pub examples: usize,
    /// The layers compared, in order: `layers`, or every layer of the file.
    pub layers: Vec<String>,
    /// Seconds spent opening and hashing the file.
    pub seconds: f64,
}

/// Open every store of `a`: the file exists, `strata_data::open` reads it, and every layer
/// `layers` names is in it. Hashes each file for the manifest.
pub fn open(a: &Analysis) -> Result<Vec<OpenedStore>, SpecError> {
    a.stores.iter().map(|s| open_one(a, s)).collect()
}

fn open_one(a: &Analysis, s: &StoreSpec) -> Result<OpenedStore, SpecError> {
    let t = Instant::now();
    let err = |line: usize, msg: String| SpecError {
        file: a.file.clone(),
        line,
        msg: format!("[[store]] '{}' {msg}", s.name),
    };
    let shown = s.file.display();
    if !s.file.exists() {
        return Err(err(
            s.path_line,
            format!("path: {shown}: no such file (a relative path is read from the spec's folder)"),
        ));
    }
    let acts = strata_data::open(&s.file).map_err(|e| {
        let e = e.to_string();
        let e = e.lines().next().unwrap_or("").to_string();
        err(
            s.path_line,
            format!("path: cannot read {shown} as activations: {e}"),
        )
    })?;
    let all: Vec<String> = acts.layers().iter().map(|l| l.name.clone()).collect();
    let layers = match &s.layers {
        None => all,
        Some(want) => {
            if let Some(bad) = want.iter().find(|w| !all.contains(w)) {
                let have = if all.len() > 12 {
                    format!("{}, ... ({} layers)", all[..12].join(", "), all.len())
                } else {
                    all.join(", ")
                };
                return Err(err(
                    s.layers_line,
                    format!("layers: '{bad}' is not a layer of {shown} (it has: {have})"),
                ));
            }
            want.clone()
        }
    };
    let examples = acts.n();
    drop(acts);
    let (bytes, sha256) = crate::hashing::sha256_file(&s.file)
        .map_err(|e| err(s.path_line, format!("path: cannot read {shown}: {e}")))?;
    Ok(OpenedStore {
        bytes,
        sha256,
        examples,
        layers,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Every `[[compare]]` pair with a store on one side: both sides hold the same number of
/// examples. `examples(side)` is a side's count (a model's: its data's collected examples).
pub fn check_examples(a: &Analysis, examples: &dyn Fn(usize) -> usize) -> Result<(), SpecError> {
    let n_inst = a.instances.len();
    for (k, &(i, j)) in a.compare.iter().enumerate() {
        if i < n_inst && j < n_inst {
            continue;
        }
        let (ni, nj) = (examples(i), examples(j));
        if ni != nj {
            return Err(SpecError {
                file: a.file.clone(),
                line: a.compare_lines.get(k).copied().unwrap_or(0),
                msg: format!(
                    "[[compare]] a = '{}' has {ni} examples but b = '{}' has {nj}: CKA compares \
                     two representations of the same examples, in the same order",
                    a.side_name(i),
                    a.side_name(j)
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const STORES: &str = r#"
[[store]]
name = "net-a"
path = "a.npy"

[[store]]
name = "net-b"
path = "sub/b.npy"
layers = ["b"]

[[compare]]
a = "net-a"
b = "net-b"
"#;

    const MODELS: &str = r#"
[data.d]
source = "digits"

[[model]]
name = "mlp"
data = "d"
widths = [8]
seeds = [0, 1]
"#;

    fn err(text: &str) -> SpecError {
        parse(text, "dir/x.toml", "x").expect_err("should fail")
    }

    /// A fresh folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        d
    }

    fn write_npy(path: &Path, rows: usize, cols: usize) {
        let data: Vec<f32> = (0..rows * cols).map(|i| (i * 7 % 13) as f32).collect();
        let mut v = Vec::new();
        strata_data::npy::write_f32(&mut v, &[rows, cols], &data).unwrap();
        std::fs::write(path, v).unwrap();
    }

    #[test]
    fn a_spec_of_stores_alone_parses() {
        let a = parse(STORES, "dir/x.toml", "x").unwrap();
        assert!(a.instances.is_empty() && a.data.is_empty());
        assert_eq!(a.compare, vec![(0, 1)]);
        assert_eq!((a.side_name(0), a.side_name(1)), ("net-a", "net-b"));
        assert_eq!(a.stores[0].file, Path::new("dir/a.npy"));
        assert_eq!(a.stores[1].layers, Some(vec!["b".to_string()]));
        assert_eq!(a.compare_lines, vec![13]);
    }

    #[test]
    fn stores_and_models_share_compare() {
        let text = format!("{MODELS}{STORES}\n[[compare]]\na = \"mlp-float-s1\"\nb = \"net-b\"\n");
        let a = parse(&text, "x.toml", "x").unwrap();
        // Two instances, then the stores.
        assert_eq!(a.compare, vec![(2, 3), (1, 3)]);
        assert_eq!(a.side_name(1), "mlp-float-s1");
        assert_eq!(a.store_side(3).map(|s| s.name.as_str()), Some("net-b"));
        assert!(a.store_side(1).is_none());
        assert_eq!(a.stores[0].file, Path::new("./a.npy"));
    }

    #[test]
    fn bad_entries_are_one_error_naming_the_entry() {
        let cases: Vec<(String, &str, usize)> =
            vec![
            (
                STORES.replace("b = \"net-b\"", "b = \"net-c\""),
                "[[compare]] b = 'net-c' is not a [[store]] of this spec (stores: net-a, net-b)",
                13,
            ),
            (
                format!("{MODELS}{}", STORES.replace("b = \"net-b\"", "b = \"net-c\"")),
                "b = 'net-c' is neither a model nor a [[store]]",
                22,
            ),
            (
                format!("{MODELS}{}", STORES.replace("\"net-a\"", "\"mlp-float-s0\"")),
                "[[store]] 'mlp-float-s0' name: a [[model]] instance has this name",
                12,
            ),
            (
                STORES.replace("\"net-b\"", "\"net-a\""),
                "[[store]] 'net-a' name: another [[store]] has this name",
                7,
            ),
            (
                STORES.replace("layers = [\"b\"]", "layers = []"),
                "[[store]] 'net-b' layers: list at least one layer",
                9,
            ),
            (
                STORES.replace("layers = [\"b\"]", "layers = [\"b\", \"b\"]"),
                "'b' is listed twice",
                9,
            ),
            (
                STORES.replace("path = \"a.npy\"", "path = \"\""),
                "[[store]] 'net-a' path: must name a file",
                4,
            ),
            (
                STORES.replace("\"net-a\"\npath", "\"a/b\"\npath"),
                "[[store]] 'a/b' name",
                3,
            ),
            (
                STORES.replace("path = \"a.npy\"", "path = \"a.npy\"\nlayer = [\"x\"]"),
                "unknown field `layer`",
                5,
            ),
            (
                STORES.replace("path = \"a.npy\"\n", ""),
                "path",
                2,
            ),
        ];
        for (text, want, line) in cases {
            let e = err(&text);
            assert!(e.msg.contains(want), "want '{want}', got: {e}");
            assert_eq!(e.line, line, "{e}");
            assert!(!e.msg.contains('\n'), "{e}");
        }
        // No model and no store: the old message.
        let e = err("title = \"t\"\n");
        assert!(e.msg.contains("no [[model]]"), "{e}");
    }

    #[test]
    fn opening_checks_files_layers_and_example_counts() {
        let dir = scratch("open");
        let spec = dir.join("x.toml");
        let file = spec.display().to_string();
        let parse_here = |text: &str| parse(text, &file, "x").unwrap();
        let a = parse_here(STORES);

        // Missing file.
        let e = open(&a).expect_err("a.npy is missing");
        assert!(e.msg.starts_with("[[store]] 'net-a' path: ") && e.msg.contains("no such file"));
        assert_eq!(e.line, 4, "{e}");

        // Unreadable file.
        std::fs::write(dir.join("a.npy"), b"not activations").unwrap();
        write_npy(&dir.join("sub/b.npy"), 10, 3);
        let e = open(&a).expect_err("a.npy is not activations");
        assert!(
            e.msg.contains("cannot read") && !e.msg.contains('\n'),
            "{e}"
        );
        assert_eq!(e.line, 4, "{e}");

        // Readable: sizes, hashes, layers.
        write_npy(&dir.join("a.npy"), 12, 4);
        let s = open(&a).unwrap();
        let bytes = std::fs::read(dir.join("a.npy")).unwrap();
        assert_eq!(s[0].sha256, crate::hashing::sha256_hex(&bytes));
        assert_eq!(s[0].bytes, bytes.len() as u64);
        assert_eq!((s[0].examples, s[1].examples), (12, 10));
        assert_eq!(s[0].layers, ["a"]);
        assert_eq!(s[1].layers, ["b"]);

        // 12 examples against 10.
        let n = |i: usize| s[i].examples;
        let e = check_examples(&a, &n).expect_err("counts differ");
        assert_eq!(
            e.msg,
            "[[compare]] a = 'net-a' has 12 examples but b = 'net-b' has 10: CKA compares two \
             representations of the same examples, in the same order"
        );
        assert_eq!(e.line, 13);

        // Unknown layer.
        let a = parse_here(&STORES.replace("[\"b\"]", "[\"b\", \"fc9\"]"));
        let e = open(&a).expect_err("no layer fc9");
        assert!(
            e.msg
                .starts_with("[[store]] 'net-b' layers: 'fc9' is not a layer of")
                && e.msg.ends_with("(it has: b)"),
            "{e}"
        );
        assert_eq!(e.line, 9, "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
