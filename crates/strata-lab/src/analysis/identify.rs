//! Kornblith et al.'s layer-identification test (2019, Section 6.1 and Table 2): across networks
//! of the same architecture trained from different seeds, is the layer of network B most similar
//! to layer i of network A the layer i itself?
//!
//! For every ordered pair of distinct networks (A, B) and every layer i of A, the test counts a
//! hit when the argmax over layers j of B of `S(A_i, B_j)` is `j = i`. Asymmetric measures are
//! symmetrized first, `S(A_i, B_j) + S(B_j, A_i)`, as the paper did. A tie for the best value
//! counts as a miss (a measure that cannot tell layers apart has not identified one). Measures
//! where smaller means more similar (distances) are negated before the argmax.
//!
//! Uncertainty: the jackknife over networks (leave one network out, recompute the accuracy over
//! the remaining pairs), which respects that the pairs sharing a network are not independent.

/// Identification accuracy with its jackknife standard error, and where the misses went.
#[derive(Clone, Debug, PartialEq)]
pub struct Identification {
    /// Fraction of (ordered pair, layer) cases where the corresponding layer is the most similar.
    pub accuracy: f64,
    /// Jackknife standard error over networks (`None` with fewer than 3 networks).
    pub std_error: Option<f64>,
    /// Cases counted: `N (N - 1) L`.
    pub cases: usize,
    /// Accuracy for each layer i of the first network, over the `N (N - 1)` ordered pairs.
    pub per_layer: Vec<f64>,
    /// `picks[i][j]`: cases where layer j was the unique most similar layer to layer i (ties
    /// and undefined layers pick nothing, so a row can sum to less than `N (N - 1)`).
    pub picks: Vec<Vec<usize>>,
    /// Fraction of cases whose unique pick is layer i - 1, i or i + 1: how many misses are
    /// only a neighbour away, which is what a measure blurring adjacent layers produces.
    pub within_one: f64,
}

impl Identification {
    /// Normal-approximation 95% interval, clipped to [0, 1].
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.std_error.map(|se| {
            (
                (self.accuracy - 1.96 * se).max(0.0),
                (self.accuracy + 1.96 * se).min(1.0),
            )
        })
    }
}

/// `sim[a][b]` is the `L x L` matrix `S(layer i of network a, layer j of network b)` for every
/// ordered pair `a != b` (the diagonal `a == b` is ignored). Undefined values (`None`, NaN) never
/// win the argmax. `symmetrize`: use `S(A_i, B_j) + S(B_j, A_i)`; `higher_is_similar`: false for
/// distances. Returns `None` for fewer than 2 networks or no layers.
pub fn identification(
    sim: &[Vec<Vec<Vec<Option<f64>>>>],
    symmetrize: bool,
    higher_is_similar: bool,
) -> Option<Identification> {
    let n = sim.len();
    let layers = sim.first()?.iter().find(|m| !m.is_empty())?.len();
    if n < 2 || layers == 0 {
        return None;
    }
    // hits[a][b] = layers of a identified in b.
    let mut hits = vec![vec![0usize; n]; n];
    let mut picks = vec![vec![0usize; layers]; layers];
    for a in 0..n {
        for b in 0..n {
            if a == b {
                continue;
            }
            for (i, pick_row) in picks.iter_mut().enumerate() {
                let score = |j: usize| -> Option<f64> {
                    let v = sim[a][b].get(i)?.get(j).copied().flatten()?;
                    let v = if symmetrize {
                        v + sim[b][a].get(j)?.get(i).copied().flatten()?
                    } else {
                        v
                    };
                    let v = if higher_is_similar { v } else { -v };
                    v.is_finite().then_some(v)
                };
                // The unique argmax over layers of b, if there is one (a tie picks nothing).
                let (mut best, mut tied) = (None::<(usize, f64)>, false);
                for j in 0..layers {
                    let Some(v) = score(j) else { continue };
                    match best {
                        Some((_, top)) if v < top => {}
                        Some((_, top)) if v == top => tied = true,
                        _ => (best, tied) = (Some((j, v)), false),
                    }
                }
                if let (Some((j, _)), false) = (best, tied) {
                    pick_row[j] += 1;
                    if j == i {
                        hits[a][b] += 1;
                    }
                }
            }
        }
    }
    let accuracy_without = |skip: Option<usize>| -> f64 {
        let (mut h, mut c) = (0usize, 0usize);
        for (a, row) in hits.iter().enumerate() {
            for (b, &count) in row.iter().enumerate() {
                if a == b || Some(a) == skip || Some(b) == skip {
                    continue;
                }
                h += count;
                c += layers;
            }
        }
        h as f64 / c.max(1) as f64
    };
    let accuracy = accuracy_without(None);
    let std_error = (n >= 3).then(|| {
        let loo: Vec<f64> = (0..n).map(|k| accuracy_without(Some(k))).collect();
        let mean = loo.iter().sum::<f64>() / n as f64;
        let ss: f64 = loo.iter().map(|v| (v - mean) * (v - mean)).sum();
        ((n - 1) as f64 / n as f64 * ss).sqrt()
    });
    let pairs = (n * (n - 1)) as f64;
    let per_layer = (0..layers).map(|i| picks[i][i] as f64 / pairs).collect();
    let near: usize = (0..layers)
        .flat_map(|i| (i.saturating_sub(1)..(i + 2).min(layers)).map(move |j| (i, j)))
        .map(|(i, j)| picks[i][j])
        .sum();
    Some(Identification {
        accuracy,
        std_error,
        cases: n * (n - 1) * layers,
        per_layer,
        within_one: near as f64 / (pairs * layers as f64),
        picks,
    })
}

/// Table 2 of Kornblith et al. 2019 (ten Tiny-10 CNNs on CIFAR-10): accuracy of identifying the
/// corresponding layer, in %, by measure name as strata names them.
pub const KORNBLITH_TABLE2: &[(&str, &str, f64)] = &[
    ("cca_rho", "CCA (mean ρ)", 1.4),
    ("cca_r2", "CCA (R²_CCA)", 10.6),
    ("svcca_rho", "SVCCA (mean ρ)", 9.9),
    ("svcca_r2", "SVCCA (R²_CCA)", 15.1),
    ("pwcca", "PWCCA", 11.1),
    ("linreg", "Linear regression", 45.4),
    ("hsic", "Linear HSIC (unnormalized)", 22.2),
    ("cka_linear", "CKA (linear)", 99.3),
    ("cka_rbf_0.2", "CKA (RBF 0.2)", 80.6),
    ("cka_rbf_0.4", "CKA (RBF 0.4)", 99.1),
    ("cka_rbf_0.8", "CKA (RBF 0.8)", 99.3),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` networks of `l` layers where S(A_i, B_j) = f(i, j).
    fn grid(
        n: usize,
        l: usize,
        f: impl Fn(usize, usize, usize, usize) -> Option<f64>,
    ) -> Vec<Vec<Vec<Vec<Option<f64>>>>> {
        (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| {
                        (0..l)
                            .map(|i| (0..l).map(|j| f(a, b, i, j)).collect())
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_perfect_measure_identifies_every_layer() {
        let s = grid(4, 5, |_, _, i, j| Some(if i == j { 1.0 } else { 0.5 }));
        let r = identification(&s, false, true).unwrap();
        assert_eq!((r.accuracy, r.cases), (1.0, 4 * 3 * 5));
        assert_eq!(r.std_error, Some(0.0));
        assert_eq!((r.per_layer, r.within_one), (vec![1.0; 5], 1.0));
        assert!((0..5).all(|i| (0..5).all(|j| r.picks[i][j] == if i == j { 12 } else { 0 })));
        // As a distance, the same numbers point the other way: nothing is identified.
        assert_eq!(identification(&s, false, false).unwrap().accuracy, 0.0);
    }

    #[test]
    fn ties_and_undefined_values_are_misses() {
        let s = grid(3, 4, |_, _, _, _| Some(0.7));
        let r = identification(&s, false, true).unwrap();
        assert_eq!((r.accuracy, r.within_one), (0.0, 0.0));
        assert!(
            r.picks.iter().flatten().all(|&c| c == 0),
            "a tie picks nothing"
        );
        let s = grid(3, 2, |_, _, i, j| {
            (i == j).then_some(0.9).or(Some(0.1)).filter(|_| i != 1)
        });
        // Layer 1 is undefined everywhere: only layer 0 can be a hit.
        let r = identification(&s, false, true).unwrap();
        assert_eq!((r.accuracy, r.per_layer), (0.5, vec![1.0, 0.0]));
    }

    #[test]
    fn hand_counted_case_and_jackknife() {
        // Network 2 confuses layer 0 with layer 1 when compared with anything; others are clean.
        let s = grid(3, 2, |a, _, i, j| {
            Some(match (a, i, j) {
                (2, 0, 1) => 2.0,
                _ if i == j => 1.0,
                _ => 0.0,
            })
        });
        let r = identification(&s, false, true).unwrap();
        // 6 ordered pairs x 2 layers = 12 cases; misses: (2,0) vs networks 0 and 1 = 2.
        assert_eq!(r.cases, 12);
        assert!((r.accuracy - 10.0 / 12.0).abs() < 1e-15);
        // Leave-one-out accuracies: without 0 -> pairs (1,2),(2,1): 3/4; without 1 -> 3/4;
        // without 2 -> 1. Mean 5/6; SE = sqrt(2/3 * ((1/12)^2 * 2 + (1/6)^2)).
        let se = (2.0 / 3.0 * (2.0 * (1.0f64 / 12.0).powi(2) + (1.0f64 / 6.0).powi(2))).sqrt();
        assert!((r.std_error.unwrap() - se).abs() < 1e-15);
        // Layer 0 is found in 4 of 6 ordered pairs, layer 1 in all; both misses picked the
        // neighbouring layer 1.
        assert_eq!(r.per_layer, vec![4.0 / 6.0, 1.0]);
        assert_eq!(r.picks, vec![vec![4, 2], vec![0, 6]]);
        assert_eq!(r.within_one, 1.0);
    }

    #[test]
    fn misses_far_away_are_not_within_one() {
        // Every layer of 4 picks layer 3 (the last), strictly.
        let s = grid(3, 4, |_, _, _, j| Some(j as f64));
        let r = identification(&s, false, true).unwrap();
        assert_eq!(r.per_layer, vec![0.0, 0.0, 0.0, 1.0]);
        // Within one: layers 2 and 3 (their picks are 3), not 0 and 1.
        assert_eq!(r.within_one, 0.5);
        assert!((0..4).all(|i| r.picks[i][3] == 6));
    }

    #[test]
    fn symmetrizing_adds_the_transpose() {
        // S(A_i, B_j) favours j = 0 for every i; the reverse direction favours the diagonal
        // strongly, so the sum identifies every layer.
        let s = grid(2, 3, |a, _, i, j| {
            Some(if a == 0 {
                if j == 0 {
                    1.0
                } else {
                    0.0
                }
            } else if i == j {
                5.0
            } else {
                0.0
            })
        });
        assert!(identification(&s, false, true).unwrap().accuracy < 1.0);
        assert_eq!(identification(&s, true, true).unwrap().accuracy, 1.0);
    }
}
