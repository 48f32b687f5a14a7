//! Errors about a setting the user chose: a value that is invalid, or a setting whose other
//! value would avoid the error. The library names settings in neutral words ("batch size");
//! each front end words them its own way: the CLI as its flags (`--batch-size`), the analysis
//! runner as spec keys (`[cka] batch_size`), so that no library message names a flag.

use std::fmt;

/// A setting a front end takes from its user, named in neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The attacks run, by name.
    Attacks,
    /// Examples per batch (training, or minibatch CKA).
    BatchSize,
    /// Bootstrap resamples behind each interval.
    Bootstrap,
    /// The folder caching trained models and activation stores.
    Cache,
    /// The defenses applied.
    Defenses,
    /// Where work runs: `cpu`, `cuda` or `auto`.
    Device,
    /// The inference engine (`float`, `packed`).
    Engine,
    /// Training epochs.
    Epochs,
    /// The HSIC estimator (`biased`, `debiased`).
    Estimator,
    /// Replace what exists (files, cached models).
    Force,
    /// Models trained at once.
    Jobs,
    /// The pool's labels (a file).
    Labels,
    /// The learning rate.
    LearningRate,
    /// The first N examples read.
    Limit,
    /// Models in a membership-inference design.
    Models,
    /// Skip the CPU in a benchmark (time the GPU only).
    NoCpu,
    /// The pool of a membership-inference design: a count or a data set.
    Pool,
    /// Precisions audited.
    Precision,
    /// Reference models per target.
    References,
    /// Passes timed (the best counts).
    Repeat,
    /// The folder reports are written to.
    Reports,
    /// Rows of a benchmark's input.
    Rows,
    /// Shadow models of Shokri et al.'s attack.
    Shadows,
    /// The data split read (`train`, `test`).
    Split,
    /// The model attacked.
    Target,
    /// Hidden-layer widths.
    Widths,
}

impl Setting {
    /// Every setting, for front ends that check their table covers them.
    pub const ALL: [Setting; 26] = [
        Setting::Attacks,
        Setting::BatchSize,
        Setting::Bootstrap,
        Setting::Cache,
        Setting::Defenses,
        Setting::Device,
        Setting::Engine,
        Setting::Epochs,
        Setting::Estimator,
        Setting::Force,
        Setting::Jobs,
        Setting::Labels,
        Setting::LearningRate,
        Setting::Limit,
        Setting::Models,
        Setting::NoCpu,
        Setting::Pool,
        Setting::Precision,
        Setting::References,
        Setting::Repeat,
        Setting::Reports,
        Setting::Rows,
        Setting::Shadows,
        Setting::Split,
        Setting::Target,
        Setting::Widths,
    ];

    /// The setting in plain words, as a message shows it when no front end words it.
    pub fn neutral_name(self) -> &'static str {
        match self {
            Setting::Attacks => "attacks",
            Setting::BatchSize => "batch size",
            Setting::Bootstrap => "bootstrap",
            Setting::Cache => "cache folder",
            Setting::Defenses => "defenses",
            Setting::Device => "device",
            Setting::Engine => "engine",
            Setting::Epochs => "epochs",
            Setting::Estimator => "estimator",
            Setting::Force => "force",
            Setting::Jobs => "jobs",
            Setting::Labels => "labels",
            Setting::LearningRate => "learning rate",
            Setting::Limit => "limit",
            Setting::Models => "models",
            Setting::NoCpu => "skipping the CPU",
            Setting::Pool => "pool",
            Setting::Precision => "precision",
            Setting::References => "references",
            Setting::Repeat => "repeat",
            Setting::Reports => "reports folder",
            Setting::Rows => "rows",
            Setting::Shadows => "shadows",
            Setting::Split => "split",
            Setting::Target => "target",
            Setting::Widths => "widths",
        }
    }

    /// The setting as one identifier (snake case), as analysis specs spell their keys.
    pub fn key(self) -> &'static str {
        match self {
            Setting::Attacks => "attacks",
            Setting::BatchSize => "batch_size",
            Setting::Bootstrap => "bootstrap",
            Setting::Cache => "cache",
            Setting::Defenses => "defenses",
            Setting::Device => "device",
            Setting::Engine => "engine",
            Setting::Epochs => "epochs",
            Setting::Estimator => "estimator",
            Setting::Force => "force",
            Setting::Jobs => "jobs",
            Setting::Labels => "labels",
            Setting::LearningRate => "lr",
            Setting::Limit => "limit",
            Setting::Models => "models",
            Setting::NoCpu => "no_cpu",
            Setting::Pool => "pool",
            Setting::Precision => "precision",
            Setting::References => "references",
            Setting::Repeat => "repeat",
            Setting::Reports => "reports",
            Setting::Rows => "rows",
            Setting::Shadows => "shadows",
            Setting::Split => "split",
            Setting::Target => "target",
            Setting::Widths => "widths",
        }
    }
}

/// A setting the user chose is invalid, or another value of it avoids the error. The message
/// names the setting once, at a place the error keeps, so that a front end can put its own word
/// for it there ([`SettingError::worded`]); shown as is ([`Display`](fmt::Display)), it reads
/// with the neutral name: `split must be train or test, got 'x'`.
#[derive(Debug)]
pub struct SettingError {
    /// The setting the message is about.
    pub setting: Setting,
    /// The message before the setting's name.
    before: String,
    /// The message after the setting's name.
    after: String,
    /// What went wrong underneath, when the message is its context.
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SettingError {
    /// A message that begins with the setting's name, followed by `rest`:
    /// `SettingError::new(Setting::Limit, " must be at least 1")`.
    pub fn new(setting: Setting, rest: impl Into<String>) -> SettingError {
        SettingError::within(setting, "", rest)
    }

    /// A message with the setting's name between `before` and `after`:
    /// `within(Setting::Force, "x exists; overwrite it with ", "")`.
    pub fn within(
        setting: Setting,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> SettingError {
        SettingError {
            setting,
            before: before.into(),
            after: after.into(),
            source: None,
        }
    }

    /// This error as the context of `cause` (which follows it in the error's chain).
    pub fn because(mut self, cause: impl Into<anyhow::Error>) -> SettingError {
        self.source = Some(cause.into().into());
        self
    }

    /// The message with `name` for the setting (a flag, a spec key).
    pub fn worded(&self, name: &str) -> String {
        format!("{}{name}{}", self.before, self.after)
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.worded(self.setting.neutral_name()))
    }
}

impl std::error::Error for SettingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The messages of `e`'s chain, outermost first, each [`SettingError`] in it worded with
/// `name` for its setting (the others as they display).
pub fn worded_chain(e: &anyhow::Error, name: &dyn Fn(Setting) -> String) -> Vec<String> {
    e.chain()
        .map(|c| match c.downcast_ref::<SettingError>() {
            Some(s) => s.worded(&name(s.setting)),
            None => c.to_string(),
        })
        .collect()
}

/// `e` with each [`SettingError`] in its chain worded with `name` (for a front end passing the
/// error on, such as the analysis runner with its spec keys); `e` itself when it holds none.
pub fn reworded(e: anyhow::Error, name: &dyn Fn(Setting) -> String) -> anyhow::Error {
    if !e.chain().any(|c| c.is::<SettingError>()) {
        return e;
    }
    let mut causes = worded_chain(&e, name).into_iter().rev();
    let mut out = anyhow::anyhow!(causes.next().unwrap_or_default());
    for c in causes {
        out = out.context(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_words_and_front_end_words() {
        let e = SettingError::new(Setting::Split, " must be train or test, got 'x'");
        assert_eq!(e.to_string(), "split must be train or test, got 'x'");
        assert_eq!(
            e.worded("--split"),
            "--split must be train or test, got 'x'"
        );
        let e = SettingError::within(
            Setting::Force,
            "a.szip already exists; overwrite it with ",
            "",
        );
        assert_eq!(
            e.to_string(),
            "a.szip already exists; overwrite it with force"
        );
        assert_eq!(
            e.worded("--force"),
            "a.szip already exists; overwrite it with --force"
        );
    }

    #[test]
    fn a_chain_is_worded_where_it_holds_a_setting_error() {
        let io = std::io::Error::other("disk on fire");
        let e: anyhow::Error = SettingError::new(Setting::Jobs, " 3").because(io).into();
        let e = e.context("planning the run");
        let flag = |s: Setting| format!("--{}", s.key().replace('_', "-"));
        assert_eq!(
            worded_chain(&e, &flag),
            ["planning the run", "--jobs 3", "disk on fire"]
        );
        assert_eq!(format!("{e:#}"), "planning the run: jobs 3: disk on fire");
        let spec = |s: Setting| format!("[run] {}", s.key());
        let r = reworded(e, &spec);
        assert_eq!(
            format!("{r:#}"),
            "planning the run: [run] jobs 3: disk on fire"
        );
        assert!(!r.chain().any(|c| c.is::<SettingError>()));
        let plain = anyhow::anyhow!("no setting here").context("outer");
        assert_eq!(
            format!("{:#}", reworded(plain, &spec)),
            "outer: no setting here"
        );
    }

    #[test]
    fn every_setting_is_listed_once_with_distinct_names() {
        let mut names: Vec<&str> = Setting::ALL.iter().map(|s| s.neutral_name()).collect();
        let mut keys: Vec<&str> = Setting::ALL.iter().map(|s| s.key()).collect();
        names.sort_unstable();
        names.dedup();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(names.len(), Setting::ALL.len());
        assert_eq!(keys.len(), Setting::ALL.len());
        for s in Setting::ALL {
            assert!(!s.neutral_name().starts_with('-') && !s.key().contains('-'));
        }
    }
}
