//! End-to-end tests of `strata zip`: round trips through files, the entropy bound on generated
//! sources, the benchmark's JSON, and the file-safety rules (one error line, non-zero exit, no
//! output left behind, nothing overwritten without --force, inputs untouched).

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
