//! `strata run SPEC`: load the data, train what the cache lacks (N jobs at once), collect every
//! model's activations, compute the comparisons, and write the report.
//!
//! Nothing is trained before the whole spec and every data set it names have been read and
//! checked. The report is assembled in a temporary folder beside its destination and swapped in
//! only when complete, so a failed or interrupted run leaves the previous report intact.

use super::cache::{self, Cache};
use super::spec::{ActivationPoint, Analysis, Instance};
use crate::compare::{self, CkaArgs};
use crate::train::{self, Examples, TrainArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use strata_data::dataset::{Dataset, Splits};
use strata_nn::file::ModelCard;

/// How to run an analysis.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// Where reports go: the report lands in `reports/NAME/`.
    pub reports: PathBuf,
    /// Cache of models and activation stores (default `reports/.cache`).
    pub cache: PathBuf,
    /// Models trained at once.
    pub jobs: usize,
    /// Ignore the cache: retrain and recollect everything.
    pub force: bool,
    /// No progress bars or log lines.
    pub quiet: bool,
    /// The command line, for the manifest.
    pub command: String,
}

/// A data set as the analysis uses it.
pub struct LoadedData {
    pub splits: Splits,
    /// The examples activations are collected on.
    pub collect: Dataset,
    pub fingerprint: String,
    pub seconds: f64,
}

/// One trained (or cached) model with its activations.
#[derive(Clone, Debug)]
pub struct ModelRun {
    pub key: String,
    pub path: PathBuf,
    pub store: PathBuf,
    pub card: ModelCard,
    /// Found in the cache (not trained in this run).
    pub cached: bool,
    pub store_cached: bool,
    /// What computed the activations: `cpu` or `cuda NAME sm_XY` (part of the store's key).
    pub collector: String,
    /// Seconds this run spent training / collecting (0 when cached).
    pub train_seconds: f64,
    pub collect_seconds: f64,
}

/// One comparison: a similarity measure between every layer of one model and every layer of
/// another (CKA, or a baseline measure when `[cka] measure` names one).
#[derive(Clone, Debug)]
pub struct Comparison {
    pub layers_a: Vec<String>,
    pub layers_b: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    /// Examples compared.
    pub n: usize,
    /// What was measured, for titles: "linear CKA (biased)", "pwcca", ...
    pub measure: String,
    /// The values lie on [0, 1] (heatmap colours and axis ranges assume it).
    pub unit_range: bool,
    pub seconds: f64,
}

/// Everything the report is made of.
pub struct Outcome {
    pub analysis: Analysis,
    pub spec_text: String,
    pub spec_path: PathBuf,
    pub data: BTreeMap<String, LoadedData>,
    pub models: Vec<ModelRun>,
    /// Similarity matrices by (instance a, instance b).
    pub cka: BTreeMap<(usize, usize), Comparison>,
    pub cka_seconds: f64,
    /// Layer-identification results (`[identify]`).
    pub identify: Vec<super::identify_run::IdentifyRow>,
    /// Membership-inference audits (`[privacy]`).
    pub privacy: Vec<super::privacy_run::PrivacyRun>,
    pub started: std::time::SystemTime,
    pub seconds: f64,
    pub args: RunArgs,
}

/// Progress: bars on a terminal, plain log lines elsewhere (CI logs), nothing when quiet.
pub struct Progress {
    mp: MultiProgress,
    tty: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let mp = MultiProgress::new();
        if quiet || !tty {
            mp.set_draw_target(ProgressDrawTarget::hidden());
        }
        Progress { mp, tty, quiet }
    }

    pub fn bar(&self, total: u64, msg: &str, unit: &str) -> ProgressBar {
        let pb = self.mp.add(ProgressBar::new(total));
        let template = format!(
            "{{prefix:>22}} [{{bar:28.cyan/blue}}] {{pos}}/{{len}} {unit} ({{elapsed}}, eta {{eta}}) {{msg}}"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(msg.to_string());
        pb
    }

    pub fn log(&self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            let _ = self.mp.println(msg);
        } else {
            eprintln!("{msg}");
        }
    }
}

fn load_data(a: &Analysis, p: &Progress) -> Result<BTreeMap<String, LoadedData>> {
    let mut out = BTreeMap::new();
    for (key, d) in &a.data {
        if !a.instances.iter().any(|i| &i.data == key) {
            continue;
        }
        let t = Instant::now();
        let splits = train::load_data(&d.source, d.label.as_deref(), d.train_limit)
            .with_context(|| format!("[data.{key}]"))?;
        let base = match d.collect_split {
            super::spec::Split::Train => &splits.train,
            super::spec::Split::Test => &splits.test,
        };
        let collect = d
            .collect_limit
            .map_or_else(|| base.clone(), |n| base.head(n));
        if collect.len() < 4 {
            bail!(
                "[data.{key}]: only {} examples to collect activations on; CKA needs at least 4",
                collect.len()
            );
        }
        let fingerprint = cache::data_fingerprint(&splits);
        p.log(&format!(
            "data {key}: {} ({} train, {} test; activations on {} {} examples)",
            d.source,
            splits.train.len(),
            splits.test.len(),
            collect.len(),
            d.collect_split.name()
        ));
        out.insert(
            key.clone(),
            LoadedData {
                splits,
                collect,
                fingerprint,
                seconds: t.elapsed().as_secs_f64(),
            },
        );
    }
    Ok(out)
}

fn train_args(inst: &Instance, a: &Analysis, out: PathBuf) -> TrainArgs {
    let d = &a.data[&inst.data];
    TrainArgs {
        data: d.source.0.clone(),
        label: d.label.clone(),
        architecture: inst.architecture,
        widths: inst.widths.clone(),
        precision: inst.precision,
        train: inst.train.clone(),
        limit: d.train_limit,
        out,
        quiet: true,
    }
}

struct Planned {
    key: String,
    store_key: String,
    collector: String,
    needs_training: bool,
}

/// Train the models the cache lacks, `jobs` at a time; the first failure stops the queue.
fn train_missing(
    a: &Analysis,
    data: &BTreeMap<String, LoadedData>,
    plan: &[Planned],
    cache: &Cache,
    jobs: usize,
    p: &Progress,
) -> Result<Vec<f64>> {
    let todo: Vec<usize> = (0..plan.len())
        .filter(|&i| plan[i].needs_training)
        .collect();
    let mut seconds = vec![0.0; plan.len()];
    if todo.is_empty() {
        return Ok(seconds);
    }
    let overall = p.bar(todo.len() as u64, "models trained", "models");
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let times: Mutex<Vec<(usize, f64)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, todo.len()) {
            s.spawn(|| loop {
                if abort.load(Ordering::SeqCst) {
                    return;
                }
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { return };
                let inst = &a.instances[i];
                let pb = p.bar(0, &inst.name, "steps");
                let t = Instant::now();
                let args = train_args(inst, a, cache.model(&plan[i].key));
                let name = inst.name.clone();
                let result = train::train_on(&args, &data[&inst.data].splits, &pb, &mut |e| {
                    pb.set_message(format!(
                        "epoch {} test acc {:.2}%",
                        e.epoch,
                        100.0 * e.test_accuracy
                    ));
                });
                pb.finish_and_clear();
                match result {
                    Ok(tr) => {
                        let secs = t.elapsed().as_secs_f64();
                        p.log(&format!(
                            "trained {name}: train accuracy {:.2}%, test accuracy {:.2}% ({:.1} s)",
                            100.0 * tr.card.train_accuracy,
                            100.0 * tr.card.test_accuracy,
                            secs
                        ));
                        if let Ok(mut v) = times.lock() {
                            v.push((i, secs));
                        }
                        overall.inc(1);
                    }
                    Err(e) => {
                        abort.store(true, Ordering::SeqCst);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e.context(format!("training {name}")));
                        }
                        return;
                    }
                }
            });
        }
    });
    overall.finish_and_clear();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    for (i, s) in times.into_inner().unwrap_or_default() {
        seconds[i] = s;
    }
    Ok(seconds)
}

/// Run a parsed analysis.
pub fn run(a: Analysis, spec_path: &Path, spec_text: String, args: RunArgs) -> Result<Outcome> {
    let started = std::time::SystemTime::now();
    let t0 = Instant::now();
    let p = Progress::new(args.quiet);
    let data = load_data(&a, &p)?;
    check_architectures(&a, &data, args.jobs)?;
    let cache = Cache::new(&args.cache);
    cache.sweep();
    let point = a.cka.activations;

    // The spec's device also collects MLP activations (the GPU's float engine); convolutional
    // networks collect on the CPU. A float network's activations on a GPU differ from the CPU's
    // at f32 rounding, so the store's cache key names where it was collected: a run on another
    // device never reuses them as if they were its own.
    let gpu = if a
        .instances
        .iter()
        .any(|i| i.architecture == strata_nn::net::Architecture::Mlp)
    {
        crate::gpu::resolve(a.cka.device, true)?
    } else {
        None
    };
    let plan: Vec<Planned> = a
        .instances
        .iter()
        .map(|inst| {
            let d = &data[&inst.data];
            let spec = &a.data[&inst.data];
            let key = cache::model_key(inst, &d.fingerprint);
            let collector = match &gpu {
                Some(g) if inst.architecture == strata_nn::net::Architecture::Mlp => {
                    format!("cuda {} {}", g.info.name, g.arch)
                }
                _ => "cpu".to_string(),
            };
            let store_key = cache::store_key(
                &key,
                &d.fingerprint,
                spec.collect_split,
                spec.collect_limit,
                point,
                &collector,
            );
            let needs_training = args.force
                || !cache.has_model(&key).with_context(|| {
                    format!(
                        "the cached model of {} ({}; delete it or pass --force to rebuild it)",
                        inst.name,
                        cache.model(&key).display()
                    )
                })?;
            Ok(Planned {
                key,
                store_key,
                collector,
                needs_training,
            })
        })
        .collect::<Result<_>>()?;
    let mut plan = plan;
    // Two families that differ only in name produce the same models: train each key once.
    for i in 0..plan.len() {
        if plan[..i].iter().any(|q| q.key == plan[i].key) {
            plan[i].needs_training = false;
        }
    }
    let n_train = plan.iter().filter(|x| x.needs_training).count();
    p.log(&format!(
        "{}: {} models ({} to train, {} cached), {} pair(s) compared, float twins for [{}]; cache {}",
        a.name,
        plan.len(),
        n_train,
        plan.len() - n_train,
        a.compare.len(),
        a.twins.join(", "),
        cache.root.display()
    ));
    let train_seconds = train_missing(&a, &data, &plan, &cache, args.jobs, &p)?;

    // Activations: one store per model, cached under the model's key and the examples.
    let mut models = Vec::with_capacity(plan.len());
    let collect_bar = p.bar(plan.len() as u64, "activations", "models");
    for (i, (inst, pl)) in a.instances.iter().zip(&plan).enumerate() {
        let path = cache.model(&pl.key);
        let (mut net, card) = strata_nn::file::load(&path).with_context(|| {
            format!(
                "loading the cached model of {} ({}; `--force` or deleting it rebuilds it)",
                inst.name,
                path.display()
            )
        })?;
        let store = cache.store(&pl.store_key);
        let fresh = plan[..i].iter().any(|q| q.store_key == pl.store_key)
            || (!args.force && !trained_now(&plan, i));
        let store_cached = fresh && cache.has_store(&pl.store_key);
        let t = Instant::now();
        if !store_cached {
            let collect_gpu = if net.is_mlp() { gpu.clone() } else { None };
            cache::evict(&store);
            if let Some(dir) = store.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let d = &data[&inst.data];
            let spec = &a.data[&inst.data];
            let ex = Examples {
                data: &spec.source,
                label: spec.label.as_deref(),
                split: spec.collect_split.name(),
                limit: spec.collect_limit,
            };
            let pb = p.bar(d.collect.len() as u64, &inst.name, "examples");
            train::collect_on(
                &mut net,
                &card,
                &path,
                &d.collect,
                ex,
                point == ActivationPoint::Pre,
                &store,
                collect_gpu.as_ref(),
                &pb,
            )
            .with_context(|| format!("collecting the activations of {}", inst.name))?;
            pb.finish_and_clear();
        }
        collect_bar.inc(1);
        models.push(ModelRun {
            key: pl.key.clone(),
            path,
            store,
            card,
            cached: !trained_now(&plan, i),
            store_cached,
            collector: pl.collector.clone(),
            train_seconds: train_seconds[i],
            collect_seconds: if store_cached {
                0.0
            } else {
                t.elapsed().as_secs_f64()
            },
        });
    }
    collect_bar.finish_and_clear();

    // Comparisons: explicit pairs, each quantized model vs its float twin, float seed vs seed.
    let t = Instant::now();
    let mut pairs: Vec<(usize, usize)> = a.compare.clone();
    pairs.extend(twin_pairs(&a));
    pairs.sort();
    pairs.dedup();
    let bar = p.bar(pairs.len() as u64, "CKA", "pairs");
    let mut cka = BTreeMap::new();
    for (i, j) in pairs {
        let what = || format!("{} vs {}", a.instances[i].name, a.instances[j].name);
        let r = match a.cka.measure.as_deref() {
            Some(m) if m != "cka" => {
                let r = crate::measure::run(
                    &models[i].store,
                    &models[j].store,
                    m,
                    &None,
                    &None,
                    true,
                )
                .with_context(what)?;
                for w in &r.notes {
                    p.log(&format!("warning: {}: {w}", what()));
                }
                Comparison {
                    unit_range: !matches!(r.measure, "hsic" | "procrustes"),
                    measure: r.measure.to_string(),
                    layers_a: r.layers_a,
                    layers_b: r.layers_b,
                    values: r.values,
                    n: r.n,
                    seconds: r.seconds,
                }
            }
            _ => {
                let r = compare::run(&CkaArgs {
                    a: models[i].store.clone(),
                    b: models[j].store.clone(),
                    kernel: a.cka.kernel(),
                    estimator: Some(a.cka.estimator()),
                    batch_size: a.cka.batch_size,
                    layers_a: None,
                    layers_b: None,
                    quiet: true,
                    device: a.cka.device,
                })
                .with_context(what)?;
                for w in r.warnings() {
                    p.log(&format!("warning: {}: {w}", what()));
                }
                Comparison {
                    measure: r.measure_name(),
                    unit_range: true,
                    layers_a: r.layers_a,
                    layers_b: r.layers_b,
                    values: r.matrix.values,
                    n: r.matrix.n,
                    seconds: r.seconds,
                }
            }
        };
        cka.insert((i, j), r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let cka_seconds = t.elapsed().as_secs_f64();
    let mut o = Outcome {
        analysis: a,
        spec_text,
        spec_path: spec_path.to_path_buf(),
        data,
        models,
        cka,
        cka_seconds,
        identify: Vec::new(),
        privacy: Vec::new(),
        started,
        seconds: 0.0,
        args,
    };
    o.identify = super::identify_run::run(&o, &p)?;
    o.privacy = super::privacy_run::run(&o, &p)?;
    o.seconds = t0.elapsed().as_secs_f64();
    Ok(o)
}

/// True when model `i` was trained in this run (itself, or an identical earlier instance).
fn trained_now(plan: &[Planned], i: usize) -> bool {
    plan[..=i]
        .iter()
        .any(|q| q.key == plan[i].key && q.needs_training)
}

/// Build every family's network once on its data's example shape before anything trains, so an
/// architecture that cannot read the data (a CNN on tabular rows) fails at once, naming the spec
/// line, not after the other families have trained.
fn check_architectures(
    a: &Analysis,
    data: &BTreeMap<String, LoadedData>,
    jobs: usize,
) -> Result<()> {
    let mut heaviest = 0u64;
    for (f, line) in a.families.iter().zip(&a.family_lines) {
        let d = &data[f.data.get_ref()];
        let config = strata_nn::net::NetConfig {
            architecture: f.architecture,
            input_shape: d.splits.train.shape.clone(),
            widths: if f.architecture == strata_nn::net::Architecture::Mlp {
                f.widths.clone()
            } else {
                Vec::new()
            },
            classes: d.splits.train.classes,
            precision: strata_nn::Precision::Float,
        };
        // Layer shapes, caps and the memory to train at the family's batch size, for each of
        // its precisions, from the sizes alone: nothing is built.
        for p in &f.precisions {
            let c = strata_nn::net::NetConfig {
                precision: p.0,
                ..config.clone()
            };
            let batch = f.batch_size.max(2);
            match strata_nn::limits::check_config(&c, batch, true) {
                Ok(e) => heaviest = heaviest.max(e.train_bytes),
                Err(e @ strata_nn::NnError::Memory { .. })
                | Err(e @ strata_nn::NnError::TooLarge { .. }) => bail!(
                    "{}, line {line}: [[model]] '{}' ({}): {e}",
                    a.file,
                    f.name,
                    p.0.name()
                ),
                Err(e) => {
                    let e = e.to_string();
                    let e = e.lines().next().unwrap_or("");
                    bail!(
                        "{}, line {line}: [[model]] '{}' architecture: {} cannot read data '{}' \
                         (examples of shape {:?}): {e}",
                        a.file,
                        f.name,
                        f.architecture.name(),
                        f.data.get_ref(),
                        d.splits.train.shape
                    );
                }
            }
        }
    }
    // `--jobs N` trains N models at once: the heaviest N must fit together.
    let together = jobs.clamp(1, a.instances.len().max(1)) as u64;
    if together > 1 {
        strata_data::memory::check_fits(
            heaviest.saturating_mul(together),
            format!("training {together} models at once (--jobs {jobs})"),
        )?;
    }
    Ok(())
}

/// The pairs the twin section needs: (float seed s, precision p seed s) for every quantized
/// instance, and (float seed s, float seed s') for s < s' as the seed-to-seed yardstick.
pub fn twin_pairs(a: &Analysis) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for fam in &a.twins {
        let members: Vec<usize> = (0..a.instances.len())
            .filter(|&i| &a.instances[i].family == fam)
            .collect();
        let floats: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| a.instances[i].precision == strata_nn::Precision::Float)
            .collect();
        for &i in &members {
            let inst = &a.instances[i];
            if inst.precision == strata_nn::Precision::Float {
                continue;
            }
            if let Some(&f) = floats
                .iter()
                .find(|&&f| a.instances[f].train.seed == inst.train.seed)
            {
                out.push((f, i));
            }
        }
        for (x, &f) in floats.iter().enumerate() {
            for &g in &floats[x + 1..] {
                out.push((f, g));
            }
        }
    }
    out
}

/// Read and check a spec, then run it and write its report; returns the outcome and the report
/// folder.
pub fn run_file(spec: &Path, args: RunArgs) -> Result<(Outcome, PathBuf)> {
    let text = std::fs::read_to_string(spec)
        .map_err(|e| anyhow!("cannot read the analysis spec {}: {e}", spec.display()))?;
    let name = spec
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_text(&text, spec, &name, args)
}

/// [`run_file`] for spec text already in memory (`strata quickstart` runs the embedded spec).
pub fn run_text(text: &str, spec: &Path, name: &str, args: RunArgs) -> Result<(Outcome, PathBuf)> {
    let a = super::spec::parse(text, &spec.display().to_string(), name)?;
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let data_files: Vec<PathBuf> = a
        .data
        .values()
        .filter_map(|d| d.source.strip_prefix("csv:").map(PathBuf::from))
        .collect();
    super::ownership::check_target(&args.reports, &a.name, spec, &data_files, &args.cache)?;
    super::report::remove_stale(&args.reports, &a.name);
    let out = run(a, spec, text.to_string(), args)?;
    let dir = super::report::write(&out)?;
    Ok((out, dir))
}
