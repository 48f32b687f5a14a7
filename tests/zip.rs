//! End-to-end tests of `strata zip`: round trips through files, the entropy bound on generated
//! sources, the benchmark's JSON, and the file-safety rules (one error line, non-zero exit, no
//! output left behind, nothing overwritten without --force, inputs untouched).
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test, with its location

use std::path::Path;
use std::process::Output;

mod common;
use common::{last_json, scratch, strata};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fails_with_one_line(o: &Output, needle: &str) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "stderr: {err}");
    assert!(err.contains(needle), "stderr: {err}");
}

#[test]
fn generated_sources_compress_toward_their_entropy_and_round_trip() {
    let d = scratch("gen");
    for (source, bound_slack) in [
        ("xor:k=20", 0.05),
        ("iid:alphabet=4,entropy=1.2", 0.06),
        ("markov:alphabet=4,order=2", 0.12),
    ] {
        let sym = d.join("src.bin");
        let o = strata(&[
            "zip",
            "gen",
            source,
            s(&sym),
            "--n",
            "100000",
            "--seed",
            "3",
            "--json",
            "--force",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rate = last_json(&o)["entropy_rate"].as_f64().unwrap();
        let packed = d.join("src.stz");
        let o = strata(&["zip", "compress", s(&sym), s(&packed), "--json", "--force"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bps = last_json(&o)["bits_per_symbol"].as_f64().unwrap();
        // A good model comes within a small learning cost of the entropy rate, never below it
        // by more than the header's share.
        assert!(
            bps < rate + bound_slack,
            "{source}: {bps} bits/symbol vs rate {rate}"
        );
        assert!(
            bps > rate - 0.01,
            "{source}: {bps} below the entropy rate {rate}"
        );
        let back = d.join("back.bin");
        let o = strata(&["zip", "decompress", s(&packed), s(&back), "--force"]);
        assert!(o.status.success());
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&sym).unwrap());
    }
}

#[test]
fn bad_inputs_give_one_line_and_leave_no_output() {
    let d = scratch("errors");
    let input = d.join("in.txt");
    std::fs::write(&input, b"some text some text some text").unwrap();
    let packed = d.join("in.stz");
    assert!(strata(&["zip", "compress", s(&input), s(&packed)])
        .status
        .success());
    let original = std::fs::read(&packed).unwrap();

    // An existing output is not overwritten without --force.
    let o = strata(&["zip", "compress", s(&input), s(&packed)]);
    fails_with_one_line(&o, "--force");
    assert_eq!(std::fs::read(&packed).unwrap(), original);

    // A foreign file, a truncated one and a corrupted one: one line, no output file.
    let out = d.join("out.txt");
    fails_with_one_line(
        &strata(&["zip", "decompress", s(&input), s(&out)]),
        "not a strata-zip file",
    );
    let cut = d.join("cut.stz");
    std::fs::write(&cut, &original[..original.len() - 3]).unwrap();
    let o = strata(&["zip", "decompress", s(&cut), s(&out)]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1);
    let mut bad = original.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let flipped = d.join("flipped.stz");
    std::fs::write(&flipped, &bad).unwrap();
    let o = strata(&["zip", "decompress", s(&flipped), s(&out)]);
    assert!(!o.status.success());
    assert!(!out.exists(), "no output after a failed decompress");
    assert_eq!(std::fs::read(&packed).unwrap(), original, "input untouched");
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());

    fails_with_one_line(
        &strata(&[
            "zip",
            "compress",
            s(&input),
            s(&d.join("x")),
            "--model",
            "transformer",
        ]),
        "unknown model",
    );
    fails_with_one_line(&strata(&["zip", "gen", "xor:k=0", s(&d.join("g"))]), "k");
}

#[test]
fn bench_reports_strata_beside_the_classic_compressors() {
    let d = scratch("bench");
    let input = d.join("t.txt");
    // Pseudo-text: words drawn at random, so no tool can just copy one long repeat.
    let words = [
        "it ", "was ", "the ", "best ", "of ", "times, ", "worst ", "age\n", "wisdom ",
    ];
    let mut state = 12345u64;
    let mut text = String::new();
    while text.len() < 20_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text += words[(state >> 33) as usize % words.len()];
    }
    std::fs::write(&input, &text).unwrap();
    let out = d.join("res");
    let o = strata(&["zip", "bench", s(&input), "--json", "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = last_json(&o);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows[0]["compressor"], "strata cm");
    assert_eq!(rows[0]["round_trip"], true);
    let ours = rows[0]["compressed_bytes"].as_u64().unwrap();
    for r in &rows[1..] {
        // Classic tools present on this machine: every one round-trips, and strata beats each
        // on this text (its entropy is what the order-1 word choice leaves).
        assert_eq!(r["round_trip"], true);
        assert!(ours < r["compressed_bytes"].as_u64().unwrap(), "{r}");
    }
    for f in ["bench-zip.json", "bench-zip.md", "bench-zip.csv"] {
        assert!(out.join(f).exists(), "{f}");
    }
}

/// FNV-1a over a file's bytes: what "unchanged" means below.
fn hash(p: &Path) -> u64 {
    std::fs::read(p)
        .unwrap()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(unix)]
#[test]
fn input_and_output_being_the_same_file_is_refused_even_with_force() {
    let d = scratch("same");
    let x = d.join("x.txt");
    std::fs::write(&x, b"text that must survive, text that must survive\n").unwrap();
    let z = d.join("x.stz");
    assert!(strata(&["zip", "compress", s(&x), s(&z)]).status.success());
    std::fs::hard_link(&x, d.join("hard")).unwrap();
    std::os::unix::fs::symlink(&x, d.join("soft")).unwrap();
    std::os::unix::fs::symlink(&z, d.join("zsoft")).unwrap();
    let (hx, hz) = (hash(&x), hash(&z));
    let dot = d.join(".").join("x.txt");
    let soft = d.join("soft");
    let cases: Vec<(&str, &Path, std::path::PathBuf)> = vec![
        ("compress", &x, x.clone()),
        ("compress", &x, dot.clone()),
        ("compress", &dot, x.clone()),
        ("compress", &x, d.join("hard")),
        ("compress", &x, soft.clone()),
        ("compress", &soft, x.clone()),
        ("decompress", &z, z.clone()),
        ("decompress", &z, d.join("zsoft")),
    ];
    for (cmd, input, output) in &cases {
        let o = strata(&["zip", cmd, s(input), s(output), "--force"]);
        fails_with_one_line(&o, "same file");
        assert_eq!(
            hash(&x),
            hx,
            "{cmd} {} {}",
            input.display(),
            output.display()
        );
        assert_eq!(
            hash(&z),
            hz,
            "{cmd} {} {}",
            input.display(),
            output.display()
        );
    }
    assert!(std::fs::symlink_metadata(d.join("soft"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A different file is still overwritten with --force.
    let y = d.join("y.txt");
    std::fs::write(&y, b"old").unwrap();
    let o = strata(&["zip", "decompress", s(&z), s(&y), "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(hash(&y), hx);
}

#[test]
fn a_forged_length_fails_at_once_with_one_line() {
    // A header claiming 10^10 bytes of a two-letter alphabet (one bit each) before 440 KB of
    // zeros: decoding it would take hours before the checksum failed; the header check refuses
    // it before decoding.
    let d = scratch("forged");
    let mut c = b"STZP\x02\x01\xef\xbe\xad\xde".to_vec();
    let mut len = 10_000_000_000u64;
    while len >= 0x80 {
        c.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    c.push(len as u8);
    c.extend_from_slice(&[2, 2, 0, 1]); // two symbols, 0 and 1
    c.extend_from_slice(&[0, 0, 1, 32, 16]); // cm, layers 1, hidden 32, bptt 16
    c.extend_from_slice(&0.005f32.to_bits().to_le_bytes());
    c.push(0); // seed
    c.extend(std::iter::repeat_n(0u8, 440_000));
    let f = d.join("forged.stz");
    std::fs::write(&f, &c).unwrap();
    let out = d.join("out");
    let o = strata(&["zip", "decompress", s(&f), s(&out)]);
    fails_with_one_line(
        &o,
        "header claims 10000000000 bytes but the 440000-byte stream can code at most",
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("forged.stz"));
    assert!(!out.exists());
    fails_with_one_line(&strata(&["zip", "info", s(&f)]), "header claims");
}

#[test]
fn outputs_are_whole_or_absent_and_leave_no_temporary_files() {
    let d = scratch("atomic");
    let input = d.join("in.txt");
    std::fs::write(&input, b"abcabcabcabcabcabc abcabcabc\n".repeat(50)).unwrap();
    let packed = d.join("in.stz");
    assert!(strata(&["zip", "compress", s(&input), s(&packed)])
        .status
        .success());
    let good = std::fs::read(&packed).unwrap();
    assert_eq!(
        strata_zip_decoded(&d, &packed),
        std::fs::read(&input).unwrap()
    );

    // A corrupt input with --force over an existing output: the output keeps its old bytes.
    let mut bad = good.clone();
    bad[6] ^= 0xff; // the stored CRC-32: decoding runs to the end, then the check fails

    let badf = d.join("bad.stz");
    std::fs::write(&badf, &bad).unwrap();
    let out = d.join("out.txt");
    std::fs::write(&out, b"previous contents").unwrap();
    let o = strata(&["zip", "decompress", s(&badf), s(&out), "--force"]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    // A compress whose output directory does not exist: an error, nothing created.
    let o = strata(&[
        "zip",
        "compress",
        s(&input),
        s(&d.join("no/such/dir/x.stz")),
    ]);
    assert!(!o.status.success());
    assert!(!d.join("no").exists());
    // Compressing over an existing output with --force replaces it whole.
    let o = strata(&["zip", "compress", s(&input), s(&out), "--force"]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), good);
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') && !n.ends_with(".tmp")),
        "{names:?}"
    );
}

fn strata_zip_decoded(d: &Path, packed: &Path) -> Vec<u8> {
    let back = d.join("decoded.bin");
    let o = strata(&["zip", "decompress", s(packed), s(&back), "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = std::fs::read(&back).unwrap();
    std::fs::remove_file(&back).unwrap();
    v
}

/// An empty input has no bits/symbol figure (not 8 x header bytes / max(1, 0)).
#[test]
fn an_empty_input_reports_no_bits_per_symbol() {
    let d = scratch("empty");
    let e = d.join("empty");
    std::fs::write(&e, b"").unwrap();
    let z = d.join("empty.stz");
    let o = strata(&["zip", "compress", s(&e), s(&z), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = last_json(&o);
    assert!(j["bits_per_symbol"].is_null(), "{j}");
    assert!(j["bits_per_byte"].is_null(), "{j}");
    assert_eq!(j["original_bytes"], 0);
    let o = strata(&["zip", "compress", s(&e), s(&z), "--force"]);
    assert!(o.status.success());
    let line = String::from_utf8_lossy(&o.stdout);
    for bad in ["bits/symbol", "NaN", "inf", "-0.0"] {
        assert!(!line.contains(bad), "{line}");
    }
    assert_eq!(strata_zip_decoded(&d, &z), b"");
}

/// `strata zip bench` with a fake lstm-compress first on the child's PATH (only the child's
/// environment is set): by default its row follows the classic ones, verified and measured;
/// `--baselines` picks compressors and names the missing ones in a note; a fake that corrupts
/// a byte gives a FAILED row with no size and a non-zero exit.
#[cfg(unix)]
#[test]
fn bench_runs_a_neural_tool_found_on_path_and_checks_its_round_trip() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch("bench-neural");
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = |decode: &str| {
        let p = bin.join("lstm-compress");
        let script = format!(
            "#!/bin/sh\n[ $# -eq 3 ] || exit 2\ncase \"$1\" in\n  \
             -c) {{ printf FAKE; cat \"$2\"; }} > \"$3\" ;;\n  -d) {decode} > \"$3\" ;;\n  \
             *) exit 2 ;;\nesac\n"
        );
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    fake("tail -c +5 \"$2\"");
    let input = d.join("t.txt");
    let n = 4000u64;
    let text: Vec<u8> = b"a neural compressor on PATH, faked\n"
        .iter()
        .copied()
        .cycle()
        .take(n as usize)
        .collect();
    std::fs::write(&input, &text).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let bench = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["zip", "bench", s(&input)])
            .args(extra)
            .env("PATH", &path)
            .output()
            .unwrap()
    };

    let o = bench(&["--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = last_json(&o);
    let rows = rows.as_array().unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last["compressor"], "lstm-compress");
    assert_eq!(last["round_trip"], true);
    assert_eq!(last["compressed_bytes"], n + 4);
    let bits = last["bits_per_unit"].as_f64().unwrap();
    assert!(
        (bits - 8.0 * (n + 4) as f64 / n as f64).abs() < 1e-9,
        "{bits}"
    );
    assert!(last["compress_kb_s"].as_f64().unwrap() > 0.0);

    // Chosen compressors, in order; one not on PATH is named in the note after the table.
    let o = bench(&["--baselines", "lstm-compress,nncp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = common::stdout(&o);
    assert!(
        out.contains("| t.txt | 4000 | lstm-compress | 4004 | 8.0080 /byte |"),
        "{out}"
    );
    assert!(!out.contains("gzip"), "{out}");
    assert!(out.contains("not on PATH: nncp"), "{out}");
    let o = bench(&["--baselines", "none", "--json"]);
    assert_eq!(last_json(&o).as_array().unwrap().len(), 1);
    let o = bench(&["--baselines", "rar"]);
    fails_with_one_line(&o, "unknown compressor 'rar'");

    fake("{ printf Z; tail -c +6 \"$2\"; }");
    let o = bench(&["--baselines", "lstm-compress"]);
    assert!(!o.status.success());
    let out = common::stdout(&o);
    assert!(
        out.contains("| t.txt | 4000 | lstm-compress |  | n/a /byte |  |  | FAILED: "),
        "{out}"
    );
}
