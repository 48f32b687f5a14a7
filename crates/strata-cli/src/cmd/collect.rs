//! `strata collect`: every layer's activations of a saved model, streamed into a store.

use crate::args::{DeviceArgs, ExampleArgs};
use crate::progress::Terminal;
use anyhow::Result;
use std::path::PathBuf;
use strata_lab::train;

/// Stream every layer's activations of a saved model into an activation store.
///
/// On the GPU (MLPs) values equal the CPU's to f32 rounding, exactly for w1a1.
#[derive(clap::Args)]
pub struct CollectArgs {
    /// The saved model (PATH.safetensors, with PATH.json beside it).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    examples: ExampleArgs,
    /// Record the input of each nonlinearity instead of its output.
    #[arg(long)]
    pre: bool,
    /// The store to write (.arrow or .parquet).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

impl CollectArgs {
    pub fn exec(self) -> Result<()> {
        let rows = train::collect(
            &self.model,
            self.examples.examples(),
            self.pre,
            &self.out,
            self.device.choice(),
            &Terminal::new(self.quiet),
        )?;
        println!(
            "wrote {} examples of every layer to {}",
            rows,
            self.out.display()
        );
        Ok(())
    }
}
