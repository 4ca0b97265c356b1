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
