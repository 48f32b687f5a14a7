//! Writing a set of output files into a user's folder as one set, and never over an input.
//!
//! A command's outputs (`cka.csv`, `cka.parquet`, `heatmap.png`, ...) are written into a hidden
//! staging folder inside the target folder, then renamed into place one by one. Renames within a
//! file system cannot fail for lack of space, so a full disk or a failed plot leaves the previous
//! set whole (and the staging folder removed) instead of new files beside an older run's; every
//! destination is checked before the first rename. The target folder itself is never replaced:
//! it may hold the user's other files (and files of an earlier run that this one does not write).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Whether `a` and `b` name the same file (same device and inode: hard links, symbolic links
/// and other spellings of one path all count). False when either cannot be examined (not there
/// yet, no permission): reading or writing it reports its own error later.
#[cfg(unix)]
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Elsewhere: the canonical paths (symlinks and `.` resolved; hard links are not detected).
#[cfg(not(unix))]
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuse outputs that would replace one of the inputs, as gzip refuses `gzip -c x > x`.
pub fn refuse_inputs_as_outputs(outputs: &[PathBuf], inputs: &[&Path]) -> Result<()> {
    for o in outputs {
        for i in inputs {
            if same_file(o, i) {
                bail!(
                    "the output {} is the input {}; writing it would destroy the input, so choose \
                     another output folder or file",
                    o.display(),
                    i.display()
                );
            }
        }
    }
    Ok(())
}

/// A set of files being written into `dir` through a staging folder; see the module docs.
pub struct OutputSet {
    dir: PathBuf,
    staging: PathBuf,
    names: Vec<String>,
    committed: bool,
}

impl OutputSet {
    /// Start a set in `dir` (created if missing). Refuses when a final path is one of `inputs`.
    pub fn new(dir: &Path, names: &[&str], inputs: &[&Path]) -> Result<Self> {
        let finals: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        refuse_inputs_as_outputs(&finals, inputs)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        sweep(dir);
        let staging = dir.join(format!(".strata-out.{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(OutputSet {
            dir: dir.to_path_buf(),
            staging,
            names: names.iter().map(|s| s.to_string()).collect(),
            committed: false,
        })
    }

    /// Where to write `name` now (inside the staging folder).
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// The staging folder: write outputs under it (subfolders allowed); [`Self::commit`] moves
    /// each file to the same relative path under the target folder.
    pub fn root(&self) -> &Path {
        &self.staging
    }

    /// Move every staged file into place (the named ones first, in order); returns the final
    /// paths. A named file that was not written is an error, and then nothing moves.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        for n in &self.names {
            if !self.staging.join(n).is_file() {
                bail!("internal: output {n} was not written");
            }
        }
        let mut rel: Vec<PathBuf> = self.names.iter().map(PathBuf::from).collect();
        let mut others = Vec::new();
        walk(&self.staging, &self.staging, &mut others)?;
        others.sort();
        rel.extend(
            others
                .into_iter()
                .filter(|p| !self.names.iter().any(|n| p == Path::new(n))),
        );
        // Everything that could refuse a rename is checked before the first one moves.
        for r in &rel {
            let to = self.dir.join(r);
            if std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                bail!(
                    "{} is a folder; move it away so the output can take its place",
                    to.display()
                );
            }
        }
        let mut finals = Vec::new();
        for r in &rel {
            let to = self.dir.join(r);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::rename(self.staging.join(r), &to)
                .with_context(|| format!("cannot move {} into place", to.display()))?;
            finals.push(to);
        }
        self.committed = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(finals)
    }
}

/// Remove staging folders in `dir` left by runs whose process is gone (killed mid-write, or
/// ended by an allocation failure, which skips destructors).
fn sweep(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".strata-out.")
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !crate::hashing::process_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Every file under `dir`, as paths relative to `root`.
fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, root, out)?;
        } else if let Ok(r) = p.strip_prefix(root) {
            out.push(r.to_path_buf());
        }
    }
    Ok(())
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-outset-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn same_file_sees_links_and_spellings() {
        let d = scratch("same");
        let a = d.join("a");
        std::fs::write(&a, "x").unwrap();
        std::fs::hard_link(&a, d.join("hard")).unwrap();
        std::os::unix::fs::symlink(&a, d.join("soft")).unwrap();
        std::fs::write(d.join("other"), "x").unwrap();
        assert!(same_file(&a, &d.join("hard")));
        assert!(same_file(&a, &d.join("soft")));
        assert!(same_file(&a, &d.join(".").join("a")));
        assert!(!same_file(&a, &d.join("other")));
        assert!(!same_file(&a, &d.join("missing")));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_set_leaves_the_old_one_whole() {
        let d = scratch("set");
        std::fs::write(d.join("x.csv"), "old").unwrap();
        std::fs::write(d.join("y.png"), "old").unwrap();
        std::fs::write(d.join("mine.txt"), "user").unwrap();
        {
            let s = OutputSet::new(&d, &["x.csv", "y.png"], &[]).unwrap();
            std::fs::write(s.path("x.csv"), "new").unwrap();
            // y.png never written (a failed plot): dropping the set must leave the old pair.
        }
        assert_eq!(std::fs::read_to_string(d.join("x.csv")).unwrap(), "old");
        let s = OutputSet::new(&d, &["x.csv", "y.png"], &[]).unwrap();
        std::fs::write(s.path("x.csv"), "new").unwrap();
        assert!(OutputSet::commit(s).is_err());
        assert_eq!(std::fs::read_to_string(d.join("x.csv")).unwrap(), "old");
        let s = OutputSet::new(&d, &["x.csv", "y.png"], &[]).unwrap();
        std::fs::write(s.path("x.csv"), "new").unwrap();
        std::fs::write(s.path("y.png"), "new").unwrap();
        std::fs::create_dir_all(s.root().join("tables")).unwrap();
        std::fs::write(s.root().join("tables").join("t.csv"), "extra").unwrap();
        let f = s.commit().unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(
            std::fs::read_to_string(d.join("tables/t.csv")).unwrap(),
            "extra"
        );
        assert_eq!(std::fs::read_to_string(d.join("y.png")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(d.join("mine.txt")).unwrap(), "user");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert_eq!(left.len(), 4, "staging folder removed");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn dead_runs_staging_is_swept_and_a_folder_in_the_way_refused() {
        let d = scratch("sweep");
        let dead = d.join(".strata-out.4000000000.tmp");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(d.join("y.png")).unwrap();
        let s = OutputSet::new(&d, &["x.csv", "y.png"], &[]).unwrap();
        assert!(!dead.exists(), "a dead run's staging folder is removed");
        std::fs::write(s.path("x.csv"), "new").unwrap();
        std::fs::write(s.path("y.png"), "new").unwrap();
        let e = s.commit().unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        assert!(!d.join("x.csv").exists(), "nothing moved");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_an_input_among_the_outputs() {
        let d = scratch("inp");
        let input = d.join("acts.parquet");
        std::fs::write(&input, "x").unwrap();
        let e = OutputSet::new(&d, &["acts.parquet"], &[&input])
            .err()
            .unwrap();
        assert!(e.to_string().contains("is the input"), "{e}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "x");
        let _ = std::fs::remove_dir_all(&d);
    }
}
