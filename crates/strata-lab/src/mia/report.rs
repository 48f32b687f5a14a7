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

fn spread_json(s: &strata_privacy::score::Spread) -> Value {
    json!({"mean": s.mean, "std": s.std, "min": s.min, "max": s.max})
}

fn attack_json(r: &AttackResult) -> Value {
    let m = &r.metrics;
    let across = r.across_targets.as_ref().map(|t| {
        json!({
            "targets": t.per_target.len(),
            "auc": spread_json(&t.auc),
            "tpr_at_0.1pct_fpr": spread_json(&t.tpr_at_low_fpr),
            "tpr_at_1pct_fpr": spread_json(&t.tpr_at_1pct_fpr),
            "advantage": spread_json(&t.advantage),
        })
    });
    json!({
        "across_targets": across,
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
    let t = r.trained.as_ref();
    json!({
        "command": if t.is_some() { "mia audit" } else { "mia score" },
        "data": r.data,
        "pool": r.pool,
        "models": r.models,
        "targets": r.targets,
        "target_members": r.target_members,
        "references": r.references,
        "shadows": r.shadows,
        "architecture": t.map(|t| t.architecture.clone()),
        "widths": t.map(|t| t.widths.clone()),
        "epochs": t.map(|t| t.train.epochs),
        "outputs": r.outputs,
        "seed": r.seed,
        "precision": first["precision"],
        "defense": first["defense"],
        "train_accuracy": first["train_accuracy"],
        "test_accuracy": first["test_accuracy"],
        "attacks": first["attacks"],
        "settings": r.settings.iter().map(setting_json).collect::<Vec<_>>(),
        "models_trained": t.map_or(0, |t| t.models_trained),
        "models_cached": t.map_or(0, |t| t.models_cached),
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

/// `float / defense none` for trained models, `defense none` for outside ones.
fn setting_name(s: &Setting) -> String {
    if s.precision.is_empty() {
        format!("defense {}", s.defense)
    } else {
        format!("{} / defense {}", s.precision, s.defense)
    }
}

fn setting_line(r: &AuditResult, s: &Setting) -> String {
    let held = r.held_out();
    format!(
        "{}: target {} train acc {}, {held} acc {} (gap {:.2} points); references' {held} acc {}",
        setting_name(s),
        r.targets.first().copied().unwrap_or(0),
        pct(s.train_accuracy),
        pct(s.test_accuracy),
        100.0 * (s.train_accuracy - s.test_accuracy),
        pct(s.reference_test_accuracy)
    )
}

/// Rows of the across-targets table of `s`: mean ± std (min - max) of each figure per attack;
/// empty when one target was scored.
fn across_rows(s: &Setting) -> Vec<Vec<String>> {
    let f = |x: &strata_privacy::score::Spread, percent: bool| {
        if percent {
            format!(
                "{} ± {} ({} - {})",
                pct(x.mean),
                pct(x.std),
                pct(x.min),
                pct(x.max)
            )
        } else {
            format!("{:.3} ± {:.3} ({:.3} - {:.3})", x.mean, x.std, x.min, x.max)
        }
    };
    s.attacks
        .iter()
        .filter_map(|a| {
            let t = a.across_targets.as_ref()?;
            Some(vec![
                a.attack.clone(),
                f(&t.auc, false),
                f(&t.tpr_at_low_fpr, true),
                f(&t.tpr_at_1pct_fpr, true),
                f(&t.advantage, false),
            ])
        })
        .collect()
}

const ACROSS_HEADER: [&str; 5] = [
    "attack",
    "AUC mean ± std (min - max)",
    "TPR @ 0.1% FPR",
    "TPR @ 1% FPR",
    "advantage",
];

/// The terminal summary.
pub fn text(r: &AuditResult, out: Option<&Path>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "membership-inference audit: {} on {} (pool {}; target {}: {} members, {} non-members; {} references)",
        r.what(),
        r.data,
        r.pool,
        r.targets.first().copied().unwrap_or(0),
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
        let _ = writeln!(t, "\n{}", setting_line(r, s));
        let header: Vec<String> = ATTACK_HEADER.iter().map(|s| s.to_string()).collect();
        t.push_str(&left_aligned(&header, &attack_rows(s)));
        let across = across_rows(s);
        if !across.is_empty() {
            let _ = writeln!(
                t,
                "  over all {} targets (each attacked with {} references):",
                r.targets.len(),
                r.references
            );
            let header: Vec<String> = ACROSS_HEADER.iter().map(|s| s.to_string()).collect();
            t.push_str(&left_aligned(&header, &across));
        }
    }
    if r.settings.len() > 1 {
        let _ = writeln!(t, "\n{}", defense_table_text(r));
    }
    let _ = writeln!(
        t,
        "\n{}, {:.1} s{}",
        models_line(r),
        r.seconds,
        out.map_or(String::new(), |p| format!("; report in {}", p.display()))
    );
    t
}

/// `17 models trained, 0 from the cache` or `17 models' logits scored`.
fn models_line(r: &AuditResult) -> String {
    match &r.trained {
        Some(t) => format!(
            "{} models trained, {} from the cache",
            t.models_trained, t.models_cached
        ),
        None => format!(
            "{} models' {} scored",
            r.models,
            r.outputs.map_or("outputs", |k| k.noun())
        ),
    }
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
        format!("{} acc", r.held_out()),
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
    if r.targets.len() > 1 {
        write_table(&targets_table(r), &tables, "targets")?;
    }
    let mut blocks = overview_blocks(r, command);
    for s in &r.settings {
        blocks.extend(setting_blocks(r, s, &figures)?);
    }
    write_document(r, dir, blocks)?;
    set.commit()?;
    Ok(())
}

/// results.json (the whole result), the design (design.json, members.npy, members/), and for
/// models strata trained their logits on the pool (`logits/SET/model-NNN.npy`) with the pool's
/// labels (`labels.npy`), so `mia score` can re-score them.
fn write_json(r: &AuditResult, dir: &Path) -> Result<()> {
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    if r.trained.is_none() {
        return Ok(());
    }
    r.design_file.write_into(&r.design, dir)?;
    let mut npy = Vec::new();
    let labels: Vec<i64> = r.labels.iter().map(|&y| i64::from(y)).collect();
    strata_data::npy::write_i64(&mut npy, &[labels.len()], &labels)?;
    write_atomic(&dir.join("labels.npy"), &npy)?;
    for (set, models) in &r.logits {
        let folder = dir.join("logits").join(slug(set));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        for (m, l) in models.iter().enumerate() {
            let mut npy = Vec::with_capacity(l.len() * 4 + 128);
            strata_data::npy::write_f32(&mut npy, &[r.pool, r.classes], l)?;
            write_atomic(&folder.join(format!("model-{m:03}.npy")), &npy)?;
        }
    }
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

/// The per-target table: one row per (setting, attack, target) with that target's figures.
fn targets_table(r: &AuditResult) -> Table {
    let mut keys: Vec<Vec<String>> = vec![Vec::new(); KEY_COLUMNS.len()];
    let (mut target, mut figs) = (Vec::new(), vec![Vec::new(); 4]);
    for s in &r.settings {
        for a in &s.attacks {
            for f in a.across_targets.iter().flat_map(|t| &t.per_target) {
                for (c, v) in keys.iter_mut().zip([&s.precision, &s.defense, &a.attack]) {
                    c.push(v.clone());
                }
                target.push(Some(f.target as i64));
                let vals = [f.auc, f.tpr_at_low_fpr, f.tpr_at_1pct_fpr, f.advantage];
                for (c, v) in figs.iter_mut().zip(vals) {
                    c.push(Some(v));
                }
            }
        }
    }
    let mut columns: Vec<Column> = KEY_COLUMNS
        .iter()
        .zip(keys)
        .map(|(n, v)| Column::Str(n.to_string(), v))
        .collect();
    columns.push(Column::I64("target".into(), target));
    for (n, v) in ["auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr", "advantage"]
        .iter()
        .zip(figs)
    {
        columns.push(Column::F64(n.to_string(), v));
    }
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

/// The report's first paragraph: how the models were obtained and what the figures rest on.
fn overview_text(r: &AuditResult, non_members: usize) -> String {
    let allowed = (0.001 * non_members as f64 + 1e-9).floor();
    let target = r.targets.first().copied().unwrap_or(0);
    let how = match &r.trained {
        Some(t) => format!(
            "{} models ({}, trained {} epochs each) followed a balanced design over a pool of {} examples drawn at random from `{}`'s training split: every example is in the training set of half of them. Model 0 is the target; it trained on {} of the pool, and the other {} are its non-members; the other {} models are the attacker's reference models.",
            r.models, r.what(), t.train.epochs, r.pool, r.data, r.target_members, non_members, r.references
        ),
        None => format!(
            "{} outside models followed a balanced design over a pool of {} examples (every example in the training set of half of them); their {} on the pool were scored. {}Target {target} trained on {} of the pool, and the other {} are its non-members; each target is attacked with {} reference models (the first other models of the design).",
            r.models,
            r.pool,
            r.outputs.map_or("logits", |k| k.noun()),
            if r.targets.len() > 1 { format!("Every model was attacked in turn as the target ({} targets); tables give the mean, standard deviation and range over targets, and the primary target's figures with intervals. ", r.targets.len()) } else { String::new() },
            r.target_members,
            non_members,
            r.references
        ),
    };
    format!(
        "{how} Intervals are 95% bootstrap intervals ({} resamples). At 0.1% FPR the {non_members} non-members allow {allowed} false positive(s): read those figures with that in mind.",
        r.bootstrap
    )
}

/// The report's opening: what was audited and how, the command, and the table of leakage beside
/// accuracy for every setting.
fn overview_blocks(r: &AuditResult, command: &str) -> Vec<Block> {
    let non_members = r.pool - r.target_members;
    let mut blocks = vec![
        Block::Paragraph(overview_text(r, non_members)),
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
            text: setting_name(s),
        },
        Block::Paragraph(setting_line(r, s)),
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
    let across = across_rows(s);
    if !across.is_empty() {
        blocks.push(Block::Table {
            caption: format!(
                "Over all {} targets, each attacked with {} references (the LiRA paper's evaluation)",
                r.targets.len(),
                r.references
            ),
            header: ACROSS_HEADER.iter().map(|s| s.to_string()).collect(),
            rows: across,
            numeric: vec![false, true, true, true, true],
            files: vec!["tables/targets.csv".into(), "tables/targets.parquet".into()],
        });
    }
    blocks.extend(per_class_block(r, s));
    Ok(blocks)
}

/// Write the ROC curves of every attack on `s` (PNG and SVG) to `figures`; returns their stem.
fn roc_figure(r: &AuditResult, s: &Setting, figures: &Path) -> Result<String> {
    let stem = format!("roc-{}-{}", slug(&s.precision), slug(&s.defense));
    let plot = RocPlot {
        title: format!(
            "{}: ROC of each attack (log-log){}",
            setting_name(s),
            if r.targets.len() > 1 {
                format!(", mean over {} targets", r.targets.len())
            } else {
                String::new()
            }
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
        title: format!("Membership-inference audit: {} on {}", r.what(), r.data),
        subtitle: format!(
            "{}; {:.0} s; strata {}",
            models_line(r),
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
