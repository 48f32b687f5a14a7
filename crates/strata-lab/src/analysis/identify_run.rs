//! The runner's side of the identification test: similarity matrices between every pair of a
//! family's networks (one per seed), for every measure, from the activation stores.

use super::identify::{identification, Identification};
use super::runner::Outcome;
use super::spec::rbf_threshold_of;
use super::stats::members;
use crate::compare::{self, CkaArgs};
use crate::progress::{Progress, WarningsOnly};
use anyhow::{anyhow, Result};
use std::time::Instant;
use strata_nn::Precision;
use strata_sim::{Estimator, Kernel};

/// One measure's result for one family.
#[derive(Clone, Debug)]
pub struct IdentifyRow {
    /// Family name (its `[[model]] name`).
    pub family: String,
    /// Precision of the networks compared.
    pub precision: Precision,
    /// Measure as `[identify] measures` names it: `cka_linear`, `cka_rbf_T` or a baseline measure.
    pub measure: String,
    /// Networks compared (one per seed).
    pub networks: usize,
    /// Layer names, in network order (the same for every network of the family).
    pub layers: Vec<String>,
    /// Identification accuracy and where the misses went (`None` with fewer than 2 networks or
    /// no layers).
    pub result: Option<Identification>,
    /// Seconds this measure took (wall clock).
    pub seconds: f64,
}

type SimGrid = Vec<Vec<Vec<Vec<Option<f64>>>>>;

/// `S(B_j, A_i)` from `S(A_i, B_j)` for a symmetric measure.
fn transpose(v: &[Vec<Option<f64>>]) -> Vec<Vec<Option<f64>>> {
    (0..v.first().map_or(0, Vec::len))
        .map(|j| v.iter().map(|row| row[j]).collect())
        .collect()
}

/// CKA (linear or RBF, biased estimator as in the paper) between every ordered pair of stores;
/// only their warnings reach `p` (each pair is a step of the caller's own task).
fn cka_grid(
    o: &Outcome,
    idx: &[usize],
    kernel: Kernel,
    p: &dyn Progress,
) -> Result<(SimGrid, Vec<String>)> {
    let n = idx.len();
    let mut grid: SimGrid = vec![vec![Vec::new(); n]; n];
    let mut layers = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            let args = CkaArgs {
                a: o.models[idx[a]].store.clone(),
                b: o.models[idx[b]].store.clone(),
                kernel,
                estimator: Some(Estimator::Biased),
                batch_size: None,
                layers_a: None,
                layers_b: None,
                device: o.analysis.cka.device,
            };
            let r = compare::run(&args, &WarningsOnly(p)).map_err(super::runner::in_cka)?;
            layers = r.layers_a.clone();
            grid[b][a] = transpose(&r.matrix.values);
            grid[a][b] = r.matrix.values;
        }
    }
    Ok((grid, layers))
}

/// A baseline measure between every ordered pair, each layer prepared once.
/// Every layer of every network as a [`strata_sim::Basis`] (an error kept per layer: a constant
/// layer is undefined for some measures, not a failed run). Built once per family and shared by
/// every baseline measure.
type Bases = (Vec<Vec<Result<strata_sim::Basis>>>, Vec<String>);

fn bases_of(o: &Outcome, idx: &[usize]) -> Result<Bases> {
    let mut bases = Vec::with_capacity(idx.len());
    let mut layers = Vec::new();
    for &i in idx {
        let acts = strata_data::open(&o.models[i].store)?;
        layers = acts.layers().iter().map(|l| l.name.clone()).collect();
        let mut per_layer = Vec::with_capacity(layers.len());
        for (l, name) in layers.iter().enumerate() {
            let x = acts.read_layer(l)?;
            per_layer.push(
                strata_sim::Basis::new(x.view()).map_err(|e| {
                    anyhow!("layer '{name}' of {}: {e}", o.analysis.instances[i].name)
                }),
            );
        }
        bases.push(per_layer);
    }
    Ok((bases, layers))
}

/// A baseline measure between every ordered pair of networks.
fn baseline_grid(bases: &[Vec<Result<strata_sim::Basis>>], name: &str) -> Result<SimGrid> {
    let m = strata_sim::measure_by_name(name).ok_or_else(|| anyhow!("unknown measure '{name}'"))?;
    let n = bases.len();
    let mut grid: SimGrid = vec![vec![Vec::new(); n]; n];
    for a in 0..n {
        for b in 0..n {
            if a == b || (m.symmetric() && b < a) {
                continue;
            }
            let cell = |x: &Result<strata_sim::Basis>, y: &Result<strata_sim::Basis>| match (x, y) {
                (Ok(x), Ok(y)) => m.between(x, y).ok().filter(|v| v.is_finite()),
                _ => None,
            };
            let v: Vec<Vec<Option<f64>>> = bases[a]
                .iter()
                .map(|x| bases[b].iter().map(|y| cell(x, y)).collect())
                .collect();
            if m.symmetric() {
                grid[b][a] = transpose(&v);
            }
            grid[a][b] = v;
        }
    }
    Ok(grid)
}

/// The grid and layer names without the layers named in `exclude`, as queries and as candidates.
/// Every name must be a layer.
fn without_layers(
    grid: SimGrid,
    layers: Vec<String>,
    exclude: &[String],
) -> std::result::Result<(SimGrid, Vec<String>), String> {
    if let Some(e) = exclude.iter().find(|e| !layers.contains(e)) {
        return Err(format!(
            "no layer named '{e}' (layers: {})",
            layers.join(", ")
        ));
    }
    let keep: Vec<usize> = (0..layers.len())
        .filter(|&i| !exclude.contains(&layers[i]))
        .collect();
    let pick = |m: Vec<Vec<Option<f64>>>| -> Vec<Vec<Option<f64>>> {
        if m.is_empty() {
            return m;
        }
        keep.iter()
            .map(|&i| keep.iter().map(|&j| m[i][j]).collect())
            .collect()
    };
    let grid = grid
        .into_iter()
        .map(|row| row.into_iter().map(pick).collect())
        .collect();
    let layers = keep.iter().map(|&i| layers[i].clone()).collect();
    Ok((grid, layers))
}

/// Run every `[identify]` entry of the analysis.
pub fn run(o: &Outcome, p: &dyn Progress) -> Result<Vec<IdentifyRow>> {
    let mut rows = Vec::new();
    let total: usize = o.analysis.identify.iter().map(|t| t.measures.len()).sum();
    let bar = p.task("identification", "measures", total as u64);
    for test in &o.analysis.identify {
        let (family, precision, measures) = (&test.family, &test.precision, &test.measures);
        let idx = members(o, family, *precision);
        let mut bases: Option<Bases> = None;
        for name in measures {
            let t = Instant::now();
            let (grid, layers, symmetric, higher) = if name == "cka_linear" {
                let (g, l) = cka_grid(o, &idx, Kernel::Linear, p)?;
                (g, l, true, true)
            } else if let Some(threshold) = rbf_threshold_of(name) {
                let (g, l) = cka_grid(o, &idx, Kernel::Rbf { threshold }, p)?;
                (g, l, true, true)
            } else {
                let m = strata_sim::measure_by_name(name)
                    .ok_or_else(|| anyhow!("unknown measure '{name}'"))?;
                if bases.is_none() {
                    bases = Some(bases_of(o, &idx)?);
                }
                let (b, l) = bases.as_ref().expect("just built");
                (
                    baseline_grid(b, name)?,
                    l.clone(),
                    m.symmetric(),
                    m.higher_is_similar(),
                )
            };
            let (grid, layers) = without_layers(grid, layers, &test.exclude)
                .map_err(|e| anyhow!("[identify] exclude: {e} in family '{family}'"))?;
            let result = identification(&grid, !symmetric, higher);
            p.log(&format!(
                "identification {family} ({}): {name}: {}",
                precision.name(),
                result.as_ref().map_or("n/a".into(), |r| format!(
                    "{:.1}% ({:.1}% within one layer)",
                    100.0 * r.accuracy,
                    100.0 * r.within_one
                ))
            ));
            rows.push(IdentifyRow {
                family: family.clone(),
                precision: *precision,
                measure: name.clone(),
                networks: idx.len(),
                layers,
                result,
                seconds: t.elapsed().as_secs_f64(),
            });
            bar.inc(1);
        }
    }
    bar.finish();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("l{i}")).collect()
    }

    #[test]
    fn excluded_layers_leave_rows_and_columns() {
        // Two networks, three layers; values encode (a, b, i, j) so every kept cell is checkable.
        let cell =
            |a: usize, b: usize, i: usize, j: usize| (1000 * a + 100 * b + 10 * i + j) as f64;
        let grid: SimGrid = (0..2)
            .map(|a| {
                (0..2)
                    .map(|b| {
                        if a == b {
                            return vec![];
                        }
                        (0..3)
                            .map(|i| (0..3).map(|j| Some(cell(a, b, i, j))).collect())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let (g, names) = without_layers(grid, layer_names(3), &["l1".to_string()]).unwrap();
        assert_eq!(names, vec!["l0", "l2"]);
        assert!(g[0][0].is_empty() && g[1][1].is_empty());
        for (a, b) in [(0, 1), (1, 0)] {
            for (ki, i) in [0, 2].into_iter().enumerate() {
                for (kj, j) in [0, 2].into_iter().enumerate() {
                    assert_eq!(g[a][b][ki][kj], Some(cell(a, b, i, j)));
                }
            }
        }
    }

    #[test]
    fn excluding_an_unknown_layer_names_the_layers() {
        let e = without_layers(vec![], layer_names(2), &["logits".to_string()]).unwrap_err();
        assert_eq!(e, "no layer named 'logits' (layers: l0, l1)");
    }

    #[test]
    fn excluding_nothing_keeps_everything() {
        let grid: SimGrid = vec![
            vec![vec![], vec![vec![Some(1.0)]]],
            vec![vec![vec![Some(2.0)]], vec![]],
        ];
        let (g, names) = without_layers(grid.clone(), layer_names(1), &[]).unwrap();
        assert_eq!((g, names), (grid, layer_names(1)));
    }
}
