//! Tests of the predictor: valid distributions, learning on simple sources, bit-exact
//! reproducibility, analytic gradients against finite differences, and numerical safety.

use super::*;

fn spec(cell: Cell, hidden: u32, symbols: u32, bptt: u32, lr: f32, seed: u64) -> RnnSpec {
    RnnSpec {
        cell,
        layers: 1,
        hidden,
        symbols,
        bptt,
        lr,
        seed,
    }
}

/// Feeds `seq` and returns the code length in bits of each symbol under the prediction made
/// before it was seen.
fn code_lengths(rnn: &mut Rnn, seq: &[u32]) -> Vec<f64> {
    seq.iter()
        .map(|&x| {
            let p = rnn.probs()[x as usize];
            rnn.update(x);
            -(p as f64).log2()
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn assert_distribution(p: &[f32], symbols: usize) {
    assert_eq!(p.len(), symbols);
    assert!(p.iter().all(|&x| x > 0.0 && x.is_finite()), "{p:?}");
    let s: f32 = p.iter().sum();
    assert!((s - 1.0).abs() < 1e-4, "sum {s}");
}

/// x_n = x_{n-1} XOR x_{n-k} after `k` random bits.
fn xor_source(k: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let mut x: Vec<u32> = (0..k).map(|_| (rng.next() >> 63) as u32).collect();
    if x.iter().all(|&b| b == 0) {
        x[0] = 1; // the all-zero start would make the source trivially constant
    }
    for i in k..n {
        let b = x[i - 1] ^ x[i - k];
        x.push(b);
    }
    x
}

#[test]
fn first_prediction_is_a_distribution() {
    for cell in [Cell::Lstm, Cell::Gru] {
        for symbols in [2, 3, 256] {
            let rnn = Rnn::new(&spec(cell, 8, symbols, 4, 1e-2, 1));
            assert_distribution(rnn.probs(), symbols as usize);
        }
    }
}

#[test]
fn learns_periodic_sequence() {
    for (cell, seed) in [(Cell::Lstm, 11), (Cell::Gru, 12)] {
        let phase = (SplitMix64(seed).next() % 4) as u32;
        let seq: Vec<u32> = (0..5000).map(|i| (i + phase) % 4).collect();
        let mut rnn = Rnn::new(&spec(cell, 16, 4, 16, 1e-2, seed));
        let bits = code_lengths(&mut rnn, &seq);
        let tail = mean(&bits[4000..]);
        println!("{cell:?} periodic-4: {tail:.4} bits/symbol over the last 1000");
        assert!(tail < 0.3, "{cell:?}: {tail}");
        assert_distribution(rnn.probs(), 4);
    }
}

/// Like [`xor_source`] but each bit is flipped with probability 1/16, so the sequence is not
/// periodic and the predictor must really compute the XOR of two lagged inputs. The entropy
/// rate is H(1/16) = 0.337 bits/symbol.
fn noisy_xor_source(k: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let mut x: Vec<u32> = (0..k).map(|_| (rng.next() >> 63) as u32).collect();
    for i in k..n {
        let flip = u32::from(rng.next().is_multiple_of(16));
        let b = x[i - 1] ^ x[i - k] ^ flip;
        x.push(b);
    }
    x
}

#[test]
fn learns_noisy_xor4_to_its_entropy() {
    for (cell, lr, seed) in [(Cell::Lstm, 1e-2, 31), (Cell::Gru, 5e-3, 32)] {
        let seq = noisy_xor_source(4, 20_000, seed);
        let mut rnn = Rnn::new(&spec(cell, 16, 2, 16, lr, seed));
        let bits = code_lengths(&mut rnn, &seq);
        let tail = mean(&bits[16_000..]);
        println!("{cell:?} noisy xor-4: {tail:.4} bits/symbol over the last 4000 (entropy 0.337)");
        assert!(tail < 0.42, "{cell:?}: {tail}");
    }
}

/// The lag-8 parity of the noisy source takes far longer to find (about 0.7 bits/symbol
/// between 10k and 20k symbols, 0.37-0.41 after 100k): too slow for the default suite in
/// debug builds, run it with `--ignored`.
#[test]
#[ignore = "long: 100k symbols per cell"]
fn learns_noisy_xor8_slowly() {
    for (cell, lr, seed) in [(Cell::Lstm, 5e-3, 33), (Cell::Gru, 4e-3, 34)] {
        let seq = noisy_xor_source(8, 100_000, seed);
        let mut rnn = Rnn::new(&spec(cell, 32, 2, 16, lr, seed));
        let bits = code_lengths(&mut rnn, &seq);
        let tail = mean(&bits[90_000..]);
        println!("{cell:?} noisy xor-8: {tail:.4} bits/symbol over the last 10000 (entropy 0.337)");
        assert!(tail < 0.45, "{cell:?}: {tail}");
    }
}

#[test]
fn learns_xor_source() {
    for (cell, k, hidden, lr, seed) in [
        (Cell::Lstm, 4, 16, 1e-2, 21),
        (Cell::Gru, 4, 16, 5e-3, 22),
        (Cell::Lstm, 8, 32, 1e-2, 23),
        (Cell::Gru, 8, 32, 5e-3, 24),
    ] {
        let seq = xor_source(k, 20_000, seed);
        let mut rnn = Rnn::new(&spec(cell, hidden, 2, 16, lr, seed));
        let bits = code_lengths(&mut rnn, &seq);
        let tail = mean(&bits[18_000..]);
        println!("{cell:?} xor-{k}: {tail:.4} bits/symbol over the last 2000");
        assert!(tail < 0.1, "{cell:?} k={k}: {tail}");
    }
}

/// FNV-1a over the bits of every distribution the predictor emits.
fn probs_hash(spec: &RnnSpec, seq: &[u32]) -> u64 {
    let mut rnn = Rnn::new(spec);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in seq {
        for p in rnn.probs() {
            h = (h ^ p.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
        }
        rnn.update(x);
    }
    h
}

fn text_like(n: usize, symbols: u32, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    // A noisy mixture of a repeating phrase and random symbols: exercises every code path
    // (touched and untouched embeddings, confident and uncertain predictions).
    (0..n)
        .map(|i| {
            if rng.next().is_multiple_of(4) {
                (rng.next() % symbols as u64) as u32
            } else {
                (i as u32 * 7 % 23) % symbols
            }
        })
        .collect()
}

#[test]
fn bit_identical_runs_and_seed_matters() {
    for cell in [Cell::Lstm, Cell::Gru] {
        let mut s = spec(cell, 16, 64, 8, 5e-3, 7);
        s.layers = 2;
        let seq = text_like(1500, 64, 99);
        let mut a = Rnn::new(&s);
        let mut b = Rnn::new(&s);
        for &x in &seq {
            let same = a
                .probs()
                .iter()
                .zip(b.probs())
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{cell:?} diverged");
            a.update(x);
            b.update(x);
        }
        let h = probs_hash(&s, &seq);
        assert_eq!(h, probs_hash(&s, &seq));
        s.seed = 8;
        assert_ne!(h, probs_hash(&s, &seq), "{cell:?}: seed had no effect");
    }
}

/// Runs one window from the given state with the current weights; returns the mean
/// cross-entropy (nats) and leaves the activations in place for `backward`.
fn window_loss(rnn: &mut Rnn, h0: &[f32], c0: &[f32], inputs: &[usize], targets: &[usize]) -> f64 {
    let lh = h0.len();
    rnn.hs[..lh].copy_from_slice(h0);
    if !rnn.cs.is_empty() {
        rnn.cs[..lh].copy_from_slice(c0);
    }
    rnn.count = 0;
    for &x in inputs {
        rnn.forward(x);
    }
    rnn.targets[..targets.len()].copy_from_slice(targets);
    let s = rnn.symbols;
    let nll: f64 = targets
        .iter()
        .enumerate()
        .map(|(t, &y)| -(rnn.out[t * s + y] as f64).ln())
        .sum();
    nll / targets.len() as f64
}

#[test]
fn gradient_matches_finite_differences() {
    for cell in [Cell::Lstm, Cell::Gru] {
        let s = RnnSpec {
            cell,
            layers: 2,
            hidden: 3,
            symbols: 4,
            bptt: 6,
            lr: 0.0,
            seed: 5,
        };
        let mut rnn = Rnn::new(&s);
        let mut rng = SplitMix64(77);
        // Larger-than-initial weights so that every path carries a visible gradient.
        for w in rnn.params.iter_mut() {
            *w = rng.uniform(1.0);
        }
        let lh = 6;
        let h0: Vec<f32> = (0..lh).map(|_| rng.uniform(0.5)).collect();
        let c0: Vec<f32> = (0..lh).map(|_| rng.uniform(1.0)).collect();
        let inputs = [1usize, 3, 0, 2, 1, 1];
        let targets = [3usize, 0, 2, 1, 1, 0];
        window_loss(&mut rnn, &h0, &c0, &inputs, &targets);
        rnn.grad.fill(0.0);
        rnn.emb_grad.fill(0.0);
        rnn.backward();
        let grad = rnn.grad.clone();
        let emb_grad = rnn.emb_grad.clone();

        let eps = 5e-3f32;
        let mut checked = 0;
        let mut big = 0;
        let mut worst = 0.0f64;
        // Every dense parameter: input weights of layer 1, recurrent weights, biases, output.
        for (i, &g) in grad.iter().enumerate() {
            let w = rnn.params[i];
            rnn.params[i] = w + eps;
            let lp = window_loss(&mut rnn, &h0, &c0, &inputs, &targets);
            rnn.params[i] = w - eps;
            let lm = window_loss(&mut rnn, &h0, &c0, &inputs, &targets);
            rnn.params[i] = w;
            let fd = (lp - lm) / (2.0 * eps as f64);
            let g = g as f64;
            assert!(
                (g - fd).abs() <= 5e-5 + 0.01 * fd.abs(),
                "{cell:?} param {i}: analytic {g} vs numeric {fd}"
            );
            worst = worst.max((g - fd).abs());
            checked += 1;
            big += usize::from(fd.abs() > 1e-3);
        }
        // Embedding rows of the symbols that occur (others have zero gradient).
        for (i, &g) in emb_grad.iter().enumerate() {
            let w = rnn.emb[i];
            rnn.emb[i] = w + eps;
            let lp = window_loss(&mut rnn, &h0, &c0, &inputs, &targets);
            rnn.emb[i] = w - eps;
            let lm = window_loss(&mut rnn, &h0, &c0, &inputs, &targets);
            rnn.emb[i] = w;
            let fd = (lp - lm) / (2.0 * eps as f64);
            let g = g as f64;
            assert!(
                (g - fd).abs() <= 5e-5 + 0.01 * fd.abs(),
                "{cell:?} embedding {i}: analytic {g} vs numeric {fd}"
            );
            worst = worst.max((g - fd).abs());
            checked += 1;
            big += usize::from(fd.abs() > 1e-3);
        }
        println!(
            "{cell:?}: {checked} gradients checked, {big} above 1e-3, worst |error| {worst:.1e}"
        );
        assert!(
            big * 2 > checked,
            "{cell:?}: too few non-trivial gradients ({big})"
        );
    }
}

#[test]
fn stays_finite_with_huge_learning_rate() {
    for cell in [Cell::Lstm, Cell::Gru] {
        for lr in [1.0f32, 100.0] {
            let mut s = spec(cell, 12, 16, 4, lr, 3);
            s.layers = 3;
            let mut rnn = Rnn::new(&s);
            // Weights hit their bound within a few hundred windows at these rates, so a few
            // thousand steps exercise the saturated regime.
            for &x in &text_like(6_000, 16, 5) {
                rnn.update(x);
                let p = rnn.probs();
                assert!(
                    p.iter().all(|&q| q > 0.0 && q.is_finite()),
                    "{cell:?} lr {lr}"
                );
            }
            assert!(rnn.params.iter().all(|w| w.is_finite()));
            assert!(rnn.emb.iter().all(|w| w.is_finite()));
            assert_distribution(rnn.probs(), 16);
        }
    }
}

#[test]
fn extreme_specs_work() {
    for cell in [Cell::Lstm, Cell::Gru] {
        for (layers, hidden, symbols, bptt) in [(1, 1, 2, 1), (4, 1, 256, 1), (4, 5, 3, 40)] {
            let s = RnnSpec {
                cell,
                layers,
                hidden,
                symbols,
                bptt,
                lr: 1e-2,
                seed: u64::MAX,
            };
            let mut rnn = Rnn::new(&s);
            for x in 0..200u32 {
                rnn.update(x % symbols);
            }
            assert_distribution(rnn.probs(), symbols as usize);
        }
    }
}

/// Pins the exact output bits. The encoder and the decoder may run on different machines
/// (x86-64 with or without AVX, aarch64) and builds; they agree only if every one of them
/// computes these same bits. A change of evaluation order anywhere (a refactor, a "harmless"
/// reassociation, a libm call slipping in) changes the hash on some or all of them, and with
/// it the compressed format: update the constants only together with a format version bump.
#[test]
fn golden_probs_hash() {
    let seq = text_like(2000, 40, 1234);
    let mut got = Vec::new();
    for cell in [Cell::Lstm, Cell::Gru] {
        let s = RnnSpec {
            cell,
            layers: 2,
            hidden: 13,
            symbols: 40,
            bptt: 9,
            lr: 1e-2,
            seed: 2024,
        };
        got.push(probs_hash(&s, &seq));
    }
    println!("{got:#018x?}");
    assert_eq!(got, [0x98bb_08c3_cd5b_7cfc, 0xae55_b224_18ce_995c]);
}
