//! `strata eval`: a saved model's accuracy and speed.

use crate::args::{parse_repeat, DeviceArgs, ExampleArgs};
use crate::progress::Terminal;
use anyhow::Result;
use clap::ValueEnum;
use std::path::PathBuf;
use strata_lab::train;

/// Accuracy of a saved model; `--engine packed` runs w1a1 layers as XOR/popcount.
///
/// On the GPU the float engine is cuBLAS SGEMM with batch-norm/activation kernels; the packed
/// engine packs activations to bits on the device and runs the binary layers on its
/// tensor-core kernel (compute capability 8.0 and newer) or XOR-popcount kernel. CNNs run on
/// the CPU.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The saved model (PATH.safetensors, with PATH.json beside it).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    examples: ExampleArgs,
    #[arg(long, value_enum, default_value = "float")]
    engine: EngineArg,
    #[command(flatten)]
    device: DeviceArgs,
    /// Run the data through N times; images/s is the fastest pass's (a warm GPU).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = parse_repeat)]
    repeat: usize,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum EngineArg {
    Float,
    Packed,
}

impl EvalArgs {
    pub fn exec(self) -> Result<()> {
        let v = train::eval(
            &self.model,
            self.examples.examples(),
            self.engine == EngineArg::Packed,
            self.device.choice(),
            self.repeat,
            &Terminal::new(self.json),
        )?;
        if self.json {
            println!("{v}");
        } else {
            println!(
                "{} ({}) on {} {}: accuracy {:.2}% over {} examples, {:.0} images/s ({} engine)",
                self.model.display(),
                v["precision"].as_str().unwrap_or("?"),
                self.examples.data.data,
                self.examples.split,
                100.0 * v["accuracy"].as_f64().unwrap_or(f64::NAN),
                v["n"],
                v["images_per_second"].as_f64().unwrap_or(0.0),
                v["engine"].as_str().unwrap_or("?")
            );
        }
        Ok(())
    }
}
