//! Progress bars on stderr, drawn only when stderr is a terminal (so pipes, CI logs and `--json`
//! consumers see clean output).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `total` steps labelled `msg`; hidden when stderr is not a terminal or `quiet`.
pub fn bar(total: u64, msg: &str, unit: &str, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if quiet || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!(
        "{{msg:>12}} [{{bar:32.cyan/blue}}] {{pos}}/{{len}} {unit} ({{elapsed}}, eta {{eta}})"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg.to_string());
    pb
}
