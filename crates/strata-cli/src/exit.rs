//! How a run ends: success, one error line, or one internal-error line with where it happened.

use std::process::ExitCode;
use strata_lab::setting::{worded_chain, Setting};

/// Where the first panic happened, for the one-line internal-error report.
static PANIC_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Run `f` and turn its outcome into an exit code. Every failure a user can cause is an error
/// value, printed as `error: ...` in one line ([`line`]). Should a bug panic anyway (in strata
/// or a dependency reading a malformed file), it is reported the same way, with where it
/// happened (the hook records the location; the line is printed here).
pub fn report(f: impl FnOnce() -> anyhow::Result<()> + std::panic::UnwindSafe) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        if let Some(l) = info.location() {
            if let Ok(mut at) = PANIC_AT.lock() {
                at.get_or_insert_with(|| format!("{}:{}", l.file(), l.line()));
            }
        }
    }));
    match std::panic::catch_unwind(f) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", line(&e));
            ExitCode::FAILURE
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown cause");
            let at = PANIC_AT
                .lock()
                .ok()
                .and_then(|a| a.clone())
                .unwrap_or_else(|| "an unknown place".into());
            eprintln!("error: internal error at {at} (a bug in strata; please report it): {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The one line an error is shown as: each cause's first line (some libraries append a
/// backtrace to their message when RUST_BACKTRACE is set), joined by `: `, with the library's
/// errors about a setting worded with the flag that sets it.
fn line(e: &anyhow::Error) -> String {
    let causes: Vec<String> = worded_chain(e, &|s| flag(s).to_string())
        .iter()
        .map(|c| c.lines().next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    causes.join(": ")
}

/// The flag that sets each setting the library names (the same flag in every subcommand that
/// takes it; `strata run` and `strata quickstart` set the runner's own).
fn flag(s: Setting) -> &'static str {
    match s {
        Setting::Attacks => "--attacks",
        Setting::BatchSize => "--batch-size",
        Setting::Bootstrap => "--bootstrap",
        Setting::Cache => "--cache",
        Setting::Defenses => "--defenses",
        Setting::Device => "--device",
        Setting::Engine => "--engine",
        Setting::Epochs => "--epochs",
        Setting::Estimator => "--estimator",
        Setting::Force => "--force",
        Setting::Jobs => "--jobs",
        Setting::Labels => "--labels",
        Setting::LearningRate => "--lr",
        Setting::Limit => "--limit",
        Setting::Models => "--models",
        Setting::NoCpu => "--no-cpu",
        Setting::Pool => "--pool",
        Setting::Precision => "--precision",
        Setting::References => "--references",
        Setting::Repeat => "--repeat",
        Setting::Reports => "--reports",
        Setting::Rows => "--rows",
        Setting::Shadows => "--shadows",
        Setting::Split => "--split",
        Setting::Target => "--target",
        Setting::Widths => "--widths",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use strata_lab::SettingError;

    /// Every flag the table names is a flag of some subcommand.
    #[test]
    fn every_setting_is_a_flag() {
        fn longs(c: &clap::Command, out: &mut Vec<String>) {
            out.extend(
                c.get_arguments()
                    .filter_map(|a| a.get_long())
                    .map(|l| format!("--{l}")),
            );
            for s in c.get_subcommands() {
                longs(s, out);
            }
        }
        let mut all = Vec::new();
        longs(&crate::Cli::command(), &mut all);
        for s in Setting::ALL {
            assert!(
                all.iter().any(|l| l == flag(s)),
                "{s:?}: no flag {}",
                flag(s)
            );
        }
    }

    /// A setting error is shown with its flag, wherever it is in the chain; the rest as is,
    /// first lines only.
    #[test]
    fn setting_errors_name_the_flag() {
        let e: anyhow::Error =
            SettingError::new(Setting::Split, " must be train or test, got 'x'").into();
        assert_eq!(e.to_string(), "split must be train or test, got 'x'");
        assert_eq!(line(&e), "--split must be train or test, got 'x'");
        let io = std::io::Error::other("not found\nstack backtrace: ...");
        let e: anyhow::Error = SettingError::within(Setting::Force, "a.szip exists; use ", "")
            .because(io)
            .into();
        let e = e.context("compressing a");
        assert_eq!(
            line(&e),
            "compressing a: a.szip exists; use --force: not found"
        );
        assert_eq!(
            line(&anyhow::anyhow!("plain").context("outer")),
            "outer: plain"
        );
    }
}
