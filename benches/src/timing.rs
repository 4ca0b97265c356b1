//! Wall-clock timing, best of N: the least disturbed run is the closest to what
//! the code costs.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `f` `runs` times (at least once) and returns the shortest time and
/// the last result.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let start = Instant::now();
    let mut last = f();
    let mut best = start.elapsed();
    for _ in 1..runs {
        let start = Instant::now();
        last = f();
        best = best.min(start.elapsed());
    }
    (best, last)
}

/// Times an external command, best of `runs`; `None` if it failed to run.
pub fn best_of_command(runs: usize, program: &str, args: &[&str]) -> Option<Duration> {
    let (best, ok) = best_of(runs, || {
        Command::new(program)
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    ok.then_some(best)
}

/// One external process's best run, measured by `/usr/bin/time`.
#[derive(Debug, Clone)]
pub struct Timed {
    pub wall_s: f64,
    pub rss_mib: f64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` `runs` times under `/usr/bin/time` and keeps the fastest
/// run: wall time and peak RSS are then measured the same way for every tool.
pub fn process(runs: usize, program: &str, args: &[String]) -> Result<Timed, String> {
    process_env(runs, program, args, &[])
}

/// [`process`] with extra environment variables.
pub fn process_env(
    runs: usize,
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Timed, String> {
    let mut best: Option<Timed> = None;
    for _ in 0..runs.max(1) {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "MONTEUR_TIME %e %M", program])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("{program} failed: {stderr}"));
        }
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("MONTEUR_TIME "))
            .ok_or("no timing line (is /usr/bin/time installed?)")?;
        let mut it = line.split_whitespace().map(|v| v.parse::<f64>().ok());
        let (Some(Some(wall_s)), Some(Some(rss_kb))) = (it.next(), it.next()) else {
            return Err(format!("unreadable timing line: {line}"));
        };
        let t = Timed {
            wall_s,
            rss_mib: rss_kb / 1024.0,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        };
        if best.as_ref().is_none_or(|b| t.wall_s < b.wall_s) {
            best = Some(t);
        }
    }
    best.ok_or_else(|| "no run".into())
}
