//! The report's adversarial-robustness section (`[robustness]`): per family, accuracy under
//! attack vs the budget for every precision (mean over seeds, min-max band), the numbers behind
//! it with which attack was the stronger, and per-layer CKA between clean and adversarial
//! activations at one budget.

use super::report::{f64_col, i64_col, s, str_col, Writer};
use super::robustness_run::ModelRobustness;
use super::runner::Outcome;
use super::spec::RobustnessPlan;
use super::stats::{summarize, Summary};
use crate::robustness::MethodKind;
use anyhow::Result;
use strata_nn::attack::Norm;
use strata_nn::Precision;
use strata_report::{Block, LinePlot, Series, Style, Table, XAxis};

/// `L∞` or `L2`.
pub(super) fn norm_label(n: Norm) -> &'static str {
    match n {
        Norm::Linf => "L∞",
        Norm::L2 => "L2",
    }
}

/// `PGD (20 steps)` or `FGSM`.
pub(super) fn attack_label(plan: &RobustnessPlan) -> String {
    match plan.attack.method {
        MethodKind::Pgd => format!("PGD ({} steps)", plan.attack.steps),
        MethodKind::Fgsm => s("FGSM"),
    }
}

/// `0.3` (f32 budgets shown as written).
pub(super) fn eps_label(e: f64) -> String {
    (e as f32).to_string()
}

/// An f32 budget as the f64 it was written as (0.1, not 0.10000000149).
fn eps_f64(e: f32) -> f64 {
    e.to_string().parse().unwrap_or(e as f64)
}

/// The attacked networks of one family at one precision (every seed).
fn runs<'a>(o: &'a Outcome, family: &str, p: Precision) -> Vec<&'a ModelRobustness> {
    o.robustness
        .iter()
        .filter(|r| r.family == family && r.precision == p)
        .collect()
}

/// Precisions of a family's attacked networks, in the order they were attacked (float first).
fn precisions(o: &Outcome, family: &str) -> Vec<Precision> {
    let mut v: Vec<Precision> = Vec::new();
    for r in o.robustness.iter().filter(|r| r.family == family) {
        if !v.contains(&r.precision) {
            v.push(r.precision);
        }
    }
    v
}

/// Summary over seeds of `get` at budget `k`.
fn at(
    runs: &[&ModelRobustness],
    k: usize,
    get: impl Fn(&ModelRobustness, usize) -> Option<f64>,
) -> Option<Summary> {
    summarize(&runs.iter().filter_map(|r| get(r, k)).collect::<Vec<_>>())
}

/// Per layer of `names`, the CKA values of `r` (matched by position when the names agree, else
/// by name).
fn layer_values(r: &ModelRobustness, names: &[String]) -> Vec<Option<f64>> {
    names
        .iter()
        .enumerate()
        .map(|(d, n)| match r.layers.get(d) {
            Some((m, v)) if m == n => *v,
            _ => r.layers.iter().find(|(m, _)| m == n).and_then(|(_, v)| *v),
        })
        .collect()
}

pub(super) fn robustness_section(
    o: &Outcome,
    w: &mut Writer,
    blocks: &mut Vec<Block>,
) -> Result<()> {
    let Some(plan) = &o.analysis.robustness else {
        return Ok(());
    };
    if o.robustness.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading {
        level: 2,
        text: s("Adversarial robustness"),
    });
    blocks.push(Block::Paragraph(intro(o, plan)));
    let (files, layer_files) = tables(o, plan, w)?;
    // Budgets in increasing order for the x axis (the spec may list them in any order).
    let mut order: Vec<usize> = (0..plan.attack.eps.len()).collect();
    order.sort_by(|&i, &j| plan.attack.eps[i].total_cmp(&plan.attack.eps[j]));
    let eps_name = format!("ε ({}, pixels in [0, 1])", norm_label(plan.attack.norm));
    for family in &plan.families {
        let precs = precisions(o, family);
        if precs.is_empty() {
            continue;
        }
        blocks.push(Block::Heading {
            level: 3,
            text: format!("{family}: accuracy under attack"),
        });
        let mut series = Vec::new();
        let mut rows = Vec::new();
        let mut findings = Vec::new();
        let float_runs = runs(o, family, Precision::Float);
        for &p in &precs {
            let rs = runs(o, family, p);
            let acc = |r: &ModelRobustness, k: usize| r.reported.get(k).map(|q| 100.0 * q.accuracy);
            let sums: Vec<Option<Summary>> = order.iter().map(|&k| at(&rs, k, acc)).collect();
            series.push(Series {
                name: s(p.name()),
                y: sums.iter().map(|x| x.map(|x| x.mean)).collect(),
                spread: Some(sums.iter().map(|x| x.map(|x| (x.min, x.max))).collect()),
                style: Style::Line,
                dashed: false,
            });
            for &k in &order {
                rows.push(table_row(&rs, k, p));
            }
            if p != Precision::Float {
                findings.push(finding(&rs, &float_runs, p, plan.cka_index, plan));
            }
        }
        let plot = LinePlot {
            title: format!(
                "{family}: accuracy under {}, {}, vs ε; mean over seeds, band min-max",
                attack_label(plan),
                norm_label(plan.attack.norm)
            ),
            x_label: eps_name.clone(),
            y_label: s("accuracy under attack (%)"),
            x: XAxis::Numeric(order.iter().map(|&k| eps_f64(plan.attack.eps[k])).collect()),
            series,
            y_range: Some((0.0, 101.0)),
        };
        blocks.push(w.figure_line(&format!("robustness-{family}"), &plot)?);
        if !findings.is_empty() {
            blocks.push(Block::List(findings));
        }
        blocks.push(Block::Table {
            caption: format!(
                "{family}: accuracy under attack, mean ± std over seeds (%); success rate and \
                 mean perturbation norm, mean over seeds; which attack was the stronger, counted \
                 over seeds (the reported accuracy is the stronger one's)"
            ),
            header: [
                "precision",
                "ε",
                "accuracy (%)",
                "white-box (%)",
                "transfer (%)",
                "success rate (%)",
                "mean ‖δ‖",
                "stronger attack",
            ]
            .map(s)
            .to_vec(),
            rows,
            numeric: vec![false, true, true, true, true, true, true, false],
            files: files.clone(),
        });
        layers_part(o, plan, family, &precs, w, blocks, &layer_files)?;
    }
    Ok(())
}

fn intro(o: &Outcome, plan: &RobustnessPlan) -> String {
    let a = &o.analysis;
    let examples = o.robustness.iter().map(|r| r.examples).max().unwrap_or(0);
    let sources: Vec<String> = plan
        .families
        .iter()
        .filter_map(|f| a.families.iter().find(|x| &x.name == f))
        .map(|f| format!("`{}`", a.data[f.data.get_ref()].source))
        .fold(Vec::new(), |mut v, x| {
            if !v.contains(&x) {
                v.push(x);
            }
            v
        });
    let method = match plan.attack.method {
        MethodKind::Pgd => format!(
            "PGD (projected gradient descent, Madry et al. 2018) with {} steps of {} from a \
             random start",
            plan.attack.steps,
            plan.attack
                .step_size
                .map_or(format!("2.5·ε/{}", plan.attack.steps), |v| v.to_string())
        ),
        MethodKind::Fgsm => s("FGSM (one gradient step, Goodfellow et al. 2015)"),
    };
    let goal = if plan.attack.targeted {
        "targeted (each example aimed at a random other class)"
    } else {
        "untargeted"
    };
    let eps: Vec<String> = plan
        .attack
        .eps
        .iter()
        .map(|&e| eps_label(e as f64))
        .collect();
    let how = if plan.transfer {
        "Quantized networks are attacked both through their straight-through gradients \
         (white-box) and by transfer from the float twin of the same seed (examples crafted on the \
         float network, judged on the quantized one); per budget the stronger attack (the lower \
         accuracy) is reported, since a quantized network's straight-through gradient can mask \
         the real one and make a white-box attack look weaker than it is (Athalye et al. 2018)."
    } else {
        "Quantized networks are attacked through their straight-through gradients only \
         (`transfer = false`): gradient masking may make them look more robust than they are."
    };
    let success = if plan.attack.targeted {
        "the fraction of all examples classified as their target"
    } else {
        "the fraction of the examples classified correctly when clean that the attack makes the \
         network misclassify"
    };
    format!(
        "Every network is attacked on the first {examples} test examples of {} with {method}, \
         {goal}, at budgets ε = {} in the {} norm (pixels in [0, 1]; ε = 0 is the clean \
         accuracy). {how} Accuracy counts all attacked examples; success rate is {success}; \
         ‖δ‖ is the mean size of the perturbation applied, in the attack's norm. Attack seed {}. \
         The per-layer CKA below compares each layer's activations on the clean examples with \
         its activations on their adversarial versions at ε = {}.",
        sources.join(", "),
        eps.join(", "),
        norm_label(plan.attack.norm),
        plan.attack.seed,
        eps_label(plan.cka_eps() as f64),
    )
}

fn show(x: Option<Summary>, k: f64, d: usize) -> String {
    x.map_or(s("n/a"), |x| x.show(k, d))
}

/// One row of a family's table: precision `p` at budget `k`, over seeds.
fn table_row(rs: &[&ModelRobustness], k: usize, p: Precision) -> Vec<String> {
    let acc = at(rs, k, |r, k| r.reported.get(k).map(|q| q.accuracy));
    let wb = at(rs, k, |r, k| r.white_box.get(k).map(|q| q.accuracy));
    let tr = at(rs, k, |r, k| {
        r.transfer
            .as_ref()
            .and_then(|t| t.get(k))
            .map(|q| q.accuracy)
    });
    let sr = at(rs, k, |r, k| r.reported.get(k).map(|q| q.success_rate));
    let nm = at(rs, k, |r, k| r.reported.get(k).map(|q| q.mean_norm));
    let eps = rs
        .first()
        .and_then(|r| r.reported.get(k))
        .map_or(s("?"), |q| eps_label(q.eps));
    let by_transfer = rs
        .iter()
        .filter(|r| r.reported.get(k).is_some_and(|q| q.crafted == "transfer"))
        .count();
    let stronger = if rs.iter().all(|r| r.transfer.is_none()) {
        s("white-box")
    } else {
        format!(
            "white-box {}, transfer {by_transfer}",
            rs.len() - by_transfer
        )
    };
    vec![
        s(p.name()),
        eps,
        show(acc, 100.0, 1),
        wb.map_or(s("n/a"), |x| format!("{:.1}", 100.0 * x.mean)),
        tr.map_or(s("-"), |x| format!("{:.1}", 100.0 * x.mean)),
        sr.map_or(s("n/a"), |x| format!("{:.1}", 100.0 * x.mean)),
        nm.map_or(s("n/a"), |x| format!("{:.3}", x.mean)),
        stronger,
    ]
}

/// One line on a quantized precision: accuracy at the budget of the per-layer CKA (`cka_eps`)
/// beside float's, and how often transfer was the stronger attack.
fn finding(
    rs: &[&ModelRobustness],
    float: &[&ModelRobustness],
    p: Precision,
    k: usize,
    plan: &RobustnessPlan,
) -> String {
    let acc = |v: &[&ModelRobustness]| at(v, k, |r, k| r.reported.get(k).map(|q| q.accuracy));
    let eps = eps_label(plan.attack.eps[k] as f64);
    let mut line = format!(
        "{}: {}% accuracy at ε = {eps} (float: {}%)",
        p.name(),
        acc(rs).map_or(s("n/a"), |x| format!("{:.1}", 100.0 * x.mean)),
        acc(float).map_or(s("n/a"), |x| format!("{:.1}", 100.0 * x.mean)),
    );
    if plan.transfer {
        let attacked: Vec<&crate::robustness::Point> = rs
            .iter()
            .flat_map(|r| r.reported.iter())
            .filter(|q| q.eps > 0.0)
            .collect();
        let by_transfer = attacked.iter().filter(|q| q.crafted == "transfer").count();
        line.push_str(&format!(
            "; the transfer attack from the float twin was the stronger at {by_transfer} of {} \
             (seed, budget > 0) pairs{}",
            attacked.len(),
            if by_transfer > 0 {
                " (the straight-through gradient understates this precision's weakness there)"
            } else {
                ""
            }
        ));
    }
    line.push('.');
    line
}

/// Per-layer CKA(clean, adversarial) of one family: a figure and a table, one line / column per
/// precision, mean over seeds.
fn layers_part(
    o: &Outcome,
    plan: &RobustnessPlan,
    family: &str,
    precs: &[Precision],
    w: &mut Writer,
    blocks: &mut Vec<Block>,
    files: &[String],
) -> Result<()> {
    let Some(first) = o.robustness.iter().find(|r| r.family == family) else {
        return Ok(());
    };
    let names: Vec<String> = first.layers.iter().map(|(n, _)| n.clone()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let eps = eps_label(plan.cka_eps() as f64);
    let mut series = Vec::new();
    let mut rows: Vec<Vec<String>> = names.iter().map(|n| vec![n.clone()]).collect();
    let mut header = vec![s("layer")];
    for &p in precs {
        let rs = runs(o, family, p);
        let curves: Vec<Vec<Option<f64>>> = rs.iter().map(|r| layer_values(r, &names)).collect();
        let sums = super::stats::per_layer(&curves, names.len());
        series.push(Series {
            name: s(p.name()),
            y: sums.iter().map(|x| x.map(|x| x.mean)).collect(),
            spread: Some(sums.iter().map(|x| x.map(|x| (x.min, x.max))).collect()),
            style: Style::Line,
            dashed: false,
        });
        header.push(s(p.name()));
        for (row, sm) in rows.iter_mut().zip(&sums) {
            row.push(show(*sm, 1.0, 3));
        }
    }
    blocks.push(Block::Heading {
        level: 3,
        text: format!("{family}: layers under attack"),
    });
    let plot = LinePlot {
        title: format!(
            "{family}: CKA of each layer, clean vs adversarial (ε = {eps}); mean over seeds, \
             band min-max"
        ),
        x_label: s("layer (input side → output side)"),
        y_label: s("linear CKA, clean vs adversarial"),
        x: XAxis::Categories(names.clone()),
        series,
        y_range: Some((0.0, 1.02)),
    };
    blocks.push(w.figure_line(&format!("robustness-layers-{family}"), &plot)?);
    let n = header.len();
    blocks.push(Block::Table {
        caption: format!(
            "{family}: linear CKA (biased) between each layer's activations on the clean \
             examples and on their adversarial versions at ε = {eps} (the reported attack's), \
             mean ± std over seeds; 1 means the attack left the layer's representation \
             unchanged up to rotation and scale"
        ),
        header,
        rows,
        numeric: (0..n).map(|j| j > 0).collect(),
        files: files.to_vec(),
    });
    Ok(())
}

/// `tables/robustness.{csv,parquet}` (per network and budget) and
/// `tables/robustness-layers.{csv,parquet}` (per network and layer); returns the paths of each.
fn tables(
    o: &Outcome,
    plan: &RobustnessPlan,
    w: &mut Writer,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut fam, mut prec, mut seed, mut n, mut eps) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut crafted, mut acc, mut sr, mut nm, mut wb, mut tr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &o.robustness {
        for (k, q) in r.reported.iter().enumerate() {
            fam.push(r.family.clone());
            prec.push(s(r.precision.name()));
            seed.push(Some(r.seed as i64));
            n.push(Some(r.examples as i64));
            eps.push(Some(eps_f64(plan.attack.eps[k])));
            crafted.push(s(q.crafted));
            acc.push(Some(q.accuracy));
            sr.push(Some(q.success_rate));
            nm.push(Some(q.mean_norm));
            wb.push(r.white_box.get(k).map(|q| q.accuracy));
            tr.push(
                r.transfer
                    .as_ref()
                    .and_then(|t| t.get(k))
                    .map(|q| q.accuracy),
            );
        }
    }
    let rows = fam.len();
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("precision", prec),
            i64_col("seed", seed),
            str_col("attack", vec![s(plan.attack.method.name()); rows]),
            str_col("norm", vec![s(plan.attack.norm.name()); rows]),
            i64_col("examples", n),
            f64_col("eps", eps),
            f64_col("accuracy", acc),
            f64_col("success_rate", sr),
            f64_col("mean_norm", nm),
            str_col("stronger", crafted),
            f64_col("white_box_accuracy", wb),
            f64_col("transfer_accuracy", tr),
        ],
    };
    let files = w.table("robustness", &t)?;
    let (mut fam, mut prec, mut seed, mut crafted, mut depth, mut layer, mut cka) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &o.robustness {
        let how = r
            .reported
            .get(plan.cka_index)
            .map_or(s("white-box"), |q| s(q.crafted));
        for (d, (name, v)) in r.layers.iter().enumerate() {
            fam.push(r.family.clone());
            prec.push(s(r.precision.name()));
            seed.push(Some(r.seed as i64));
            crafted.push(how.clone());
            depth.push(Some(d as i64 + 1));
            layer.push(name.clone());
            cka.push(*v);
        }
    }
    let rows = fam.len();
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("precision", prec),
            i64_col("seed", seed),
            f64_col("eps", vec![Some(eps_f64(plan.cka_eps())); rows]),
            str_col("attack", crafted),
            i64_col("depth", depth),
            str_col("layer", layer),
            f64_col("cka", cka),
        ],
    };
    let layer_files = w.table("robustness-layers", &t)?;
    Ok((files, layer_files))
}
