//! Report sections about layers: CKA with the float twin, heatmaps, layer identification.

use super::report::measure_name;
use super::report::{f64_col, i64_col, s, str_col, Writer};
use super::runner::Outcome;
use super::stats::{self, members, per_layer, precisions_of};
use anyhow::Result;
use strata_nn::Precision;
use strata_report::{Block, Heatmap, LinePlot, Series, Style, Table, XAxis};

/// Per-layer CKA with the float twin, one line per precision, the float seed-to-seed band.
pub(super) fn twins_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
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
pub(super) fn identify_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
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
    for t in o.analysis.identify.iter().filter(|t| !t.exclude.is_empty()) {
        blocks.push(Block::Paragraph(format!(
            "Left out of the test for {} (as queries and as candidates): {}.",
            t.family,
            t.exclude.join(", ")
        )));
    }
    let paper = |m: &str| {
        super::identify::KORNBLITH_TABLE2
            .iter()
            .find(|(k, _, _)| *k == m)
            .map(|(_, label, v)| (label.to_string(), *v))
    };
    let (mut fam, mut prec, mut meas, mut nets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vals: [Vec<Option<f64>>; 6] = Default::default();
    let mut md_rows = Vec::new();
    for r in &o.identify {
        let (label, p) = paper(&r.measure).map_or((r.measure.clone(), None), |(l, v)| (l, Some(v)));
        let acc = r.result.as_ref().map(|x| x.accuracy);
        let near = r.result.as_ref().map(|x| x.within_one);
        let ci = r.result.as_ref().and_then(|x| x.interval());
        fam.push(r.family.clone());
        prec.push(s(r.precision.name()));
        meas.push(r.measure.clone());
        nets.push(Some(r.networks as i64));
        vals[0].push(acc);
        vals[1].push(r.result.as_ref().and_then(|x| x.std_error));
        vals[2].push(ci.map(|c| c.0));
        vals[3].push(ci.map(|c| c.1));
        vals[4].push(p.map(|v| v / 100.0));
        vals[5].push(near);
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
            near.map_or(s("n/a"), |a| format!("{:.1}", 100.0 * a)),
        ]);
    }
    let [acc, se, lo, hi, paper_v, near] = vals;
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
            f64_col("within_one_layer", near),
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
            "within one layer (%)",
        ]
        .map(s)
        .to_vec(),
        rows: md_rows,
        numeric: vec![false, false, true, true, true, true, true, true],
        files,
    });
    identify_layers(o, w, blocks)
}

/// Where identification fails: accuracy for each layer and, for its misses, the layer most often
/// picked instead.
fn identify_layers(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    let (mut fam, mut meas, mut layer, mut depth, mut acc) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut instead, mut instead_share) = (vec![], vec![]);
    let mut md_rows = Vec::new();
    for r in &o.identify {
        let Some(res) = &r.result else { continue };
        let pairs = (r.networks * r.networks.saturating_sub(1)).max(1) as f64;
        let mut row = vec![r.family.clone(), r.measure.clone()];
        for (i, name) in r.layers.iter().enumerate() {
            let a = res.per_layer.get(i).copied();
            // The most frequent wrong pick (the first on a tie, for a stable table).
            let wrong = res.picks.get(i).and_then(|p| {
                p.iter()
                    .enumerate()
                    .filter(|&(j, &c)| j != i && c > 0)
                    .fold(None::<(usize, usize)>, |m, (j, &c)| match m {
                        Some((_, top)) if top >= c => m,
                        _ => Some((j, c)),
                    })
            });
            fam.push(r.family.clone());
            meas.push(r.measure.clone());
            layer.push(name.clone());
            depth.push(Some(i as i64 + 1));
            acc.push(a);
            instead.push(
                wrong
                    .and_then(|(j, _)| r.layers.get(j).cloned())
                    .unwrap_or_default(),
            );
            instead_share.push(wrong.map(|(_, c)| c as f64 / pairs));
            row.push(match (a, wrong) {
                (Some(a), Some((j, _))) if a < 1.0 => format!(
                    "{:.0} ({})",
                    100.0 * a,
                    r.layers.get(j).map_or("?", String::as_str)
                ),
                (Some(a), _) => format!("{:.0}", 100.0 * a),
                (None, _) => s("n/a"),
            });
        }
        md_rows.push(row);
    }
    if md_rows.is_empty() {
        return Ok(());
    }
    let t = Table {
        columns: vec![
            str_col("family", fam),
            str_col("measure", meas),
            i64_col("depth", depth),
            str_col("layer", layer),
            f64_col("accuracy", acc),
            str_col("most_picked_instead", instead),
            f64_col("most_picked_instead_share", instead_share),
        ],
    };
    let files = w.table("identification-layers", &t)?;
    // Layer names of the first family head the columns (families of one architecture share them).
    let names = o
        .identify
        .iter()
        .find(|r| r.result.is_some())
        .map_or(vec![], |r| r.layers.clone());
    let mut header = vec![s("family"), s("measure")];
    header.extend(names.iter().cloned());
    let numeric = (0..header.len()).map(|k| k >= 2).collect();
    blocks.push(Block::Table {
        caption: s(
            "Identification accuracy (%) by layer; in parentheses, the layer most often \
                    picked instead when the layer was missed",
        ),
        header,
        rows: md_rows,
        numeric,
        files,
    });
    Ok(())
}

/// Heatmaps: every explicit pair, and the first seed of each precision against its float twin.
pub(super) fn heatmap_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
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
        let (na, nb) = (a.side_name(i), a.side_name(j));
        let stem = format!("cka-{na}-vs-{nb}");
        let hm = Heatmap {
            title: format!("{}: {na} vs {nb}", r.measure),
            rows: &r.layers_a,
            cols: &r.layers_b,
            values: &r.values,
            x_label: format!("layers of {nb}"),
            y_label: format!("layers of {na}"),
            colorbar_label: format!("{} (n = {})", r.measure, r.n),
            range: strata_sim::value_range(&r.measure),
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
