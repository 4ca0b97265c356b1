//! A job's life under the supervisor: slots, lanes, deadlines, cancels,
//! progress, signals.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_running_job_finish_then_exits_zero() {
    let mut w = start_worker("term");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &job_ids("s", 2)).await;
    wait_started(&mut events).await;
    let pid = w.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let e = next_event(&mut events).await;
    assert_eq!(
        (e["event"].as_str(), e["job_id"].as_str()),
        (Some("completed"), Some("s0"))
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = w.child.wait().unwrap();
        (status, w)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "exit status after SIGTERM");
    // The second job was never taken: it waits in the queue for the next worker.
    assert_eq!(ready_messages(&ch, &n.queue).await, 1);
    drop(status);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigint_exits_at_once_and_the_job_goes_back() {
    let mut w = start_worker("int2");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &job_ids("i", 1)).await;
    wait_started(&mut events).await;
    let pid = w.child.id().to_string();
    let int = || Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(int().success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(int().success());
    let began = std::time::Instant::now();
    let (code, w) = tokio::task::spawn_blocking(move || {
        let status = w.child.wait().unwrap();
        (status.code(), w)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130), "forced exit status");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "did not exit at once"
    );
    // The unfinished job is back in the queue for another worker.
    let mut count = 0;
    for _ in 0..50 {
        count = ready_messages(&ch, &n.queue).await;
        if count == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 1, "job not handed back");
    drop(w);
    cleanup(&n).await;
}

/// Events of the test's jobs with the time each arrived, until `until` says
/// it has seen enough.
async fn events_until(
    events: &mut lapin::Consumer,
    mut until: impl FnMut(&[(std::time::Instant, Value)]) -> bool,
) -> Vec<(std::time::Instant, Value)> {
    let mut seen = Vec::new();
    while !until(&seen) {
        let e = next_any(events).await;
        seen.push((std::time::Instant::now(), e));
    }
    seen
}

fn when(seen: &[(std::time::Instant, Value)], event: &str, id: &str) -> Option<std::time::Instant> {
    seen.iter()
        .find(|(_, e)| e["event"] == event && e["job_id"] == id)
        .map(|(t, _)| *t)
}

fn has(seen: &[(std::time::Instant, Value)], event: &str, id: &str) -> bool {
    when(seen, event, id).is_some()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_decode_hangs_is_stopped_at_its_deadline_and_the_next_starts() {
    let w = start_worker_with(
        "hang",
        &[
            // Reads of h0's input block forever once its decode starts.
            ("MONTEUR_FAILPOINTS", "read.hang=h0"),
            ("MONTEUR_WORKER__JOB_DEADLINE_S", "4"),
            // Only the deadline may end the hang, not the stall detector.
            ("MONTEUR_ANALYSIS__STALL_TIMEOUT_S", "600"),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    // n1 is short (a 2 s clip): it too must finish inside the 4 s deadline,
    // on a loaded machine as well.
    submit(&n, &ch, TALK, &["h0".to_string()]).await;
    submit(&n, &ch, "inputs/testsrc.mkv", &["n1".to_string()]).await;
    let seen = events_until(&mut events, |s| has(s, "completed", "n1")).await;
    let (started, failed) = (
        when(&seen, "started", "h0").unwrap(),
        when(&seen, "failed", "h0").unwrap(),
    );
    let next = when(&seen, "started", "n1").unwrap();
    let failed_event = &seen.iter().find(|(_, e)| e["event"] == "failed").unwrap().1;
    assert_eq!(
        failed_event["reason"], "deadline_exceeded",
        "{failed_event}"
    );
    // The deadline counts from the start; the next job starts within 2 s of it.
    let stopped = next.duration_since(started);
    eprintln!(
        "h0 started, n1 started {:.2} s later (deadline 4 s); failed event after {:.2} s",
        stopped.as_secs_f64(),
        failed.duration_since(started).as_secs_f64()
    );
    // h0's `started` event leaves a moment after its slot (and deadline)
    // began, more so on a loaded machine: a second of slack below.
    assert!(stopped >= Duration::from_secs(3), "{stopped:?}");
    assert!(stopped < Duration::from_secs(6), "{stopped:?}");
    // Nothing of h0 in scratch (n1 is done too, so nothing at all), nothing
    // uploaded for it, and it is dead-lettered with its reason.
    let mut files = scratch_files(&n);
    for _ in 0..20 {
        if files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        files = scratch_files(&n);
    }
    assert!(files.is_empty(), "scratch left: {files:?}");
    assert!(keys_of(&format!("{}out/h0/", n.prefix)).await.is_empty());
    let dead = dead_letters(&ch, &n, 1).await;
    assert_eq!(
        dead,
        vec![("deadline_exceeded".to_string(), "h0".to_string())]
    );
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_slots_run_two_jobs_at_once_each_completed_once() {
    let w = start_worker_with(
        "slots",
        &[
            ("MONTEUR_WORKER__CONCURRENCY", "2"),
            // Each job's input reads at 2 s per MiB (2.3 MiB): a real decode
            // of at least 3 s, within run_process.
            (
                "MONTEUR_FAILPOINTS",
                "read.throttle=p0:2000,read.throttle=p1:2000",
            ),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let ids = job_ids("p", 2);
    submit(&n, &ch, TALK, &ids).await;
    let seen = events_until(&mut events, |s| {
        has(s, "completed", "p0") && has(s, "completed", "p1")
    })
    .await;
    let first_done = when(&seen, "completed", "p0")
        .unwrap()
        .min(when(&seen, "completed", "p1").unwrap());
    let last_start = when(&seen, "started", "p0")
        .unwrap()
        .max(when(&seen, "started", "p1").unwrap());
    assert!(
        last_start < first_done,
        "both must start before either completes"
    );
    for id in &ids {
        let count = |ev: &str| {
            seen.iter()
                .filter(|(_, e)| e["event"] == ev && e["job_id"] == id.as_str())
                .count()
        };
        assert_eq!((count("started"), count("completed")), (1, 1), "{id}");
        let took = when(&seen, "completed", id)
            .unwrap()
            .duration_since(when(&seen, "started", id).unwrap());
        assert!(took >= Duration::from_secs(3), "{id} took {took:?}");
    }
    assert_one_manifest_and_output_set_each(&n, &ids).await;
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_past_the_drain_deadline_hands_the_job_back_to_another_worker() {
    let mut w = start_worker_with(
        "drain",
        &[
            ("MONTEUR_FAILPOINTS", "stage.hold=d0:60"),
            ("MONTEUR_WORKER__DRAIN_DEADLINE_S", "3"),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &job_ids("d", 1)).await;
    wait_started(&mut events).await;
    let pid = w.child.id().to_string();
    let began = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (code, w) = tokio::task::spawn_blocking(move || {
        let status = w.child.wait().unwrap();
        (status.code(), w)
    })
    .await
    .unwrap();
    let took = began.elapsed();
    eprintln!("SIGTERM with a 60 s job and a 3 s drain: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(8), "exit took {took:?}");
    // Back in the queue, and done once by the next worker. The broker
    // requeues a closed connection's unacknowledged job on its own time:
    // give it a few seconds rather than reading the count at once.
    let waited = std::time::Instant::now();
    while ready_messages(&ch, &n.queue).await != 1 && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready_messages(&ch, &n.queue).await, 1, "not handed back");
    let other = start_worker_on(n.clone(), &[]);
    let seen = events_until(&mut events, |s| has(s, "completed", "d0")).await;
    assert!(
        !seen.iter().any(|(_, e)| e["event"] == "failed"),
        "{seen:?}"
    );
    assert_one_manifest_and_output_set_each(&n, &job_ids("d", 1)).await;
    drop(other);
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancels_stop_a_running_job_drop_a_queued_one_and_ignore_unknown_ones() {
    // Cancel markers are kept per tenant and job id (job ids are unique
    // within a tenant): ids of this run only.
    let run = nanos().to_string();
    let [r0, q0, z0, ok0, nobody] = ["r", "q", "z", "ok", "nobody"].map(|p| format!("{p}{run}"));
    let hold = format!("stage.hold={r0}:60");
    let w = start_worker_with("cancel", &[("MONTEUR_FAILPOINTS", hold.as_str())]);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &[r0.clone(), q0.clone()]).await;
    wait_started(&mut events).await;
    // q0 waits behind r0 (one slot): cancelled before it starts, it never
    // does.
    cancel(&ch, &n, &q0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // r0 runs: stopped within 2 s of its cancel.
    let sent = std::time::Instant::now();
    cancel(&ch, &n, &r0).await;
    let seen = events_until(&mut events, |s| {
        has(s, "cancelled", &r0) && has(s, "cancelled", &q0)
    })
    .await;
    let took = when(&seen, "cancelled", &r0).unwrap().duration_since(sent);
    eprintln!("running job cancelled {took:?} after the cancel was published");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!has(&seen, "started", &q0), "q0 started: {seen:?}");
    // A cancel for a job nobody has: harmless.
    cancel(&ch, &n, &nobody).await;
    // A job whose cancel came first is dropped when it arrives.
    cancel(&ch, &n, &z0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    submit(&n, &ch, TALK, &[z0.clone(), ok0.clone()]).await;
    let seen = events_until(&mut events, |s| has(s, "completed", &ok0)).await;
    assert!(has(&seen, "cancelled", &z0), "{seen:?}");
    assert!(!has(&seen, "started", &z0), "z0 started: {seen:?}");
    // Cancelled jobs leave no outputs and no manifest, only their marker.
    for id in [&r0, &q0, &z0] {
        let keys = keys_of(&format!("{}out/{id}/", n.prefix)).await;
        assert!(keys.is_empty(), "{id}: {keys:?}");
        let marker = keys_of(&format!("_monteur/cancelled/acme/{id}")).await;
        assert_eq!(marker.len(), 1, "{id}");
    }
    // Each recorded cancel is audited once.
    let audit = drain_json(&ch, &n.audit_q).await;
    let cancels = audit.iter().filter(|a| a["action"] == "job.cancel").count();
    assert_eq!(cancels, 4, "{audit:?}");
    assert!(scratch_files(&n).is_empty(), "{:?}", scratch_files(&n));
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_events_arrive_every_few_seconds_with_increasing_percent() {
    // About 30 s: the input is read at 10 s per MiB (2.3 MiB).
    let w = start_worker_with(
        "progress",
        &[("MONTEUR_FAILPOINTS", "read.throttle=g0:10000")],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &job_ids("g", 1)).await;
    let seen = events_until(&mut events, |s| has(s, "completed", "g0")).await;
    let start = when(&seen, "started", "g0").unwrap();
    let end = when(&seen, "completed", "g0").unwrap();
    let progress: Vec<(std::time::Instant, f64, String)> = seen
        .iter()
        .filter(|(_, e)| e["event"] == "progress")
        .map(|(t, e)| {
            (
                *t,
                e["percent"].as_f64().unwrap(),
                e["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let took = end.duration_since(start);
    eprintln!(
        "{} progress events over {:.1} s: {:?}",
        progress.len(),
        took.as_secs_f64(),
        progress
            .iter()
            .map(|p| (p.1, p.2.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(
        took >= Duration::from_secs(20),
        "too quick to judge: {took:?}"
    );
    let mut marks = vec![start];
    marks.extend(progress.iter().map(|p| p.0));
    marks.push(end);
    let gap = marks
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap();
    assert!(gap <= Duration::from_secs(5), "a {gap:?} silence");
    assert!(
        progress.windows(2).all(|w| w[1].1 > w[0].1),
        "percent must increase"
    );
    assert!(progress.iter().any(|p| p.2 == "decode"));
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_one_job_leaves_the_next_jobs_options_untouched() {
    let w = start_worker_with("options", &[("MONTEUR_FAILPOINTS", "job.panic=a0")]);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("autocut/example.mp4")).unwrap();
    put_input(&n, "talk.mp4", &input, Encryption::Client).await;
    let signer = signer();
    let with = |id: &str, target: Option<f64>| {
        let mut j = job(&n, id, "talk.mp4", Encryption::Client);
        j.tasks = vec!["autocut".into()];
        j.options.target_s = target;
        envelope(&j, signer)
    };
    // a0 asks for a 5 s edit and panics; b0 asks nothing; c0 asks 5 s.
    for body in [
        with("a0", Some(5.0)),
        with("b0", None),
        with("c0", Some(5.0)),
    ] {
        publish(&ch, &n.queue, body.as_bytes()).await;
    }
    let seen = events_until(&mut events, |s| {
        has(s, "completed", "c0") && has(s, "completed", "b0")
    })
    .await;
    let failed = seen
        .iter()
        .find(|(_, e)| e["job_id"] == "a0" && e["event"] == "failed")
        .map(|(_, e)| e.clone())
        .unwrap();
    assert_eq!(failed["reason"], "worker_panic");
    let kept = |id: &'static str| {
        let prefix = n.prefix.clone();
        async move {
            let plan: Value = serde_json::from_slice(
                &get_output(
                    &format!("{prefix}out/{id}/cutplan.json"),
                    Encryption::Client,
                )
                .await,
            )
            .unwrap();
            plan["kept_s"].as_f64().unwrap()
        }
    };
    let (b, c) = (kept("b0").await, kept("c0").await);
    eprintln!("after a panicking 5 s job: b0 (no option) keeps {b:.2} s, c0 (5 s) keeps {c:.2} s");
    // auto-editor's edit of this clip keeps about 17.6 s; fitted, about 5.
    assert!(b > 12.0, "b0 inherited a0's target: {b}");
    assert!(c <= 6.0, "c0's own option was not applied: {c}");
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interactive_job_sent_after_ten_batch_jobs_starts_next() {
    let w = start_worker_with("lanes", &[("MONTEUR_FAILPOINTS", "stage.hold=b0:2")]);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let batch = job_ids("b", 10);
    submit(&n, &ch, "inputs/testsrc.mkv", &batch).await;
    wait_started(&mut events).await;
    // b0 runs (2 s); the interactive job goes after the nine others.
    let signer = signer();
    let j = job(&n, "i0", "testsrc.mkv", Encryption::Client);
    publish(&ch, &n.interactive, envelope(&j, signer).as_bytes()).await;
    let seen = events_until(&mut events, |s| {
        s.iter().filter(|(_, e)| e["event"] == "completed").count() == 11
    })
    .await;
    let order: Vec<&str> = seen
        .iter()
        .filter(|(_, e)| e["event"] == "started")
        .map(|(_, e)| e["job_id"].as_str().unwrap())
        .collect();
    eprintln!("start order after b0: {order:?}");
    assert_eq!(order.first(), Some(&"i0"), "{order:?}");
    assert_eq!(order.len(), 10);
    drop(w);
    cleanup(&n).await;
}
