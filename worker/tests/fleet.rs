//! The autoscaling loop, exercised against the real broker (issue 16): a
//! scaler applies what KEDA's RabbitMQ scaler and the HPA do with
//! `config/deploy/keda.yaml` (queue length, ready and unacknowledged, read
//! through the management API; replicas = ceil(length / target) with target
//! = the worker's concurrency; min and max replicas; scale-up at most doubling
//! a period; scale-in only after a stabilization window, one replica a
//! period) to a fleet of real `monteur worker` processes on one queue. Scaling
//! out starts processes; scaling in sends SIGTERM, and the worker finishes
//! what it holds and exits, as Kubernetes stops a pod.
//!
//! A burst of 200 short jobs, then idle. Every job must complete exactly
//! once (one `completed` event and one manifest each, no failure, no dead
//! letter), the fleet must reach its maximum under the burst and come back
//! to its minimum once idle. The figures (time to scale out, jobs a minute at
//! each replica count, time to scale in) are printed for docs/BENCHMARKS.md:
//! `cargo test -p monteur-worker --test fleet -- --nocapture`.
//!
//! Times are KEDA's scaled down to a test: polling 1 s (KEDA: 15 s), scale-in
//! window 6 s and one replica per 2 s (keda.yaml: 300 s and one a minute).

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

#[path = "daemon/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Instant;

use harness::*;

const JOBS: usize = 200;
/// Jobs per worker; also KEDA's target value per replica.
const CONCURRENCY: u64 = 2;
const MIN_REPLICAS: usize = 1;
const MAX_REPLICAS: usize = 4;
const POLL: Duration = Duration::from_secs(1);
const SCALE_UP_PERIOD: Duration = Duration::from_secs(1);
const SCALE_DOWN_WINDOW: Duration = Duration::from_secs(6);
const SCALE_DOWN_PERIOD: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(420);

/// What the HPA does with KEDA's metric: the desired count for `length`
/// jobs, within the bounds.
fn desired(length: u64) -> usize {
    (length.div_ceil(CONCURRENCY) as usize).clamp(MIN_REPLICAS, MAX_REPLICAS)
}

/// A 2 s 320x180 H.264 clip with a cut at 1 s: a short job's input.
fn short_clip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("short.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=1",
            "-f",
            "lavfi",
            "-i",
            "smptehdbars=size=320x180:rate=25:duration=1",
            "-filter_complex",
            "[0][1]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the input");
    std::fs::read(&out).unwrap()
}

struct Fleet {
    names: Names,
    env: Vec<(&'static str, &'static str)>,
    running: Vec<Worker>,
    /// SIGTERMed, finishing their jobs.
    draining: Vec<(Worker, Instant)>,
    started: usize,
    drained: Vec<Duration>,
}

impl Fleet {
    fn scale_to(&mut self, n: usize) {
        while self.running.len() < n {
            self.running
                .push(start_worker_on(self.names.clone(), &self.env));
            self.started += 1;
        }
        while self.running.len() > n {
            // The newest goes first, as the deletion-cost sidecar would
            // rank pods that hold no job; any pod can be chosen.
            let w = self.running.pop().unwrap();
            sigterm(&w.child);
            self.draining.push((w, Instant::now()));
        }
    }

    /// Reaps drained workers; each must exit 0.
    fn reap(&mut self) {
        let mut still = Vec::new();
        for (mut w, since) in self.draining.drain(..) {
            match w.child.try_wait().unwrap() {
                Some(status) => {
                    assert_eq!(status.code(), Some(0), "a drained worker's exit");
                    self.drained.push(since.elapsed());
                }
                None => still.push((w, since)),
            }
        }
        self.draining = still;
    }

    fn replicas(&self) -> usize {
        self.running.len()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_scales_the_fleet_out_and_idle_scales_it_in_with_every_job_done_once() {
    let names = names("fleet");
    let mut fleet = Fleet {
        names: names.clone(),
        env: vec![("MONTEUR_WORKER__CONCURRENCY", "2")],
        running: Vec::new(),
        draining: Vec::new(),
        started: 0,
        drained: Vec::new(),
    };
    fleet.scale_to(MIN_REPLICAS);
    let (_conn, ch, mut events) = listen(&names).await;
    put_input(&names, "short.mp4", &short_clip(), Encryption::Client).await;
    // The management API knows the queue once its statistics came round.
    let waited = Instant::now();
    while rabbitmq::queue_depth(&names.queue).await.is_none() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the management API never reported the queue (is it enabled? scripts/services.sh)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ids = job_ids("f", JOBS);
    let burst = Instant::now();
    for id in &ids {
        let j = job(&names, id, "short.mp4", Encryption::Client);
        publish(&ch, &names.queue, envelope(&j, signer()).as_bytes()).await;
    }
    let published = burst.elapsed();

    let mut completed: HashMap<String, usize> = HashMap::new();
    let mut completions: Vec<(Instant, usize)> = Vec::new();
    let mut failures: Vec<Value> = Vec::new();
    // Poll times with the replica count then, and the metric.
    let mut timeline: Vec<(Duration, usize, Option<u64>)> = Vec::new();
    let mut first_seen: Option<Duration> = None;
    let mut first_out: Option<Duration> = None;
    let mut at_max: Option<Duration> = None;
    let mut drained_at: Option<Duration> = None;
    let mut back_to_min: Option<Duration> = None;
    let mut last_up = Instant::now() - SCALE_UP_PERIOD;
    let mut last_down = Instant::now() - SCALE_DOWN_PERIOD;
    // (when, desired) over the scale-in window: the HPA takes the highest.
    let mut recommendations: Vec<(Instant, usize)> = Vec::new();
    let mut idle_polls = 0;
    loop {
        assert!(burst.elapsed() < LIMIT, "the fleet did not finish in time");
        // Events until the next poll.
        let poll_at = Instant::now() + POLL;
        while let Some(left) = poll_at.checked_duration_since(Instant::now()) {
            let Ok(Some(Ok(d))) = tokio::time::timeout(left, events.next()).await else {
                break;
            };
            d.ack(BasicAckOptions::default()).await.unwrap();
            let e: Value = serde_json::from_slice(&d.data).unwrap();
            match e["event"].as_str() {
                Some("completed") => {
                    let id = e["job_id"].as_str().unwrap_or_default().to_string();
                    *completed.entry(id).or_default() += 1;
                    completions.push((Instant::now(), fleet.replicas()));
                }
                Some("failed") => failures.push(e),
                _ => {}
            }
        }
        fleet.reap();
        let depth = rabbitmq::queue_depth(&names.queue).await;
        let now = Instant::now();
        let t = burst.elapsed();
        timeline.push((t, fleet.replicas(), depth.map(|(r, u)| r + u)));
        if let Some((ready, unacked)) = depth {
            let length = ready + unacked;
            if length > 0 && first_seen.is_none() {
                first_seen = Some(t);
            }
            let want = desired(length);
            recommendations.push((now, want));
            recommendations.retain(|(at, _)| now.duration_since(*at) <= SCALE_DOWN_WINDOW);
            let current = fleet.replicas();
            if want > current && now.duration_since(last_up) >= SCALE_UP_PERIOD {
                // At most double per period (keda.yaml: 100% per 30 s).
                fleet.scale_to(want.min(current * 2).max(current + 1));
                last_up = now;
                first_out.get_or_insert(t);
            } else if want < current {
                // The stabilization window: the highest recommendation in it.
                let stable = recommendations.iter().map(|r| r.1).max().unwrap_or(current);
                if stable < current && now.duration_since(last_down) >= SCALE_DOWN_PERIOD {
                    fleet.scale_to(current - 1);
                    last_down = now;
                }
            }
            if fleet.replicas() == MAX_REPLICAS {
                at_max.get_or_insert(t);
            }
            let done = completed.len() == JOBS;
            if done && length == 0 {
                drained_at.get_or_insert(t);
            }
            if done && fleet.replicas() == MIN_REPLICAS && fleet.draining.is_empty() {
                back_to_min.get_or_insert(t);
                // A few quiet polls at the minimum: idle stays down.
                idle_polls += 1;
                if idle_polls >= 3 {
                    break;
                }
            }
        }
    }

    // Exactly once: every job one completion, nothing failed or dead-lettered.
    assert!(failures.is_empty(), "failed jobs: {failures:?}");
    let twice: Vec<_> = completed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    let missing: Vec<_> = ids.iter().filter(|i| !completed.contains_key(*i)).collect();
    assert!(missing.is_empty(), "never completed: {missing:?}");
    assert_eq!(ready_messages(&ch, &names.dlq).await, 0, "dead letters");
    assert_eq!(ready_messages(&ch, &names.queue).await, 0);
    assert_one_manifest_and_output_set_each(&names, &ids).await;
    // The fleet scaled out under the burst and back in once idle.
    let at_max = at_max.expect("the fleet never reached its maximum");
    let back_to_min = back_to_min.expect("the fleet never came back to its minimum");
    assert!(fleet.started > MAX_REPLICAS - MIN_REPLICAS);
    assert_eq!(fleet.drained.len(), fleet.started - MIN_REPLICAS);

    // Jobs a minute at each replica count: completions while at that count
    // over the time spent there (polls, from the first completion on).
    let first_done = completions.first().map(|c| c.0).unwrap();
    let last_done = completions.last().map(|c| c.0).unwrap();
    let mut time_at: BTreeMap<usize, f64> = BTreeMap::new();
    for w in timeline.windows(2) {
        let (a, b) = (burst + w[0].0, burst + w[1].0);
        let (a, b) = (a.max(first_done), b.min(last_done));
        if b > a {
            *time_at.entry(w[1].1).or_default() += (b - a).as_secs_f64();
        }
    }
    let mut jobs_at: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, r) in &completions {
        *jobs_at.entry(*r).or_default() += 1;
    }
    eprintln!(
        "fleet: {JOBS} jobs published in {published:?}; concurrency {CONCURRENCY}, replicas {MIN_REPLICAS}..{MAX_REPLICAS}"
    );
    eprintln!(
        "burst seen by the management API after {:.1} s; first scale-out {:.1} s; at {MAX_REPLICAS} replicas {:.1} s",
        first_seen.unwrap_or_default().as_secs_f64(),
        first_out.unwrap_or_default().as_secs_f64(),
        at_max.as_secs_f64()
    );
    eprintln!("| replicas | seconds there (working) | jobs completed | jobs/minute |");
    eprintln!("|---:|---:|---:|---:|");
    for (r, s) in &time_at {
        let n = jobs_at.get(r).copied().unwrap_or(0);
        eprintln!("| {r} | {s:.1} | {n} | {:.0} |", n as f64 / s * 60.0);
    }
    let drain_max = fleet.drained.iter().max().copied().unwrap_or_default();
    eprintln!(
        "queue empty and every job done at {:.1} s; back to {MIN_REPLICAS} replica at {:.1} s; \
         {} workers drained on SIGTERM (longest {:.1} s), each exit 0",
        drained_at.unwrap_or_default().as_secs_f64(),
        back_to_min.as_secs_f64(),
        fleet.drained.len(),
        drain_max.as_secs_f64()
    );
    eprintln!(
        "{} completed once each, 0 twice, 0 lost, 0 failed, 0 dead letters",
        completed.len()
    );
    drop(fleet);
    cleanup(&names).await;
}
