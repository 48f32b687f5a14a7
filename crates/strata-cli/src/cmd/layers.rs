//! `strata layers FILE`: what an activation file holds.

use anyhow::Result;
use std::path::PathBuf;

/// List the layers of an activation file: name, shape, features, examples.
#[derive(clap::Args)]
pub struct LayersArgs {
    /// An activation file (.npy, .npz, .safetensors, .arrow, .parquet).
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl LayersArgs {
    pub fn exec(self) -> Result<()> {
        let acts = strata_data::open(&self.file)?;
        let layers = acts.layers();
        if self.json {
            let layers: Vec<_> = layers
                .iter()
                .map(|l| serde_json::json!({"name": l.name, "shape": l.shape, "features": l.features}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"file": self.file.display().to_string(),
                    "format": acts.format().to_string(), "n": acts.n(), "layers": layers})
            );
            return Ok(());
        }
        println!(
            "{} ({}, {} examples, {} layers)",
            self.file.display(),
            acts.format(),
            acts.n(),
            layers.len()
        );
        let w = layers
            .iter()
            .map(|l| l.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(5);
        println!("  {:<w$}  {:>14}  {:>9}", "layer", "shape", "features");
        for l in layers {
            let shape = format!("{:?}", l.shape);
            println!("  {:<w$}  {:>14}  {:>9}", l.name, shape, l.features);
        }
        Ok(())
    }
}
