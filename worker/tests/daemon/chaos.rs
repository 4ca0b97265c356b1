//! Faults: workers killed, broker connections cut, storage failing, several
//! workers on one queue. Nothing is lost, nothing done twice.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn ten_kill_9s_mid_job_lose_nothing_and_duplicate_nothing() {
    // Redeliveries after each kill count against the delivery limit.
    let mut w = start_worker_with("kill", &[("MONTEUR_WORKER__DELIVERY_LIMIT", "100")]);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    // 24 s of 720p: long enough per job that most kills land mid-job.
    let ids = job_ids("k", 4);
    submit(&n, &ch, TALK, &ids).await;
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut in_flight: std::collections::HashSet<String> = Default::default();
    let (mut kills, mut mid_job) = (0, 0);
    let mut seed: u64 = 0x2545_f491;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while (kills < 10 || done.len() < ids.len()) && std::time::Instant::now() < deadline {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(300 + (seed >> 33) % 900);
        match tokio::time::timeout(wait, events.next()).await {
            Ok(Some(Ok(d))) => {
                d.ack(BasicAckOptions::default()).await.unwrap();
                let e: Value = serde_json::from_slice(&d.data).unwrap();
                let id = e["job_id"].as_str().unwrap().to_string();
                if e["event"] == "progress" {
                    continue;
                }
                if e["event"] == "started" {
                    in_flight.insert(id);
                    continue;
                }
                assert_eq!(e["event"], "completed", "{e}");
                in_flight.remove(&id);
                *done.entry(id).or_default() += 1;
            }
            Ok(other) => panic!("events stream ended: {other:?}"),
            Err(_) if kills < 10 => {
                mid_job += usize::from(!in_flight.is_empty());
                in_flight.clear();
                w.kill_and_restart();
                kills += 1;
            }
            Err(_) => {}
        }
    }
    eprintln!(
        "{kills} kills ({mid_job} with a job in flight); completion events per job: {done:?}"
    );
    assert_eq!(kills, 10);
    // Most kills must land mid-job, or the test proves little.
    assert!(mid_job >= 5, "only {mid_job} kills hit a running job");
    let mut finished: Vec<&String> = done.keys().collect();
    finished.sort();
    assert_eq!(finished, ids.iter().collect::<Vec<_>>(), "lost jobs");
    assert_one_manifest_and_output_set_each(&n, &ids).await;
    // Nothing a killed worker wrote survives in the scratch folder: the next
    // worker to start sweeps it.
    w.kill_and_restart();
    let dead_scratch = || dead_instances(&n);
    let mut leftovers = dead_scratch();
    for _ in 0..100 {
        if leftovers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        leftovers = dead_scratch();
    }
    assert!(
        leftovers.is_empty(),
        "dead workers' scratch left: {leftovers:?}"
    );
    drop(w);
    cleanup(&n).await;
}

/// A TCP relay to the broker whose connections can all be cut at once.
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    /// While set, new connections are dropped at once (broker unreachable).
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start(target: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = tokio::sync::watch::channel(0u64);
        let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_blocked = blocked.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if is_blocked.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut rx = rx.clone();
                // Only cuts after this connection opened close it.
                rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = rx.changed() => {}
                    }
                    // Dropping the halves closes both sockets mid-stream.
                });
            }
        });
        Self { port, cut, blocked }
    }

    fn block(&self, on: bool) {
        self.blocked.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_cuts_resume_consumption_and_prefetch_holds() {
    let relay = Relay::start("127.0.0.1:5672").await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", relay.port);
    let http = free_port();
    let http_addr = format!("127.0.0.1:{http}");
    let mut w = start_worker_with(
        "cut",
        &[
            ("MONTEUR_WORKER__AMQP_URL", url.as_str()),
            ("MONTEUR_WORKER__DELIVERY_LIMIT", "100"),
            ("MONTEUR_WORKER__HTTP_ADDR", http_addr.as_str()),
            ("MONTEUR_WORKER__RECOVERY_STALL_S", "2"),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let ids = job_ids("c", 4);
    submit(&n, &ch, TALK, &ids).await;
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut in_flight: std::collections::HashSet<String> = Default::default();
    let (mut cuts, mut most_in_flight) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while (cuts < 5 || done.len() < ids.len()) && std::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(1500), events.next()).await {
            Ok(Some(Ok(d))) => {
                d.ack(BasicAckOptions::default()).await.unwrap();
                let e: Value = serde_json::from_slice(&d.data).unwrap();
                let id = e["job_id"].as_str().unwrap().to_string();
                if e["event"] == "progress" {
                    continue;
                }
                if e["event"] == "started" {
                    in_flight.insert(id);
                    most_in_flight = most_in_flight.max(in_flight.len());
                    if cuts < 5 {
                        // Cut mid-job: a job takes over a second here.
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        relay.cut_all();
                        // Jobs of the cut connection are redelivered on the next.
                        in_flight.clear();
                        cuts += 1;
                    }
                    continue;
                }
                assert_eq!(e["event"], "completed", "{e}");
                in_flight.remove(&id);
                *done.entry(id).or_default() += 1;
            }
            Ok(other) => panic!("events stream ended: {other:?}"),
            Err(_) => {}
        }
    }
    eprintln!(
        "{cuts} broker cuts; most jobs in flight at once: {most_in_flight}; completions: {done:?}"
    );
    assert_eq!(cuts, 5);
    let mut finished: Vec<&String> = done.keys().collect();
    finished.sort();
    assert_eq!(finished, ids.iter().collect::<Vec<_>>(), "lost jobs");
    assert!(
        most_in_flight <= 1,
        "prefetch 1 broken: {most_in_flight} in flight"
    );
    assert_one_manifest_and_output_set_each(&n, &ids).await;
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let completed = metric(
        &metrics,
        "monteur_jobs_total{kind=\"process\",outcome=\"completed\"}",
    );
    assert!(completed >= ids.len() as f64, "{metrics}");
    assert_eq!(
        metric(&metrics, "monteur_broker_reconnects_total"),
        5.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "monteur_jobs_capacity"), 1.0);

    // An unreachable broker: not ready at once, not alive after the stall limit.
    relay.block(true);
    relay.cut_all();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(http_get(http, "/readyz").await.0, 503);
    assert_eq!(http_get(http, "/healthz").await.0, 503);
    relay.block(false);
    let mut recovered = false;
    for _ in 0..300 {
        if http_get(http, "/healthz").await.0 == 200 && http_get(http, "/readyz").await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "worker did not recover once the broker was back");
    // The worker is still consuming through the relay after the last cut.
    submit(&n, &ch, TALK, &job_ids("after", 1)).await;
    let e = next_event(&mut events).await;
    assert_eq!(
        (e["event"].as_str(), e["job_id"].as_str()),
        (Some("completed"), Some("after0"))
    );
    w.kill_and_restart();
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_a_queue_without_duplicate_work() {
    let first = start_worker("three");
    let n = first.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let others = [
        start_worker_on(n.clone(), &[]),
        start_worker_on(n.clone(), &[]),
    ];
    let ids = job_ids("t", 12);
    submit(&n, &ch, "inputs/testsrc.mkv", &ids).await;
    let (mut started, mut completed): (HashMap<String, usize>, HashMap<String, usize>) =
        Default::default();
    while completed.len() < ids.len() {
        let d = tokio::time::timeout(Duration::from_secs(90), events.next())
            .await
            .expect("no event within 90 s")
            .unwrap()
            .unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
        let e: Value = serde_json::from_slice(&d.data).unwrap();
        let id = e["job_id"].as_str().unwrap().to_string();
        match e["event"].as_str() {
            Some("progress") => {}
            Some("started") => *started.entry(id).or_default() += 1,
            Some("completed") => *completed.entry(id).or_default() += 1,
            _ => panic!("{e}"),
        }
    }
    // Each job was started once and completed once: no worker repeated
    // another's work.
    assert!(started.values().all(|&c| c == 1), "started: {started:?}");
    assert!(
        completed.values().all(|&c| c == 1),
        "completed: {completed:?}"
    );
    assert_one_manifest_and_output_set_each(&n, &ids).await;
    drop(others);
    drop(first);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_faults_are_resumed_or_retried_and_never_corrupt() {
    // More 503s than the SDK's own three attempts, and two bodies cut.
    let relay = S3Relay::start(4, 2).await;
    let endpoint = format!("http://127.0.0.1:{}", relay.port);
    let w = start_worker_with(
        "s3faults",
        &[("MONTEUR_STORAGE__ENDPOINT", endpoint.as_str())],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path(TALK)).unwrap();
    assert!(input.len() > 1 << 20);
    put_input(&n, "talk.mp4", &input, Encryption::Client).await;
    let signer = signer();
    let j = job(&n, "f0", "talk.mp4", Encryption::Client);
    publish(&ch, &n.queue, envelope(&j, signer).as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(
        (e["event"].as_str(), e["job_id"].as_str()),
        (Some("completed"), Some("f0"))
    );
    // The result is the one an undisturbed run gives.
    let scenes: Value = serde_json::from_slice(
        &get_output(
            &format!("{}out/f0/scenes.json", n.prefix),
            Encryption::Client,
        )
        .await,
    )
    .unwrap();
    assert_eq!(scenes["source"]["frames"], 720, "{scenes}");
    assert_one_manifest_and_output_set_each(&n, &["f0".to_string()]).await;
    // Every fault was actually served.
    let ordering = std::sync::atomic::Ordering::SeqCst;
    assert_eq!(
        (relay.left.0.load(ordering), relay.left.1.load(ordering)),
        (0, 0),
        "faults not injected"
    );
    drop(w);
    cleanup(&n).await;
}
