//! One module per subcommand: its arguments (clap) and what it does with them (`exec`): call
//! the library, format what it returns.

pub mod attack;
pub mod bench;
pub mod cka;
pub mod collect;
pub mod eval;
pub mod gpu;
pub mod layers;
pub mod mia;
pub mod run;
pub mod train;
pub mod zip;

use anyhow::Result;
use std::path::Path;

/// A benchmark's (or any table's) results: `NAME.json` and `NAME.md` into `out` if given, then
/// JSON or Markdown on stdout.
pub fn emit(
    name: &str,
    out: Option<&Path>,
    json: bool,
    value: &impl serde::Serialize,
    md: &str,
) -> Result<()> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        strata_report::write_atomic(
            &dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(value)?.as_bytes(),
        )?;
        strata_report::write_atomic(&dir.join(format!("{name}.md")), md.as_bytes())?;
    }
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        print!("{md}");
    }
    Ok(())
}
