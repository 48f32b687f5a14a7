//! How a run ends: success, one error line, or one internal-error line with where it happened.

use std::process::ExitCode;

/// Where the first panic happened, for the one-line internal-error report.
static PANIC_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Run `f` and turn its outcome into an exit code. Every failure a user can cause is an error
/// value, printed as `error: ...` in one line (each cause's first line: some libraries append a
/// backtrace to their message when RUST_BACKTRACE is set). Should a bug panic anyway (in strata
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
            let causes: Vec<String> = e
                .chain()
                .map(|c| {
                    c.to_string()
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .filter(|c| !c.is_empty())
                .collect();
            eprintln!("error: {}", causes.join(": "));
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
