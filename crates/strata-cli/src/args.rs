//! Flags that several subcommands share, parsed once into validated values, and the value
//! parsers behind them. Each subcommand flattens the groups it takes.

use anyhow::{bail, Result};
use clap::ValueEnum;
use strata_nn::net::{Architecture, LogitsLayer};
use strata_nn::train::{OptimizerKind, Schedule};
use strata_nn::Precision;

/// Which data set, and its label column for CSV files.
#[derive(clap::Args)]
pub struct DataArgs {
    /// Data set: mnist-small (embedded), mnist, digits, adult or csv:PATH (`strata train --help`
    /// says where each is found).
    #[arg(long, default_value = "mnist-small")]
    pub data: String,
    /// Label column for csv:PATH data.
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
}

/// Which examples of a data set a trained model runs on.
#[derive(clap::Args)]
pub struct ExampleArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The split: train or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Only the first N examples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl ExampleArgs {
    /// The library's view of the same choice.
    pub fn examples(&self) -> strata_lab::train::Examples<'_> {
        strata_lab::train::Examples {
            data: &self.data.data,
            label: self.data.label.as_deref(),
            split: &self.split,
            limit: self.limit,
        }
    }
}

/// How results reach the terminal.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Print one JSON object on stdout (as its last line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars or log lines.
    #[arg(long, short)]
    pub quiet: bool,
}

impl OutputArgs {
    /// Progress is drawn only when no other output (JSON) owns the terminal.
    pub fn silent(&self) -> bool {
        self.quiet || self.json
    }
}

/// Where the work runs.
#[derive(clap::Args)]
pub struct DeviceArgs {
    /// cpu, cuda (an error without a GPU, or for work the GPU engines do not run) or auto (the
    /// GPU when present, for what it runs: linear CKA and MLPs; the rest stays on the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
}

impl DeviceArgs {
    /// The user's choice as the one value the library takes.
    pub fn choice(&self) -> strata_gpu::DeviceChoice {
        self.device.choice()
    }
}

/// `--device`'s values.
#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

impl DeviceArg {
    /// The library's name for the same choice.
    pub fn choice(self) -> strata_gpu::DeviceChoice {
        match self {
            DeviceArg::Cpu => strata_gpu::DeviceChoice::Cpu,
            DeviceArg::Cuda => strata_gpu::DeviceChoice::Cuda,
            DeviceArg::Auto => strata_gpu::DeviceChoice::Auto,
        }
    }
}

/// `--model`'s architectures.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    Mlp,
    Cnn,
    Tiny10,
}

impl ModelArg {
    pub fn architecture(self) -> Architecture {
        match self {
            ModelArg::Mlp => Architecture::Mlp,
            ModelArg::Cnn => Architecture::Cnn,
            ModelArg::Tiny10 => Architecture::Tiny10,
        }
    }
}

/// `--logits`' values.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogitsArg {
    /// dense -> batch norm (BinaryNet's choice).
    Batchnorm,
    /// dense + bias (Kornblith et al.'s Tiny-10 and most float networks).
    Linear,
}

impl LogitsArg {
    pub fn layer(self) -> LogitsLayer {
        match self {
            LogitsArg::Batchnorm => LogitsLayer::BatchNorm,
            LogitsArg::Linear => LogitsLayer::Linear,
        }
    }
}

/// `--optimizer`'s values.
#[derive(Clone, Copy, ValueEnum)]
pub enum OptArg {
    Adam,
    Sgd,
}

impl OptArg {
    pub fn kind(self, momentum: f64) -> OptimizerKind {
        match self {
            OptArg::Adam => OptimizerKind::Adam,
            OptArg::Sgd => OptimizerKind::Sgd { momentum },
        }
    }
}

/// `--schedule`'s values.
#[derive(Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

impl ScheduleArg {
    pub fn schedule(self, epochs: usize) -> Schedule {
        match self {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine,
            ScheduleArg::Step => Schedule::Step {
                every: (epochs / 3).max(1),
                gamma: 0.1,
            },
        }
    }
}

/// A precision name (`--precision`).
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| {
        format!("unknown precision '{s}': use float, w1a1, w1a2, w2a2, w4a4 or w8a8")
    })
}

/// A `--repeat` count: 1 to 1000 (more only multiplies the run time of a fastest-of-N figure).
pub fn parse_repeat(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to 1000, got '{s}'")),
    }
}

/// `v`, or a one-line error naming the flag when it is 0.
pub fn at_least_one(v: usize, flag: &str) -> Result<usize> {
    if v == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(v)
}

/// The command line as typed, for manifests.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Refuse work whose data would not fit in memory (`what` names its flags).
pub fn fits(bytes: u64, what: String) -> Result<()> {
    strata_data::memory::check_fits(bytes, what)?;
    Ok(())
}
