//! The summaries the report shows: mean and spread over seeds, accuracy by precision, per-layer
//! CKA with the float twin and the float seed-to-seed yardstick. Pure functions of the run's
//! results, tested on hand-made values.

use super::runner::Outcome;
use strata_nn::Precision;

/// Mean, sample standard deviation (n - 1; `None` for one value), min, max, count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator; `None` for one value).
    pub std: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Values summarized (the finite ones).
    pub n: usize,
}

/// Summary of the finite values of `v` (`None` if there are none).
pub fn summarize(v: &[f64]) -> Option<Summary> {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let std = (n > 1).then(|| {
        let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    });
    Some(Summary {
        mean,
        std,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        n,
    })
}

impl Summary {
    /// `98.12 ± 0.10` (scaled by `k`, `d` decimals); the ± part only with two or more values.
    pub fn show(&self, k: f64, d: usize) -> String {
        match self.std {
            Some(s) => format!("{:.d$} ± {:.d$}", self.mean * k, s * k),
            None => format!("{:.d$}", self.mean * k),
        }
    }

    /// Mean ± one standard deviation as a band (none for one value).
    pub fn band(&self) -> Option<(f64, f64)> {
        self.std.map(|s| (self.mean - s, self.mean + s))
    }
}

/// Precisions of a family in the canonical order (float first).
pub fn precisions_of(o: &Outcome, family: &str) -> Vec<Precision> {
    Precision::ALL
        .into_iter()
        .filter(|p| {
            o.analysis
                .instances
                .iter()
                .any(|i| i.family == family && i.precision == *p)
        })
        .collect()
}

/// Instances of a family at one precision (every seed).
pub fn members(o: &Outcome, family: &str, p: Precision) -> Vec<usize> {
    (0..o.analysis.instances.len())
        .filter(|&i| {
            o.analysis.instances[i].family == family && o.analysis.instances[i].precision == p
        })
        .collect()
}

/// The diagonal of a CKA matrix: layer i against layer i (layer names must match in order).
pub fn diagonal(r: &super::runner::Comparison) -> Vec<Option<f64>> {
    r.layers_a
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (r.layers_b.get(i) == Some(name))
                .then(|| r.values[i][i])
                .flatten()
        })
        .collect()
}

/// Per-layer CKA with the float twin for one family and precision: one vector per seed.
pub fn twin_curves(o: &Outcome, family: &str, p: Precision) -> Vec<(u64, Vec<Option<f64>>)> {
    let a = &o.analysis;
    let mut out = Vec::new();
    for i in members(o, family, p) {
        let seed = a.instances[i].train.seed;
        let twin = members(o, family, Precision::Float)
            .into_iter()
            .find(|&f| a.instances[f].train.seed == seed);
        if let Some(r) = twin.and_then(|f| o.cka.get(&(f, i))) {
            out.push((seed, diagonal(r)));
        }
    }
    out
}

/// Per-layer CKA between the float networks of two seeds.
pub type SeedCurve = ((u64, u64), Vec<Option<f64>>);

/// Per-layer CKA between float networks of different seeds: one vector per pair of seeds.
pub fn seed_curves(o: &Outcome, family: &str) -> Vec<SeedCurve> {
    let a = &o.analysis;
    let f = members(o, family, Precision::Float);
    let mut out = Vec::new();
    for (x, &i) in f.iter().enumerate() {
        for &j in &f[x + 1..] {
            if let Some(r) = o.cka.get(&(i, j)) {
                out.push((
                    (a.instances[i].train.seed, a.instances[j].train.seed),
                    diagonal(r),
                ));
            }
        }
    }
    out
}

/// Per-layer summaries over several curves of equal length.
pub fn per_layer(curves: &[Vec<Option<f64>>], layers: usize) -> Vec<Option<Summary>> {
    (0..layers)
        .map(|l| {
            let v: Vec<f64> = curves
                .iter()
                .filter_map(|c| c.get(l).copied().flatten())
                .collect();
            summarize(&v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computation() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        // Sample variance: (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3.
        assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!((s.min, s.max, s.n), (1.0, 4.0, 4));
        assert_eq!(
            s.show(100.0, 1),
            format!("250.0 ± {:.1}", 100.0 * (5.0f64 / 3.0).sqrt())
        );
    }

    #[test]
    fn one_value_has_no_spread_and_non_finite_values_are_ignored() {
        let s = summarize(&[0.25, f64::NAN, f64::INFINITY]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (0.25, None, 1));
        assert_eq!(s.band(), None);
        assert_eq!(s.show(1.0, 2), "0.25");
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }

    #[test]
    fn per_layer_skips_missing_values() {
        let curves = vec![vec![Some(1.0), None], vec![Some(0.5), Some(0.2)]];
        let s = per_layer(&curves, 3);
        assert_eq!(s[0].unwrap().mean, 0.75);
        assert_eq!(s[1].unwrap().n, 1);
        assert!(s[2].is_none());
    }
}
