//! `strata cka A B`: CKA, or a baseline measure, between the layers of two activation files.

use crate::args::{DeviceArgs, OutputArgs};
use crate::progress::Terminal;
use anyhow::{bail, Result};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use strata_lab::{compare, measure, outset};
use strata_sim::{Estimator, Kernel, NullMethod};

/// CKA (or, with --measure, a baseline measure) between the layers of two activation files.
///
/// Each file holds one or more layers, all over the same examples in the same order
/// (first axis = examples; further axes are flattened into features). With one layer on each
/// side, prints the CKA value; otherwise the matrix (rows = layers of A).
#[derive(clap::Args)]
#[command(after_help = "Formats (detected from the file's first bytes):\n  \
    .npy          one layer, named after the file\n  \
    .npz          one layer per array (np.savez / np.savez_compressed)\n  \
    .safetensors  one layer per tensor (F16/F32/F64)\n  \
    .arrow        strata's activation store, Arrow IPC (see README)\n  \
    .parquet      strata's activation store, Parquet\n\n\
    Examples:\n  strata cka a.npy b.npy\n  strata cka float.npz w1a1.npz --out out/ --json\n  \
    strata cka big.arrow big.arrow --batch-size 1024    # minibatch CKA, bounded memory\n  \
    strata cka a.npy b.npy --permutations 999 --bootstrap 1000 --seed 1\n\n\
    Significance (--permutations, --bootstrap; full-data CKA or --measure, on the CPU):\n  \
    p_value    (1 + #{null >= observed}) / (N + 1): how often CKA with B's examples shuffled\n             \
    (the pairing with A broken) is at least the observed one. N = 99 resolves p = 0.01.\n  \
    null_mean  CKA expected by chance at this n and these widths (not 0: biased CKA of\n             \
    unrelated layers grows with features / examples)\n  \
    null_q95   the null's 95% quantile (its 5% quantile for the procrustes distance)\n  \
    z          (observed - null_mean) / null sd\n  \
    ci_low,    the bootstrap percentile interval: examples resampled with replacement, the\n  \
    ci_high    same rows for A and B, the value recomputed each time (duplicated rows push\n             \
    CKA up: near chance the interval sits above the value; test with the null)\n\n\
    A permutation costs about one pass over two n x n kernel matrices per pair (B = 1000 is a\n\
    few hundred CKA matrices). --null moments (linear biased CKA) draws nothing: exact null\n\
    mean, sd and skewness, an approximate (Pearson III) p-value, about the matrix's cost; see\n\
    docs/similarity.md.")]
pub struct CkaArgs {
    /// Activations of model A (rows of the matrix).
    a: PathBuf,
    /// Activations of model B (columns); may be the same file as A.
    b: PathBuf,
    /// Similarity measure: cka, or a baseline of Kornblith et al. 2019: cca_rho (mean
    /// canonical correlation), cca_r2 (Yanai's R²_CCA), svcca_rho, svcca_r2 (SVD to 99% of
    /// the variance, then CCA), pwcca (Morcos et al. 2018, weights from A), linreg (R² of
    /// predicting B from A), procrustes (orthogonal Procrustes distance: 0 = same up to a
    /// rotation), hsic (unnormalized linear HSIC), cka_linear (linear CKA in f64); rsa
    /// (Spearman's ρ between correlation-distance RDMs, Kriegeskorte et al. 2008), mutual_knn
    /// (shared 10 nearest neighbours, Huh et al. 2024), cknna (CKA on mutual 10-NN pairs, Huh
    /// et al. 2024).
    #[arg(long, default_value = "cka", value_name = "NAME")]
    measure: String,
    /// Kernel: linear (K = XXᵀ) or rbf (Gaussian, bandwidth from the median distance).
    #[arg(long, value_enum, default_value = "linear")]
    kernel: KernelArg,
    /// RBF bandwidth as a fraction of the median distance (Kornblith et al. use 0.2-0.8).
    #[arg(
        long,
        default_value_t = 0.5,
        value_name = "T",
        allow_negative_numbers = true
    )]
    rbf_threshold: f64,
    /// HSIC estimator [default: biased; debiased with --batch-size].
    #[arg(long, value_enum)]
    estimator: Option<EstimatorArg>,
    /// Minibatch CKA (Nguyen et al. 2021) with N examples per batch: memory stays bounded
    /// however many examples the files hold.
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Only these layers of A (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    layers_a: Option<Vec<String>>,
    /// Only these layers of B (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    layers_b: Option<Vec<String>>,
    /// Permutation test with N permutations of B's examples (one shared by all pairs per
    /// draw): adds p_value, null_mean, null_q95 and z for every pair. The smallest p is
    /// 1/(N+1): 99 resolves 0.01, 999 resolves 0.001.
    #[arg(long, value_name = "N")]
    permutations: Option<usize>,
    /// How the permutation null is obtained: draws (--permutations N seeded shuffles) or
    /// moments (linear biased CKA only: the exact mean, variance and skewness over all
    /// permutations and a Pearson type III p-value, for about the cost of the matrix; takes no
    /// --permutations) [default: draws].
    #[arg(long, value_enum, value_name = "METHOD")]
    null: Option<NullArg>,
    /// Bootstrap percentile intervals from N resamples of the examples (with replacement, the
    /// same rows for A and B): adds ci_low and ci_high for every pair.
    #[arg(long, value_name = "N")]
    bootstrap: Option<usize>,
    /// Confidence level of the --bootstrap intervals, between 0 and 1 [default: 0.95].
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    confidence: Option<f64>,
    /// Seed of --permutations and --bootstrap: the same seed gives the same numbers, on any
    /// number of cores [default: 0].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Also write cka.csv, cka.parquet, cka.json, heatmap.png and heatmap.svg into DIR (and,
    /// with --permutations or --bootstrap, significance.csv and significance.parquet: one row
    /// per pair of layers).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum KernelArg {
    Linear,
    Rbf,
}

#[derive(Clone, Copy, ValueEnum)]
enum NullArg {
    Draws,
    Moments,
}

#[derive(Clone, Copy, ValueEnum)]
enum EstimatorArg {
    Biased,
    Debiased,
}

impl CkaArgs {
    /// The significance flags, checked against each other and against --batch-size.
    fn significance(&self) -> Result<compare::Significance> {
        let null = match self.null {
            Some(NullArg::Moments) => NullMethod::Moments,
            Some(NullArg::Draws) | None => NullMethod::Draws,
        };
        if matches!(self.null, Some(NullArg::Draws)) && self.permutations.is_none() {
            bail!("--null draws needs --permutations N (e.g. 999)");
        }
        if null == NullMethod::Moments && self.permutations.is_some() {
            bail!(
                "--null moments computes the null analytically and draws no permutations; drop \
                 --permutations (or use --null draws)"
            );
        }
        let sig = compare::Significance {
            permutations: self.permutations,
            null,
            bootstrap: self.bootstrap,
            confidence: self.confidence.unwrap_or(strata_sim::DEFAULT_CONFIDENCE),
            seed: self.seed.unwrap_or(0),
        };
        if self.confidence.is_some() && self.bootstrap.is_none() {
            bail!("--confidence sets the level of the --bootstrap intervals; add --bootstrap N");
        }
        if self.seed.is_some() && self.permutations.is_none() && self.bootstrap.is_none() {
            bail!("--seed seeds --permutations and --bootstrap; add one of them");
        }
        if sig.requested() && self.batch_size.is_some() {
            bail!(
                "--permutations, --null moments and --bootstrap need full-data CKA and do not \
                 combine with --batch-size (minibatch CKA); drop one or the other"
            );
        }
        sig.check()?;
        Ok(sig)
    }

    /// `--out`'s files besides the matrix's own: the significance table when asked for.
    fn significance_files(&self, sig: &compare::Significance) -> Vec<PathBuf> {
        match (&self.out, sig.requested()) {
            (Some(dir), true) => compare::SIGNIFICANCE_FILES
                .iter()
                .map(|f| dir.join(f))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn exec(self) -> Result<()> {
        if self.measure == "cka" {
            self.cka()
        } else {
            self.baseline()
        }
    }

    /// CKA with the engine (kernels, estimators, minibatches, the GPU).
    fn cka(self) -> Result<()> {
        let sig = self.significance()?;
        if let Some(dir) = &self.out {
            let mut all: Vec<_> = compare::CkaResult::OUT_FILES
                .iter()
                .map(|f| dir.join(f))
                .collect();
            all.extend(self.significance_files(&sig));
            outset::refuse_inputs_as_outputs(&all, &[&self.a, &self.b])?;
        }
        let kernel = match self.kernel {
            KernelArg::Linear => Kernel::Linear,
            KernelArg::Rbf => {
                let t = self.rbf_threshold;
                if !(t.is_finite() && t > 0.0) {
                    bail!("--rbf-threshold must be a positive number, got {t}");
                }
                Kernel::Rbf { threshold: t }
            }
        };
        let estimator = self.estimator.map(|e| match e {
            EstimatorArg::Biased => Estimator::Biased,
            EstimatorArg::Debiased => Estimator::Debiased,
        });
        let json = self.output.json;
        let progress = Terminal::new(self.output.silent());
        let args = compare::CkaArgs {
            a: self.a,
            b: self.b,
            kernel,
            estimator,
            batch_size: self.batch_size,
            layers_a: self.layers_a,
            layers_b: self.layers_b,
            device: self.device.choice(),
        };
        let res = compare::run_with(&args, &sig, &progress)?;
        if res.is_single() && res.matrix.values[0][0].is_none() {
            bail!("CKA is undefined: {}", res.warnings().join("; "));
        }
        for w in res.warnings() {
            eprintln!("warning: {w}");
        }
        let written = match &self.out {
            Some(dir) => res.write_out(dir)?,
            None => Vec::new(),
        };
        if json {
            println!("{}", serde_json::to_string(&res.json())?);
        } else if res.is_single() {
            let v = res.matrix.values[0][0].unwrap_or(f64::NAN);
            println!("{v:.6}");
            if let Some(s) = &res.significance {
                println!("{}", s.summary());
            }
            eprintln!(
                "{} between '{}' and '{}' over n = {} examples",
                res.measure_name(),
                res.layers_a[0],
                res.layers_b[0],
                res.matrix.n
            );
        } else {
            println!(
                "{} over n = {} examples (rows: {}, columns: {})\n",
                res.measure_name(),
                res.matrix.n,
                res.a.display(),
                res.b.display()
            );
            print!("{}", res.table());
        }
        if !json {
            say_written(&written);
        }
        Ok(())
    }

    /// A baseline measure (CCA family, linear regression, Procrustes, HSIC) on the CPU.
    fn baseline(self) -> Result<()> {
        if self.batch_size.is_some() {
            bail!("--batch-size (minibatch CKA) applies to --measure cka only");
        }
        let sig = self.significance()?;
        let name = &self.measure;
        if sig.null == NullMethod::Moments {
            bail!(
                "--null moments is the analytic null of linear CKA (biased); --measure {name} \
                 needs --permutations N"
            );
        }
        if let Some(dir) = &self.out {
            let names = [".csv", ".parquet", ".json"].map(|e| dir.join(format!("{name}{e}")));
            let heat = ["heatmap.png", "heatmap.svg"].map(|f| dir.join(f));
            let mut all: Vec<_> = names.into_iter().chain(heat).collect();
            all.extend(self.significance_files(&sig));
            outset::refuse_inputs_as_outputs(&all, &[&self.a, &self.b])?;
        }
        let json = self.output.json;
        let r = measure::run_with(
            &self.a,
            &self.b,
            name,
            &self.layers_a,
            &self.layers_b,
            &sig,
            &Terminal::new(self.output.silent()),
        )?;
        if r.is_single() && r.values[0][0].is_none() {
            bail!("{} is undefined: {}", r.measure, r.notes.join("; "));
        }
        for n in &r.notes {
            eprintln!("warning: {n}");
        }
        let written = match &self.out {
            Some(dir) => r.write_out(dir)?,
            None => Vec::new(),
        };
        let what = if r.higher_is_similar {
            "similarity"
        } else {
            "distance"
        };
        if json {
            println!("{}", serde_json::to_string(&r.json())?);
        } else if r.is_single() {
            println!("{:.6}", r.values[0][0].unwrap_or(f64::NAN));
            if let Some(s) = &r.significance {
                println!("{}", s.summary());
            }
            eprintln!(
                "{} ({what}) between '{}' and '{}' over n = {} examples",
                r.measure, r.layers_a[0], r.layers_b[0], r.n
            );
        } else {
            println!(
                "{} ({what}) over n = {} examples (rows: {}, columns: {})\n",
                r.measure,
                r.n,
                r.a.display(),
                r.b.display()
            );
            print!(
                "{}",
                compare::matrix_table(&r.layers_a, &r.layers_b, &r.values)
            );
            if let Some(s) = &r.significance {
                println!();
                print!(
                    "{}",
                    s.table(&r.layers_a, &r.layers_b, &r.values, r.measure)
                );
            }
        }
        if !json {
            say_written(&written);
        }
        Ok(())
    }
}

/// `wrote A, B, ...` on stderr when files were written.
fn say_written(written: &[impl AsRef<Path>]) {
    if !written.is_empty() {
        let w: Vec<String> = written
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        eprintln!("wrote {}", w.join(", "));
    }
}
