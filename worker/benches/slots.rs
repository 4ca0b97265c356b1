//! Jobs per minute by slot count, in one run, each row against the 1-slot
//! figure of its kind:
//! - 20 short jobs (scenes on a 2 s clip: a fifth of a second each, much of
//!   it waiting on storage and the broker);
//! - the same 20 with every job holding its slot 2 s first (the `stage.hold`
//!   failpoint: a job that waits rather than computes), whose limit is
//!   exactly N times the 1-slot rate;
//! - 6 decode-bound jobs (scenes on 24 s of 720p H.264), limited by the cores.
//!
//! Needs the test services (`scripts/services.sh start`). Run:
//! `cargo bench -p monteur-worker --bench slots`. The worker binary is built
//! with the test failpoints (the worker's dev-dependency on itself).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/daemon/harness.rs"]
mod harness;

use std::time::Instant;

use harness::*;

const HOLD_S: f64 = 2.0;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Short,
    Hold,
    Decode,
}

impl Kind {
    fn jobs(self) -> usize {
        if self == Kind::Decode { 6 } else { 20 }
    }

    fn fixture(self) -> &'static str {
        if self == Kind::Decode {
            TALK
        } else {
            "inputs/testsrc.mkv"
        }
    }
}

/// Seconds from the first publish to the last completion.
async fn run(slots: usize, kind: Kind) -> f64 {
    let hold = kind == Kind::Hold;
    let tag = format!("slots{slots}{}", kind.jobs());
    let ids = job_ids("s", kind.jobs());
    let holds: Vec<String> = ids
        .iter()
        .map(|id| format!("stage.hold={id}:{HOLD_S}"))
        .collect();
    let slots_s = slots.to_string();
    let holds = holds.join(",");
    let mut env = vec![("MONTEUR_WORKER__CONCURRENCY", slots_s.as_str())];
    if hold {
        env.push(("MONTEUR_FAILPOINTS", holds.as_str()));
    }
    let w = start_worker_with(&tag, &env);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    // The input is stored once, before the clock starts.
    let name = kind.fixture().rsplit('/').next().unwrap();
    let input = std::fs::read(fixtures::path(kind.fixture())).unwrap();
    put_input(&n, name, &input, Encryption::Client).await;
    let signer = signer();
    let started = Instant::now();
    for id in &ids {
        let j = job(&n, id, name, Encryption::Client);
        publish(&ch, &n.queue, envelope(&j, signer).as_bytes()).await;
    }
    let mut done = 0;
    while done < kind.jobs() {
        let e = next_event(&mut events).await;
        assert_eq!(e["event"], "completed", "{e}");
        done += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(w);
    cleanup(&n).await;
    seconds
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{cores} cores; jobs client-side encrypted, one worker per row\n");
    for kind in [Kind::Short, Kind::Hold, Kind::Decode] {
        let what = match kind {
            Kind::Short => "20 short jobs (2 s clip)",
            Kind::Hold => "20 short jobs, each holding its slot 2 s first",
            Kind::Decode => "6 decode-bound jobs (24 s of 720p)",
        };
        println!("| slots | {what}: s | jobs/min | vs 1 slot |");
        println!("|---:|---:|---:|---:|");
        let mut one = 0.0;
        for slots in [1usize, 2, 4] {
            let s = run(slots, kind).await;
            let rate = kind.jobs() as f64 * 60.0 / s;
            if slots == 1 {
                one = rate;
            }
            println!("| {slots} | {s:.1} | {rate:.1} | {:.2}x |", rate / one);
        }
        println!();
    }
    println!(
        "Limits: held jobs overlap fully (N slots, Nx); decode-bound jobs cannot pass the {cores} cores."
    );
}
