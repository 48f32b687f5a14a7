//! A minimal strata-zip front end with no dependency beyond the crate, so it builds quickly for
//! another target CPU: the determinism check (tests/zip-cross-cpu.sh) encodes with one build and
//! decodes with the other. Users want `strata zip`.
//!
//! Usage: stz c IN OUT [MODEL] | stz d IN OUT [THREADS]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = || -> Result<(), String> {
        let (mode, input, output) = match args.as_slice() {
            [m, i, o, ..] => (m.as_str(), i, o),
            _ => return Err("usage: stz c IN OUT [MODEL] | stz d IN OUT [THREADS]".into()),
        };
        let data = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
        let t = std::time::Instant::now();
        let out = match mode {
            "c" => {
                let mut opts = strata_zip::Options::default();
                if let Some(m) = args.get(3) {
                    opts.model = strata_zip::ModelSpec::parse(m).map_err(|e| e.to_string())?;
                }
                strata_zip::compress(&data, &opts).map_err(|e| e.to_string())?
            }
            "d" => {
                let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
                strata_zip::decompress_with_progress(&data, threads, &|_| {})
                    .map_err(|e| e.to_string())?
            }
            _ => return Err(format!("unknown mode {mode:?}: c or d")),
        };
        std::fs::write(output, &out).map_err(|e| format!("{output}: {e}"))?;
        eprintln!(
            "{} -> {} bytes ({:.4} bits/byte) in {:.2}s",
            data.len(),
            out.len(),
            8.0 * out.len().min(data.len()) as f64 / out.len().max(data.len()).max(1) as f64,
            t.elapsed().as_secs_f64()
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stz: {e}");
            ExitCode::FAILURE
        }
    }
}
