//! The report of an analysis run, in `reports/NAME/`: `index.html` (self-contained), `report.md`,
//! `figures/` (PNG + SVG), `tables/` (CSV + Parquet, via polars) and `manifest.json`.
//!
//! Assembled in `reports/.NAME.partial-PID/` and swapped in whole at the end: readers never see a
//! half-written report, and a failure leaves the previous one in place.

use super::manifest;
use super::runner::Outcome;
use super::stats::{self, members, per_layer, precisions_of, summarize};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use strata_nn::Precision;
use strata_report::{Block, Column, Document, Heatmap, LinePlot, Series, Style, Table, XAxis};

/// Files written so far, relative to the report folder.
struct Writer {
    root: PathBuf,
    files: Vec<String>,
}

impl Writer {
    fn figure_line(&mut self, stem: &str, p: &LinePlot) -> Result<Block> {
        let png = format!("figures/{stem}.png");
        let svg = format!("figures/{stem}.svg");
        strata_report::line_plot_png(p, &self.root.join(&png))?;
        strata_report::line_plot_svg(p, &self.root.join(&svg))?;
        self.files.push(png.clone());
        self.files.push(svg.clone());
        Ok(Block::Figure {
            png,
            svg: Some(svg),
            caption: p.title.clone(),
        })
    }

    fn figure_heatmap(&mut self, stem: &str, h: &Heatmap, caption: String) -> Result<Block> {
        let png = format!("figures/{stem}.png");
        let svg = format!("figures/{stem}.svg");
        strata_report::heatmap_png(h, &self.root.join(&png))?;
        strata_report::heatmap_svg(h, &self.root.join(&svg))?;
        self.files.push(png.clone());
        self.files.push(svg.clone());
        Ok(Block::Figure {
            png,
            svg: Some(svg),
            caption,
        })
    }

    /// Write `tables/STEM.{csv,parquet}`; returns their relative paths.
    fn table(&mut self, stem: &str, t: &Table) -> Result<Vec<String>> {
        let written = strata_report::write_table(t, &self.root.join("tables"), stem)?;
        let rel: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| format!("tables/{}", n.to_string_lossy()))
            .collect();
        self.files.extend(rel.iter().cloned());
        Ok(rel)
    }
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

fn str_col(name: &str, v: Vec<String>) -> Column {
    Column::Str(name.into(), v)
}

fn f64_col(name: &str, v: Vec<Option<f64>>) -> Column {
    Column::F64(name.into(), v)
}

fn i64_col(name: &str, v: Vec<Option<i64>>) -> Column {
    Column::I64(name.into(), v)
}

/// Models: one row per instance, and the accuracy summary per family and precision.
fn models_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    let rows = &o.models;
    let t = Table {
        columns: vec![
            str_col(
                "model",
                a.instances.iter().map(|i| i.name.clone()).collect(),
            ),
            str_col(
                "family",
                a.instances.iter().map(|i| i.family.clone()).collect(),
            ),
            str_col(
                "architecture",
                a.instances
                    .iter()
                    .map(|i| s(i.architecture.name()))
                    .collect(),
            ),
            str_col(
                "precision",
                a.instances.iter().map(|i| s(i.precision.name())).collect(),
            ),
            i64_col(
                "seed",
                a.instances
                    .iter()
                    .map(|i| Some(i.train.seed as i64))
                    .collect(),
            ),
            str_col(
                "data",
                a.instances
                    .iter()
                    .map(|i| a.data[&i.data].source.0.clone())
                    .collect(),
            ),
            i64_col(
                "epochs",
                a.instances
                    .iter()
                    .map(|i| Some(i.train.epochs as i64))
                    .collect(),
            ),
            f64_col("lr", a.instances.iter().map(|i| Some(i.train.lr)).collect()),
            f64_col(
                "train_accuracy",
                rows.iter().map(|m| Some(m.card.train_accuracy)).collect(),
            ),
            f64_col(
                "test_accuracy",
                rows.iter().map(|m| Some(m.card.test_accuracy)).collect(),
            ),
            f64_col(
                "train_seconds",
                rows.iter().map(|m| Some(m.card.seconds)).collect(),
            ),
            str_col(
                "cached",
                rows.iter()
                    .map(|m| s(if m.cached { "yes" } else { "no" }))
                    .collect(),
            ),
            str_col(
                "key",
                rows.iter().map(|m| m.key[..16].to_string()).collect(),
            ),
        ],
    };
    let model_files = w.table("models", &t)?;

    // Accuracy by family and precision, over seeds.
    let mut fam = Vec::new();
    let mut prec = Vec::new();
    let mut seeds = Vec::new();
    let mut cols: [Vec<Option<f64>>; 5] = Default::default();
    let mut md_rows = Vec::new();
    for f in &a.families {
        for p in precisions_of(o, &f.name) {
            let idx = members(o, &f.name, p);
            let test = summarize(
                &idx.iter()
                    .map(|&i| rows[i].card.test_accuracy)
                    .collect::<Vec<_>>(),
            );
            let train = summarize(
                &idx.iter()
                    .map(|&i| rows[i].card.train_accuracy)
                    .collect::<Vec<_>>(),
            );
            let secs = summarize(
                &idx.iter()
                    .map(|&i| rows[i].card.seconds)
                    .collect::<Vec<_>>(),
            );
            fam.push(f.name.clone());
            prec.push(s(p.name()));
            seeds.push(Some(idx.len() as i64));
            cols[0].push(test.map(|x| x.mean));
            cols[1].push(test.and_then(|x| x.std));
            cols[2].push(train.map(|x| x.mean));
            cols[3].push(train.and_then(|x| x.std));
            cols[4].push(secs.map(|x| x.mean));
            let show = |x: Option<stats::Summary>| x.map_or(s("n/a"), |x| x.show(100.0, 2));
            md_rows.push(vec![
                f.name.clone(),
                s(f.architecture.name()),
                s(p.name()),
                idx.len().to_string(),
                show(test),
                show(train),
                secs.map_or(s("n/a"), |x| format!("{:.1}", x.mean)),
            ]);
        }
    }
    let [test_mean, test_std, train_mean, train_std, secs] = cols;
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("precision", prec),
            i64_col("seeds", seeds),
            f64_col("test_accuracy_mean", test_mean),
            f64_col("test_accuracy_std", test_std),
            f64_col("train_accuracy_mean", train_mean),
            f64_col("train_accuracy_std", train_std),
            f64_col("train_seconds_mean", secs),
        ],
    };
    let mut files = w.table("accuracy", &t)?;
    files.extend(model_files);
    blocks.push(Block::Heading {
        level: 2,
        text: s("Accuracy"),
    });
    blocks.push(Block::Table {
        caption: s(
            "Accuracy by model and precision, in %: mean ± standard deviation over seeds \
                    (sample std, n - 1). Test accuracy is on the whole test split.",
        ),
        header: [
            "model",
            "architecture",
            "precision",
            "seeds",
            "test accuracy (%)",
            "train accuracy (%)",
            "training time (s)",
        ]
        .map(s)
        .to_vec(),
        rows: md_rows,
        numeric: vec![false, false, false, true, true, true, true],
        files,
    });

    // Accuracy vs precision: one point series per family and split.
    let all: Vec<Precision> = Precision::ALL
        .into_iter()
        .filter(|p| a.instances.iter().any(|i| i.precision == *p))
        .collect();
    let mut series = Vec::new();
    for f in &a.families {
        for (split, train) in [("test", false), ("train", true)] {
            let mut y = Vec::new();
            let mut spread = Vec::new();
            for &p in &all {
                let v: Vec<f64> = members(o, &f.name, p)
                    .iter()
                    .map(|&i| {
                        let c = &rows[i].card;
                        100.0
                            * if train {
                                c.train_accuracy
                            } else {
                                c.test_accuracy
                            }
                    })
                    .collect();
                let sm = summarize(&v);
                y.push(sm.map(|x| x.mean));
                spread.push(sm.and_then(|x| x.band()));
            }
            series.push(Series {
                name: format!("{} {split}", f.name),
                y,
                spread: Some(spread),
                style: Style::Points,
                dashed: train,
            });
        }
    }
    let plot = LinePlot {
        title: s("Accuracy vs precision (mean ± std over seeds)"),
        x_label: s("precision (weight bits / activation bits)"),
        y_label: s("accuracy (%)"),
        x: XAxis::Categories(all.iter().map(|p| s(p.name())).collect()),
        series,
        y_range: None,
    };
    blocks.push(w.figure_line("accuracy-vs-precision", &plot)?);
    Ok(())
}

/// Training curves: loss and test accuracy per epoch, one line per precision (mean over seeds).
fn training_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    let mut names: [Vec<String>; 3] = Default::default();
    let mut ints: [Vec<Option<i64>>; 2] = Default::default();
    let mut vals: [Vec<Option<f64>>; 4] = Default::default();
    for (inst, m) in a.instances.iter().zip(&o.models) {
        for e in &m.card.history {
            names[0].push(inst.name.clone());
            names[1].push(inst.family.clone());
            names[2].push(s(inst.precision.name()));
            ints[0].push(Some(inst.train.seed as i64));
            ints[1].push(Some(e.epoch as i64));
            vals[0].push(Some(e.lr));
            vals[1].push(Some(e.loss));
            vals[2].push(Some(e.train_accuracy));
            vals[3].push(Some(e.test_accuracy));
        }
    }
    let [lr, loss, tr, te] = vals;
    let [model, family, precision] = names;
    let [seed, epoch] = ints;
    let t = Table {
        columns: vec![
            str_col("model", model),
            str_col("family", family),
            str_col("precision", precision),
            i64_col("seed", seed),
            i64_col("epoch", epoch),
            f64_col("lr", lr),
            f64_col("loss", loss),
            f64_col("train_accuracy", tr),
            f64_col("test_accuracy", te),
        ],
    };
    let files = w.table("history", &t)?;
    blocks.push(Block::Heading {
        level: 2,
        text: s("Training curves"),
    });
    blocks.push(Block::Paragraph(s(
        "Training loss (cross-entropy, mean over the epoch's batches, in training mode) and test \
         accuracy after each epoch; each line is the mean over seeds, the band ± one standard \
         deviation. Per-epoch values of every model are in `tables/history.csv`.",
    )));
    for f in &a.families {
        let epochs = f.epochs;
        let x = || XAxis::Numeric((1..=epochs).map(|e| e as f64).collect());
        let mut loss_series = Vec::new();
        let mut acc_series = Vec::new();
        for p in precisions_of(o, &f.name) {
            let idx = members(o, &f.name, p);
            let curve = |get: &dyn Fn(&strata_nn::train::EpochStats) -> f64| {
                let mut y = Vec::new();
                let mut band = Vec::new();
                for e in 0..epochs {
                    let v: Vec<f64> = idx
                        .iter()
                        .filter_map(|&i| o.models[i].card.history.get(e).map(get))
                        .collect();
                    let sm = summarize(&v);
                    y.push(sm.map(|x| x.mean));
                    band.push(sm.and_then(|x| x.band()));
                }
                (y, band)
            };
            let (y, band) = curve(&|e| e.loss);
            loss_series.push(Series {
                name: s(p.name()),
                y,
                spread: Some(band),
                style: Style::Line,
                dashed: false,
            });
            let (y, band) = curve(&|e| 100.0 * e.test_accuracy);
            acc_series.push(Series {
                name: s(p.name()),
                y,
                spread: Some(band),
                style: Style::Line,
                dashed: false,
            });
        }
        let loss = LinePlot {
            title: format!("{}: training loss per epoch", f.name),
            x_label: s("epoch"),
            y_label: s("training loss (cross-entropy, nats)"),
            x: x(),
            series: loss_series,
            y_range: None,
        };
        blocks.push(w.figure_line(&format!("training-loss-{}", f.name), &loss)?);
        let acc = LinePlot {
            title: format!("{}: test accuracy per epoch", f.name),
            x_label: s("epoch"),
            y_label: s("test accuracy (%)"),
            x: x(),
            series: acc_series,
            y_range: None,
        };
        blocks.push(w.figure_line(&format!("test-accuracy-{}", f.name), &acc)?);
    }
    blocks.push(Block::List(
        files.iter().map(|f| format!("`{f}`")).collect(),
    ));
    Ok(())
}

/// Per-layer CKA with the float twin, one line per precision, the float seed-to-seed band.
fn twins_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    if a.twins.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading {
        level: 2,
        text: s("Layers vs the float twin"),
    });
    blocks.push(Block::Paragraph(format!(
        "Each quantized network is compared with the float network of the same family trained \
         from the same seed on the same data: {} between layer i of one and layer i of the other, \
         over the same {} examples. Lines are means over seeds, bands ± one standard deviation. \
         The dashed line compares float networks of different seeds: where a quantized line stays \
         inside that band, quantization moved the layer no more than a new random seed does.",
        measure_name(o),
        a.instances
            .iter()
            .find(|i| a.twins.contains(&i.family))
            .map_or(0, |i| o.data[&i.data].collect.len())
    )));
    let (mut fam, mut prec, mut seed, mut depth, mut layer, mut val) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut sfam, mut sprec, mut sdepth, mut slayer) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sv: [Vec<Option<f64>>; 4] = Default::default();
    let mut sn = Vec::new();
    for f in &a.twins {
        let Some(&first) = members(o, f, Precision::Float).first() else {
            continue;
        };
        let Some(r0) = o.cka.iter().find(|((i, _), _)| *i == first).map(|(_, r)| r) else {
            continue;
        };
        let layers = r0.layers_a.clone();
        let mut series = Vec::new();
        let mut md_rows: Vec<Vec<String>> = layers.iter().map(|l| vec![l.clone()]).collect();
        let mut header = vec![s("layer")];
        let mut findings = Vec::new();
        let seed_curves = stats::seed_curves(o, f);
        let seed_sum = per_layer(
            &seed_curves
                .iter()
                .map(|(_, c)| c.clone())
                .collect::<Vec<_>>(),
            layers.len(),
        );
        for p in precisions_of(o, f)
            .into_iter()
            .filter(|p| *p != Precision::Float)
        {
            let curves = stats::twin_curves(o, f, p);
            for (sd, c) in &curves {
                for (d, v) in c.iter().enumerate() {
                    fam.push(f.clone());
                    prec.push(s(p.name()));
                    seed.push(Some(*sd as i64));
                    depth.push(Some(d as i64 + 1));
                    layer.push(layers[d].clone());
                    val.push(*v);
                }
            }
            let sums = per_layer(
                &curves.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
                layers.len(),
            );
            push_summary(
                f,
                p.name(),
                &layers,
                &sums,
                (&mut sfam, &mut sprec, &mut sdepth, &mut slayer),
                &mut sv,
                &mut sn,
            );
            header.push(s(p.name()));
            for (row, sm) in md_rows.iter_mut().zip(&sums) {
                row.push(sm.map_or(s("n/a"), |x| x.show(1.0, 3)));
            }
            let moved: Vec<String> = layers
                .iter()
                .zip(sums.iter().zip(&seed_sum))
                .filter(|(_, (q, b))| matches!((q, b), (Some(q), Some(b)) if q.mean < b.min))
                .map(|(l, _)| format!("`{l}`"))
                .collect();
            if !seed_sum.iter().all(Option::is_none) {
                findings.push(if moved.is_empty() {
                    format!(
                        "{}: every layer stays within the float seed-to-seed range.",
                        p.name()
                    )
                } else {
                    format!(
                        "{}: at {} the mean CKA with the float twin is below every float \
                         seed-to-seed value: quantization moves these layers more than a new \
                         seed does.",
                        p.name(),
                        moved.join(", ")
                    )
                });
            }
            series.push(Series {
                name: s(p.name()),
                y: sums.iter().map(|x| x.map(|x| x.mean)).collect(),
                spread: Some(sums.iter().map(|x| x.and_then(|x| x.band())).collect()),
                style: Style::Line,
                dashed: false,
            });
        }
        if !seed_curves.is_empty() {
            for ((a_seed, b_seed), c) in &seed_curves {
                for (d, v) in c.iter().enumerate() {
                    fam.push(f.clone());
                    prec.push(format!("float (seed {b_seed} vs {a_seed})"));
                    seed.push(Some(*a_seed as i64));
                    depth.push(Some(d as i64 + 1));
                    layer.push(layers[d].clone());
                    val.push(*v);
                }
            }
            push_summary(
                f,
                "float, other seed",
                &layers,
                &seed_sum,
                (&mut sfam, &mut sprec, &mut sdepth, &mut slayer),
                &mut sv,
                &mut sn,
            );
            header.push(s("float, other seed"));
            for (row, sm) in md_rows.iter_mut().zip(&seed_sum) {
                row.push(sm.map_or(s("n/a"), |x| x.show(1.0, 3)));
            }
            series.push(Series {
                name: s("float, other seed"),
                y: seed_sum.iter().map(|x| x.map(|x| x.mean)).collect(),
                spread: Some(
                    seed_sum
                        .iter()
                        .map(|x| x.and_then(|x| x.band().or(Some((x.min, x.max)))))
                        .collect(),
                ),
                style: Style::Line,
                dashed: true,
            });
        }
        let plot = LinePlot {
            title: format!("{f}: CKA of each layer with the same layer of the float twin"),
            x_label: s("layer (input side → output side)"),
            y_label: format!("{} with the float twin", measure_name(o)),
            x: XAxis::Categories(layers.clone()),
            series,
            y_range: o.cka.values().all(|r| r.unit_range).then_some((0.0, 1.02)),
        };
        blocks.push(Block::Heading {
            level: 3,
            text: f.clone(),
        });
        blocks.push(w.figure_line(&format!("twin-cka-{f}"), &plot)?);
        if !findings.is_empty() {
            blocks.push(Block::List(findings));
        }
        let n = header.len();
        blocks.push(Block::Table {
            caption: format!("{f}: CKA with the float twin per layer (mean ± std over seeds)"),
            header,
            rows: md_rows,
            numeric: (0..n).map(|j| j > 0).collect(),
            files: Vec::new(),
        });
    }
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("precision", prec),
            i64_col("seed", seed),
            i64_col("depth", depth),
            str_col("layer", layer),
            f64_col("cka", val),
        ],
    };
    let mut files = w.table("twin_cka", &t)?;
    let [m, sd, mn, mx] = sv;
    let t = Table {
        columns: vec![
            str_col("family", sfam),
            str_col("precision", sprec),
            i64_col("depth", sdepth),
            str_col("layer", slayer),
            f64_col("mean", m),
            f64_col("std", sd),
            f64_col("min", mn),
            f64_col("max", mx),
            i64_col("n", sn),
        ],
    };
    files.extend(w.table("twin_cka_summary", &t)?);
    blocks.push(Block::List(
        files.iter().map(|f| format!("`{f}`")).collect(),
    ));
    Ok(())
}

type SummaryCols<'a> = (
    &'a mut Vec<String>,
    &'a mut Vec<String>,
    &'a mut Vec<Option<i64>>,
    &'a mut Vec<String>,
);

fn push_summary(
    family: &str,
    what: &str,
    layers: &[String],
    sums: &[Option<stats::Summary>],
    c: SummaryCols,
    v: &mut [Vec<Option<f64>>; 4],
    n: &mut Vec<Option<i64>>,
) {
    for (d, (l, sm)) in layers.iter().zip(sums).enumerate() {
        c.0.push(family.to_string());
        c.1.push(what.to_string());
        c.2.push(Some(d as i64 + 1));
        c.3.push(l.clone());
        v[0].push(sm.map(|x| x.mean));
        v[1].push(sm.and_then(|x| x.std));
        v[2].push(sm.map(|x| x.min));
        v[3].push(sm.map(|x| x.max));
        n.push(Some(sm.map_or(0, |x| x.n) as i64));
    }
}

/// Kornblith et al.'s layer-identification test: accuracy per measure beside the paper's.
fn identify_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    if o.identify.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading {
        level: 2,
        text: s("Layer identification"),
    });
    blocks.push(Block::Paragraph(s(
        "Kornblith et al. 2019 (Section 6.1, Table 2): for every ordered pair of networks of the \
         same family trained from different seeds, and every layer i of the first, is the most \
         similar layer of the second layer i? Asymmetric measures are symmetrized (S + Sᵀ) as in \
         the paper; distances are negated; a tie is a miss. Intervals: jackknife over networks, \
         ± 1.96 standard errors. The paper's numbers come from ten Tiny-10 CNNs on CIFAR-10; \
         CIFAR-10 is not available here, so this data set differs.",
    )));
    let paper = |m: &str| {
        super::identify::KORNBLITH_TABLE2
            .iter()
            .find(|(k, _, _)| *k == m)
            .map(|(_, label, v)| (label.to_string(), *v))
    };
    let (mut fam, mut prec, mut meas, mut nets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vals: [Vec<Option<f64>>; 5] = Default::default();
    let mut md_rows = Vec::new();
    for r in &o.identify {
        let (label, p) = paper(&r.measure).map_or((r.measure.clone(), None), |(l, v)| (l, Some(v)));
        let acc = r.result.map(|x| x.accuracy);
        let ci = r.result.and_then(|x| x.interval());
        fam.push(r.family.clone());
        prec.push(s(r.precision.name()));
        meas.push(r.measure.clone());
        nets.push(Some(r.networks as i64));
        vals[0].push(acc);
        vals[1].push(r.result.and_then(|x| x.std_error));
        vals[2].push(ci.map(|c| c.0));
        vals[3].push(ci.map(|c| c.1));
        vals[4].push(p.map(|v| v / 100.0));
        md_rows.push(vec![
            r.family.clone(),
            label,
            r.networks.to_string(),
            r.layers.len().to_string(),
            acc.map_or(s("n/a"), |a| format!("{:.1}", 100.0 * a)),
            ci.map_or(s("n/a"), |(lo, hi)| {
                format!("{:.1} - {:.1}", 100.0 * lo, 100.0 * hi)
            }),
            p.map_or(s("-"), |v| format!("{v:.1}")),
        ]);
    }
    let [acc, se, lo, hi, paper_v] = vals;
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("precision", prec),
            str_col("measure", meas),
            i64_col("networks", nets),
            f64_col("accuracy", acc),
            f64_col("jackknife_se", se),
            f64_col("ci95_low", lo),
            f64_col("ci95_high", hi),
            f64_col("kornblith2019_cifar10", paper_v),
        ],
    };
    let files = w.table("identification", &t)?;
    blocks.push(Block::Table {
        caption: s("Layer identification accuracy (%) by measure"),
        header: [
            "family",
            "measure",
            "networks",
            "layers",
            "accuracy (%)",
            "95% interval",
            "paper, CIFAR-10 (%)",
        ]
        .map(s)
        .to_vec(),
        rows: md_rows,
        numeric: vec![false, false, true, true, true, true, true],
        files,
    });
    Ok(())
}

fn measure_name(o: &Outcome) -> String {
    o.cka
        .values()
        .next()
        .map_or_else(|| s("linear CKA"), |r| r.measure.clone())
}

/// Heatmaps: every explicit pair, and the first seed of each precision against its float twin.
fn heatmap_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    let mut pairs: Vec<(usize, usize)> = a.compare.clone();
    if a.twin_heatmaps {
        for f in &a.twins {
            let floats = members(o, f, Precision::Float);
            let Some(&f0) = floats.first() else { continue };
            let seed = a.instances[f0].train.seed;
            for p in precisions_of(o, f)
                .into_iter()
                .filter(|p| *p != Precision::Float)
            {
                if let Some(&q) = members(o, f, p)
                    .iter()
                    .find(|&&q| a.instances[q].train.seed == seed)
                {
                    if !pairs.contains(&(f0, q)) {
                        pairs.push((f0, q));
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading {
        level: 2,
        text: s("Layer-by-layer CKA"),
    });
    blocks.push(Block::Paragraph(s(
        "Every layer of one network (rows) against every layer of the other (columns). Grey cells \
         are undefined (a constant layer).",
    )));
    for (i, j) in pairs {
        let Some(r) = o.cka.get(&(i, j)) else {
            continue;
        };
        let (na, nb) = (&a.instances[i].name, &a.instances[j].name);
        let stem = format!("cka-{na}-vs-{nb}");
        let hm = Heatmap {
            title: format!("{}: {na} vs {nb}", r.measure),
            rows: &r.layers_a,
            cols: &r.layers_b,
            values: &r.values,
            x_label: format!("layers of {nb}"),
            y_label: format!("layers of {na}"),
            colorbar_label: format!("{} (n = {})", r.measure, r.n),
        };
        if r.unit_range {
            blocks.push(w.figure_heatmap(&stem, &hm, format!("{na} (rows) vs {nb} (columns)"))?);
        } else {
            // The heatmap's colours span [0, 1]; a distance or an unnormalized HSIC gets a table.
            blocks.push(Block::Table {
                caption: format!("{}: {na} (rows) vs {nb} (columns)", r.measure),
                header: std::iter::once(s("layer"))
                    .chain(r.layers_b.iter().cloned())
                    .collect(),
                rows: r
                    .layers_a
                    .iter()
                    .zip(&r.values)
                    .map(|(l, row)| {
                        std::iter::once(l.clone())
                            .chain(
                                row.iter()
                                    .map(|v| v.map_or(s("n/a"), |v| format!("{v:.4}"))),
                            )
                            .collect()
                    })
                    .collect(),
                numeric: std::iter::once(false)
                    .chain(r.layers_b.iter().map(|_| true))
                    .collect(),
                files: Vec::new(),
            });
        }
        let (mut la, mut lb, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for (x, name_a) in r.layers_a.iter().enumerate() {
            for (y, name_b) in r.layers_b.iter().enumerate() {
                la.push(name_a.clone());
                lb.push(name_b.clone());
                v.push(r.values[x][y]);
            }
        }
        let t = Table {
            columns: vec![
                str_col("layer_a", la),
                str_col("layer_b", lb),
                f64_col("cka", v),
            ],
        };
        let files = w.table(&stem, &t)?;
        blocks.push(Block::List(
            files.iter().map(|f| format!("`{f}`")).collect(),
        ));
    }
    Ok(())
}

/// Tidy what killed runs left: a report moved aside but never replaced goes back in place;
/// folders of runs whose process is gone are removed (a concurrent run's are kept).
pub fn remove_stale(reports: &Path, name: &str) {
    let Ok(rd) = std::fs::read_dir(reports) else {
        return;
    };
    let fin = reports.join(name);
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let owner = |prefix: &str| f.strip_prefix(prefix).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = owner(&format!(".{name}.old-")) {
            if super::cache::process_alive(pid) {
                continue;
            }
            if !fin.exists() && std::fs::rename(e.path(), &fin).is_ok() {
                continue;
            }
            let _ = std::fs::remove_dir_all(e.path());
        } else if let Some(pid) = owner(&format!(".{name}.partial-")) {
            if !super::cache::process_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Build the report and swap it into `reports/NAME/`.
pub fn write(o: &Outcome) -> Result<PathBuf> {
    let a = &o.analysis;
    let reports = &o.args.reports;
    std::fs::create_dir_all(reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    remove_stale(reports, &a.name);
    let fin = reports.join(&a.name);
    let tmp = reports.join(format!(".{}.partial-{}", a.name, std::process::id()));
    let built = (|| -> Result<()> {
        std::fs::create_dir_all(tmp.join("figures"))?;
        std::fs::create_dir_all(tmp.join("tables"))?;
        let mut w = Writer {
            root: tmp.clone(),
            files: Vec::new(),
        };
        let mut blocks = Vec::new();
        if !a.description.trim().is_empty() {
            for para in a.description.split("\n\n") {
                blocks.push(Block::Paragraph(
                    para.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
            }
        }
        blocks.push(Block::List(overview(o)));
        models_section(o, &mut w, &mut blocks)?;
        twins_section(o, &mut w, &mut blocks)?;
        heatmap_section(o, &mut w, &mut blocks)?;
        identify_section(o, &mut w, &mut blocks)?;
        training_section(o, &mut w, &mut blocks)?;
        blocks.push(Block::Heading {
            level: 2,
            text: s("Reproduce"),
        });
        blocks.push(Block::Paragraph(format!(
            "Re-run with `strata run {}` (models and activations come from the cache; `--force` \
             retrains). Inputs, seeds, versions, machine and timings are in `manifest.json`. The \
             spec:",
            o.spec_path.display()
        )));
        blocks.push(Block::Code(o.spec_text.clone()));
        let doc = Document {
            title: a.title.clone(),
            subtitle: format!(
                "strata {} · {} · commit {} · {}",
                env!("CARGO_PKG_VERSION"),
                manifest::iso_utc(o.started),
                manifest::git_commit(&o.spec_path)
                    .map_or(s("unknown"), |c| c[..12.min(c.len())].to_string()),
                o.spec_path.display()
            ),
            blocks,
        };
        let md = strata_report::render_markdown(&doc);
        strata_report::write_atomic(&tmp.join("report.md"), md.as_bytes())?;
        let html = strata_report::render_html(&doc, &tmp)?;
        strata_report::write_atomic(&tmp.join("index.html"), html.as_bytes())?;
        w.files.push(s("report.md"));
        w.files.push(s("index.html"));
        let m = manifest::build(o, &w.files);
        strata_report::write_atomic(
            &tmp.join("manifest.json"),
            serde_json::to_string_pretty(&m)?.as_bytes(),
        )?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context("writing the report (the previous report, if any, is untouched)"));
    }
    // Swap: old report aside, new one in, old one removed.
    let old = reports.join(format!(".{}.old-{}", a.name, std::process::id()));
    let had_old = fin.exists();
    if had_old {
        std::fs::rename(&fin, &old).with_context(|| format!("cannot replace {}", fin.display()))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &fin) {
        if had_old {
            let _ = std::fs::rename(&old, &fin);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(anyhow::anyhow!(
            "cannot move the report into {}: {e}",
            fin.display()
        ));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(fin)
}

fn overview(o: &Outcome) -> Vec<String> {
    let a = &o.analysis;
    let trained = o.models.iter().filter(|m| !m.cached).count();
    let fams = a.families.len();
    let mut v = vec![format!(
        "{} models in {fams} {} (precisions × seeds): {} trained in this run, {} from the cache; \
         run time {:.1} s.",
        o.models.len(),
        if fams == 1 { "family" } else { "families" },
        trained,
        o.models.len() - trained,
        o.seconds
    )];
    for (k, d) in &o.data {
        let spec = &a.data[k];
        v.push(format!(
            "Data `{k}`: `{}`, {} training and {} test examples; activations on the first {} \
             examples of the {} split.",
            spec.source,
            d.splits.train.len(),
            d.splits.test.len(),
            d.collect.len(),
            spec.collect_split.name()
        ));
    }
    v.push(format!(
        "Similarity: {} on {} ({} pairs of models compared).",
        measure_name(o),
        match a.cka.activations {
            super::spec::ActivationPoint::Post => "each layer's output (after its nonlinearity)",
            super::spec::ActivationPoint::Pre => "each layer's pre-activation (batch-norm output)",
        },
        o.cka.len()
    ));
    v
}
