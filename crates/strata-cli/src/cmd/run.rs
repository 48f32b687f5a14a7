//! `strata quickstart` and `strata run SPEC`: an analysis spec, end to end, into a report.

use crate::args::command_line;
use crate::progress::Terminal;
use anyhow::Result;
use std::path::{Path, PathBuf};
use strata_lab::analysis;

/// Run the default analysis on embedded data: float, binary and low-bit MLPs trained on
/// an MNIST subset compiled into the binary, their layers compared, a report written.
///
/// The same as `strata run analyses/quickstart.toml`, from a copy of that spec embedded in
/// the binary, so it works from any folder.
#[derive(clap::Args)]
pub struct QuickstartArgs {
    #[command(flatten)]
    opts: RunOpts,
}

/// Run an analysis spec: train the models it names (or take them from the cache), collect
/// their activations, compare their layers, and write a report in REPORTS/NAME/.
///
/// The report holds index.html (self-contained: open it from disk), report.md, figures/
/// (PNG, SVG), tables/ (CSV, Parquet) and manifest.json (spec, seeds, versions, git commit,
/// timings, machine). Trained models and activation stores are cached by the hash of what
/// produced them: a re-run is quick, changing one seed retrains one model, and an interrupted
/// run resumes from the models that finished. The spec format is documented in
/// analyses/README.md.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  strata run analyses/quickstart.toml\n  \
    strata run analyses/float-vs-quantized.toml --jobs 2\n  \
    strata run my.toml --force        # retrain everything")]
pub struct RunArgs {
    /// The analysis spec (TOML); its file name (without .toml) names the report folder.
    spec: PathBuf,
    #[command(flatten)]
    opts: RunOpts,
    /// Print one JSON summary object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// Options shared by `strata run` and `strata quickstart`.
#[derive(clap::Args)]
struct RunOpts {
    /// Where the report folder goes (REPORTS/NAME/).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    reports: PathBuf,
    /// Cache of trained models and activation stores [default: REPORTS/.cache].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Models trained at once (each also uses every core for its own products).
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// Ignore the cache: retrain and recollect everything.
    #[arg(long)]
    force: bool,
    /// No progress bars or log lines.
    #[arg(long, short)]
    quiet: bool,
}

impl RunOpts {
    /// The runner's progress: quiet also when another output (JSON) owns the terminal.
    fn progress(&self, json: bool) -> Terminal {
        Terminal::runner(self.quiet || json)
    }

    /// The runner's settings.
    fn args(self) -> analysis::RunArgs {
        analysis::RunArgs {
            cache: self.cache.unwrap_or_else(|| self.reports.join(".cache")),
            reports: self.reports,
            jobs: self.jobs,
            force: self.force,
            command: command_line(),
        }
    }
}

impl QuickstartArgs {
    pub fn exec(self) -> Result<()> {
        let progress = self.opts.progress(false);
        let (o, dir) = analysis::run_text(
            analysis::QUICKSTART_SPEC,
            Path::new("analyses/quickstart.toml"),
            "quickstart",
            self.opts.args(),
            &progress,
        )?;
        print!("{}", analysis::summary::text(&o, &dir));
        Ok(())
    }
}

impl RunArgs {
    pub fn exec(self) -> Result<()> {
        let progress = self.opts.progress(self.json);
        let (o, dir) = analysis::run_file(&self.spec, self.opts.args(), &progress)?;
        if self.json {
            println!("{}", analysis::summary::json(&o, &dir));
        } else {
            print!("{}", analysis::summary::text(&o, &dir));
        }
        Ok(())
    }
}
