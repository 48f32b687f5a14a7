//! What `strata run` prints when it finishes: accuracy by precision, CKA with the float twin per
//! layer, and where the report is; or the same as one JSON object.

use super::runner::Outcome;
use super::stats::{self, members, per_layer, precisions_of, summarize};
use serde_json::json;
use std::fmt::Write;
use std::path::Path;
use strata_nn::Precision;

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
    let mut out = if o.models.is_empty() {
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
    let _ = writeln!(
        out,
        "\nreport: {} (also report.md, figures/, tables/, manifest.json)",
        dir.join("index.html").display()
    );
    out
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
    })
}
