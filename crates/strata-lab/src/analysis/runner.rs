//! `strata run SPEC`: load the data, train what the cache lacks (N jobs at once), collect every
//! model's activations, compute the comparisons, and write the report.
//!
//! Nothing is trained before the whole spec and every data set it names have been read and
//! checked. The report is assembled in a temporary folder beside its destination and swapped in
//! only when complete, so a failed or interrupted run leaves the previous report intact.

use super::cache::{self, Cache};
use super::spec::{ActivationPoint, Analysis, Instance, OpenedStore};
use crate::compare::{self, CkaArgs};
use crate::progress::{Progress, WarningsOnly};
use crate::setting::{self, Setting, SettingError};
use crate::train::{self, Examples, TrainArgs};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use strata_data::dataset::{Dataset, Splits};
use strata_gpu::Gpu;
use strata_nn::file::ModelCard;
use strata_nn::net::{Architecture, Net};

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
    /// The command line, for the manifest.
    pub command: String,
}

/// A data set as the analysis uses it.
pub struct LoadedData {
    /// Training and test splits as loaded (`train_limit` applied).
    pub splits: Splits,
    /// The examples activations are collected on.
    pub collect: Dataset,
    /// SHA-256 of the data's content: part of every model and store key.
    pub fingerprint: String,
    /// Seconds spent loading the data.
    pub seconds: f64,
}

/// One trained (or cached) model with its activations.
#[derive(Clone, Debug)]
pub struct ModelRun {
    /// Cache key of the model ([`cache::model_key`]).
    pub key: String,
    /// Path stem of the cached model (`.safetensors` and `.json` beside it).
    pub path: PathBuf,
    /// Path of the model's activation store (Arrow).
    pub store: PathBuf,
    /// The model card: configuration and training figures.
    pub card: ModelCard,
    /// Found in the cache (not trained in this run).
    pub cached: bool,
    /// The activation store was found in the cache (not collected in this run).
    pub store_cached: bool,
    /// What computed the activations: `cpu` or `cuda NAME sm_XY` (part of the store's key).
    pub collector: String,
    /// Seconds this run spent training / collecting (0 when cached).
    pub train_seconds: f64,
    /// Seconds this run spent collecting the activations (0 when cached).
    pub collect_seconds: f64,
}

/// One comparison: a similarity measure between every layer of one model and every layer of
/// another (CKA, or a baseline measure when `[cka] measure` names one).
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Layer names of model a: the rows of `values`.
    pub layers_a: Vec<String>,
    /// Layer names of model b: the columns of `values`.
    pub layers_b: Vec<String>,
    /// `values[i][j]`: similarity of layer i of a and layer j of b (`None` where undefined).
    pub values: Vec<Vec<Option<f64>>>,
    /// Examples compared.
    pub n: usize,
    /// What was measured, for titles: "linear CKA (biased)", "pwcca", ...
    pub measure: String,
    /// The values lie on [0, 1] (heatmap colours and axis ranges assume it).
    pub unit_range: bool,
    /// Seconds the comparison took.
    pub seconds: f64,
    /// The permutation null and bootstrap intervals of every cell, when `[cka]` asks for them.
    pub significance: Option<compare::SignificanceResult>,
}

/// Everything the report is made of.
pub struct Outcome {
    /// The checked spec.
    pub analysis: Analysis,
    /// The spec file's text, as read (copied into the report).
    pub spec_text: String,
    /// Where the spec was read from.
    pub spec_path: PathBuf,
    /// Loaded data sets by `[data.NAME]` key.
    pub data: BTreeMap<String, LoadedData>,
    /// One model run per instance, in `analysis.instances` order.
    pub models: Vec<ModelRun>,
    /// Each `[[store]]` as read, in `analysis.stores` order.
    pub stores: Vec<OpenedStore>,
    /// Similarity matrices by (instance a, instance b).
    pub cka: BTreeMap<(usize, usize), Comparison>,
    /// Seconds spent computing the similarity matrices.
    pub cka_seconds: f64,
    /// Layer-identification results (`[identify]`).
    pub identify: Vec<super::identify_run::IdentifyRow>,
    /// Membership-inference audits (`[privacy]`).
    pub privacy: Vec<super::privacy_run::PrivacyRun>,
    /// Accuracy under attack and clean-vs-adversarial layer CKA, one entry per attacked network
    /// (`[robustness]`).
    pub robustness: Vec<super::robustness_run::ModelRobustness>,
    /// Compression experiments (`[compression]`; empty without the section).
    pub compression: super::compression_run::CompressionRun,
    /// When the run started (wall clock).
    pub started: std::time::SystemTime,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// How the run was invoked.
    pub args: RunArgs,
}

/// What every stage of a run reads: the analysis, its data, the cache, and where to report.
struct Stage<'a> {
    a: &'a Analysis,
    data: &'a BTreeMap<String, LoadedData>,
    cache: &'a Cache,
    /// Ignore the cache (`--force`).
    force: bool,
    p: &'a dyn Progress,
}

fn load_data(a: &Analysis, p: &dyn Progress) -> Result<BTreeMap<String, LoadedData>> {
    let mut out = BTreeMap::new();
    for (key, d) in &a.data {
        if !a.instances.iter().any(|i| &i.data == key) {
            continue;
        }
        let t = Instant::now();
        let splits = train::load_data(&d.source, d.label.as_deref(), d.train_limit, p)
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
        logits: inst.logits,
        precision: inst.precision,
        train: inst.train.clone(),
        limit: d.train_limit,
        out,
    }
}

struct Planned {
    key: String,
    store_key: String,
    collector: String,
    needs_training: bool,
}

/// `e` with its errors about a setting worded as the `[cka]` keys that set them (the runner is
/// the front end of spec settings; the CLI words the rest, its own options, as flags).
pub(super) fn in_cka(e: anyhow::Error) -> anyhow::Error {
    setting::reworded(e, &|s| format!("[cka] {}", s.key()))
}

/// The GPU that collects MLP activations: the spec's device, which is the GPU's float engine
/// (`None`: the CPU); convolutional networks collect on the CPU.
fn collector_gpu(a: &Analysis) -> Result<Option<Arc<Gpu>>> {
    if a.instances
        .iter()
        .any(|i| i.architecture == Architecture::Mlp)
    {
        crate::gpu::resolve(a.cka.device).map_err(in_cka)
    } else {
        Ok(None)
    }
}

/// Every instance's cache keys and whether it trains now (each model key once), logged.
fn plan(s: &Stage, gpu: Option<&Arc<Gpu>>) -> Result<Vec<Planned>> {
    let mut plan: Vec<Planned> =
        s.a.instances
            .iter()
            .map(|inst| plan_one(s, inst, gpu))
            .collect::<Result<_>>()?;
    // Two families that differ only in name produce the same models: train each key once.
    for i in 0..plan.len() {
        if plan[..i].iter().any(|q| q.key == plan[i].key) {
            plan[i].needs_training = false;
        }
    }
    let n_train = plan.iter().filter(|x| x.needs_training).count();
    s.p.log(&format!(
        "{}: {} models ({} to train, {} cached), {} pair(s) compared, float twins for [{}]; cache {}",
        s.a.name,
        plan.len(),
        n_train,
        plan.len() - n_train,
        s.a.compare.len(),
        s.a.twins.join(", "),
        s.cache.root.display()
    ));
    Ok(plan)
}

/// One instance's model and store keys. A float network's activations on a GPU differ from the
/// CPU's at f32 rounding, so the store's key names where it was collected: a run on another
/// device never reuses them as if they were its own.
fn plan_one(s: &Stage, inst: &Instance, gpu: Option<&Arc<Gpu>>) -> Result<Planned> {
    let d = &s.data[&inst.data];
    let spec = &s.a.data[&inst.data];
    let key = cache::model_key(inst, &d.fingerprint);
    let collector = match gpu {
        Some(g) if inst.architecture == Architecture::Mlp => {
            format!("cuda {} {}", g.info.name, g.arch)
        }
        _ => "cpu".to_string(),
    };
    let store_key = cache::store_key(
        &key,
        &d.fingerprint,
        spec.collect_split,
        spec.collect_limit,
        s.a.cka.activations,
        &collector,
    );
    let needs_training = s.force
        || !s.cache.has_model(&key).map_err(|e| {
            SettingError::within(
                Setting::Force,
                format!(
                    "the cached model of {} ({}; delete it or rebuild it with ",
                    inst.name,
                    s.cache.model(&key).display()
                ),
                ")",
            )
            .because(e)
        })?;
    Ok(Planned {
        key,
        store_key,
        collector,
        needs_training,
    })
}

/// Train the models the cache lacks, `jobs` at a time; the first failure stops the queue.
fn train_missing(s: &Stage, plan: &[Planned], jobs: usize) -> Result<Vec<f64>> {
    let todo: Vec<usize> = (0..plan.len())
        .filter(|&i| plan[i].needs_training)
        .collect();
    let mut seconds = vec![0.0; plan.len()];
    if todo.is_empty() {
        return Ok(seconds);
    }
    let overall = s.p.task("models trained", "models", todo.len() as u64);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let times: Mutex<Vec<(usize, f64)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, todo.len()) {
            scope.spawn(|| loop {
                if abort.load(Ordering::SeqCst) {
                    return;
                }
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { return };
                match train_one(s, plan, i) {
                    Ok(secs) => {
                        if let Ok(mut v) = times.lock() {
                            v.push((i, secs));
                        }
                        overall.inc(1);
                    }
                    Err(e) => {
                        abort.store(true, Ordering::SeqCst);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    overall.finish();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    for (i, secs) in times.into_inner().unwrap_or_default() {
        seconds[i] = secs;
    }
    Ok(seconds)
}

/// Train instance `i` into the cache, with a task of its own that shows each epoch; logs its
/// accuracy and returns the seconds it took.
fn train_one(s: &Stage, plan: &[Planned], i: usize) -> Result<f64> {
    let inst = &s.a.instances[i];
    let pb = s.p.task(&inst.name, "steps", 0);
    let t = Instant::now();
    let args = train_args(inst, s.a, s.cache.model(&plan[i].key));
    let result = train::train_on(&args, &s.data[&inst.data].splits, &*pb, &mut |e| {
        pb.set_message(&format!(
            "epoch {} test acc {:.2}%",
            e.epoch,
            100.0 * e.test_accuracy
        ));
    });
    pb.finish();
    let tr = result.with_context(|| format!("training {}", inst.name))?;
    let secs = t.elapsed().as_secs_f64();
    s.p.log(&format!(
        "trained {}: train accuracy {:.2}%, test accuracy {:.2}% ({:.1} s)",
        inst.name,
        100.0 * tr.card.train_accuracy,
        100.0 * tr.card.test_accuracy,
        secs
    ));
    Ok(secs)
}

/// Activations: one store per model, cached under the model's key and the examples; MLPs
/// collect on `gpu` when there is one.
fn collect_all(
    s: &Stage,
    plan: &[Planned],
    train_seconds: &[f64],
    gpu: Option<&Arc<Gpu>>,
) -> Result<Vec<ModelRun>> {
    let mut models = Vec::with_capacity(plan.len());
    let bar = s.p.task("activations", "models", plan.len() as u64);
    for (i, (inst, pl)) in s.a.instances.iter().zip(plan).enumerate() {
        let path = s.cache.model(&pl.key);
        let (mut net, card) = strata_nn::file::load(&path).map_err(|e| {
            SettingError::within(
                Setting::Force,
                format!(
                    "loading the cached model of {} ({}; ",
                    inst.name,
                    path.display()
                ),
                " or deleting it rebuilds it)",
            )
            .because(e)
        })?;
        let store = s.cache.store(&pl.store_key);
        let fresh = plan[..i].iter().any(|q| q.store_key == pl.store_key)
            || (!s.force && !trained_now(plan, i));
        let store_cached = fresh && s.cache.has_store(&pl.store_key);
        let t = Instant::now();
        if !store_cached {
            let gpu = if net.is_mlp() { gpu } else { None };
            collect_one(s, inst, &mut net, &card, &path, &store, gpu)?;
        }
        bar.inc(1);
        models.push(ModelRun {
            key: pl.key.clone(),
            path,
            store,
            card,
            cached: !trained_now(plan, i),
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
    bar.finish();
    Ok(models)
}

/// Collect the activations of `inst`'s model (`net`, with its card, from `path`) into `store`,
/// replacing what is there, with a task of its own.
fn collect_one(
    s: &Stage,
    inst: &Instance,
    net: &mut Net,
    card: &ModelCard,
    path: &Path,
    store: &Path,
    gpu: Option<&Arc<Gpu>>,
) -> Result<()> {
    cache::evict(store);
    if let Some(dir) = store.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let d = &s.data[&inst.data];
    let spec = &s.a.data[&inst.data];
    let ex = Examples {
        data: &spec.source,
        label: spec.label.as_deref(),
        split: spec.collect_split.name(),
        limit: spec.collect_limit,
    };
    let pre = s.a.cka.activations == ActivationPoint::Pre;
    let pb = s.p.task(&inst.name, "examples", d.collect.len() as u64);
    train::collect_on(net, card, path, &d.collect, ex, pre, store, gpu, &*pb)
        .with_context(|| format!("collecting the activations of {}", inst.name))?;
    pb.finish();
    Ok(())
}

/// The `[[store]]` files, read and checked before anything trains: each one opens, has the
/// layers it names, and holds as many examples as the other side of each of its pairs.
fn open_stores(a: &Analysis, data: &BTreeMap<String, LoadedData>) -> Result<Vec<OpenedStore>> {
    let stores = super::spec::open_stores(a)?;
    let n_inst = a.instances.len();
    let examples = |i: usize| match i.checked_sub(n_inst) {
        Some(k) => stores[k].examples,
        None => data[&a.instances[i].data].collect.len(),
    };
    super::spec::check_examples(a, &examples)?;
    Ok(stores)
}

/// The activation file of side `i` of a comparison, and the layers to compare (`None`: all).
fn side(a: &Analysis, models: &[ModelRun], i: usize) -> (PathBuf, Option<Vec<String>>) {
    match a.store_side(i) {
        Some(s) => (s.file.clone(), s.layers.clone()),
        None => (models[i].store.clone(), None),
    }
}

/// Comparisons: explicit pairs, each quantized model vs its float twin, float seed vs seed.
fn compare_all(
    a: &Analysis,
    models: &[ModelRun],
    p: &dyn Progress,
) -> Result<BTreeMap<(usize, usize), Comparison>> {
    let mut pairs: Vec<(usize, usize)> = a.compare.clone();
    pairs.extend(twin_pairs(a));
    pairs.sort();
    pairs.dedup();
    let bar = p.task("CKA", "pairs", pairs.len() as u64);
    let mut cka = BTreeMap::new();
    for (i, j) in pairs {
        let what = format!("{} vs {}", a.side_name(i), a.side_name(j));
        let r = compare_pair(a, side(a, models, i), side(a, models, j), &what, p)?;
        cka.insert((i, j), r);
        bar.inc(1);
    }
    bar.finish();
    Ok(cka)
}

/// The spec's measure (CKA unless `[cka] measure` names a baseline) between two stores, each
/// with the layers to compare (`None`: all); its warnings are logged as `what`'s.
fn compare_pair(
    a: &Analysis,
    (sa, la): (PathBuf, Option<Vec<String>>),
    (sb, lb): (PathBuf, Option<Vec<String>>),
    what: &str,
    p: &dyn Progress,
) -> Result<Comparison> {
    // Each comparison is one step of the run's own task: its inner tasks stay hidden.
    let inner = WarningsOnly(p);
    if let Some(m) = a.cka.measure.as_deref().filter(|m| *m != "cka") {
        let sig = a.cka.significance();
        let r = crate::measure::run_with(&sa, &sb, m, &la, &lb, &sig, &inner)
            .with_context(|| what.to_string())?;
        for w in &r.notes {
            p.log(&format!("warning: {what}: {w}"));
        }
        return Ok(Comparison {
            unit_range: !matches!(r.measure, "hsic" | "procrustes"),
            measure: r.measure.to_string(),
            layers_a: r.layers_a,
            layers_b: r.layers_b,
            values: r.values,
            n: r.n,
            seconds: r.seconds,
            significance: r.significance,
        });
    }
    let args = CkaArgs {
        a: sa,
        b: sb,
        kernel: a.cka.kernel(),
        estimator: Some(a.cka.estimator()),
        batch_size: a.cka.batch_size,
        layers_a: la,
        layers_b: lb,
        device: a.cka.device,
    };
    let r = compare::run_with(&args, &a.cka.significance(), &inner)
        .map_err(in_cka)
        .with_context(|| what.to_string())?;
    for w in r.warnings() {
        p.log(&format!("warning: {what}: {w}"));
    }
    Ok(Comparison {
        measure: r.measure_name(),
        unit_range: true,
        layers_a: r.layers_a,
        layers_b: r.layers_b,
        values: r.matrix.values,
        n: r.matrix.n,
        seconds: r.seconds,
        significance: r.significance,
    })
}

/// Run a parsed analysis, reporting to `progress`.
pub fn run(
    a: Analysis,
    spec_path: &Path,
    spec_text: String,
    args: RunArgs,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let started = std::time::SystemTime::now();
    let t0 = Instant::now();
    let data = load_data(&a, progress)?;
    check_architectures(&a, &data, args.jobs)?;
    super::robustness_run::check_data(&a, &data)?;
    let stores = open_stores(&a, &data)?;
    let cache = Cache::new(&args.cache);
    cache.sweep();
    let gpu = collector_gpu(&a)?;
    let s = Stage {
        a: &a,
        data: &data,
        cache: &cache,
        force: args.force,
        p: progress,
    };
    let plan = plan(&s, gpu.as_ref())?;
    let train_seconds = train_missing(&s, &plan, args.jobs)?;
    let models = collect_all(&s, &plan, &train_seconds, gpu.as_ref())?;
    let t = Instant::now();
    let cka = compare_all(&a, &models, progress)?;
    let cka_seconds = t.elapsed().as_secs_f64();
    let mut o = Outcome {
        analysis: a,
        spec_text,
        spec_path: spec_path.to_path_buf(),
        data,
        models,
        stores,
        cka,
        cka_seconds,
        identify: Vec::new(),
        privacy: Vec::new(),
        robustness: Vec::new(),
        compression: Default::default(),
        started,
        seconds: 0.0,
        args,
    };
    o.identify = super::identify_run::run(&o, progress)?;
    o.privacy = super::privacy_run::run(&o, progress)?;
    o.robustness = super::robustness_run::run(&o, progress)?;
    o.compression = super::compression_run::run(&o, progress)?;
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
            logits: Default::default(),
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
    // `jobs` models train at once: the heaviest of them must fit together.
    let together = jobs.clamp(1, a.instances.len().max(1)) as u64;
    if together > 1 {
        strata_data::memory::check_fits(
            heaviest.saturating_mul(together),
            format!("training {together} models at once"),
        )
        .map_err(|e| SettingError::new(Setting::Jobs, format!(" {jobs}: {e}; use fewer")))?;
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
pub fn run_file(spec: &Path, args: RunArgs, progress: &dyn Progress) -> Result<(Outcome, PathBuf)> {
    let text = std::fs::read_to_string(spec)
        .map_err(|e| anyhow!("cannot read the analysis spec {}: {e}", spec.display()))?;
    let name = spec
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_text(&text, spec, &name, args, progress)
}

/// [`run_file`] for spec text already in memory (`strata quickstart` runs the embedded spec).
pub fn run_text(
    text: &str,
    spec: &Path,
    name: &str,
    args: RunArgs,
    progress: &dyn Progress,
) -> Result<(Outcome, PathBuf)> {
    let a = super::spec::parse(text, &spec.display().to_string(), name)?;
    if args.jobs == 0 {
        return Err(SettingError::new(Setting::Jobs, " must be at least 1").into());
    }
    let data_files: Vec<PathBuf> = a
        .data
        .values()
        .filter_map(|d| d.source.strip_prefix("csv:").map(PathBuf::from))
        .chain(a.stores.iter().map(|s| s.file.clone()))
        .chain(super::compression_run::input_files(a.compression.as_ref()))
        .collect();
    super::ownership::check_target(&args.reports, &a.name, spec, &data_files, &args.cache)?;
    super::report::remove_stale(&args.reports, &a.name);
    let out = run(a, spec, text.to_string(), args, progress)?;
    let dir = super::report::write(&out)?;
    Ok((out, dir))
}
