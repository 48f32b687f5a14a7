//! Atomic file output: every file strata writes goes through a temporary file beside its
//! target, flushed to disk, then renamed over the target. A reader sees the old file or the new
//! one, never part of one, and a failure leaves the old file (if any) in place and no temporary
//! file behind.
//!
//! Temporary names are `.NAME.PID-K.tmp` ([`tmp_path`]): hidden, unique within the process, and
//! naming the process that wrote them, so a later run can remove what a killed one left.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary name beside `path`, unique to this process (`.NAME.PID-K.tmp`), for atomic
/// writes.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{k}.tmp", std::process::id()))
}

/// Write what `fill` writes to a fresh temporary file beside `path` ([`tmp_path`], created with
/// the ordinary mode like `std::fs::write`, buffered) and flush it to disk. Returns the
/// temporary path, for the caller to [`commit`] (with other files, for several files that must
/// appear together); on failure the temporary file is removed and `path` is untouched.
pub fn write_temp(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Move a finished temporary file `tmp` over `path` (a rename, atomic on one file system). On
/// failure `tmp` is removed and `path` is untouched.
pub fn commit(tmp: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}

/// Write `path` atomically with what `fill` writes: [`write_temp`], then [`commit`]. On failure
/// (of `fill`, of the disk, of the rename) the previous `path`, if any, is left as it was and
/// no temporary file remains.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = write_temp(path, fill)?;
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-fsutil-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Every name in `dir`.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_whole_file_or_nothing() {
        let d = scratch("whole");
        let p = d.join("out.bin");
        let old = vec![1u8; 1000];
        let new = vec![2u8; 3 << 20];
        std::fs::write(&p, &old).unwrap();
        // While the new content is being written (more than the buffer, so part of it is
        // already on disk), the target still holds the old content, whole.
        write_atomic(&p, |w| {
            w.write_all(&new[..2 << 20])?;
            w.flush()?;
            assert_eq!(std::fs::read(&p).unwrap(), old);
            w.write_all(&new[2 << 20..])
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), new);
        assert_eq!(names(&d), ["out.bin"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_writer_leaves_the_old_file_and_no_temporary() {
        let d = scratch("fail");
        let p = d.join("out.txt");
        std::fs::write(&p, b"old").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(&[7u8; 4 << 20])?;
            Err(std::io::Error::other("writer gave up"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "writer gave up");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(&d), ["out.txt"]);
        // No old file: still nothing under the final name afterwards.
        let q = d.join("new.txt");
        assert!(write_atomic(&q, |_| Err(std::io::Error::other("no"))).is_err());
        assert!(!q.exists());
        assert_eq!(names(&d), ["out.txt"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_rename_leaves_the_target_and_no_temporary() {
        let d = scratch("rename");
        // A non-empty directory under the target name: the rename fails.
        let p = d.join("taken");
        std::fs::create_dir_all(p.join("inner")).unwrap();
        assert!(write_atomic(&p, |w| w.write_all(b"x")).is_err());
        assert!(p.join("inner").is_dir());
        assert_eq!(names(&d), ["taken"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn temporaries_are_hidden_unique_and_name_their_process() {
        let p = Path::new("/some/dir/model.json");
        let (a, b) = (tmp_path(p), tmp_path(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        let pid = format!(".model.json.{}-", std::process::id());
        assert!(name.starts_with(&pid) && name.ends_with(".tmp"), "{name}");
    }

    #[test]
    fn write_temp_then_commit_moves_into_place() {
        let d = scratch("commit");
        let p = d.join("a.txt");
        let t = write_temp(&p, |w| w.write_all(b"hello")).unwrap();
        assert!(!p.exists() && t.exists());
        commit(&t, &p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(names(&d), ["a.txt"]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
