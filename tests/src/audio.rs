//! Speech and silence made with the command-line tools setup installs
//! (`sox`, `espeak-ng`), for tests and benchmarks that need audio with known
//! content and known timing. Every file is 16 kHz mono 16-bit, what the
//! speech models read.

use std::path::Path;
use std::process::Command;

/// Runs `program` with `args`, or says why it failed.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let ok = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("{program}: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("{program} {args:?} failed"))
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Seconds of audio in a file, as `soxi` reads them.
pub fn seconds(wav: &Path) -> Result<f64, String> {
    let out = Command::new("soxi")
        .arg("-D")
        .arg(wav)
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("soxi {}: {e}", wav.display()))
}

/// `secs` of digital silence.
pub fn silence(dst: &Path, secs: f64) -> Result<(), String> {
    run(
        "sox",
        &[
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            s(dst),
            "trim",
            "0",
            &format!("{secs:.3}"),
        ],
    )
}

/// `src` as 16 kHz mono 16-bit; with `trim_level` (a `sox silence` level
/// such as `1%`), cut to where its sound starts and ends.
pub fn convert(src: &Path, dst: &Path, trim_level: Option<&str>) -> Result<(), String> {
    let mut args = vec![s(src), "-r", "16000", "-c", "1", "-b", "16", s(dst)];
    if let Some(level) = trim_level {
        args.extend([
            "silence", "1", "0.005", level, "reverse", "silence", "1", "0.005", level, "reverse",
        ]);
    }
    run("sox", &args)
}

/// `text` spoken by espeak-ng in `voice` at `speed` words a minute, as 16
/// kHz mono in `dst` (trimmed to its sound with `trim_level`).
pub fn speak(
    text: &str,
    voice: &str,
    speed: u32,
    dst: &Path,
    trim_level: Option<&str>,
) -> Result<(), String> {
    let raw = dst.with_extension("raw.wav");
    run(
        "espeak-ng",
        &["-v", voice, "-s", &speed.to_string(), "-w", s(&raw), text],
    )?;
    convert(&raw, dst, trim_level)
}

/// `parts` joined end to end into `dst`.
pub fn join(parts: &[&Path], dst: &Path) -> Result<(), String> {
    let mut args: Vec<&str> = parts.iter().map(|p| s(p)).collect();
    args.push(s(dst));
    run("sox", &args)
}
