//! The analysis spec: a TOML file that says which data sets, which models (families expanded over
//! precisions and seeds), which comparisons and which report. `analyses/README.md` is the
//! reference for every key.
//!
//! Parsing is strict: an unknown key, a value of the wrong type or out of range, or a reference
//! to a data set or model that does not exist is one error naming the file, the line and the key,
//! and nothing runs. Each section is checked by its own module, in the order of [`parse`].

mod cka;
mod compare;
mod compression;
mod data;
mod identify;
mod model;
mod privacy;
mod robustness;
mod store;
mod twins;

pub use cka::{ActivationPoint, CkaSpec, EstimatorName, KernelName};
pub use compare::CompareSpec;
pub use compression::{
    CompressionPlan, CompressionSource, CompressionSpec, Predictor, SourceInput,
};
pub use data::{DataSource, DataSpec, Split};
pub use identify::{
    identify_measures, rbf_threshold_of, IdentifySpec, IdentifyTest, RBF_THRESHOLDS,
};
pub use model::{Instance, ModelSpec, OptimizerName, PrecisionName, ScheduleName};
pub use privacy::{PrivacyPlan, PrivacySpec};
pub use robustness::{RobustnessPlan, RobustnessSpec};
pub use store::{check_examples, open as open_stores, OpenedStore, StoreSpec};
pub use twins::TwinsSpec;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// A spec that could not be read: file, 1-based line, message.
#[derive(Debug, thiserror::Error)]
#[error("{file}, line {line}: {msg}")]
pub struct SpecError {
    /// The spec file, as given.
    pub file: String,
    /// 1-based line of the error (0 when the file could not be read).
    pub line: usize,
    /// What is wrong, with the key it concerns.
    pub msg: String,
}

/// Limits that keep a typo from allocating the machine away or training for ever: the network
/// library's, so a spec and every command obey the same ones.
pub use strata_nn::limits::{MAX_BATCH, MAX_EPOCHS, MAX_LAYERS, MAX_WIDTH};

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, Spanned<DataSpec>>,
    #[serde(default)]
    model: Vec<Spanned<ModelSpec>>,
    #[serde(default)]
    cka: Option<Spanned<CkaSpec>>,
    #[serde(default)]
    compare: Vec<Spanned<CompareSpec>>,
    #[serde(default)]
    store: Vec<Spanned<store::RawStore>>,
    twins: Option<Spanned<TwinsSpec>>,
    identify: Option<Spanned<IdentifySpec>>,
    privacy: Option<Spanned<PrivacySpec>>,
    robustness: Option<Spanned<RobustnessSpec>>,
    compression: Option<Spanned<CompressionSpec>>,
}

/// A checked spec, families expanded into instances.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// Report folder name (the spec's file stem).
    pub name: String,
    /// Report title (default: the spec's name).
    pub title: String,
    /// Free text shown under the title (may be empty).
    pub description: String,
    /// Data sets by `[data.NAME]` key.
    pub data: BTreeMap<String, DataSpec>,
    /// The `[[model]]` families, in spec order.
    pub families: Vec<ModelSpec>,
    /// Every network to train: family by family, precision by precision, seed by seed.
    pub instances: Vec<Instance>,
    /// How every comparison measures similarity (`[cka]`).
    pub cka: CkaSpec,
    /// Pairs of sides: an index below `instances.len()` is an instance, `instances.len() + k`
    /// is `stores[k]` ([`Analysis::side_name`]).
    pub compare: Vec<(usize, usize)>,
    /// Line of each `[[compare]]` table's `b`, for errors found after parsing.
    #[serde(skip)]
    pub compare_lines: Vec<usize>,
    /// Activation files compared like the models' (`[[store]]`), in spec order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<StoreSpec>,
    /// Families compared with their float twins.
    pub twins: Vec<String>,
    /// Draw a full heatmap of each precision against its float twin (`[twins] heatmaps`).
    pub twin_heatmaps: bool,
    /// Identification tests, one per family named in `[identify]`.
    pub identify: Vec<IdentifyTest>,
    /// Membership-inference audits (`[privacy]`).
    pub privacy: Option<PrivacyPlan>,
    /// Adversarial robustness of the named families (`[robustness]`).
    pub robustness: Option<RobustnessPlan>,
    /// Compression experiments (`[compression]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionPlan>,
    /// Line of each family's `[[model]]` header, for errors found after parsing.
    pub family_lines: Vec<usize>,
    /// The spec file, for errors found after parsing.
    pub file: String,
}

impl Analysis {
    /// Index in `instances` of the instance named `name`.
    pub fn instance(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.name == name)
    }

    /// The name of side `i` of a comparison: an instance's, else a store's.
    pub fn side_name(&self, i: usize) -> &str {
        match self.store_side(i) {
            Some(s) => &s.name,
            None => self.instances.get(i).map_or("", |x| x.name.as_str()),
        }
    }

    /// The store that side `i` of a comparison is, if it is one.
    pub fn store_side(&self, i: usize) -> Option<&StoreSpec> {
        i.checked_sub(self.instances.len())
            .and_then(|k| self.stores.get(k))
    }
}

/// The spec being checked, for errors that name its file and a line of its text.
struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    /// The 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// An error on `line`.
    fn err_at(&self, line: usize, msg: String) -> SpecError {
        SpecError {
            file: self.file.to_string(),
            line,
            msg,
        }
    }

    /// An error on the line where `span` starts.
    fn err(&self, span: Range<usize>, msg: String) -> SpecError {
        self.err_at(self.line(span.start), msg)
    }

    /// The line of `key` in the table that starts at `span` (else the table's first line).
    fn key_line(&self, span: &Range<usize>, key: &str) -> usize {
        key_line(self.text, span, key)
    }

    /// An error about `key` of the table that starts at `span`, on that key's line.
    fn key_err(&self, span: &Range<usize>, key: &str, msg: String) -> SpecError {
        self.err_at(key_line(self.text, span, key), msg)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The line of `key = ...` in the table that starts at `span` (its header up to the next
/// header), else the table's first line: so an error about one key points at that key.
fn key_line(text: &str, span: &Range<usize>, key: &str) -> usize {
    let start = span.start.min(text.len());
    let mut offset = start;
    for (k, l) in text[start..].split_inclusive('\n').enumerate() {
        let t = l.trim_start();
        if k > 0 && t.starts_with('[') && !t.starts_with("[\"") {
            break;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return line_of(text, offset);
            }
        }
        offset += l.len();
    }
    line_of(text, start)
}

/// The key an error on `line` (1-based) belongs to: `key = value` on that line, or, inside a
/// multi-line array, on the nearest line above; a `[table]` header stands for itself.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = line.checked_sub(1)?;
    loop {
        let here = lines.get(i)?.trim();
        if here.starts_with('[') && i + 1 == line {
            return Some(here.to_string());
        }
        if here.starts_with('[') && !here.starts_with("[\"") {
            return None;
        }
        if let Some((k, _)) = here.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.contains(['"', '[', ',']) {
                return Some(k.to_string());
            }
        }
        i = i.checked_sub(1)?;
    }
}

/// A clean file name part: letters, digits, `-`, `_`, `.`.
fn is_clean(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

/// Read and check a spec file.
pub fn load(path: &Path) -> Result<Analysis, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.display().to_string(),
        line: 0,
        msg: format!("cannot read the analysis spec: {e}"),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "analysis".into());
    parse(&text, &path.display().to_string(), &name)
}

/// Parse and check spec text; `file` names it in errors, `name` is the report folder.
pub fn parse(text: &str, file: &str, name: &str) -> Result<Analysis, SpecError> {
    let cx = Ctx { text, file };
    let raw = read(&cx)?;
    check_file(&cx, &raw, name)?;
    let data = data::check(&cx, &raw.data)?;
    let models = model::check(
        &cx,
        &raw.model,
        &data,
        !raw.store.is_empty() || raw.compression.is_some(),
    )?;
    let families = &models.families;
    let cka = cka::check(&cx, raw.cka.as_ref())?;
    let spec_dir = match Path::new(file).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stores = store::check(&cx, &raw.store, &models.instances, spec_dir)?;
    let (compare, compare_lines) = compare::check(&cx, &raw.compare, &models.instances, &stores)?;
    let (twins, twin_heatmaps) = twins::check(&cx, raw.twins.as_ref(), families)?;
    let identify = identify::check(&cx, raw.identify.as_ref(), families)?;
    let privacy = match &raw.privacy {
        None => None,
        Some(p) => Some(privacy::check(&cx, p, families)?),
    };
    let robustness = match &raw.robustness {
        None => None,
        Some(r) => Some(robustness::check(&cx, r, families)?),
    };
    let compression = match &raw.compression {
        None => None,
        Some(c) => Some(compression::check(&cx, c, spec_dir)?),
    };
    Ok(Analysis {
        name: name.to_string(),
        title: raw.title.unwrap_or_else(|| name.to_string()),
        description: raw.description.unwrap_or_default(),
        data,
        families: models.families,
        instances: models.instances,
        cka,
        compare,
        compare_lines,
        stores,
        twins,
        twin_heatmaps,
        identify,
        privacy,
        robustness,
        compression,
        family_lines: models.lines,
        file: file.to_string(),
    })
}

/// The TOML as written: a syntax error, an unknown key or a value of the wrong type is an error
/// on its line, naming the key (serde's own messages do not).
fn read(cx: &Ctx) -> Result<SpecFile, SpecError> {
    toml::from_str(cx.text).map_err(|e| {
        let line = e.span().map_or(0, |s| cx.line(s.start));
        let msg = e.message().trim().replace('\n', " ");
        // Serde's messages ("invalid type: string, expected usize") do not say which key; the
        // line does: `key = value`, the line that opened a multi-line array, or a header.
        let msg = match key_at(cx.text, line) {
            Some(k) if !msg.contains(&k) => format!("{k}: {msg}"),
            _ => msg,
        };
        cx.err_at(line, msg)
    })
}

/// What concerns the file as a whole: a report folder name.
fn check_file(cx: &Ctx, _raw: &SpecFile, name: &str) -> Result<(), SpecError> {
    if !is_clean(name) {
        return Err(cx.err(
            0..0,
            format!(
                "the spec's file name '{name}' names the report folder: use letters, digits, '-', \
                 '_', '.' (not first)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_nn::Precision;

    const GOOD: &str = r#"
title = "t"
[data.d]
source = "digits"
collect_limit = 100

[[model]]
name = "mlp"
data = "d"
widths = [32, 16]
precisions = ["float", "w1a1"]
seeds = [0, 1]
epochs = 2

[[compare]]
a = "mlp-float-s0"
b = "mlp-w1a1-s1"

[twins]
"#;

    fn parse_err(text: &str) -> SpecError {
        parse(text, "x.toml", "x").expect_err("should fail")
    }

    #[test]
    fn expands_families_into_instances() {
        let a = parse(GOOD, "x.toml", "x").unwrap();
        let names: Vec<_> = a.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["mlp-float-s0", "mlp-float-s1", "mlp-w1a1-s0", "mlp-w1a1-s1"]
        );
        assert_eq!(a.compare, vec![(0, 3)]);
        assert_eq!(a.twins, vec!["mlp".to_string()]);
        assert_eq!(a.instances[3].train.seed, 1);
        assert_eq!(a.instances[2].precision, Precision::W1A1);
    }

    #[test]
    fn logits_layer_is_chosen_per_family_and_keeps_default_cache_keys() {
        use strata_nn::net::LogitsLayer;
        let a = parse(GOOD, "x.toml", "x").unwrap();
        assert!(a
            .instances
            .iter()
            .all(|i| i.logits == LogitsLayer::BatchNorm));
        // The default stays out of the serialized instance, so cache keys made before the
        // option existed still name the same models.
        let v = serde_json::to_value(&a.instances[0]).unwrap();
        assert!(v.get("logits").is_none(), "{v}");
        let text = GOOD.replace("epochs = 2", "epochs = 2\nlogits = \"linear\"");
        let b = parse(&text, "x.toml", "x").unwrap();
        assert!(b.instances.iter().all(|i| i.logits == LogitsLayer::Linear));
        let v = serde_json::to_value(&b.instances[0]).unwrap();
        assert_eq!(v["logits"], "linear");
        let e = parse_err(&GOOD.replace("epochs = 2", "epochs = 2\nlogits = \"softmax\""));
        assert!(e.msg.contains("softmax") && e.msg.contains("linear"), "{e}");
        assert_eq!(e.line, 14, "{e}");
    }

    #[test]
    fn neighbour_measures_take_a_k() {
        let with = |cka: &str| format!("{GOOD}\n[cka]\n{cka}\n");
        let a = parse(&with("measure = \"cknna:k=5\""), "x.toml", "x").unwrap();
        assert_eq!(a.cka.measure.as_deref(), Some("cknna:k=5"));
        let e = parse_err(&with("measure = \"cknna:k=0\""));
        assert!(
            e.msg.contains("cknna:k=0") && e.msg.contains("mutual_knn:k=20"),
            "{e}"
        );
    }

    #[test]
    fn significance_keys_are_checked() {
        let with = |cka: &str| format!("{GOOD}\n[cka]\n{cka}\n");
        let a = parse(
            &with("permutations = 99\nbootstrap = 500\nseed = 4"),
            "x.toml",
            "x",
        )
        .unwrap();
        let sig = a.cka.significance();
        assert_eq!(sig.permutations, Some(99));
        assert_eq!(sig.bootstrap, Some(500));
        assert_eq!(sig.seed, 4);
        assert!(sig.requested());
        assert!(!parse(GOOD, "x.toml", "x")
            .unwrap()
            .cka
            .significance()
            .requested());
        let a = parse(&with("null = \"moments\""), "x.toml", "x").unwrap();
        assert!(a.cka.significance().null_requested());
        for (cka, key, words) in [
            ("permutations = 0", "permutations", "between 1"),
            ("bootstrap = 0", "bootstrap", "between 1"),
            (
                "null = \"moments\"\npermutations = 9",
                "permutations",
                "analytic",
            ),
            (
                "null = \"moments\"\nkernel = \"rbf\"",
                "null",
                "linear biased CKA only",
            ),
            (
                "null = \"moments\"\nmeasure = \"pwcca\"",
                "null",
                "linear biased CKA only",
            ),
            ("null = \"exact\"", "null", "exact"),
            ("confidence = 0.9", "confidence", "also set bootstrap"),
            (
                "bootstrap = 9\nconfidence = 1.5",
                "confidence",
                "strictly between 0 and 1",
            ),
            (
                "permutations = 9\nestimator = \"debiased\"\nbatch_size = 10",
                "batch_size",
                "no permutation null",
            ),
        ] {
            let e = parse_err(&with(cka));
            assert!(e.msg.contains(key) && e.msg.contains(words), "{cka}: {e}");
            assert!(!e.msg.contains('\n'), "{e}");
        }
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("epochs = 2", "epochs = 2\nlearning_rate = 0.1");
        let e = parse_err(&text);
        assert!(e.msg.contains("learning_rate"), "{e}");
        let want = text
            .lines()
            .position(|l| l.starts_with("learning_rate"))
            .unwrap()
            + 1;
        assert_eq!(e.line, want, "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = GOOD.replace("\"w1a1\"]", "\"w3a3\"]");
        let e = parse_err(&text);
        assert!(e.msg.contains("w3a3"), "{e}");
        assert_eq!(e.line, 11, "{e}");

        let text = GOOD.replace("b = \"mlp-w1a1-s1\"", "b = \"mlp-w1a1-s7\"");
        let e = parse_err(&text);
        assert!(e.msg.contains("mlp-w1a1-s7"), "{e}");
        assert_eq!(e.line, 17, "{e}");

        let e = parse_err(&GOOD.replace("data = \"d\"", "data = \"nope\""));
        assert!(e.msg.contains("nope") && e.line == 9, "{e}");

        let e = parse_err(&GOOD.replace("epochs = 2", "epochs = 0"));
        assert!(e.msg.contains("epochs"), "{e}");

        let e = parse_err(&GOOD.replace("epochs = 2", "epochs = \"two\""));
        assert!(e.msg.starts_with("epochs: "), "{e}");
        assert_eq!(e.line, 13, "{e}");
    }

    #[test]
    fn each_bad_key_points_at_its_own_line() {
        let text = GOOD.replace("epochs = 2", "epochs = 2\nbatch_size = 1");
        let e = parse_err(&text);
        assert!(e.msg.contains("batch_size"), "{e}");
        assert_eq!(e.line, 14, "{e}");
        let text = GOOD.replace("collect_limit = 100", "collect_limit = 2");
        let e = parse_err(&text);
        assert!(e.msg.contains("collect_limit") && e.line == 5, "{e}");
        let text = GOOD.replace(
            "widths = [32, 16]",
            &format!("widths = [{}]", ["8"; 65].join(", ")),
        );
        let e = parse_err(&text);
        assert!(e.msg.contains("widths") && e.line == 10, "{e}");
        // Inside a multi-line array, the error names the key that opened it.
        let text = GOOD.replace("[\"float\", \"w1a1\"]", "[\n  \"float\",\n  \"w3a3\",\n]");
        let e = parse_err(&text);
        assert!(e.msg.starts_with("precisions: ") && e.line == 11, "{e}");
    }

    #[test]
    fn missing_keys_name_the_table() {
        let e = parse_err(&GOOD.replace("data = \"d\"\n", ""));
        assert!(e.msg.contains("data") && e.msg.contains("[[model]]"), "{e}");
        assert_eq!(e.line, 7, "{e}");
    }

    #[test]
    fn privacy_sections_are_checked() {
        let ok = parse(
            &format!("{GOOD}\n[privacy]\nmodels = [\"mlp\"]\nreferences = 4\ndefenses = [\"none\", \"top1\", \"l2=1e-3\"]\n"),
            "x.toml",
            "x",
        )
        .unwrap();
        let p = ok.privacy.unwrap();
        assert_eq!(p.families, ["mlp"]);
        assert_eq!((p.references, p.shadows), (4, 4));
        assert_eq!(p.attacks.len(), strata_privacy::ATTACK_NAMES.len());
        assert_eq!(p.defenses.len(), 3);
        let cases = [
            ("models = [\"cnn\"]", "'cnn' is not a [[model]] name", 22),
            (
                "models = [\"mlp\"]\nattacks = [\"lira\", \"nope\"]",
                "unknown attack 'nope'",
                23,
            ),
            (
                "models = [\"mlp\"]\nreferences = 1\nattacks = [\"lira\"]",
                "needs at least 2",
                24,
            ),
            (
                "models = [\"mlp\"]\ndefenses = [\"blur\"]",
                "defense 'blur'",
                23,
            ),
            ("attacks = [\"lira\"]", "models", 21),
        ];
        for (body, want, line) in cases {
            let e = parse_err(&format!("{GOOD}\n[privacy]\n{body}\n"));
            assert!(e.msg.contains(want), "{body}: {e}");
            assert_eq!(e.line, line, "{body}: {e}");
        }
    }

    #[test]
    fn twins_need_float_and_another_precision() {
        let text = GOOD.replace("[\"float\", \"w1a1\"]", "[\"w1a1\"]");
        let text = text.replace("a = \"mlp-float-s0\"", "a = \"mlp-w1a1-s0\"");
        let e = parse_err(&text);
        assert!(e.msg.contains("twins"), "{e}");
    }
}
