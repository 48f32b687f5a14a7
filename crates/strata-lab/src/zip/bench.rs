//! `strata zip bench`: strata-zip beside gzip -9, bzip2 -9, xz -9e and zstd -19, and beside the
//! neural / context-mixing compressors lstm-compress, cmix and nncp where they are on PATH, on the
//! same files in the same run: compressed size, bits per byte (per base for DNA, per symbol for
//! small alphabets), compression and decompression speed, and a round-trip check of every output
//! but the classic tools'.
//!
//! Every program is looked up on a search path the caller may give ([`Baselines::search_path`]),
//! so a test can put a fake tool first without touching this process's environment. Nothing is
//! ever built or downloaded: a tool not found is named in a note ("not on PATH: cmix").

use super::files::{kb_per_s, ratio, symbol_count};
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use strata_zip::Options;

/// What to benchmark.
pub struct BenchArgs {
    /// Files to compress, each benchmarked on its own.
    pub files: Vec<PathBuf>,
    /// strata's compression options.
    pub opts: Options,
    /// With the default set of compressors ([`Baselines::names`] `None`), also run the classic
    /// compressors found on PATH (the neural ones found run either way).
    pub classic: bool,
}

/// Which compressors run beside strata, where to find them, and bounds on the slow ones.
#[derive(Clone, Debug, Default)]
pub struct Baselines {
    /// Programs by name, in order: any of [`baseline_names`]. `None`: the default set, the classic
    /// four (when [`BenchArgs::classic`]) and then lstm-compress, cmix and nncp, each where found.
    /// `Some(vec![])` (or `["none"]`): strata alone.
    pub names: Option<Vec<String>>,
    /// Where to look for the programs, in PATH's syntax; `None`: this process's PATH.
    pub search_path: Option<OsString>,
    /// A neural tool's compression or decompression still running after this long is stopped,
    /// and its row says so (no size). `None`: no limit.
    pub time_limit: Option<Duration>,
    /// Files larger than this many bytes are not given to the neural tools (a note says which).
    pub max_bytes: Option<u64>,
    /// A preprocessing dictionary (e.g. `dictionary/english.dic` from the lstm-compress or cmix
    /// sources) given to lstm-compress and cmix, which take one; `None`: no preprocessing
    /// dictionary.
    pub dictionary: Option<PathBuf>,
}

/// What [`bench_with`] gives back.
#[derive(Clone, Serialize)]
pub struct BenchReport {
    /// One row per compressor per file, strata's first for each file.
    pub rows: Vec<Row>,
    /// Compressors asked for (or in the default set) that are not on the search path.
    pub missing: Vec<String>,
    /// The neural compressors found (and run, on the files within [`Baselines::max_bytes`]).
    pub neural: Vec<String>,
    /// Lines for the reader: tools not found, that neural tools are slow, files left out.
    pub notes: Vec<String>,
}

/// One compressor on one file.
#[derive(Serialize, Clone, Debug)]
#[serde(into = "RowJson")]
pub struct Row {
    /// The file's name.
    pub file: String,
    /// Size of the file, in bytes.
    pub original_bytes: u64,
    /// "byte", "base" or "symbol": what `bits_per_unit` counts.
    pub unit: String,
    /// Units in the file (bytes, bases or symbols: see `unit`).
    pub units: u64,
    /// `strata MODEL`, a classic compressor with its level (`gzip -9`, `xz -9e`, ...), or a
    /// neural tool (`lstm-compress`, `cmix`, `nncp`; `lstm-compress +dict` with a dictionary).
    pub compressor: String,
    /// Compressed size, in bytes; 0 in a failed row (see `error`), which JSON writes as null.
    pub compressed_bytes: u64,
    /// None (JSON null, "n/a" in the tables) for an empty file or a failed row.
    pub bits_per_unit: Option<f64>,
    /// Compression speed, in KB of input per second (0 in a failed row, null in its JSON).
    pub compress_kb_s: f64,
    /// Decompression speed, in KB of original data per second (`None` where not measured).
    pub decompress_kb_s: Option<f64>,
    /// Whether decompression gave back the input (strata and the neural tools; classic tools
    /// are trusted but checked too). `None` in a row stopped by the time limit.
    pub round_trip: Option<bool>,
    /// Why a row has no numbers: the tool failed, its output did not decompress to the input, or
    /// it ran past the time limit. `None` (and absent from JSON) in a measured row.
    pub error: Option<String>,
}

/// [`Row`] as JSON: a failed row's size and speed are null, never a number.
#[derive(Serialize)]
struct RowJson {
    file: String,
    original_bytes: u64,
    unit: String,
    units: u64,
    compressor: String,
    compressed_bytes: Option<u64>,
    bits_per_unit: Option<f64>,
    compress_kb_s: Option<f64>,
    decompress_kb_s: Option<f64>,
    round_trip: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<Row> for RowJson {
    fn from(r: Row) -> Self {
        let failed = r.error.is_some();
        RowJson {
            file: r.file,
            original_bytes: r.original_bytes,
            unit: r.unit,
            units: r.units,
            compressor: r.compressor,
            compressed_bytes: (!failed).then_some(r.compressed_bytes),
            bits_per_unit: r.bits_per_unit,
            compress_kb_s: (!failed).then_some(r.compress_kb_s),
            decompress_kb_s: r.decompress_kb_s,
            round_trip: r.round_trip,
            error: r.error,
        }
    }
}

/// Classic compressors: name, program, arguments to compress stdin to stdout, to decompress.
type Classic = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
const CLASSIC: [Classic; 4] = [
    ("gzip -9", "gzip", &["-9", "-c"], &["-d", "-c"]),
    ("bzip2 -9", "bzip2", &["-9", "-c"], &["-d", "-c"]),
    ("xz -9e", "xz", &["-9e", "-c", "-T1"], &["-d", "-c"]),
    (
        "zstd -19",
        "zstd",
        &["-19", "-c", "-q"],
        &["-d", "-c", "-q"],
    ),
];

/// A neural / context-mixing compressor that reads one file and writes another:
/// `PROGRAM COMPRESS [DICTIONARY] IN OUT`, `PROGRAM DECOMPRESS [DICTIONARY] IN OUT`.
struct FileTool {
    /// The program, also the row's label.
    name: &'static str,
    /// The command that compresses.
    compress: &'static str,
    /// The command that decompresses.
    decompress: &'static str,
    /// Whether it takes a preprocessing dictionary before IN.
    dictionary: bool,
}

/// The neural tools, with their command lines as their sources give them: lstm-compress
/// (github.com/byronknoll/lstm-compress, `src/runner.cpp`: `-c|-d [dictionary] input output`),
/// cmix (github.com/byronknoll/cmix, `src/runner.cpp`: the same), nncp (bellard.org/nncp:
/// `nncp [options] c|d infile outfile`).
const NEURAL: [FileTool; 3] = [
    FileTool {
        name: "lstm-compress",
        compress: "-c",
        decompress: "-d",
        dictionary: true,
    },
    FileTool {
        name: "cmix",
        compress: "-c",
        decompress: "-d",
        dictionary: true,
    },
    FileTool {
        name: "nncp",
        compress: "c",
        decompress: "d",
        dictionary: false,
    },
];

/// Every name [`Baselines::names`] and `[compression] baselines` accept: the classic four, then
/// the neural tools.
pub fn baseline_names() -> Vec<&'static str> {
    CLASSIC
        .iter()
        .map(|c| c.1)
        .chain(NEURAL.iter().map(|t| t.name))
        .collect()
}

/// Whether `name` is a compressor `strata zip bench` can run beside strata.
pub fn is_baseline(name: &str) -> bool {
    baseline_names().contains(&name)
}

/// Whether `name` is one of the neural / context-mixing tools (lstm-compress, cmix, nncp).
pub fn is_neural(name: &str) -> bool {
    NEURAL.iter().any(|t| t.name == name)
}

/// The label `strata zip bench` gives the compressor run as `program` (`xz` -> `xz -9e`,
/// `lstm-compress` -> `lstm-compress`), if it is one of [`baseline_names`].
pub fn classic_label(program: &str) -> Option<&'static str> {
    CLASSIC
        .iter()
        .find(|c| c.1 == program)
        .map(|c| c.0)
        .or_else(|| NEURAL.iter().find(|t| t.name == program).map(|t| t.name))
}

/// Where `program` is on `search_path` (PATH's syntax; `None`: this process's PATH): the first
/// executable file of that name. A name with a path separator is taken as a path.
pub fn find_program(program: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if Path::new(program).components().count() > 1 {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    let path = match search_path {
        Some(p) => p.to_os_string(),
        None => std::env::var_os("PATH")?,
    };
    std::env::split_paths(&path)
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .flat_map(|d| {
            let mut names = vec![d.join(program)];
            if cfg!(windows) {
                names.push(d.join(format!("{program}.exe")));
            }
            names
        })
        .find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        m.is_file()
    }
}

/// Whether `p` is on this process's PATH (an executable file; see [`find_program`]).
pub fn program_exists(p: &str) -> bool {
    find_program(p, None).is_some()
}

fn pipe(program: &Path, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    let shown = program.display();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    Ok(out.stdout)
}

fn kb_s(bytes: u64, seconds: f64) -> f64 {
    kb_per_s(bytes, seconds)
}

/// A rate for the tables: four decimals, or "n/a" where there is none.
fn rate_text(r: Option<f64>) -> String {
    r.map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into())
}

/// One compressor on some bytes, measured as `strata zip bench` measures it.
pub struct ClassicRun {
    /// The compressed size, in bytes.
    pub compressed_bytes: u64,
    /// Seconds compressing took (the program's run, from the first byte in to the last out).
    pub compress_seconds: f64,
    /// Seconds decompressing took.
    pub decompress_seconds: f64,
    /// Whether decompression gave back the input.
    pub round_trip: bool,
}

/// Compress `data` with `program` (one of [`baseline_names`]: a classic compressor at the level
/// [`classic_label`] names, or a neural tool through temp files) found on this process's PATH,
/// and decompress it again; an error when `program` is not one of them, cannot be run, or fails.
pub fn run_classic(program: &str, data: &[u8]) -> Result<ClassicRun> {
    run_baseline(program, data, &Baselines::default())
}

/// [`run_classic`] with the search path, time limit and dictionary of `how` (its `names` and
/// `max_bytes` are not used); a neural tool that fails or runs past the limit is an error.
pub fn run_baseline(program: &str, data: &[u8], how: &Baselines) -> Result<ClassicRun> {
    if !is_baseline(program) {
        bail!(
            "{program} is not one of the compressors strata zip bench runs ({})",
            baseline_names().join(", ")
        );
    }
    let exe = find_program(program, how.search_path.as_deref())
        .with_context(|| format!("{program} is not on PATH"))?;
    if let Some(c) = CLASSIC.iter().find(|c| c.1 == program) {
        return run_pipe(c, &exe, data);
    }
    let Some(tool) = NEURAL.iter().find(|t| t.name == program) else {
        bail!("{program} is not a compressor strata zip bench runs");
    };
    match run_file_tool(tool, &exe, data, how)? {
        Outcome::Done(run) => Ok(run),
        Outcome::Failed { reason, .. } => bail!("{program}: {reason}"),
    }
}

fn run_pipe(c: &Classic, exe: &Path, data: &[u8]) -> Result<ClassicRun> {
    let (_, _, cargs, dargs) = c;
    let t = Instant::now();
    let out = pipe(exe, cargs, data)?;
    let c = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = pipe(exe, dargs, &out)?;
    let d = t.elapsed().as_secs_f64();
    Ok(ClassicRun {
        compressed_bytes: out.len() as u64,
        compress_seconds: c,
        decompress_seconds: d,
        round_trip: back == data,
    })
}

/// How a neural tool's run ended.
enum Outcome {
    /// Both ways ran; `round_trip` says whether the output decoded to the input.
    Done(ClassicRun),
    /// It exited with an error, wrote nothing, or ran past the time limit (`timed_out`).
    Failed { reason: String, timed_out: bool },
}

/// How one run of a program ended.
enum Exit {
    Ok,
    Failed(ExitStatus),
    TimedOut,
}

/// Runs `exe ARGS` in `dir` with no input and its output discarded (these tools print progress),
/// stopping it after `limit`.
fn run_limited(exe: &Path, args: &[OsString], dir: &Path, limit: Option<Duration>) -> Result<Exit> {
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let status = match limit {
        None => child.wait()?,
        Some(limit) => {
            let start = Instant::now();
            loop {
                if let Some(s) = child.try_wait()? {
                    break s;
                }
                if start.elapsed() >= limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(Exit::TimedOut);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    Ok(if status.success() {
        Exit::Ok
    } else {
        Exit::Failed(status)
    })
}

/// A folder of its own in the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "strata-bench-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `tool` (found at `exe`) on `data`: the bytes to a temp file, compressed to another,
/// decompressed to a third, compared with `data`. An error only where the temp files cannot be
/// written or the program cannot be started; the tool's own failures are an [`Outcome`].
fn run_file_tool(tool: &FileTool, exe: &Path, data: &[u8], how: &Baselines) -> Result<Outcome> {
    let exe = std::path::absolute(exe)?;
    let dictionary = match (&how.dictionary, tool.dictionary) {
        (Some(d), true) => Some(std::path::absolute(d)?),
        _ => None,
    };
    let dir = TempDir::new(tool.name)?;
    let input = dir.0.join("input");
    let packed = dir.0.join("packed");
    let back = dir.0.join("unpacked");
    std::fs::write(&input, data).with_context(|| format!("cannot write {}", input.display()))?;
    let command = |cmd: &str, from: &Path, to: &Path| {
        let mut a: Vec<OsString> = vec![cmd.into()];
        a.extend(dictionary.iter().map(|d| d.clone().into_os_string()));
        a.push(from.into());
        a.push(to.into());
        a
    };
    let limit_text = |l: Option<Duration>| l.map(|l| l.as_secs_f64()).unwrap_or(0.0);
    let mut seconds = [0.0; 2];
    let steps = [
        (tool.compress, &input, &packed, "compressing"),
        (tool.decompress, &packed, &back, "decompressing"),
    ];
    for (k, (cmd, from, to, doing)) in steps.into_iter().enumerate() {
        let t = Instant::now();
        let exit = run_limited(&exe, &command(cmd, from, to), &dir.0, how.time_limit)?;
        seconds[k] = t.elapsed().as_secs_f64();
        let reason = match exit {
            Exit::Ok if to.is_file() => continue,
            Exit::Ok => format!("{doing}: `{} {cmd}` wrote no output", tool.name),
            Exit::Failed(status) => format!("{doing}: `{} {cmd}` failed ({status})", tool.name),
            Exit::TimedOut => format!(
                "{doing} stopped at the time limit ({} s)",
                limit_text(how.time_limit)
            ),
        };
        return Ok(Outcome::Failed {
            reason,
            timed_out: matches!(exit, Exit::TimedOut),
        });
    }
    let compressed_bytes = std::fs::metadata(&packed)?.len();
    let got = std::fs::read(&back).with_context(|| format!("cannot read {}", back.display()))?;
    Ok(Outcome::Done(ClassicRun {
        compressed_bytes,
        compress_seconds: seconds[0],
        decompress_seconds: seconds[1],
        round_trip: got == data,
    }))
}

/// What `bits_per_unit` counts for `data` under `alphabet` (`byte`, `base` for DNA, `symbol` for
/// a small alphabet), and how many of them it holds.
pub fn units_of(data: &[u8], alphabet: strata_zip::AlphabetChoice) -> (&'static str, u64) {
    let alphabet = strata_zip::alphabet::detect(data, alphabet);
    let unit = match alphabet {
        strata_zip::Alphabet::Dna => "base",
        strata_zip::Alphabet::Symbols(_) => "symbol",
        strata_zip::Alphabet::Bits | strata_zip::Alphabet::Bytes => "byte",
    };
    let units = if unit == "byte" {
        data.len() as u64
    } else {
        symbol_count(data, &alphabet)
    };
    (unit, units)
}

/// Runs the benchmark with the default set of compressors on this process's PATH (see
/// [`bench_with`]); logs one line per result as it comes.
pub fn bench(args: &BenchArgs, progress: &dyn Progress) -> Result<Vec<Row>> {
    Ok(bench_with(args, &Baselines::default(), progress)?.rows)
}

/// The compressors `how` asks for, checked: known names, each once, `none` alone.
fn wanted(args: &BenchArgs, how: &Baselines) -> Result<Vec<&'static str>> {
    let Some(names) = &how.names else {
        let classic = CLASSIC.iter().map(|c| c.1).filter(|_| args.classic);
        return Ok(classic.chain(NEURAL.iter().map(|t| t.name)).collect());
    };
    let names: Vec<&str> = names.iter().map(|n| n.trim()).collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    let all = baseline_names();
    let mut out: Vec<&'static str> = Vec::new();
    for name in names {
        let Some(known) = all.iter().find(|a| **a == name) else {
            bail!(
                "unknown compressor '{name}'; use {} (or none)",
                all.join(", ")
            );
        };
        if out.contains(known) {
            bail!("compressor '{name}' is named twice");
        }
        out.push(known);
    }
    Ok(out)
}

/// Runs the benchmark: strata on each file, then each compressor `how` asks for that is on the
/// search path (those that are not are named in a note). A neural tool's failure, a mismatch
/// on decompressing, or its time limit gives a row with `error` set and no size; logs one line
/// per result as it comes.
pub fn bench_with(
    args: &BenchArgs,
    how: &Baselines,
    progress: &dyn Progress,
) -> Result<BenchReport> {
    if args.files.is_empty() {
        bail!("no files given: strata zip bench FILE...");
    }
    let wanted = wanted(args, how)?;
    if let Some(d) = &how.dictionary {
        if !d.is_file() {
            bail!("dictionary {} not found", d.display());
        }
    }
    let mut found: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut missing = Vec::new();
    for name in wanted {
        match find_program(name, how.search_path.as_deref()) {
            Some(exe) => found.push((name, exe)),
            None => missing.push(name.to_string()),
        }
    }
    let neural: Vec<String> = found
        .iter()
        .filter(|f| is_neural(f.0))
        .map(|f| f.0.to_string())
        .collect();
    let mut notes = Vec::new();
    let mut note = |line: String| {
        progress.log(&line);
        notes.push(line);
    };
    if !missing.is_empty() {
        note(format!("not on PATH: {}", missing.join(", ")));
    }
    if !neural.is_empty() {
        let bounds = match (how.time_limit, how.max_bytes) {
            (None, None) => "no time limit or size cap set".to_string(),
            (t, m) => [
                t.map(|t| format!("each run stopped after {} s", t.as_secs_f64())),
                m.map(|m| format!("files over {m} bytes left out")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        };
        note(format!(
            "{}: neural / context-mixing compressors, a few KB/s each way (about a minute per \
             100 KB), so this can be slow ({bounds})",
            neural.join(", ")
        ));
    }
    let suffix = if how.dictionary.is_some() {
        " +dict"
    } else {
        ""
    };
    let mut rows = Vec::new();
    for path in &args.files {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (unit, units) = units_of(&data, args.opts.alphabet);
        let name = file_label(path);
        let row = |compressor: String, size: u64, c: f64, d: Option<f64>, rt: Option<bool>| Row {
            file: name.clone(),
            original_bytes: data.len() as u64,
            unit: unit.into(),
            units,
            compressor,
            compressed_bytes: size,
            bits_per_unit: ratio(8.0 * size as f64, units as f64),
            compress_kb_s: kb_s(data.len() as u64, c),
            decompress_kb_s: d.map(|d| kb_s(data.len() as u64, d)),
            round_trip: rt,
            error: None,
        };
        let failed = |compressor: String, error: String, rt: Option<bool>| Row {
            file: name.clone(),
            original_bytes: data.len() as u64,
            unit: unit.into(),
            units,
            compressor,
            compressed_bytes: 0,
            bits_per_unit: None,
            compress_kb_s: 0.0,
            decompress_kb_s: None,
            round_trip: rt,
            error: Some(error),
        };
        let t = Instant::now();
        let packed = strata_zip::compress(&data, &args.opts)?;
        let c = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let back = strata_zip::decompress(&packed);
        let d = t.elapsed().as_secs_f64();
        let ok = matches!(&back, Ok(b) if *b == data);
        let r = row(
            format!("strata {}", args.opts.model.name()),
            packed.len() as u64,
            c,
            Some(d),
            Some(ok),
        );
        report(&r, progress);
        rows.push(r);
        for (program, exe) in &found {
            let r = if let Some(classic) = CLASSIC.iter().find(|c| c.1 == *program) {
                let c = run_pipe(classic, exe, &data)?;
                row(
                    classic.0.to_string(),
                    c.compressed_bytes,
                    c.compress_seconds,
                    Some(c.decompress_seconds),
                    Some(c.round_trip),
                )
            } else if let Some(tool) = NEURAL.iter().find(|t| t.name == *program) {
                if let Some(max) = how.max_bytes.filter(|m| data.len() as u64 > *m) {
                    note(format!(
                        "{program}: {name} left out ({} bytes, over the size cap of {max})",
                        data.len()
                    ));
                    continue;
                }
                let label = format!("{}{}", tool.name, if tool.dictionary { suffix } else { "" });
                match run_file_tool(tool, exe, &data, how)? {
                    Outcome::Done(c) if c.round_trip => row(
                        label,
                        c.compressed_bytes,
                        c.compress_seconds,
                        Some(c.decompress_seconds),
                        Some(true),
                    ),
                    Outcome::Done(_) => failed(
                        label,
                        "decompressing did not give back the input".into(),
                        Some(false),
                    ),
                    Outcome::Failed { reason, timed_out } => {
                        failed(label, reason, (!timed_out).then_some(false))
                    }
                }
            } else {
                continue;
            };
            report(&r, progress);
            rows.push(r);
        }
    }
    Ok(BenchReport {
        rows,
        missing,
        neural,
        notes,
    })
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn report(r: &Row, progress: &dyn Progress) {
    let what = match &r.error {
        Some(e) => match r.round_trip {
            Some(false) => format!("FAILED: {e}"),
            _ => e.clone(),
        },
        None => format!(
            "{:>10} bytes  {} bits/{}",
            r.compressed_bytes,
            rate_text(r.bits_per_unit),
            r.unit
        ),
    };
    progress.log(&format!("  {:<24} {:<34} {what}", r.file, r.compressor));
}

/// Per compressor over all files: total original bytes, compressed bytes, bits per original
/// byte (None when all files are empty) and compression seconds. Failed rows (no size) are left
/// out, and the compressor's name says so (`cmix (2 of 3 files)`).
pub fn totals(rows: &[Row]) -> Vec<(String, u64, u64, Option<f64>, f64)> {
    let mut out: Vec<(String, u64, u64, Option<f64>, f64)> = Vec::new();
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for r in rows {
        let measured = r.error.is_none();
        let secs = if measured {
            r.original_bytes as f64 / 1000.0 / r.compress_kb_s.max(1e-12)
        } else {
            0.0
        };
        let (orig, comp) = if measured {
            (r.original_bytes, r.compressed_bytes)
        } else {
            (0, 0)
        };
        match out.iter().position(|t| t.0 == r.compressor) {
            Some(k) => {
                let t = &mut out[k];
                t.1 += orig;
                t.2 += comp;
                t.4 += secs;
                counts[k].0 += usize::from(measured);
                counts[k].1 += 1;
            }
            None => {
                out.push((r.compressor.clone(), orig, comp, None, secs));
                counts.push((usize::from(measured), 1));
            }
        }
    }
    for (t, (measured, all)) in out.iter_mut().zip(counts) {
        t.3 = ratio(8.0 * t.2 as f64, t.1 as f64);
        if measured < all {
            t.0 = format!("{} ({measured} of {all} files)", t.0);
        }
    }
    out
}

/// What the round-trip column says of a row.
fn verdict(r: &Row) -> String {
    match (r.round_trip, &r.error) {
        (Some(true), _) => "ok".into(),
        (Some(false), None) => "FAILED".into(),
        (Some(false), Some(e)) => format!("FAILED: {e}"),
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    }
}

/// The results as a Markdown table (also what the terminal shows), with totals.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| file | original | compressor | compressed | bits/unit | compress KB/s | decompress KB/s | round trip |\n\
         |---|---:|---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let (size, speed) = if r.error.is_some() {
            (String::new(), String::new())
        } else {
            (
                r.compressed_bytes.to_string(),
                format!("{:.1}", r.compress_kb_s),
            )
        };
        s += &format!(
            "| {} | {} | {} | {} | {} /{} | {} | {} | {} |\n",
            r.file,
            r.original_bytes,
            r.compressor,
            size,
            rate_text(r.bits_per_unit),
            r.unit,
            speed,
            r.decompress_kb_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default(),
            verdict(r)
        );
    }
    let files = rows
        .iter()
        .map(|r| r.file.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if files > 1 {
        s += "\n| all files | original | compressed | bits/byte | compress KB/s |\n|---|---:|---:|---:|---:|\n";
        for (name, orig, comp, bpb, secs) in totals(rows) {
            s += &format!(
                "| {name} | {orig} | {comp} | {} | {:.1} |\n",
                rate_text(bpb),
                kb_s(orig, secs)
            );
        }
    }
    s
}

/// [`markdown`], then each note as a paragraph of its own.
pub fn markdown_with_notes(rows: &[Row], notes: &[String]) -> String {
    let mut s = markdown(rows);
    for n in notes {
        s += &format!("\n{n}\n");
    }
    s
}

/// The results as CSV (a failed row's size and speeds are empty).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from("file,original_bytes,unit,units,compressor,compressed_bytes,bits_per_unit,compress_kb_s,decompress_kb_s,round_trip\n");
    for r in rows {
        let (size, speed) = if r.error.is_some() {
            (String::new(), String::new())
        } else {
            (
                r.compressed_bytes.to_string(),
                format!("{:.3}", r.compress_kb_s),
            )
        };
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.file,
            r.original_bytes,
            r.unit,
            r.units,
            r.compressor,
            size,
            r.bits_per_unit
                .map(|v| format!("{v:.6}"))
                .unwrap_or_default(),
            speed,
            r.decompress_kb_s
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default(),
            r.round_trip.map(|b| b.to_string()).unwrap_or_default()
        );
    }
    s
}
