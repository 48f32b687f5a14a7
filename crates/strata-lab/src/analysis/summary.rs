//! What `strata run` prints when it finishes: accuracy by precision, CKA with the float twin per
//! layer, and where the report is; or the same as one JSON object.

use super::runner::Outcome;
use super::stats::{self, members, per_layer, precisions_of, summarize};
use serde_json::json;
use std::fmt::Write;
use std::path::Path;
use strata_nn::Precision;

/// `rows` as aligned columns (the first left-aligned, the others right), two spaces in.
pub(super) fn pad_rows(rows: &[Vec<String>]) -> String {
    pad(rows)
}

fn pad(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let w: Vec<usize> = (0..cols)
        .map(|j| {
            rows.iter()
                .filter_map(|r| r.get(j))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(j, c)| {
                if j == 0 {
                    format!("{c:<w$}", w = w[j])
                } else {
                    format!("{c:>w$}", w = w[j])
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

/// Per-layer twin CKA rows (precision, then one mean per layer) for a family.
/// Layer names, then (row label, per-layer means).
type TwinRows = (Vec<String>, Vec<(String, Vec<Option<f64>>)>);

fn twin_rows(o: &Outcome, family: &str) -> Option<TwinRows> {
    let layers = o
        .cka
        .iter()
        .find(|((i, _), _)| {
            o.analysis
                .instances
                .get(*i)
                .is_some_and(|x| x.family == family)
        })
        .map(|(_, r)| r.layers_a.clone())?;
    let mut rows = Vec::new();
    for p in precisions_of(o, family)
        .into_iter()
        .filter(|p| *p != Precision::Float)
    {
        let curves: Vec<_> = stats::twin_curves(o, family, p)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let means = per_layer(&curves, layers.len())
            .iter()
            .map(|s| s.map(|s| s.mean))
            .collect();
        rows.push((p.name().to_string(), means));
    }
    let seeds: Vec<_> = stats::seed_curves(o, family)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    if !seeds.is_empty() {
        let means = per_layer(&seeds, layers.len())
            .iter()
            .map(|s| s.map(|s| s.mean))
            .collect();
        rows.push(("float, other seed".to_string(), means));
    }
    Some((layers, rows))
}

/// The terminal summary.
pub fn text(o: &Outcome, dir: &Path) -> String {
    let a = &o.analysis;
    let mut out = if o.models.is_empty() && a.stores.is_empty() && a.compression.is_some() {
        format!(
            "{}: compression experiments in {:.1} s\n",
            a.title, o.seconds
        )
    } else if o.models.is_empty() {
        // A spec of [[store]] entries alone: nothing was trained, so no accuracy table.
        format!(
            "{}: {} activation store(s) compared, no models, in {:.1} s\n",
            a.title,
            a.stores.len(),
            o.seconds
        )
    } else {
        accuracy_text(o)
    };
    for f in &a.twins {
        if let Some((layers, trows)) = twin_rows(o, f) {
            let _ = writeln!(
                out,
                "\n{f}: CKA of each layer with the float twin (mean over seeds):"
            );
            let mut rows = vec![std::iter::once(String::new())
                .chain(layers.iter().cloned())
                .collect::<Vec<_>>()];
            for (name, means) in trows {
                let mut r = vec![name];
                r.extend(
                    means
                        .iter()
                        .map(|v| v.map_or("n/a".into(), |v| format!("{v:.3}"))),
                );
                rows.push(r);
            }
            out.push_str(&pad(&rows));
        }
    }
    if !o.identify.is_empty() {
        out.push_str("\nlayer identification (Kornblith et al. 2019), accuracy %:\n");
        let mut rows = vec![[
            "family",
            "measure",
            "networks",
            "accuracy",
            "95% interval",
            "within one layer",
        ]
        .map(String::from)
        .to_vec()];
        for r in &o.identify {
            rows.push(vec![
                r.family.clone(),
                r.measure.clone(),
                r.networks.to_string(),
                r.result
                    .as_ref()
                    .map_or("n/a".into(), |x| format!("{:.1}", 100.0 * x.accuracy)),
                r.result
                    .as_ref()
                    .and_then(|x| x.interval())
                    .map_or("n/a".into(), |(lo, hi)| {
                        format!("{:.1} - {:.1}", 100.0 * lo, 100.0 * hi)
                    }),
                r.result
                    .as_ref()
                    .map_or("n/a".into(), |x| format!("{:.1}", 100.0 * x.within_one)),
            ]);
        }
        out.push_str(&pad(&rows));
    }
    for run in &o.privacy {
        let _ = writeln!(
            out,
            "\nmembership inference, {} ({} references, pool {}):",
            run.family, run.result.references, run.result.pool
        );
        let (header, rows) = crate::mia::report::defense_rows(&run.result);
        let mut all = vec![header];
        all.extend(rows);
        out.push_str(&pad(&all));
    }
    out.push_str(&robustness_text(o));
    out.push_str(&super::compression_run::summary_text(o));
    let _ = writeln!(
        out,
        "\nreport: {} (also report.md, figures/, tables/, manifest.json)",
        dir.join("index.html").display()
    );
    out
}

/// Mean over seeds of `get` for each budget, per (family, precision) of the attacked networks.
type ByPrecision = Vec<(Precision, Vec<Option<f64>>)>;

fn robustness_means(
    o: &Outcome,
    family: &str,
    get: &dyn Fn(&super::robustness_run::ModelRobustness) -> Vec<Option<f64>>,
) -> ByPrecision {
    let mut out: ByPrecision = Vec::new();
    for p in precisions_of(o, family) {
        let curves: Vec<Vec<Option<f64>>> = o
            .robustness
            .iter()
            .filter(|r| r.family == family && r.precision == p)
            .map(get)
            .collect();
        if curves.is_empty() {
            continue;
        }
        let n = curves.iter().map(Vec::len).max().unwrap_or(0);
        let means = per_layer(&curves, n)
            .iter()
            .map(|s| s.map(|s| s.mean))
            .collect();
        out.push((p, means));
    }
    out
}

fn accuracy_curve(r: &super::robustness_run::ModelRobustness) -> Vec<Option<f64>> {
    r.reported.iter().map(|q| Some(q.accuracy)).collect()
}

/// `[robustness]`: accuracy under attack per family, precision and budget (mean over seeds).
fn robustness_text(o: &Outcome) -> String {
    let Some(plan) = &o.analysis.robustness else {
        return String::new();
    };
    if o.robustness.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nadversarial robustness ({} {}{}, {} test examples{}), accuracy % under attack by eps \
         (mean over seeds):\n",
        plan.attack.method.name(),
        plan.attack.norm.name(),
        match plan.attack.method {
            crate::robustness::MethodKind::Pgd => format!(" {} steps", plan.attack.steps),
            crate::robustness::MethodKind::Fgsm => String::new(),
        },
        o.robustness.iter().map(|r| r.examples).max().unwrap_or(0),
        if plan.transfer {
            "; quantized: the stronger of white-box and transfer from the float twin"
        } else {
            ""
        }
    );
    let mut rows = vec![["family", "precision"]
        .map(String::from)
        .into_iter()
        .chain(plan.attack.eps.iter().map(|e| e.to_string()))
        .collect::<Vec<_>>()];
    for f in &plan.families {
        for (p, means) in robustness_means(o, f, &accuracy_curve) {
            let mut r = vec![f.clone(), p.name().to_string()];
            r.extend(
                means
                    .iter()
                    .map(|v| v.map_or("n/a".into(), |v| format!("{:.1}", 100.0 * v))),
            );
            rows.push(r);
        }
    }
    out.push_str(&pad(&rows));
    out
}

/// `[robustness]` as JSON: settings, and per family the mean accuracy per budget, how often the
/// transfer attack was the stronger, and the mean clean-vs-adversarial CKA per layer.
fn robustness_json(o: &Outcome) -> serde_json::Value {
    let Some(plan) = &o.analysis.robustness else {
        return serde_json::Value::Null;
    };
    let eps: Vec<f64> = plan
        .attack
        .eps
        .iter()
        .map(|e| e.to_string().parse().unwrap_or(*e as f64))
        .collect();
    let by = |v: ByPrecision| -> serde_json::Map<String, serde_json::Value> {
        v.into_iter()
            .map(|(p, m)| (p.name().to_string(), json!(m)))
            .collect()
    };
    let families: serde_json::Map<String, serde_json::Value> = plan
        .families
        .iter()
        .map(|f| {
            let first = o.robustness.iter().find(|r| &r.family == f);
            let layers: Vec<String> = first
                .map(|r| r.layers.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default();
            let transfer: serde_json::Map<String, serde_json::Value> = precisions_of(o, f)
                .into_iter()
                .filter(|&p| p != Precision::Float)
                .map(|p| {
                    let counts: Vec<usize> = (0..plan.attack.eps.len())
                        .map(|k| {
                            o.robustness
                                .iter()
                                .filter(|r| &r.family == f && r.precision == p)
                                .filter(|r| {
                                    r.reported.get(k).is_some_and(|q| q.crafted == "transfer")
                                })
                                .count()
                        })
                        .collect();
                    (p.name().to_string(), json!(counts))
                })
                .collect();
            (
                f.clone(),
                json!({
                    "examples": first.map(|r| r.examples),
                    "accuracy": by(robustness_means(o, f, &accuracy_curve)),
                    "success_rate": by(robustness_means(o, f, &|r| {
                        r.reported.iter().map(|q| Some(q.success_rate)).collect()
                    })),
                    "transfer_stronger_seeds": transfer,
                    "layers": layers,
                    "cka_clean_vs_adversarial": by(robustness_means(o, f, &|r| {
                        r.layers.iter().map(|(_, v)| *v).collect()
                    })),
                }),
            )
        })
        .collect();
    json!({
        "attack": plan.attack.method.name(),
        "norm": plan.attack.norm.name(),
        "steps": plan.attack.steps,
        "targeted": plan.attack.targeted,
        "transfer": plan.transfer,
        "seed": plan.attack.seed,
        "eps": eps,
        "cka_eps": eps[plan.cka_index],
        "families": families,
    })
}

/// The header line and the accuracy table of a run that trained (or loaded) models.
fn accuracy_text(o: &Outcome) -> String {
    let a = &o.analysis;
    let trained = o.models.iter().filter(|m| !m.cached).count();
    let mut out = format!(
        "{}: {} models ({} trained, {} from the cache) in {:.1} s\n\n",
        a.title,
        o.models.len(),
        trained,
        o.models.len() - trained,
        o.seconds
    );
    out.push_str("accuracy (%, mean ± std over seeds):\n");
    let mut rows = vec![["family", "precision", "seeds", "test", "train"]
        .map(String::from)
        .to_vec()];
    for f in &a.families {
        for p in precisions_of(o, &f.name) {
            let idx = members(o, &f.name, p);
            let acc = |train: bool| {
                let v: Vec<f64> = idx
                    .iter()
                    .map(|&i| {
                        let c = &o.models[i].card;
                        if train {
                            c.train_accuracy
                        } else {
                            c.test_accuracy
                        }
                    })
                    .collect();
                summarize(&v).map_or("n/a".into(), |s| s.show(100.0, 2))
            };
            rows.push(vec![
                f.name.clone(),
                p.name().into(),
                idx.len().to_string(),
                acc(false),
                acc(true),
            ]);
        }
    }
    out.push_str(&pad(&rows));
    out
}

/// The summary as one JSON object.
pub fn json(o: &Outcome, dir: &Path) -> serde_json::Value {
    let a = &o.analysis;
    let models: Vec<_> = a
        .instances
        .iter()
        .zip(&o.models)
        .map(|(i, m)| {
            json!({"name": i.name, "family": i.family, "precision": i.precision.name(),
                   "seed": i.train.seed, "train_accuracy": m.card.train_accuracy,
                   "test_accuracy": m.card.test_accuracy, "cached": m.cached, "key": m.key})
        })
        .collect();
    let twins: serde_json::Map<String, serde_json::Value> = a
        .twins
        .iter()
        .filter_map(|f| {
            let (layers, rows) = twin_rows(o, f)?;
            let by: serde_json::Map<_, _> = rows
                .into_iter()
                .map(|(name, means)| (name, json!(means)))
                .collect();
            Some((
                f.clone(),
                json!({"layers": layers, "cka_with_float_twin": by}),
            ))
        })
        .collect();
    json!({
        "analysis": a.name,
        "report": dir.display().to_string(),
        "seconds": o.seconds,
        "trained": o.models.iter().filter(|m| !m.cached).count(),
        "cached": o.models.iter().filter(|m| m.cached).count(),
        "models": models,
        "twins": twins,
        "identification": o.identify.iter().map(|r| json!({
            "family": r.family, "precision": r.precision.name(), "measure": r.measure,
            "networks": r.networks, "accuracy": r.result.as_ref().map(|x| x.accuracy),
            "jackknife_se": r.result.as_ref().and_then(|x| x.std_error),
            "within_one_layer": r.result.as_ref().map(|x| x.within_one),
            "per_layer": r.result.as_ref().map(|x| r.layers.iter().zip(&x.per_layer)
                .map(|(l, a)| json!({"layer": l, "accuracy": a})).collect::<Vec<_>>()),
        })).collect::<Vec<_>>(),
        "privacy": o.privacy.iter().map(|r| {
            let mut v = crate::mia::report::json_line(&r.result, None);
            v["family"] = json!(r.family);
            v
        }).collect::<Vec<_>>(),
        "robustness": robustness_json(o),
        "compression": super::compression_run::summary_json(o),
    })
}
