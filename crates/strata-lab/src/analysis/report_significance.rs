//! The report's significance section: for every comparison, how many pairs of layers are above
//! chance (the permutation null `[cka] permutations` or `null = "moments"` gives) and how wide
//! the bootstrap intervals are (`[cka] bootstrap`), with every cell's statistics in
//! `tables/significance.{csv,parquet}`.

use super::report::{f64_col, i64_col, s, str_col, Writer};
use super::runner::{Comparison, Outcome};
use crate::compare::SignificanceResult;
use anyhow::Result;
use strata_report::{Block, Column, Table};

/// How many of the defined p-values lie below `alpha`, and how many are defined.
fn below(p: &[Vec<Option<f64>>], alpha: f64) -> (usize, usize) {
    let defined: Vec<f64> = p.iter().flatten().flatten().copied().collect();
    (
        defined.iter().filter(|&&v| v < alpha).count(),
        defined.len(),
    )
}

/// The median of the defined values, `None` when there are none.
fn median(v: Vec<f64>) -> Option<f64> {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// `t`'s columns appended to `acc` (same names in the same order for every comparison, since
/// every comparison gets the same options).
fn append(acc: &mut Vec<Column>, t: Table) {
    if acc.is_empty() {
        *acc = t.columns;
        return;
    }
    for (a, c) in acc.iter_mut().zip(t.columns) {
        match (a, c) {
            (Column::Str(_, x), Column::Str(_, y)) => x.extend(y),
            (Column::F64(_, x), Column::F64(_, y)) => x.extend(y),
            (Column::I64(_, x), Column::I64(_, y)) => x.extend(y),
            _ => {}
        }
    }
}

/// One comparison's long table, with the models' names in front.
fn long(o: &Outcome, (i, j): (usize, usize), c: &Comparison, sig: &SignificanceResult) -> Table {
    let t = sig.long_table(&c.layers_a, &c.layers_b, &c.values, "value");
    let rows = c.layers_a.len() * c.layers_b.len();
    let a = o.analysis.side_name(i).to_string();
    let b = o.analysis.side_name(j).to_string();
    let mut columns = vec![str_col("a", vec![a; rows]), str_col("b", vec![b; rows])];
    columns.extend(t.columns);
    Table { columns }
}

/// The section, when any comparison carries significance statistics.
pub(super) fn significance_section(
    o: &Outcome,
    w: &mut Writer,
    blocks: &mut Vec<Block>,
) -> Result<()> {
    let with: Vec<(&(usize, usize), &Comparison, &SignificanceResult)> = o
        .cka
        .iter()
        .filter_map(|(k, c)| c.significance.as_ref().map(|s| (k, c, s)))
        .collect();
    let Some(first) = with.first() else {
        return Ok(());
    };
    let opts = first.2.options;
    blocks.push(Block::Heading {
        level: 2,
        text: s("Significance"),
    });
    let mut intro = Vec::new();
    if opts.null_requested() {
        intro.push(match opts.permutations {
            Some(b) => format!(
                "Each pair of layers was recomputed with the examples of one side permuted, {b} \
                 seeded draws (seed {}): p = (1 + draws at least as extreme) / ({b} + 1), so the \
                 smallest possible p is {:.4}.",
                opts.seed,
                1.0 / (b as f64 + 1.0)
            ),
            None => s(
                "The permutation null of linear CKA is analytic here: its exact mean, variance \
                 and skewness over all permutations of the examples (Kazi-Aoual et al. 1995, \
                 for the RV coefficient), with p from the matching Pearson type III \
                 distribution.",
            ),
        });
        intro.push(s(
            "`null_mean` in the files is the similarity the same layers score when their examples \
             are unrelated (the chance level), `null_q95` the null's 95% quantile, and `z` how \
             many null standard deviations the value lies above the chance level.",
        ));
    }
    if let Some(b) = opts.bootstrap {
        intro.push(format!(
            "Intervals: {:.0}% percentile bootstrap over {b} resamples of the examples (the same \
             rows for both sides). Duplicated rows push CKA up when examples are few for the \
             layers' widths: read the null for \"above chance\" and the interval for precision.",
            100.0 * opts.confidence
        ));
    }
    blocks.push(Block::Paragraph(intro.join(" ")));

    let mut header = vec![s("a"), s("b"), s("pairs")];
    if opts.null_requested() {
        header.extend([s("p < 0.05"), s("p < 0.01"), s("median chance level")]);
    }
    if opts.bootstrap.is_some() {
        header.push(s("median interval width"));
    }
    let mut rows = Vec::new();
    let mut cols: Vec<Column> = Vec::new();
    let (mut na, mut nb, mut pairs, mut p05, mut p01) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut chance, mut width) = (vec![], vec![]);
    for &(&k, c, sig) in &with {
        append(&mut cols, long(o, k, c, sig));
        let (a, b) = (o.analysis.side_name(k.0), o.analysis.side_name(k.1));
        let n_pairs = c.layers_a.len() * c.layers_b.len();
        let mut row = vec![format!("`{a}`"), format!("`{b}`"), n_pairs.to_string()];
        na.push(a.to_string());
        nb.push(b.to_string());
        pairs.push(Some(n_pairs as i64));
        if let Some(m) = &sig.null {
            let p = m.field(|t| Some(t.p_value));
            let (k05, d) = below(&p, 0.05);
            let (k01, _) = below(&p, 0.01);
            let mean = median(
                m.field(|t| Some(t.null_mean))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .collect(),
            );
            row.push(format!("{k05} of {d}"));
            row.push(format!("{k01} of {d}"));
            row.push(mean.map_or(s("n/a"), |v| format!("{v:.4}")));
            p05.push(Some(k05 as i64));
            p01.push(Some(k01 as i64));
            chance.push(mean);
        }
        if let Some(bm) = &sig.bootstrap {
            let wd = median(
                bm.field(|t| Some(t.high - t.low))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .collect(),
            );
            row.push(wd.map_or(s("n/a"), |v| format!("{v:.4}")));
            width.push(wd);
        }
        rows.push(row);
    }
    let cells = w.table("significance", &Table { columns: cols })?;
    let mut summary = vec![str_col("a", na), str_col("b", nb), i64_col("pairs", pairs)];
    if opts.null_requested() {
        summary.push(i64_col("p_below_0.05", p05));
        summary.push(i64_col("p_below_0.01", p01));
        summary.push(f64_col("median_null_mean", chance));
    }
    if opts.bootstrap.is_some() {
        summary.push(f64_col("median_interval_width", width));
    }
    let mut files = w.table("significance-summary", &Table { columns: summary })?;
    files.extend(cells);
    let numeric = (0..header.len()).map(|j| j >= 2).collect();
    blocks.push(Block::Table {
        caption: s("Pairs of layers above chance, per comparison (every cell in the files)"),
        header,
        rows,
        numeric,
        files,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::analysis::{run_text, RunArgs};
    use crate::compare::{CkaArgs, Significance};

    fn spec(cka: &str) -> String {
        format!(
            r#"
[data.d]
source = "digits"
train_limit = 300
collect_limit = 60

[[model]]
name = "mlp"
data = "d"
widths = [16, 12]
precisions = ["float", "w1a1"]
seeds = [0]
epochs = 2
lr_quantized = 1e-2

[twins]

[cka]
{cka}
"#
        )
    }

    /// A whole `strata run` whose `[cka]` asks for a permutation null and bootstrap intervals:
    /// every comparison carries them, equal to what `strata cka` computes on the same stores,
    /// and the report has the section and the tables; then the analytic null on the same models.
    #[test]
    fn a_spec_with_significance_reports_what_strata_cka_computes() {
        let dir = std::env::temp_dir().join(format!("strata-significance-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sig.toml");
        let args = RunArgs {
            reports: dir.join("reports"),
            cache: dir.join("cache"),
            jobs: 1,
            force: false,
            command: "test".into(),
        };
        let p = crate::progress::Silent;
        let text = spec("permutations = 19\nbootstrap = 20\nconfidence = 0.9\nseed = 2");
        let (o, report) = run_text(&text, &path, "sig", args.clone(), &p).unwrap();
        assert!(!o.cka.is_empty());
        let mut cells = 0;
        for (&(i, j), c) in &o.cka {
            let sig = c.significance.as_ref().expect("significance asked for");
            let null = sig.null.as_ref().expect("a permutation null");
            let boot = sig.bootstrap.as_ref().expect("bootstrap intervals");
            let want = crate::compare::run_with(
                &CkaArgs {
                    a: o.models[i].store.clone(),
                    b: o.models[j].store.clone(),
                    kernel: strata_sim::Kernel::Linear,
                    estimator: Some(strata_sim::Estimator::Biased),
                    batch_size: None,
                    layers_a: None,
                    layers_b: None,
                    device: strata_gpu::DeviceChoice::Cpu,
                },
                &Significance {
                    permutations: Some(19),
                    bootstrap: Some(20),
                    confidence: 0.9,
                    seed: 2,
                    ..Significance::default()
                },
                &p,
            )
            .unwrap();
            let want = want.significance.unwrap();
            let pv = null.field(|t| Some(t.p_value));
            assert_eq!(pv, want.null.unwrap().field(|t| Some(t.p_value)));
            assert_eq!(
                boot.field(|t| Some(t.low)),
                want.bootstrap.unwrap().field(|t| Some(t.low))
            );
            for v in pv.iter().flatten().flatten() {
                assert!((0.05 - 1e-12..=1.0).contains(v), "p = {v}");
            }
            cells += c.layers_a.len() * c.layers_b.len();
        }
        let md = std::fs::read_to_string(report.join("report.md")).unwrap();
        assert!(
            md.contains("## Significance") && md.contains("19 seeded draws"),
            "{md}"
        );
        let csv = std::fs::read_to_string(report.join("tables/significance.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + cells, "{csv}");
        let head = csv.lines().next().unwrap();
        for k in [
            "a",
            "b",
            "layer_a",
            "p_value",
            "null_mean",
            "z",
            "ci_low",
            "ci_high",
        ] {
            assert!(head.split(',').any(|h| h == k), "{k} in {head}");
        }
        assert!(report.join("tables/significance-summary.parquet").is_file());

        // The analytic null on the same (cached) models: p-values, no draws, no intervals.
        let text = spec("null = \"moments\"");
        let (m, report) = run_text(&text, &path, "sig", args, &p).unwrap();
        assert!(m.models.iter().all(|r| r.cached));
        for c in m.cka.values() {
            let sig = c.significance.as_ref().unwrap();
            assert!(sig.bootstrap.is_none());
            let pv = sig.null.as_ref().unwrap().field(|t| Some(t.p_value));
            assert!(pv
                .iter()
                .flatten()
                .flatten()
                .all(|v| (0.0..=1.0).contains(v)));
        }
        let md = std::fs::read_to_string(report.join("report.md")).unwrap();
        assert!(md.contains("Pearson type III"), "{md}");

        // Without the keys, no section and no tables.
        let (_, report) = run_text(
            &spec(""),
            &path,
            "sig",
            RunArgs {
                reports: dir.join("reports"),
                cache: dir.join("cache"),
                jobs: 1,
                force: false,
                command: "test".into(),
            },
            &p,
        )
        .unwrap();
        assert!(!report.join("tables/significance.csv").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
