//! What operators see: a real Prometheus scraping the worker, the deletion-
//! cost sidecar.

use crate::harness::*;

fn url_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks Prometheus for `query` and sums the values of the result.
async fn prom_query(port: u16, query: &str) -> Option<f64> {
    let (status, body) =
        http_get(port, &format!("/api/v1/query?query={}", url_encode(query))).await;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.is_empty() {
        return None;
    }
    Some(
        result
            .iter()
            .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
            .sum(),
    )
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_worker_and_promtool_accepts_the_metrics() {
    let http = free_port();
    let http_addr = format!("127.0.0.1:{http}");
    let w = start_worker_with("prom", &[("MONTEUR_WORKER__HTTP_ADDR", http_addr.as_str())]);
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: monteur\n    static_configs:\n      - targets: ['{http_addr}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (apt-get install prometheus) must be installed"),
    );
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "clip.mkv", &input, Encryption::Client).await;
    let mut j = job(&n, "prom-1", "clip.mkv", Encryption::Client);
    j.tasks = vec!["scenes".into(), "autocut".into()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ch.basic_publish(
        "".into(),
        n.queue.as_str().into(),
        BasicPublishOptions::default(),
        envelope(&j, signer()).as_bytes(),
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_timestamp(now),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(next_event(&mut events).await["event"], "completed");
    publish(&ch, &n.queue, b"not a job").await;
    assert_eq!(next_event(&mut events).await["reason"], "malformed");

    // Prometheus scrapes every second; wait for the job to show.
    let wanted = [
        (
            r#"monteur_jobs_total{kind="process",outcome="completed"}"#,
            1.0,
        ),
        (
            r#"monteur_jobs_total{kind="invalid",outcome="refused"}"#,
            1.0,
        ),
        (r#"monteur_dead_letters_total{reason="malformed"}"#, 1.0),
        (r#"monteur_tasks_total{task="scenes",outcome="done"}"#, 1.0),
        (
            r#"monteur_stage_duration_seconds_count{stage="decode"}"#,
            1.0,
        ),
        (r#"monteur_queue_wait_seconds_count"#, 1.0),
        (r#"monteur_frames_analysed_total{backend="cpu"}"#, 60.0),
        (r#"monteur_outputs_total{format="edl"}"#, 1.0),
        (r#"monteur_clip_duration_seconds_count"#, 1.0),
        (r#"monteur_audit_events_total{action="key.use"}"#, 1.0),
        (r#"monteur_jobs_capacity"#, 1.0),
        (r#"monteur_broker_connected"#, 1.0),
        (r#"up{job="monteur"}"#, 1.0),
    ];
    let mut last = Vec::new();
    for _ in 0..60 {
        last.clear();
        for (q, want) in wanted {
            let got = prom_query(prom_port, q).await;
            if got != Some(want) {
                last.push(format!("{q} = {got:?}, want {want}"));
            }
        }
        if last.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(last.is_empty(), "Prometheus did not see: {last:?}");
    let bytes_in = prom_query(prom_port, "monteur_input_bytes_total")
        .await
        .unwrap();
    assert!(bytes_in >= input.len() as f64, "{bytes_in}");

    // promtool lints the exposition (names, units, help texts).
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(lint.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(w);
    cleanup(&n).await;
}

/// The deletion-cost sidecar's script, as `config/deploy/worker.yaml` ships it.
fn deletion_cost_script() -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/deploy/worker.yaml"),
    )
    .unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == "Deployment" {
            for c in v["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .unwrap()
            {
                if c["name"] == "deletion-cost" {
                    return c["args"][0].as_str().unwrap().to_string();
                }
            }
        }
    }
    panic!("no deletion-cost sidecar in worker.yaml");
}

/// The costs the sidecar has set so far (from the `kubectl` stand-in's log).
fn costs_set(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("pod-deletion-cost=").nth(1).map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deletion_cost_sidecar_follows_the_jobs_in_flight() {
    let http = free_port();
    let http_addr = format!("127.0.0.1:{http}");
    let w = start_worker_with(
        "deletioncost",
        &[("MONTEUR_WORKER__HTTP_ADDR", http_addr.as_str())],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    // The shipped script, run as the pod would run it; only the Kubernetes
    // API is absent, so `kubectl` is a stand-in that records its arguments.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kubectl.log");
    let stub = dir.path().join("kubectl");
    std::fs::write(
        &stub,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sidecar = Command::new("bash")
        .arg("-c")
        .arg(deletion_cost_script())
        .env("PATH", path)
        .env("POD_NAME", "monteur-worker-abc12")
        .env("METRICS_PORT", http.to_string())
        .env("INTERVAL_S", "0.2")
        .spawn()
        .unwrap();
    let wait_for = |want: &'static str, after: usize| {
        let log = log.clone();
        async move {
            for _ in 0..150 {
                let costs = costs_set(&log);
                if costs.len() > after && costs[after..].iter().any(|c| c == want) {
                    return costs;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("cost {want} never set: {:?}", costs_set(&log));
        }
    };
    // Idle: cost 0, set once (unchanged values are not sent again).
    let idle = wait_for("0", 0).await;
    submit(&n, &ch, TALK, &job_ids("busy-", 1)).await;
    // Busy: 1000 while the job runs, back to 0 after it.
    let busy = wait_for("1000", idle.len()).await;
    assert_eq!(next_event(&mut events).await["event"], "completed");
    let done = wait_for("0", busy.len()).await;
    let _ = sidecar.kill();
    let _ = sidecar.wait();
    assert_eq!(done, ["0", "1000", "0"], "one annotation per change");
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(
        first.starts_with("annotate pod monteur-worker-abc12 --overwrite "),
        "{first}"
    );
    drop(w);
    cleanup(&n).await;
}
