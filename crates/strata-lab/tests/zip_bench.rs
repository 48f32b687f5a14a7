//! `strata zip bench` beside neural compressors, with fake tools: shell scripts named
//! lstm-compress / cmix / nncp in a temp folder given to the service as its search path (this
//! process's PATH is never changed, so these tests run in parallel with any other).
//!
//! The fakes are exact: compressing writes a 4-byte header and the input, so the compressed size
//! is the input's plus 4 and bits per byte is 8 (n + 4) / n, computed here independently.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_lab::progress::Silent;
use strata_lab::zip::bench::{self, Baselines, BenchArgs, BenchReport};

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-zip-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An executable shell script `name` in `dir`.
fn tool(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake with the command line of lstm-compress and cmix: `-c|-d [dictionary] in out`. It logs
/// its arguments to `args.log` beside itself and fails on anything else. `decode` turns the
/// packed file ($in) into the original on stdout.
fn file_tool(dir: &Path, name: &str, decode: &str) {
    let log = dir.join("args.log");
    tool(
        dir,
        name,
        &format!(
            "echo \"$@\" >> '{}'\n\
             if [ $# -eq 4 ]; then in=$3; out=$4; elif [ $# -eq 3 ]; then in=$2; out=$3; else exit 2; fi\n\
             case \"$1\" in\n\
               -c) {{ printf FAKE; cat \"$in\"; }} > \"$out\" ;;\n\
               -d) {decode} > \"$out\" ;;\n\
               *) exit 2 ;;\n\
             esac\n\
             echo progress: 100%",
            log.display()
        ),
    );
}

const EXACT: &str = "tail -c +5 \"$in\"";
/// Decodes all but the first byte right: one byte of the output differs from the input.
const CORRUPT: &str = "{ printf Z; tail -c +6 \"$in\"; }";

fn text(d: &Path, name: &str, n: usize) -> PathBuf {
    let p = d.join(name);
    let line = b"hello, neural compressors; the quick brown fox jumps over the lazy dog\n";
    let data: Vec<u8> = line.iter().copied().cycle().take(n).collect();
    std::fs::write(&p, data).unwrap();
    p
}

fn args(files: Vec<PathBuf>) -> BenchArgs {
    BenchArgs {
        files,
        opts: strata_zip::Options::default(),
        classic: true,
    }
}

fn only(names: &[&str], path: &Path) -> Baselines {
    Baselines {
        names: Some(names.iter().map(|s| s.to_string()).collect()),
        search_path: Some(OsString::from(path)),
        ..Baselines::default()
    }
}

fn run(files: Vec<PathBuf>, how: &Baselines) -> BenchReport {
    bench::bench_with(&args(files), how, &Silent).unwrap()
}

#[test]
fn a_fake_lstm_compress_is_found_run_verified_and_measured() {
    let d = scratch("ok");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    file_tool(&bin, "lstm-compress", EXACT);
    let n = 3000;
    let input = text(&d, "t.txt", n);
    let r = run(vec![input.clone()], &only(&["lstm-compress"], &bin));
    assert_eq!(r.rows.len(), 2);
    assert_eq!(r.rows[0].compressor, "strata cm");
    let row = &r.rows[1];
    assert_eq!(row.compressor, "lstm-compress");
    assert_eq!(row.error, None);
    assert_eq!(row.round_trip, Some(true));
    assert_eq!((row.original_bytes, row.units), (n as u64, n as u64));
    assert_eq!(row.unit, "byte");
    assert_eq!(row.compressed_bytes, n as u64 + 4);
    let bits = row.bits_per_unit.unwrap();
    assert!(
        (bits - 8.0 * (n as f64 + 4.0) / n as f64).abs() < 1e-12,
        "{bits}"
    );
    assert!(row.compress_kb_s.is_finite() && row.compress_kb_s > 0.0);
    assert!(row.decompress_kb_s.unwrap() > 0.0);
    assert_eq!(r.neural, ["lstm-compress"]);
    assert!(r.missing.is_empty());
    assert!(
        r.notes.iter().any(|n| n.contains("can be slow")),
        "{:?}",
        r.notes
    );
    // The tool got its documented command line: no dictionary, then input and output files.
    let log = std::fs::read_to_string(bin.join("args.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(calls[0].starts_with("-c /") && calls[0].split(' ').count() == 3);
    assert!(calls[1].starts_with("-d /") && calls[1].split(' ').count() == 3);
    // The JSON row is today's shape, numbers included, with no error key.
    let j = serde_json::to_value(row).unwrap();
    assert_eq!(j["compressed_bytes"], n as u64 + 4);
    assert_eq!(j["round_trip"], true);
    assert!(j.get("error").is_none());
    // The same tool through the function `[compression] baselines` runs.
    let data = std::fs::read(&input).unwrap();
    let how = only(&[], &bin);
    let c = bench::run_baseline("lstm-compress", &data, &how).unwrap();
    assert_eq!(c.compressed_bytes, n as u64 + 4);
    assert!(c.round_trip);
    assert_eq!(bench::classic_label("lstm-compress"), Some("lstm-compress"));
    assert!(bench::find_program("lstm-compress", Some(bin.as_os_str())).is_some());
}

#[test]
fn in_the_default_set_a_neural_tool_found_follows_the_classic_ones() {
    let d = scratch("default");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    file_tool(&bin, "cmix", EXACT);
    let input = text(&d, "t.txt", 500);
    let how = Baselines {
        search_path: Some(OsString::from(&bin)),
        ..Baselines::default()
    };
    let r = run(vec![input], &how);
    let names: Vec<&str> = r.rows.iter().map(|r| r.compressor.as_str()).collect();
    // Only the fake is on this search path: the classic four and the other neural tools are
    // named in the note, as any missing compressor is.
    assert_eq!(names, ["strata cm", "cmix"]);
    assert_eq!(
        r.missing,
        ["gzip", "bzip2", "xz", "zstd", "lstm-compress", "nncp"]
    );
    assert!(r
        .notes
        .contains(&"not on PATH: gzip, bzip2, xz, zstd, lstm-compress, nncp".to_string()));
    assert_eq!(r.rows[1].round_trip, Some(true));
}

#[test]
fn a_fake_whose_decompression_corrupts_a_byte_gives_a_failed_row_and_no_size() {
    let d = scratch("corrupt");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    file_tool(&bin, "lstm-compress", CORRUPT);
    let a = text(&d, "a.txt", 2000);
    let b = text(&d, "b.txt", 1000);
    let r = run(vec![a, b], &only(&["lstm-compress"], &bin));
    assert_eq!(r.rows.len(), 4);
    for row in r.rows.iter().filter(|r| r.compressor == "lstm-compress") {
        assert_eq!(row.round_trip, Some(false));
        assert!(row.error.as_deref().unwrap().contains("did not give back"));
        assert_eq!(row.bits_per_unit, None);
        assert_eq!(row.decompress_kb_s, None);
        let j = serde_json::to_value(row).unwrap();
        assert!(j["compressed_bytes"].is_null(), "{j}");
        assert!(j["compress_kb_s"].is_null(), "{j}");
    }
    let md = bench::markdown(&r.rows);
    assert!(
        md.contains("| lstm-compress |  | n/a /byte |  |  | FAILED: decompressing"),
        "{md}"
    );
    let csv = bench::csv(&r.rows);
    assert!(
        csv.contains("b.txt,1000,byte,1000,lstm-compress,,,,,false\n"),
        "{csv}"
    );
    // Totals leave the failed rows out and say so.
    let t = bench::totals(&r.rows);
    let lstm = t.iter().find(|t| t.0.starts_with("lstm-compress")).unwrap();
    assert_eq!(lstm.0, "lstm-compress (0 of 2 files)");
    assert_eq!((lstm.1, lstm.2, lstm.3), (0, 0, None));
}

#[test]
fn a_tool_that_fails_or_runs_too_long_gives_a_row_without_numbers() {
    let d = scratch("fail");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    tool(&bin, "lstm-compress", "exit 255");
    tool(&bin, "cmix", "exec sleep 30");
    let input = text(&d, "t.txt", 800);
    let mut how = only(&["lstm-compress", "cmix"], &bin);
    how.time_limit = Some(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let r = run(vec![input.clone()], &how);
    assert!(t.elapsed() < Duration::from_secs(20));
    let lstm = &r.rows[1];
    assert_eq!(lstm.round_trip, Some(false));
    assert!(
        lstm.error.as_deref().unwrap().contains("failed"),
        "{lstm:?}"
    );
    let cmix = &r.rows[2];
    assert_eq!(cmix.round_trip, None);
    assert!(
        cmix.error.as_deref().unwrap().contains("time limit"),
        "{cmix:?}"
    );
    assert_eq!(cmix.bits_per_unit, None);
    // Through `[compression] baselines`' function, a failure is an error.
    let data = std::fs::read(&input).unwrap();
    assert!(bench::run_baseline("lstm-compress", &data, &how).is_err());
}

#[test]
fn nncp_gets_its_own_command_line_and_the_dictionary_goes_to_the_tools_that_take_one() {
    let d = scratch("nncp");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    // nncp [options] c|d infile outfile
    tool(
        &bin,
        "nncp",
        "[ $# -eq 3 ] || exit 2\ncase \"$1\" in c) cp \"$2\" \"$3\" ;; d) cp \"$2\" \"$3\" ;; *) exit 2 ;; esac",
    );
    file_tool(&bin, "lstm-compress", EXACT);
    let dict = d.join("english.dic");
    std::fs::write(&dict, "the\nand\n").unwrap();
    let input = text(&d, "t.txt", 700);
    let mut how = only(&["nncp", "lstm-compress"], &bin);
    how.dictionary = Some(dict.clone());
    let r = run(vec![input], &how);
    let names: Vec<&str> = r.rows.iter().map(|r| r.compressor.as_str()).collect();
    assert_eq!(names, ["strata cm", "nncp", "lstm-compress +dict"]);
    assert!(r.rows.iter().all(|r| r.round_trip == Some(true)));
    assert_eq!(r.rows[1].compressed_bytes, 700);
    assert_eq!(r.rows[1].bits_per_unit, Some(8.0));
    let log = std::fs::read_to_string(bin.join("args.log")).unwrap();
    for line in log.lines() {
        assert_eq!(
            line.split(' ').nth(1),
            Some(dict.to_str().unwrap()),
            "{log}"
        );
    }
    // A dictionary that is not there is an error before anything runs.
    how.dictionary = Some(d.join("nope.dic"));
    assert!(bench::bench_with(&args(vec![d.join("t.txt")]), &how, &Silent).is_err());
}

#[test]
fn with_no_tool_present_the_note_lists_it_and_only_strata_runs() {
    let d = scratch("none");
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let input = text(&d, "t.txt", 400);
    let r = run(
        vec![input.clone()],
        &only(&["lstm-compress", "cmix"], &empty),
    );
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.missing, ["lstm-compress", "cmix"]);
    assert_eq!(r.notes, ["not on PATH: lstm-compress, cmix"]);
    assert!(r.neural.is_empty());
    let md = bench::markdown_with_notes(&r.rows, &r.notes);
    assert!(md.ends_with("\nnot on PATH: lstm-compress, cmix\n"), "{md}");
    // `none` runs strata alone; an unknown or repeated name is an error.
    let r = run(vec![input.clone()], &only(&["none"], &empty));
    assert_eq!((r.rows.len(), r.missing.len()), (1, 0));
    for bad in [&["paq8"][..], &["xz", "xz"], &["none", "xz"]] {
        let e = bench::bench_with(&args(vec![input.clone()]), &only(bad, &empty), &Silent);
        assert!(e.is_err(), "{bad:?}");
    }
    assert!(bench::run_baseline("lstm-compress", b"abc", &only(&[], &empty)).is_err());
}

#[test]
fn the_size_cap_leaves_large_files_out_of_the_neural_runs() {
    let d = scratch("cap");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    file_tool(&bin, "lstm-compress", EXACT);
    let small = text(&d, "small.txt", 100);
    let big = text(&d, "big.txt", 5000);
    let mut how = only(&["lstm-compress"], &bin);
    how.max_bytes = Some(1000);
    let r = run(vec![small, big], &how);
    let rows: Vec<(&str, &str)> = r
        .rows
        .iter()
        .map(|r| (r.file.as_str(), r.compressor.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("small.txt", "strata cm"),
            ("small.txt", "lstm-compress"),
            ("big.txt", "strata cm"),
        ]
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("big.txt left out (5000 bytes, over the size cap of 1000)")),
        "{:?}",
        r.notes
    );
}
