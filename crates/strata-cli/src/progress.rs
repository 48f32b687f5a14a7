//! The terminal's side of the library's progress reports ([`strata_lab::progress`]): bars on
//! stderr, drawn only when stderr is a terminal (so pipes, CI logs and `--json` consumers see
//! clean output); log lines on stderr unless quiet, above the bars when there are some; warnings
//! always.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use strata_lab::progress::{Progress, Task};

/// How a bar looks.
#[derive(Clone, Copy)]
enum Look {
    /// One bar at a time: its label, replaced by what it is doing now.
    Single,
    /// Several at once (`strata run`): the label before the bar, what it is doing after it.
    Several,
}

/// Progress on stderr.
pub struct Terminal {
    mp: MultiProgress,
    /// Bars are drawn (stderr is a terminal and not quiet).
    drawn: bool,
    quiet: bool,
    look: Look,
}

impl Terminal {
    /// For a command that runs one task at a time; nothing but warnings when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self::with(quiet, Look::Single)
    }

    /// For `strata run`, whose models train several at once.
    pub fn runner(quiet: bool) -> Self {
        Self::with(quiet, Look::Several)
    }

    fn with(quiet: bool, look: Look) -> Self {
        let drawn = !quiet && std::io::stderr().is_terminal();
        let mp = MultiProgress::new();
        if !drawn {
            mp.set_draw_target(ProgressDrawTarget::hidden());
        }
        Terminal {
            mp,
            drawn,
            quiet,
            look,
        }
    }

    /// `line` on stderr, above the bars while they are drawn.
    fn line(&self, line: &str) {
        match (self.drawn, self.look) {
            (false, _) => eprintln!("{line}"),
            (true, Look::Single) => self.mp.suspend(|| eprintln!("{line}")),
            (true, Look::Several) => {
                // A write error on stderr leaves nothing to report it on.
                let _ = self.mp.println(line);
            }
        }
    }
}

impl Progress for Terminal {
    fn task(&self, label: &str, unit: &str, total: u64) -> Box<dyn Task> {
        let pb = self.mp.add(ProgressBar::new(total));
        let template = match self.look {
            Look::Single => format!(
                "{{msg:>12}} [{{bar:32.cyan/blue}}] {{pos}}/{{len}} {unit} ({{elapsed}}, eta {{eta}})"
            ),
            Look::Several => format!(
                "{{prefix:>22}} [{{bar:28.cyan/blue}}] {{pos}}/{{len}} {unit} ({{elapsed}}, eta {{eta}}) {{msg}}"
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            pb.set_style(style.progress_chars("=> "));
        }
        match self.look {
            Look::Single => pb.set_message(label.to_string()),
            Look::Several => pb.set_prefix(label.to_string()),
        }
        Box::new(Bar(pb))
    }

    fn log(&self, line: &str) {
        if !self.quiet {
            self.line(line);
        }
    }

    fn warn(&self, line: &str) {
        self.line(line);
    }
}

/// One bar.
struct Bar(ProgressBar);

impl Task for Bar {
    fn set_total(&self, n: u64) {
        self.0.set_length(n);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_position(&self, n: u64) {
        self.0.set_position(n);
    }
    fn position(&self) -> u64 {
        self.0.position()
    }
    fn set_message(&self, m: &str) {
        self.0.set_message(m.to_string());
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
