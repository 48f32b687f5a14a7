//! The report's membership-inference section (`[privacy]`): per audited family, leakage beside
//! accuracy for every precision and defense, the headline attack's ROC per setting on one
//! log-log figure, and the audit's full report in `privacy/FAMILY/`.

use super::report::Writer;
use super::runner::Outcome;
use crate::mia::report as mia_report;
use anyhow::Result;
use strata_report::{Block, RocCurve, RocPlot};

pub(super) fn privacy_section(o: &Outcome, w: &mut Writer, blocks: &mut Vec<Block>) -> Result<()> {
    for run in &o.privacy {
        let r = &run.result;
        let sub = format!("privacy/{}", run.family);
        mia_report::write(r, &w.root.join(&sub), &o.args.command)?;
        for f in ["index.html", "report.md", "results.json", "design.json"] {
            w.files.push(format!("{sub}/{f}"));
        }
        blocks.push(Block::Heading {
            level: 2,
            text: format!("Membership inference: {}", run.family),
        });
        let non_members = r.pool - r.target_members;
        blocks.push(Block::Paragraph(format!(
            "For each precision, {} models followed a balanced design over {} pool examples drawn from `{}` (every example in the training set of half of them); model 0, the target, trained on {} of them, and the other {} are the attacker's reference models; every attack scores the target's pool. TPR at 0.1% FPR rests on {} false positive(s) out of {} non-members. Full audit (ROC figures per setting, per-class leakage, the design, every model's logits): `{sub}/index.html`.",
            r.models,
            r.pool,
            r.data,
            r.target_members,
            r.references,
            (0.001 * non_members as f64 + 1e-9).floor(),
            non_members
        )));
        let (header, rows) = mia_report::defense_rows(r);
        let n = header.len();
        blocks.push(Block::Table {
            caption: "Leakage beside accuracy: a precision or defense protects when leakage falls by more than test accuracy does.".into(),
            header,
            rows,
            numeric: (0..n).map(|j| j >= 2).collect(),
            files: vec![format!("{sub}/tables/attacks.csv"), format!("{sub}/tables/attacks.parquet")],
        });
        let Some(head) = mia_report::headline(r) else {
            continue;
        };
        let plot = RocPlot {
            title: format!(
                "{}: {head} ROC per precision / defense (log-log)",
                run.family
            ),
            curves: r
                .settings
                .iter()
                .filter_map(|s| {
                    let a = s.attacks.iter().find(|a| a.attack == head)?;
                    Some(RocCurve {
                        name: format!(
                            "{} {} (test acc {:.1}%)",
                            s.precision,
                            s.defense,
                            100.0 * s.test_accuracy
                        ),
                        points: a.roc.clone(),
                    })
                })
                .collect(),
            floor: (1.0 / non_members.max(1) as f64).min(1e-3) * 0.5,
        };
        let stem = format!("privacy-{}", run.family);
        let png = format!("figures/{stem}.png");
        let svg = format!("figures/{stem}.svg");
        strata_report::roc_plot_png(&plot, &w.root.join(&png))?;
        strata_report::roc_plot_svg(&plot, &w.root.join(&svg))?;
        w.files.push(png.clone());
        w.files.push(svg.clone());
        blocks.push(Block::Figure {
            png,
            svg: Some(svg),
            caption: format!("{head} against each setting's target: higher at the left means more members identified with few false alarms."),
        });
    }
    Ok(())
}
