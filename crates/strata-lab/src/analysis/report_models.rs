//! Report sections about the models: accuracy by precision and training curves.

use super::report::{f64_col, i64_col, s, str_col, Writer};
use super::runner::Outcome;
use super::stats::{self, members, precisions_of, summarize};
use anyhow::Result;
use strata_nn::Precision;
use strata_report::{Block, LinePlot, Series, Style, Table, XAxis};

/// Models: one row per instance, and the accuracy summary per family and precision.
pub(super) fn models_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    if a.instances.is_empty() {
        return Ok(()); // a spec that only compares `[[store]]` files trains nothing
    }
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
pub(super) fn training_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let a = &o.analysis;
    if a.instances.is_empty() {
        return Ok(());
    }
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
