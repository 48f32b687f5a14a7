//! The runner's cache: trained models and activation stores, each filed under the SHA-256 of
//! what produced it (the data's content, the architecture, the training settings, the seed; for a
//! store also the model's key and which examples). A re-run finds everything it already made;
//! changing one seed changes one key, so one model is retrained. Every artifact appears under its
//! final name only when complete (temporary file + rename), so an interrupted run resumes from the
//! artifacts that finished.
//!
//! Keys cover the inputs, not the code: [`FORMAT`] is bumped when training or collection change
//! what they produce for the same inputs.

use super::spec::{ActivationPoint, Instance, Split};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Version of what the cached artifacts contain; part of every key.
pub const FORMAT: &str = "strata-cache-1";

pub use crate::hashing::{data_fingerprint, sha256_hex};

/// Key of a trained model: the data's content and everything that fixes training. The family
/// name is not part of it (renaming a family retrains nothing). The logits layer enters only
/// when it is not the default, so keys made before it could be chosen still hold.
pub fn model_key(inst: &Instance, data_fingerprint: &str) -> String {
    let mut v = json!({
        "format": FORMAT,
        "kind": "model",
        "data": data_fingerprint,
        "architecture": inst.architecture,
        "widths": inst.widths,
        "precision": inst.precision,
        "train": inst.train,
    });
    if !inst.logits.is_batch_norm() {
        v["logits"] = json!(inst.logits);
    }
    sha256_hex(v.to_string().as_bytes())
}

/// Key of an activation store: the model, the examples, which activations, and what computed
/// them (`cpu`, or `cuda NAME sm_XY`: GPU values differ from the CPU's at f32 rounding).
pub fn store_key(
    model_key: &str,
    data_fingerprint: &str,
    split: Split,
    limit: Option<usize>,
    point: ActivationPoint,
    collector: &str,
) -> String {
    let v = json!({
        "format": FORMAT,
        "kind": "activations",
        "model": model_key,
        "data": data_fingerprint,
        "split": split,
        "limit": limit,
        "activations": point,
        "collector": collector,
    });
    sha256_hex(v.to_string().as_bytes())
}

/// Where cached artifacts live.
#[derive(Clone, Debug)]
pub struct Cache {
    /// Folder holding the `models/` and `activations/` trees.
    pub root: PathBuf,
}

impl Cache {
    /// A cache in folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// Model path stem (`.safetensors` and `.json` beside it).
    pub fn model(&self, key: &str) -> PathBuf {
        self.root.join("models").join(&key[..16]).join("model")
    }

    /// Whether the cached model is there and usable: `Ok(false)` when it is missing or damaged
    /// (truncated, edited: retraining mends it, as a corrupt store is recollected); an error
    /// when it is sound but cannot be loaded now (too large for the memory free at the moment,
    /// unreadable), so a good model is never retrained over.
    pub fn has_model(&self, key: &str) -> Result<bool, strata_nn::file::ModelFileError> {
        use strata_nn::file::ModelFileError;
        match strata_nn::file::load(&self.model(key)) {
            Ok(_) => Ok(true),
            Err(e) if e.is_corrupt() => Ok(false),
            Err(ModelFileError::Io {
                kind: std::io::ErrorKind::NotFound,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove temporary files left by runs that were killed (their process is gone): a
    /// half-written activation store can be hundreds of MB.
    pub fn sweep(&self) {
        for dir in [self.root.join("activations"), self.root.join("models")] {
            let mut dirs = vec![dir];
            while let Some(d) = dirs.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if let Some(pid) = tmp_owner(&e.file_name().to_string_lossy()) {
                        if !process_alive(pid) {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
            }
        }
    }

    /// Path of the activation store with key `key` (`activations/`, the key's first 16 hex
    /// digits, `.arrow`).
    pub fn store(&self, key: &str) -> PathBuf {
        self.root
            .join("activations")
            .join(format!("{}.arrow", &key[..16]))
    }

    /// Whether the activation store with key `key` is there and opens (a damaged one is
    /// recollected).
    pub fn has_store(&self, key: &str) -> bool {
        strata_data::open(&self.store(key)).is_ok()
    }
}

/// The process id in a temporary name `.NAME.PID-K.tmp` (strata's `tmp_path`) or `.NAME.PID.tmp`.
pub fn tmp_owner(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let last = stem.rsplit('.').next()?;
    last.split('-').next()?.parse().ok()
}

pub use crate::hashing::process_alive;

/// Remove `path` if it exists (used by `--force`).
pub fn evict(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_give_their_owner() {
        assert_eq!(tmp_owner(".model.safetensors.4242-3.tmp"), Some(4242));
        assert_eq!(tmp_owner(".0123abcd.arrow.17-0.tmp"), Some(17));
        assert_eq!(tmp_owner(".report.md.99.tmp"), Some(99));
        assert_eq!(tmp_owner("model.safetensors"), None);
        assert_eq!(tmp_owner(".x.notapid-1.tmp"), None);
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn sweep_removes_dead_runs_files_only() {
        let root = std::env::temp_dir().join(format!("strata-sweep-{}", std::process::id()));
        let acts = root.join("activations");
        std::fs::create_dir_all(&acts).unwrap();
        // PIDs above the kernel's maximum (2^22) cannot be alive.
        let dead = acts.join(".abc.arrow.9999999-0.tmp");
        let mine = acts.join(format!(".def.arrow.{}-0.tmp", std::process::id()));
        let done = acts.join("abc.arrow");
        for f in [&dead, &mine, &done] {
            std::fs::write(f, b"x").unwrap();
        }
        Cache::new(&root).sweep();
        assert!(!dead.exists() && mine.exists() && done.exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn sha256_matches_known_vectors() {
        // FIPS 180-2 examples.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn keys_change_with_what_produced_them_and_only_that() {
        let text = r#"
[data.d]
source = "digits"
[[model]]
name = "m"
data = "d"
widths = [8]
precisions = ["float", "w1a1"]
seeds = [0, 1]
"#;
        let a = super::super::spec::parse(text, "x", "x").unwrap();
        let k: Vec<String> = a.instances.iter().map(|i| model_key(i, "fp")).collect();
        for i in 0..k.len() {
            for j in 0..i {
                assert_ne!(k[i], k[j]);
            }
        }
        let renamed =
            super::super::spec::parse(&text.replace("name = \"m\"", "name = \"n\""), "x", "x")
                .unwrap();
        assert_eq!(model_key(&renamed.instances[0], "fp"), k[0]);
        assert_ne!(model_key(&a.instances[0], "other data"), k[0]);
        // A linear logits layer is another network; the default keeps the key it always had.
        let linear = super::super::spec::parse(
            &text.replace("widths = [8]", "widths = [8]\nlogits = \"linear\""),
            "x",
            "x",
        )
        .unwrap();
        assert_ne!(model_key(&linear.instances[0], "fp"), k[0]);
        let explicit = super::super::spec::parse(
            &text.replace("widths = [8]", "widths = [8]\nlogits = \"batchnorm\""),
            "x",
            "x",
        )
        .unwrap();
        assert_eq!(model_key(&explicit.instances[0], "fp"), k[0]);
        let key = |model: &str, limit, point, collector| {
            store_key(model, "fp", Split::Test, limit, point, collector)
        };
        let s0 = key(&k[0], None, ActivationPoint::Post, "cpu");
        for other in [
            key(&k[0], Some(10), ActivationPoint::Post, "cpu"),
            key(&k[0], None, ActivationPoint::Pre, "cpu"),
            key(&k[1], None, ActivationPoint::Post, "cpu"),
            // A GPU's activations are not the CPU's: a run on another device collects its own.
            key(
                &k[0],
                None,
                ActivationPoint::Post,
                "cuda NVIDIA H100 80GB HBM3 sm_90",
            ),
        ] {
            assert_ne!(s0, other);
        }
    }
}
