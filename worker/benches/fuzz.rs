//! The fuzz loops at full size: `cargo bench -p monteur-worker --bench fuzz`
//! (cases per target from `MONTEUR_FUZZ_CASES`, default 100 000). Prints, per
//! target, the cases, panics (must be 0), wrong answers (must be 0), cases
//! accepted and the rate; exits non-zero on a panic or a wrong answer.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/fuzz_targets.rs"]
mod targets;

fn main() -> std::process::ExitCode {
    let cases: u64 = std::env::var("MONTEUR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    std::panic::set_hook(Box::new(|_| {}));
    println!("| target | cases | panics | wrong | accepted | cases/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut bad = 0;
    for (name, run) in [
        (
            "message parser + Ed25519 verifier",
            targets::verifier as fn(u64, u64) -> targets::Tally,
        ),
        (
            "signed hostile job texts (validation)",
            targets::signed_jobs,
        ),
        (
            "arbitrary-built hostile jobs (validation)",
            targets::arbitrary_jobs,
        ),
        ("encrypted-object header parser", targets::headers),
        ("ranged decryption (1/3 corrupted)", targets::ranges),
    ] {
        let started = std::time::Instant::now();
        let t = run(cases, 0x5eed);
        let rate = t.cases as f64 / started.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {} | {rate:.0} |",
            t.cases, t.panics, t.wrong, t.accepted
        );
        bad += t.panics + t.wrong;
    }
    if bad == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
