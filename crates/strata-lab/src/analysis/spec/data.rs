//! `[data.NAME]`: the data sets a spec trains on and collects activations from.

use super::{is_clean, Ctx, SpecError};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// A data set name as `strata train --data` takes it, checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DataSource(pub String);

impl std::ops::Deref for DataSource {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let known = ["mnist", "mnist-small", "digits", "adult"].contains(&s.as_str())
            || ["mnist:", "adult:", "csv:"]
                .iter()
                .any(|p| s.starts_with(p) && s.len() > p.len());
        if known {
            Ok(DataSource(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "unknown data source '{s}': use mnist, mnist:DIR, mnist-small, digits, adult, \
                 adult:DIR or csv:PATH"
            )))
        }
    }
}

/// A data set's split, as written in a spec (`train` or `test`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    Train,
    /// The test split (the default for collecting activations).
    #[default]
    Test,
}

impl Split {
    /// The name as a spec writes it: `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// `[data.NAME]`: a data set and which of its examples the activations are collected on.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `mnist`, `mnist:DIR`, `mnist-small`, `digits`, `adult`, `adult:DIR` or `csv:PATH`.
    pub source: DataSource,
    /// Label column of a `csv:PATH` source.
    pub label: Option<String>,
    /// Train on the first N training examples only.
    pub train_limit: Option<usize>,
    /// Split the activations are collected on (and CKA computed over).
    #[serde(default)]
    pub collect_split: Split,
    /// Collect the first N examples of that split only.
    pub collect_limit: Option<usize>,
}

/// Check every `[data.NAME]` table, in name order.
pub(super) fn check(
    cx: &Ctx,
    raw: &BTreeMap<String, Spanned<DataSpec>>,
) -> Result<BTreeMap<String, DataSpec>, SpecError> {
    let mut data = BTreeMap::new();
    for (key, d) in raw {
        check_one(cx, key, d)?;
        data.insert(key.clone(), d.get_ref().clone());
    }
    Ok(data)
}

/// One `[data.NAME]` table: a clean name, and limits its source can honour.
fn check_one(cx: &Ctx, key: &str, d: &Spanned<DataSpec>) -> Result<(), SpecError> {
    let span = d.span();
    let d = d.get_ref();
    if !is_clean(key) {
        return Err(cx.err(
            span,
            format!("[data.{key}]: use letters, digits, '-', '_' in data set names"),
        ));
    }
    let at = |k: &str, msg: &str| cx.key_err(&span, k, format!("[data.{key}] {k}: {msg}"));
    if d.label.is_some() && !d.source.starts_with("csv:") {
        return Err(at("label", "only csv:PATH sources take a label column"));
    }
    if d.train_limit.is_some_and(|n| n < 2) {
        return Err(at("train_limit", "must be at least 2"));
    }
    if d.collect_limit.is_some_and(|n| n < 4) {
        return Err(at(
            "collect_limit",
            "must be at least 4 (CKA's debiased estimator needs 4)",
        ));
    }
    Ok(())
}
