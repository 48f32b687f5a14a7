//! `[robustness]`: every network of the named families attacked on the first `limit` test
//! examples at every budget, after the layer comparisons. Quantized networks are attacked twice,
//! through their own straight-through gradients (white-box) and by transfer from the float twin
//! of the same seed, and the stronger attack is kept per budget; per-layer CKA between clean and
//! adversarial activations is measured at one budget.

use super::runner::{LoadedData, Outcome};
use super::spec::Analysis;
use super::stats::{members, precisions_of};
use crate::progress::Progress;
use crate::robustness::{self, Point};
use anyhow::{bail, Context, Result};
use ndarray::Array2;
use std::collections::BTreeMap;
use std::time::Instant;
use strata_nn::net::Net;
use strata_nn::Precision;

/// One network under attack.
#[derive(Clone, Debug)]
pub struct ModelRobustness {
    /// Index of the instance in `analysis.instances`.
    pub instance: usize,
    /// Family name (its `[[model]] name`).
    pub family: String,
    /// The network's precision.
    pub precision: Precision,
    /// The network's training seed.
    pub seed: u64,
    /// Test examples attacked.
    pub examples: usize,
    /// Per budget, the attack crafted on the network itself.
    pub white_box: Vec<Point>,
    /// Per budget, the attack crafted on the float twin of the same seed (quantized networks
    /// with `transfer = true`).
    pub transfer: Option<Vec<Point>>,
    /// Per budget, the stronger of the two (the lower accuracy; `white_box` when there is no
    /// transfer attack).
    pub reported: Vec<Point>,
    /// Per layer, in network order: linear CKA between the activations of the clean examples
    /// and of their adversarial versions (the reported attack at `cka_eps`).
    pub layers: Vec<(String, Option<f64>)>,
    /// Seconds this network's attacks took.
    pub seconds: f64,
}

/// Refuse, before anything trains, a family whose test inputs leave the pixel range [0, 1]
/// that attacks clip to (tabular data), or whose test split is empty.
pub fn check_data(a: &Analysis, data: &BTreeMap<String, LoadedData>) -> Result<()> {
    let Some(plan) = &a.robustness else {
        return Ok(());
    };
    for family in &plan.families {
        let Some(f) = a.families.iter().find(|f| &f.name == family) else {
            continue;
        };
        let key = f.data.get_ref();
        let Some(d) = data.get(key) else { continue };
        let test = &d.splits.test;
        if test.is_empty() {
            bail!(
                "{}, line {}: [robustness] models: '{family}' reads data '{key}', whose test \
                 split is empty: attacks run on test examples",
                a.file,
                plan.line
            );
        }
        let (lo, hi) = test
            .x
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let (r0, r1) = robustness::PIXEL_RANGE;
        if !(lo >= r0 && hi <= r1) {
            bail!(
                "{}, line {}: [robustness] models: '{family}' reads data '{key}', whose inputs \
                 range over [{lo}, {hi}]; attacks keep inputs in the pixel range [{r0}, {r1}] \
                 (images scaled to [0, 1]), so they cannot attack this data",
                a.file,
                plan.line
            );
        }
    }
    Ok(())
}

/// Attack every network of the `[robustness]` families (none without the section).
pub fn run(o: &Outcome, p: &dyn Progress) -> Result<Vec<ModelRobustness>> {
    let Some(plan) = &o.analysis.robustness else {
        return Ok(Vec::new());
    };
    let a = &o.analysis;
    let todo: Vec<usize> = plan
        .families
        .iter()
        .flat_map(|f| {
            precisions_of(o, f)
                .into_iter()
                .flat_map(move |q| members(o, f, q))
        })
        .collect();
    let bar = p.task("robustness", "networks", todo.len() as u64);
    let mut out = Vec::with_capacity(todo.len());
    // Float networks by (family, seed): the transfer attack's sources.
    let mut floats: BTreeMap<(String, u64), Net> = BTreeMap::new();
    for i in todo {
        let inst = &a.instances[i];
        let t = Instant::now();
        let test = o.data[&inst.data].splits.test.head(plan.limit);
        let y: Vec<usize> = test.y.iter().map(|&v| v as usize).collect();
        let (mut net, _) = load(o, i)?;
        let quantized = inst.precision != Precision::Float;
        let curve = |target: &Net, source: Option<&Net>, how: &str| {
            let task = p.task(
                &format!("{} {how}", inst.name),
                "budgets",
                plan.attack.eps.len() as u64,
            );
            let r = robustness::curve(target, source, test.x.view(), &y, &plan.attack, &*task)
                .with_context(|| format!("[robustness] {} ({how})", inst.name));
            task.finish();
            r
        };
        let white = curve(&net, None, "white-box")?;
        let transfer = if quantized && plan.transfer {
            let key = (inst.family.clone(), inst.train.seed);
            if !floats.contains_key(&key) {
                let twin = members(o, &inst.family, Precision::Float)
                    .into_iter()
                    .find(|&f| a.instances[f].train.seed == inst.train.seed)
                    .with_context(|| {
                        format!(
                            "[robustness] {}: no float twin of seed {}",
                            inst.name, key.1
                        )
                    })?;
                floats.insert(key.clone(), load(o, twin)?.0);
            }
            Some(curve(&net, Some(&floats[&key]), "transfer")?)
        } else {
            None
        };
        let (white_box, white_adv) = split(white, plan.cka_index);
        let (transfer, transfer_adv) = match transfer {
            Some(t) => {
                let (pts, adv) = split(t, plan.cka_index);
                (Some(pts), Some(adv))
            }
            None => (None, None),
        };
        let reported = match &transfer {
            Some(t) => robustness::strongest(&white_box, t),
            None => white_box.clone(),
        };
        let adv = match transfer_adv {
            Some(t) if reported[plan.cka_index].crafted == "transfer" => t,
            _ => white_adv,
        };
        let layers = robustness::layer_cka(&mut net, test.x.view(), adv.view())
            .with_context(|| format!("[robustness] {}: layer CKA", inst.name))?;
        if inst.precision == Precision::Float {
            floats.insert((inst.family.clone(), inst.train.seed), net);
        }
        log(p, &inst.name, &reported);
        out.push(ModelRobustness {
            instance: i,
            family: inst.family.clone(),
            precision: inst.precision,
            seed: inst.train.seed,
            examples: test.len(),
            white_box,
            transfer,
            reported,
            layers,
            seconds: t.elapsed().as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish();
    Ok(out)
}

/// Instance `i`'s cached model.
fn load(o: &Outcome, i: usize) -> Result<(Net, strata_nn::file::ModelCard)> {
    let path = &o.models[i].path;
    strata_nn::file::load(path).with_context(|| {
        format!(
            "[robustness] loading the model of {} ({})",
            o.analysis.instances[i].name,
            path.display()
        )
    })
}

/// The points of a curve, and the adversarial examples of budget `k`.
fn split(curve: Vec<(Point, Array2<f32>)>, k: usize) -> (Vec<Point>, Array2<f32>) {
    let mut adv = Array2::zeros((0, 0));
    let mut pts = Vec::with_capacity(curve.len());
    for (j, (pt, x)) in curve.into_iter().enumerate() {
        if j == k {
            adv = x;
        }
        pts.push(pt);
    }
    (pts, adv)
}

fn log(p: &dyn Progress, name: &str, reported: &[Point]) {
    let (Some(first), Some(last)) = (reported.first(), reported.last()) else {
        return;
    };
    let transfer = reported.iter().filter(|q| q.crafted == "transfer").count();
    p.log(&format!(
        "robustness {name}: accuracy {:.1}% at eps {} -> {:.1}% at eps {}{}",
        100.0 * first.accuracy,
        first.eps as f32,
        100.0 * last.accuracy,
        last.eps as f32,
        if transfer > 0 {
            format!(
                " (transfer stronger at {transfer} of {} budgets)",
                reported.len()
            )
        } else {
            String::new()
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(eps: f64, accuracy: f64, crafted: &'static str) -> Point {
        Point {
            eps,
            accuracy,
            success_rate: 0.0,
            mean_norm: 0.0,
            crafted,
        }
    }

    #[test]
    fn split_keeps_every_point_and_one_budgets_examples() {
        let curve: Vec<(Point, Array2<f32>)> = (0..3)
            .map(|k| {
                (
                    point(k as f64, 1.0, "white-box"),
                    Array2::from_elem((2, 2), k as f32),
                )
            })
            .collect();
        let (pts, adv) = split(curve, 1);
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[2].eps, 2.0);
        assert_eq!(adv, Array2::from_elem((2, 2), 1.0));
    }

    /// A whole `strata run` of a tiny spec with `[robustness]`: every network attacked, the
    /// stronger attack reported, layer CKA in range, the report's tables and summary written,
    /// and a second run (models from the cache) giving the same numbers.
    #[test]
    fn a_spec_with_robustness_runs_end_to_end_and_repeats() {
        use crate::analysis::{run_text, RunArgs};
        let dir = std::env::temp_dir().join(format!("strata-robustness-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("rb.toml");
        let text = r#"
[data.d]
source = "digits"
train_limit = 300
collect_limit = 50

[[model]]
name = "mlp"
data = "d"
widths = [16]
precisions = ["float", "w1a1"]
seeds = [0, 1]
epochs = 2
lr_quantized = 1e-2

[robustness]
models = ["mlp"]
steps = 5
eps = [0, 0.2, 0.1]
limit = 40
seed = 3
"#;
        std::fs::write(&spec, text).unwrap();
        let args = RunArgs {
            reports: dir.join("reports"),
            cache: dir.join("cache"),
            jobs: 1,
            force: false,
            command: "test".into(),
        };
        let p = crate::progress::Silent;
        let (o, report) = run_text(text, &spec, "rb", args.clone(), &p).unwrap();
        assert_eq!(o.robustness.len(), 4);
        for r in &o.robustness {
            assert_eq!(r.examples, 40);
            assert_eq!(r.reported.len(), 3);
            assert_eq!(r.transfer.is_some(), r.precision != Precision::Float);
            for (k, q) in r.reported.iter().enumerate() {
                let w = &r.white_box[k];
                let lowest = r
                    .transfer
                    .as_ref()
                    .map_or(w.accuracy, |t| t[k].accuracy.min(w.accuracy));
                assert_eq!(q.accuracy, lowest, "{:?} {k}", r.precision);
                assert!(q.mean_norm <= q.eps + 1e-6);
            }
            // Budget 0 is the clean accuracy, whoever crafted it.
            assert_eq!(r.reported[0].mean_norm, 0.0);
            assert!(!r.layers.is_empty());
            for (name, v) in &r.layers {
                let v = v.unwrap_or_else(|| panic!("{name}: undefined CKA"));
                assert!((0.0..=1.0 + 1e-9).contains(&v), "{name}: {v}");
            }
        }
        let md = std::fs::read_to_string(report.join("report.md")).unwrap();
        assert!(md.contains("## Adversarial robustness"), "{md}");
        for f in ["robustness.csv", "robustness-layers.parquet"] {
            assert!(report.join("tables").join(f).is_file(), "{f}");
        }
        let csv = std::fs::read_to_string(report.join("tables/robustness.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 4 * 3, "{csv}");
        let j = crate::analysis::summary::json(&o, &report);
        assert_eq!(j["robustness"]["eps"], serde_json::json!([0.0, 0.2, 0.1]));
        assert_eq!(j["robustness"]["cka_eps"], serde_json::json!(0.2));
        assert!(crate::analysis::summary::text(&o, &report).contains("adversarial robustness"));

        // Again, from the cache: the seed fixes every number.
        let (again, _) = run_text(text, &spec, "rb", args, &p).unwrap();
        assert!(again.models.iter().all(|m| m.cached));
        for (a, b) in o.robustness.iter().zip(&again.robustness) {
            assert_eq!(a.reported, b.reported);
            assert_eq!(a.white_box, b.white_box);
            assert_eq!(a.transfer, b.transfer);
            assert_eq!(a.layers, b.layers);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
