//! `strata`: what did this network learn, how does its quantized twin differ, what does it leak.
//!
//! This file is the whole program's shape: the subcommands, each parsed into its own arguments
//! (`cmd/*.rs`, one module per subcommand), then run; every failure is reported in one line.

mod args;
mod cmd;
mod exit;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Compare, audit and compress neural networks: CKA between layers, from the files PyTorch and NumPy write.",
    long_about = "strata trains float and quantized networks, compares their layers with Centered \
        Kernel Alignment (CKA), and writes reports.\n\n\
        Start with `strata quickstart` (no input needed), describe your own experiments in an \
        analysis spec for `strata run`, or point `strata cka` at your own activations: .npy, \
        .npz, .safetensors, or strata's Arrow/Parquet activation store.",
    after_help = "Examples:\n  strata quickstart\n  strata run analyses/float-vs-quantized.toml\n  strata cka float.npz w1a1.npz --out reports/float-vs-w1a1\n  strata cka acts.arrow acts.arrow --kernel rbf --json\n  strata layers acts.safetensors\n  strata attack --model models/w1a1 --transfer-from models/float"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Quickstart(cmd::run::QuickstartArgs),
    Run(cmd::run::RunArgs),
    Cka(cmd::cka::CkaArgs),
    Gpu(cmd::gpu::GpuArgs),
    Layers(cmd::layers::LayersArgs),
    Train(cmd::train::TrainArgs),
    Eval(cmd::eval::EvalArgs),
    Collect(cmd::collect::CollectArgs),
    Attack(cmd::attack::AttackArgs),
    Mia(cmd::mia::MiaArgs),
    Zip(cmd::zip::ZipArgs),
    Bench(cmd::bench::BenchArgs),
}

#[global_allocator]
static ALLOC: strata_cli::oom::OneLineOom = strata_cli::oom::OneLineOom;

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::report(|| match cli.command {
        Cmd::Quickstart(a) => a.exec(),
        Cmd::Run(a) => a.exec(),
        Cmd::Cka(a) => a.exec(),
        Cmd::Gpu(a) => a.exec(),
        Cmd::Layers(a) => a.exec(),
        Cmd::Train(a) => a.exec(),
        Cmd::Eval(a) => a.exec(),
        Cmd::Collect(a) => a.exec(),
        Cmd::Attack(a) => a.exec(),
        Cmd::Mia(a) => a.exec(),
        Cmd::Zip(a) => a.exec(),
        Cmd::Bench(a) => a.exec(),
    })
}
