//! The audit's outputs: a terminal summary, the one-line JSON for scripts, and the report folder
//! (ROC curves on log-log axes, the defense table, per-class leakage, the design, Markdown and a
//! self-contained HTML page).

use super::audit::{AttackResult, AuditResult, Setting};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::Path;
use strata_report::{
    render_html, render_markdown, roc_plot_png, roc_plot_svg, write_atomic, write_table, Block,
    Column, Document, RocCurve, RocPlot, Table,
};

/// `0.1234` -> `12.34%`; a value that rounds to zero prints as `0.00%`, never `-0.00%`.
fn pct(v: f64) -> String {
    if v.is_finite() {
        let x = 100.0 * v;
        format!("{:.2}%", if x.abs() < 0.005 { 0.0 } else { x })
    } else {
        "n/a".into()
    }
}

fn attack_json(r: &AttackResult) -> Value {
    let m = &r.metrics;
    json!({
        "auc": m.auc.value,
        "auc_ci": [m.auc.ci_low, m.auc.ci_high],
        "tpr_at_0.1pct_fpr": m.tpr_at_low_fpr.value,
        "tpr_at_0.1pct_fpr_ci": [m.tpr_at_low_fpr.ci_low, m.tpr_at_low_fpr.ci_high],
        "false_positives_at_0.1pct_fpr": m.false_positives_at_low_fpr,
        "tpr_at_1pct_fpr": m.tpr_at_1pct_fpr.value,
        "tpr_at_1pct_fpr_ci": [m.tpr_at_1pct_fpr.ci_low, m.tpr_at_1pct_fpr.ci_high],
        "false_positives_at_1pct_fpr": m.false_positives_at_1pct_fpr,
        "advantage": m.advantage.value,
        "advantage_ci": [m.advantage.ci_low, m.advantage.ci_high],
        "balanced_accuracy": m.balanced_accuracy,
        "threshold_accuracy": r.threshold_accuracy,
        "members": m.members,
        "non_members": m.non_members,
    })
}

fn setting_json(s: &Setting) -> Value {
    let mut attacks = Map::new();
    for r in &s.attacks {
        attacks.insert(r.attack.clone(), attack_json(r));
    }
    json!({
        "precision": s.precision,
        "defense": s.defense,
        "train_accuracy": s.train_accuracy,
        "test_accuracy": s.test_accuracy,
        "reference_test_accuracy": s.reference_test_accuracy,
        "attacks": attacks,
    })
}

/// The one-line JSON: the first setting (first precision, no defense) at the top level, every
/// setting under `settings`.
pub fn json_line(r: &AuditResult, out: Option<&Path>) -> Value {
    let first = r.settings.first().map(setting_json).unwrap_or(Value::Null);
    json!({
        "command": "mia audit",
        "data": r.data,
        "pool": r.pool,
        "target_members": r.target_members,
        "references": r.references,
        "shadows": r.shadows,
        "architecture": r.architecture,
        "widths": r.widths,
        "epochs": r.train.epochs,
        "seed": r.seed,
        "precision": first["precision"],
        "defense": first["defense"],
        "train_accuracy": first["train_accuracy"],
        "test_accuracy": first["test_accuracy"],
        "attacks": first["attacks"],
        "settings": r.settings.iter().map(setting_json).collect::<Vec<_>>(),
        "models_trained": r.models_trained,
        "models_cached": r.models_cached,
        "seconds": r.seconds,
        "out": out.map(|p| p.display().to_string()),
    })
}

fn ci(e: &strata_privacy::metrics::Estimate, percent: bool) -> String {
    if percent {
        format!("{} [{}, {}]", pct(e.value), pct(e.ci_low), pct(e.ci_high))
    } else {
        format!("{:.3} [{:.3}, {:.3}]", e.value, e.ci_low, e.ci_high)
    }
}

fn attack_rows(s: &Setting) -> Vec<Vec<String>> {
    s.attacks
        .iter()
        .map(|r| {
            let m = &r.metrics;
            vec![
                r.attack.clone(),
                ci(&m.auc, false),
                ci(&m.tpr_at_low_fpr, true),
                ci(&m.tpr_at_1pct_fpr, true),
                format!("{:.3}", m.advantage.value),
                r.threshold_accuracy.map_or("-".into(), pct),
            ]
        })
        .collect()
}

const ATTACK_HEADER: [&str; 6] = [
    "attack",
    "AUC [95% CI]",
    "TPR @ 0.1% FPR",
    "TPR @ 1% FPR",
    "advantage",
    "acc @ own threshold",
];

fn setting_line(s: &Setting) -> String {
    format!(
        "{} / defense {}: target train acc {}, test acc {} (gap {:.2} points); references' test acc {}",
        s.precision,
        s.defense,
        pct(s.train_accuracy),
        pct(s.test_accuracy),
        100.0 * (s.train_accuracy - s.test_accuracy),
        pct(s.reference_test_accuracy)
    )
}

/// The terminal summary.
pub fn text(r: &AuditResult, out: Option<&Path>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "membership-inference audit: {} {} on {} (pool {}, {} members, {} non-members; {} references)",
        r.architecture,
        r.widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("x"),
        r.data,
        r.pool,
        r.target_members,
        r.pool - r.target_members,
        r.references
    );
    if let Some(s) = r.settings.first() {
        if let Some(a) = s.attacks.first() {
            let _ = writeln!(
                t,
                "TPR at 0.1% FPR rests on {} false positive(s) allowed out of {} non-members; intervals: {} bootstrap resamples",
                a.metrics.false_positives_at_low_fpr, a.metrics.non_members, r.bootstrap
            );
        }
    }
    for s in &r.settings {
        let _ = writeln!(t, "\n{}", setting_line(s));
        let header: Vec<String> = ATTACK_HEADER.iter().map(|s| s.to_string()).collect();
        t.push_str(&left_aligned(&header, &attack_rows(s)));
    }
    if r.settings.len() > 1 {
        let _ = writeln!(t, "\n{}", defense_table_text(r));
    }
    let _ = writeln!(
        t,
        "\n{} models trained, {} from the cache, {:.1} s{}",
        r.models_trained,
        r.models_cached,
        r.seconds,
        out.map_or(String::new(), |p| format!("; report in {}", p.display()))
    );
    t
}

/// The attack reported in the defense table: LiRA online if run, else the first attack.
pub fn headline(r: &AuditResult) -> Option<String> {
    let names: Vec<&str> = r
        .settings
        .first()?
        .attacks
        .iter()
        .map(|a| a.attack.as_str())
        .collect();
    Some(
        names
            .iter()
            .find(|n| **n == "lira")
            .unwrap_or(names.first()?)
            .to_string(),
    )
}

/// The defense table: a header and one row per setting (target accuracies, the headline
/// attack's AUC and TPRs, the best AUC and its attack).
pub fn defense_rows(r: &AuditResult) -> (Vec<String>, Vec<Vec<String>>) {
    let head = headline(r).unwrap_or_default();
    let header = vec![
        "precision".into(),
        "defense".into(),
        "train acc".into(),
        "test acc".into(),
        format!("{head} AUC"),
        format!("{head} TPR @ 0.1% FPR"),
        format!("{head} TPR @ 1% FPR"),
        "best AUC (attack)".into(),
    ];
    let rows = r
        .settings
        .iter()
        .map(|s| {
            let h = s.attacks.iter().find(|a| a.attack == head);
            let best = s
                .attacks
                .iter()
                .max_by(|a, b| a.metrics.auc.value.total_cmp(&b.metrics.auc.value));
            vec![
                s.precision.clone(),
                s.defense.clone(),
                pct(s.train_accuracy),
                pct(s.test_accuracy),
                h.map_or("-".into(), |a| format!("{:.3}", a.metrics.auc.value)),
                h.map_or("-".into(), |a| pct(a.metrics.tpr_at_low_fpr.value)),
                h.map_or("-".into(), |a| pct(a.metrics.tpr_at_1pct_fpr.value)),
                best.map_or("-".into(), |a| {
                    format!("{:.3} ({})", a.metrics.auc.value, a.attack)
                }),
            ]
        })
        .collect();
    (header, rows)
}

/// A header and rows as text, each column left-aligned to its widest cell, indented two spaces.
fn left_aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (j, c) in row.iter().enumerate() {
            w[j] = w[j].max(c.chars().count());
        }
    }
    let mut t = String::new();
    for cells in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let line: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(j, c)| format!("{c:<width$}", width = w[j]))
            .collect();
        let _ = writeln!(t, "  {}", line.join("  ").trim_end());
    }
    t
}

fn defense_table_text(r: &AuditResult) -> String {
    let (header, rows) = defense_rows(r);
    let t = format!(
        "defenses (leakage beside accuracy):\n{}",
        left_aligned(&header, &rows)
    );
    t.trim_end().to_string()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Write the report folder `dir`: results.json, design.json, tables/, figures/, report.md and
/// index.html. Every file is written atomically.
pub fn write(r: &AuditResult, out: &Path, command: &str) -> Result<()> {
    // Staged and moved into `out` as one set: a failure half-way leaves the previous report.
    let set = crate::outset::OutputSet::new(out, &[], &[])?;
    let dir = set.root();
    let figures = dir.join("figures");
    let tables = dir.join("tables");
    for d in [dir, &figures, &tables] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    write_json(r, dir)?;
    write_table(&attacks_table(r), &tables, "attacks")?;
    write_table(&per_class_table(r), &tables, "per_class")?;
    let mut blocks = overview_blocks(r, command);
    for s in &r.settings {
        blocks.extend(setting_blocks(r, s, &figures)?);
    }
    write_document(r, dir, blocks)?;
    set.commit()?;
    Ok(())
}

/// results.json (the whole result) and design.json (who trained on what).
fn write_json(r: &AuditResult, dir: &Path) -> Result<()> {
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    let design = json!({
        "note": "pool[i] is an index into the data set's training split; target[i] and references[m][i] say whether model trained on pool example i. Model m's seed is seed * 1000003 + m (m = 0: target).",
        "seed": r.seed,
        "pool": r.pool_idx,
        "target": r.design.target.iter().map(|&b| u8::from(b)).collect::<Vec<_>>(),
        "references": r.design.references.iter().map(|m| m.iter().map(|&b| u8::from(b)).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    write_atomic(
        &dir.join("design.json"),
        serde_json::to_string(&design)?.as_bytes(),
    )?;
    Ok(())
}

/// The numeric columns of the attacks table, in order (see [`metric_values`]).
const METRIC_COLUMNS: [&str; 14] = [
    "train_accuracy",
    "test_accuracy",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "tpr_at_0.1pct_fpr",
    "tpr_at_0.1pct_fpr_ci_low",
    "tpr_at_0.1pct_fpr_ci_high",
    "tpr_at_1pct_fpr",
    "tpr_at_1pct_fpr_ci_low",
    "tpr_at_1pct_fpr_ci_high",
    "advantage",
    "balanced_accuracy",
    "threshold_accuracy",
];

/// The values of [`METRIC_COLUMNS`] for attack `a` on setting `s`.
fn metric_values(s: &Setting, a: &AttackResult) -> [f64; 14] {
    let m = &a.metrics;
    [
        s.train_accuracy,
        s.test_accuracy,
        m.auc.value,
        m.auc.ci_low,
        m.auc.ci_high,
        m.tpr_at_low_fpr.value,
        m.tpr_at_low_fpr.ci_low,
        m.tpr_at_low_fpr.ci_high,
        m.tpr_at_1pct_fpr.value,
        m.tpr_at_1pct_fpr.ci_low,
        m.tpr_at_1pct_fpr.ci_high,
        m.advantage.value,
        m.balanced_accuracy,
        a.threshold_accuracy.unwrap_or(f64::NAN),
    ]
}

/// The key columns of both long tables: which setting and attack a row is about.
const KEY_COLUMNS: [&str; 3] = ["precision", "defense", "attack"];

/// The long attacks table: one row per (setting, attack); non-finite figures are missing.
fn attacks_table(r: &AuditResult) -> Table {
    let mut keys: Vec<Vec<String>> = vec![Vec::new(); KEY_COLUMNS.len()];
    let mut figures: Vec<Vec<Option<f64>>> = vec![Vec::new(); METRIC_COLUMNS.len()];
    for s in &r.settings {
        for a in &s.attacks {
            for (c, v) in keys.iter_mut().zip([&s.precision, &s.defense, &a.attack]) {
                c.push(v.clone());
            }
            for (c, v) in figures.iter_mut().zip(metric_values(s, a)) {
                c.push(v.is_finite().then_some(v));
            }
        }
    }
    let mut columns: Vec<Column> = KEY_COLUMNS
        .iter()
        .zip(keys)
        .map(|(n, v)| Column::Str(n.to_string(), v))
        .collect();
    columns.extend(
        METRIC_COLUMNS
            .iter()
            .zip(figures)
            .map(|(n, v)| Column::F64(n.to_string(), v)),
    );
    Table { columns }
}

/// The long per-class table: one row per (setting, attack, class) with that class's AUC.
fn per_class_table(r: &AuditResult) -> Table {
    let (mut keys, mut class, mut auc) = (vec![Vec::new(); 3], Vec::new(), Vec::new());
    for s in &r.settings {
        for a in &s.attacks {
            for (k, v) in a.per_class_auc.iter().enumerate() {
                for (c, key) in keys.iter_mut().zip([&s.precision, &s.defense, &a.attack]) {
                    c.push(key.clone());
                }
                class.push(Some(k as i64));
                auc.push(*v);
            }
        }
    }
    let mut columns: Vec<Column> = KEY_COLUMNS
        .iter()
        .zip(keys)
        .map(|(n, v)| Column::Str(n.to_string(), v))
        .collect();
    columns.push(Column::I64("class".into(), class));
    columns.push(Column::F64("auc".into(), auc));
    Table { columns }
}

/// The report's opening: what was audited and how, the command, and the table of leakage beside
/// accuracy for every setting.
fn overview_blocks(r: &AuditResult, command: &str) -> Vec<Block> {
    let non_members = r.pool - r.target_members;
    let mut blocks = vec![
        Block::Paragraph(format!(
            "The target ({} {}, trained {} epochs) was trained on {} of a pool of {} examples drawn at random from `{}`'s training split; the other {} are the non-members. {} reference models each trained on a random half of the pool (every example in half of them). Figures are for the target's membership; intervals are 95% bootstrap intervals ({} resamples). At 0.1% FPR the {} non-members allow {} false positive(s): read those figures with that in mind.",
            r.architecture,
            r.widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("x"),
            r.train.epochs,
            r.target_members,
            r.pool,
            r.data,
            non_members,
            r.references,
            r.bootstrap,
            non_members,
            (0.001 * non_members as f64 + 1e-9).floor()
        )),
        Block::Code(command.to_string()),
    ];
    let (header, rows) = defense_rows(r);
    let n = header.len();
    blocks.push(Block::Heading {
        level: 2,
        text: "Leakage and accuracy by precision and defense".into(),
    });
    blocks.push(Block::Table {
        caption: "A defense is worth its name when leakage falls more than test accuracy does; train accuracy near test accuracy means the model no longer memorizes.".into(),
        header,
        rows,
        numeric: (0..n).map(|j| j >= 2).collect(),
        files: vec!["tables/attacks.csv".into(), "tables/attacks.parquet".into()],
    });
    blocks
}

/// One setting's section: its ROC figure (written to `figures`), accuracy line, attacks table
/// and the headline attack's per-class AUC.
fn setting_blocks(r: &AuditResult, s: &Setting, figures: &Path) -> Result<Vec<Block>> {
    let stem = roc_figure(r, s, figures)?;
    let mut blocks = vec![
        Block::Heading {
            level: 2,
            text: format!("{} / defense {}", s.precision, s.defense),
        },
        Block::Paragraph(setting_line(s)),
        Block::Figure {
            png: format!("figures/{stem}.png"),
            svg: Some(format!("figures/{stem}.svg")),
            caption: "Log-log axes, as in Carlini et al. 2022: the lower left is where an attack is confident. A curve above the dashed diagonal at FPR 1e-3 identifies members with few false alarms.".into(),
        },
        Block::Table {
            caption: "Attacks on this setting".into(),
            header: ATTACK_HEADER.iter().map(|s| s.to_string()).collect(),
            rows: attack_rows(s),
            numeric: vec![false, true, true, true, true, true],
            files: Vec::new(),
        },
    ];
    blocks.extend(per_class_block(r, s));
    Ok(blocks)
}

/// Write the ROC curves of every attack on `s` (PNG and SVG) to `figures`; returns their stem.
fn roc_figure(r: &AuditResult, s: &Setting, figures: &Path) -> Result<String> {
    let stem = format!("roc-{}-{}", slug(&s.precision), slug(&s.defense));
    let plot = RocPlot {
        title: format!(
            "{} / {}: ROC of each attack (log-log)",
            s.precision, s.defense
        ),
        curves: s
            .attacks
            .iter()
            .map(|a| RocCurve {
                name: format!("{} (AUC {:.3})", a.attack, a.metrics.auc.value),
                points: a.roc.clone(),
            })
            .collect(),
        floor: (1.0 / (r.pool - r.target_members).max(1) as f64).min(1e-3) * 0.5,
    };
    roc_plot_png(&plot, &figures.join(format!("{stem}.png")))?;
    roc_plot_svg(&plot, &figures.join(format!("{stem}.svg")))?;
    Ok(stem)
}

/// The per-class AUC of the headline attack on `s`, if it ran there.
fn per_class_block(r: &AuditResult, s: &Setting) -> Option<Block> {
    let head = headline(r);
    let h = s
        .attacks
        .iter()
        .find(|a| Some(&a.attack) == head.as_ref())?;
    Some(Block::Table {
        caption: format!("Per-class AUC of {} (which classes leak most)", h.attack),
        header: vec!["class".into(), "AUC".into()],
        rows: h
            .per_class_auc
            .iter()
            .enumerate()
            .map(|(k, v)| vec![k.to_string(), v.map_or("n/a".into(), |v| format!("{v:.3}"))])
            .collect(),
        numeric: vec![true, true],
        files: vec![
            "tables/per_class.csv".into(),
            "tables/per_class.parquet".into(),
        ],
    })
}

/// report.md and index.html from `blocks`, under a title and a line of run statistics.
fn write_document(r: &AuditResult, dir: &Path, blocks: Vec<Block>) -> Result<()> {
    let doc = Document {
        title: format!(
            "Membership-inference audit: {} on {}",
            r.architecture, r.data
        ),
        subtitle: format!(
            "{} models trained, {} cached; {:.0} s; strata {}",
            r.models_trained,
            r.models_cached,
            r.seconds,
            env!("CARGO_PKG_VERSION")
        ),
        blocks,
    };
    write_atomic(&dir.join("report.md"), render_markdown(&doc).as_bytes())?;
    let html = render_html(&doc, dir)?;
    write_atomic(&dir.join("index.html"), html.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pct_never_prints_negative_zero() {
        assert_eq!(super::pct(-1e-9), "0.00%");
        assert_eq!(super::pct(-0.0), "0.00%");
        assert_eq!(super::pct(-0.001), "-0.10%");
        assert_eq!(super::pct(0.12345), "12.35%");
        assert_eq!(super::pct(f64::NAN), "n/a");
    }
}
