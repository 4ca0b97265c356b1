//! Messages that cannot be replayed or forged, keys with one purpose each,
//! deletion that sticks, data that stays in its region: the security
//! properties held against a real worker, broker and store.

use crate::harness::*;
use monteur_worker::job::{Lift, lift_envelope};

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_foreign_region_messages_never_reach_storage() {
    // Storage through a relay that counts connections: none may be opened.
    let relay = S3Relay::start(0, 0).await;
    let endpoint = format!("http://127.0.0.1:{}", relay.port);
    let w = start_worker_with(
        "expired",
        &[("MONTEUR_STORAGE__ENDPOINT", endpoint.as_str())],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let now = monteur_worker::job::now_s();
    let purge = Purge {
        job_id: "old-purge".into(),
        tenant: "acme".into(),
        region: REGION.into(),
        prefix: n.prefix.clone(),
        stamp: Stamp {
            issued_at: now - 1800,
            expires_at: now - 60,
            nonce: "00112233445566778899aabbccddeeff".into(),
        },
    };
    publish(&ch, &n.queue, purge_envelope(&purge, signer()).as_bytes()).await;
    let mut far = job(&n, "far-away", "clip.mkv", Encryption::Client);
    far.region = "us-east".into();
    publish(&ch, &n.queue, envelope(&far, signer()).as_bytes()).await;
    // Altered after signing: the schema, the key id.
    let good = envelope(
        &job(&n, "altered", "clip.mkv", Encryption::Client),
        signer(),
    );
    let as_purge = good.replace("\"monteur.job.v2\"", "\"monteur.purge.v2\"");
    publish(&ch, &n.queue, as_purge.as_bytes()).await;
    // Another key the workers trust: the signature is checked under it.
    let other_key = good.replace("\"key_id\":\"sig-1\"", "\"key_id\":\"sig-2\"");
    publish(&ch, &n.queue, other_key.as_bytes()).await;
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut events).await;
        assert_eq!(e["event"], "failed", "{e}");
        reasons.push((
            e["job_id"].as_str().unwrap_or("").to_string(),
            e["reason"].as_str().unwrap().to_string(),
        ));
    }
    reasons.sort();
    // The altered ones name no job: nothing of them verified.
    assert_eq!(
        reasons,
        [
            ("", "bad_signature"),
            ("", "bad_signature"),
            ("far-away", "wrong_region"),
            ("old-purge", "expired"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        relay.connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a refused message reached storage"
    );
    // No purge began: no audit record of one.
    let audit = drain_json(&ch, &n.audit_q).await;
    assert!(audit.is_empty(), "{audit:?}");
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_message_is_refused_after_a_restart_and_by_another_worker() {
    let mut w = start_worker("replay");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "clip.mkv", &input, Encryption::Client).await;
    let message = envelope(&job(&n, "once", "clip.mkv", Encryption::Client), signer());
    publish(&ch, &n.queue, message.as_bytes()).await;
    assert_eq!(next_event(&mut events).await["event"], "completed");
    // The same bytes again, to the same worker after a restart (a clean
    // stop: a kill could beat the first delivery's ack, and the broker's
    // redelivery of it, flagged as such, is no replay)...
    let pid = w.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = w.child.wait();
    w.kill_and_restart();
    publish(&ch, &n.queue, message.as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(
        (e["event"].as_str(), e["reason"].as_str()),
        (Some("failed"), Some("replayed"))
    );
    // ...and to another worker alone on the queue.
    let pid = w.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = w.child.wait();
    drop(w);
    let other = start_worker_on(n.clone(), &[]);
    publish(&ch, &n.queue, message.as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(e["reason"], "replayed", "{e}");
    assert_eq!(e["job_id"], "once");
    drop(other);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purged_prefix_takes_no_write_from_a_late_or_running_job() {
    // Two slots: the purge runs while the held job waits in the other.
    let w = start_worker_with(
        "tomb",
        &[
            ("MONTEUR_FAILPOINTS", "stage.hold=slow:4"),
            ("MONTEUR_WORKER__CONCURRENCY", "2"),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "clip.mkv", &input, Encryption::Client).await;
    // A job runs (held 4 s before its work); its project is purged meanwhile.
    let mut slow = job(&n, "slow", "clip.mkv", Encryption::Client);
    slow.output_prefix = format!("{}project/out/slow/", n.prefix);
    publish(&ch, &n.queue, envelope(&slow, signer()).as_bytes()).await;
    wait_started(&mut events).await;
    let purge = Purge {
        job_id: "purge-project".into(),
        tenant: "acme".into(),
        region: REGION.into(),
        prefix: format!("{}project/", n.prefix),
        stamp: stamp(),
    };
    publish(&ch, &n.queue, purge_envelope(&purge, signer()).as_bytes()).await;
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        let e = next_event(&mut events).await;
        seen.insert(e["job_id"].as_str().unwrap().to_string(), e);
    }
    assert_eq!(seen["purge-project"]["event"], "purged", "{seen:?}");
    assert_eq!(seen["slow"]["reason"], "purged_prefix", "{seen:?}");
    // A job sent later for the same project: refused, nothing written.
    let mut late = job(&n, "late", "clip.mkv", Encryption::Client);
    late.output_prefix = format!("{}project/out/late/", n.prefix);
    let late_message = envelope(&late, signer());
    publish(&ch, &n.queue, late_message.as_bytes()).await;
    assert_eq!(next_event(&mut events).await["reason"], "purged_prefix");
    let left = keys_of(&format!("{}project/", n.prefix)).await;
    assert!(left.is_empty(), "written after the purge: {left:?}");
    // An audited lift lets the project be written again.
    let lift = Lift {
        job_id: "lift-project".into(),
        tenant: "acme".into(),
        region: REGION.into(),
        prefix: format!("{}project/", n.prefix),
        stamp: stamp(),
    };
    publish(&ch, &n.queue, lift_envelope(&lift, signer()).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["event"], "lifted");
    let again = Job {
        stamp: stamp(),
        ..late.clone()
    };
    publish(&ch, &n.queue, envelope(&again, signer()).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["event"], "completed");
    // The refused message, taken from the dead letters and sent again after
    // the lift, is a replay: it was claimed when it first arrived.
    publish(&ch, &n.queue, late_message.as_bytes()).await;
    assert_eq!(next_event(&mut events).await["reason"], "replayed");
    let audit = drain_json(&ch, &n.audit_q).await;
    assert!(
        audit.iter().any(|a| a["action"] == "purge.lifted"),
        "{audit:?}"
    );
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_mode_object_swapped_with_another_of_the_tenant_is_refused() {
    let w = start_worker("swap");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    // Sealed for a.mkv, stored as b.mkv: the same tenant's key, another place.
    let sealed = seal_for("acme", &format!("{}in/a.mkv", n.prefix), &input);
    s3::ready_client()
        .await
        .put_object()
        .bucket(s3::bucket())
        .key(format!("{}in/b.mkv", n.prefix))
        .body(ByteStream::from(sealed))
        .send()
        .await
        .unwrap();
    publish(
        &ch,
        &n.queue,
        envelope(&job(&n, "swapped", "b.mkv", Encryption::Client), signer()).as_bytes(),
    )
    .await;
    let e = next_event(&mut events).await;
    assert_eq!(e["reason"], "corrupt_input", "{e}");
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_transport_off_loopback_or_storage_out_of_region_refuses_to_start() {
    for (env, needle) in [
        (
            vec![(
                "MONTEUR_WORKER__AMQP_URL",
                "amqp://guest:guest@10.20.30.40:5672/%2f",
            )],
            "worker.amqp_url has no TLS (amqp, not amqps) and its host is not loopback",
        ),
        (
            vec![("MONTEUR_STORAGE__ENDPOINT", "http://s3.example.net")],
            "storage.endpoint has no TLS (http, not https) and its host is not loopback",
        ),
        (
            vec![("MONTEUR_WORKER__ALLOW_PLAINTEXT_LOOPBACK", "false")],
            "allow_plaintext_loopback",
        ),
        (
            vec![("MONTEUR_STORAGE__RESIDENCY", "us-east")],
            "storage.residency",
        ),
    ] {
        let mut w = start_worker_with("tls", &env);
        let began = std::time::Instant::now();
        let status = loop {
            if let Some(s) = w.child.try_wait().unwrap() {
                break s;
            }
            assert!(began.elapsed() < Duration::from_secs(20), "{env:?} started");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(1), "{env:?}");
        let log = std::fs::read_to_string(w.keyring.with_file_name("worker.log")).unwrap();
        assert!(
            log.contains("refusing to start") && log.contains(needle),
            "{env:?}: {log}"
        );
        let n = w.names.clone();
        drop(w);
        cleanup(&n).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_scrubbed_and_their_queue_is_bounded() {
    let w = start_worker("dlq");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let missing = job(
        &n,
        "gone",
        "jane.roe@example.net/talk.mp4",
        Encryption::Client,
    );
    publish(&ch, &n.queue, envelope(&missing, signer()).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["reason"], "input_unreadable");
    let d = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(m) = ch
                .basic_get(
                    n.dlq.as_str().into(),
                    lapin::options::BasicGetOptions::default(),
                )
                .await
                .unwrap()
            {
                return m.delivery;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    let detail = header(&d, "x-monteur-detail");
    assert!(!detail.is_empty());
    assert!(
        !detail.contains("example.net") && !detail.contains("jane.roe"),
        "{detail}"
    );
    // The queue's bounds are its arguments: declaring it with them again
    // succeeds, with other ones the broker refuses.
    let declare = |max_length: i64| {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max_length));
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(14 * 86_400 * 1000),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        args
    };
    let conn = rabbitmq::connect().await;
    let probe = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    assert!(
        probe
            .queue_declare(n.dlq.as_str().into(), opts, declare(100_000))
            .await
            .is_ok()
    );
    let other = conn.create_channel().await.unwrap();
    assert!(
        other
            .queue_declare(n.dlq.as_str().into(), opts, declare(5))
            .await
            .is_err(),
        "the dead-letter queue is not bounded as configured"
    );
    drop(w);
    cleanup(&n).await;
}

/// An upgrade: the dead-letter queue exists, declared by an older worker
/// without bounds. The worker must still start, dead-letter into it, and
/// say how to bound it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_queue_declared_without_bounds_does_not_stop_the_worker() {
    let n = names("dlqold");
    let conn = rabbitmq::connect().await;
    let old = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    old.queue_declare(
        n.dlq.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap();
    let w = start_worker_on(n.clone(), &[]);
    let (_conn, ch, mut events) = listen(&n).await;
    publish(&ch, &n.queue, b"{not json").await;
    assert_eq!(next_event(&mut events).await["reason"], "malformed");
    let dead = dead_letters(&ch, &n, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "malformed");
    let log = std::fs::read_to_string(w.keyring.with_file_name("worker.log")).unwrap();
    assert!(
        log.contains("dead-letter queue exists with other arguments"),
        "{log}"
    );
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monteur_submit_signs_publishes_and_prints_the_final_event() {
    let w = start_worker("submit");
    let n = w.names.clone();
    let (_conn, _ch, _events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "clip.mkv", &input, Encryption::Client).await;
    let dir = tempfile::tempdir().unwrap();
    // A producer key made by the tool, trusted by a worker's keyring...
    let key = dir.path().join("prod.key");
    let out = Command::new(env!("CARGO_BIN_EXE_monteur"))
        .args(["keys", "generate", "--id", "sig-tool", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entry["actions"], serde_json::json!(["process", "cancel"]));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let keyring = dir.path().join("keys.json");
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    std::fs::write(
        &keyring,
        serde_json::json!({
            "tenants": [{"tenant": "acme", "id": "acme-1", "key": b64(&TENANT_KEY), "active": true}],
            "verify": [entry],
        })
        .to_string(),
    )
    .unwrap();
    drop(w);
    let tool_worker = start_worker_on(
        n.clone(),
        &[("MONTEUR_WORKER__KEYRING", keyring.to_str().unwrap())],
    );
    assert!(rabbitmq::wait_for_queue(&n.queue, Duration::from_secs(20)).await);
    // ...then a job document, stamped, signed, published and waited for.
    let mut doc = serde_json::to_value(job(&n, "by-tool", "clip.mkv", Encryption::Client)).unwrap();
    for k in ["issued_at", "expires_at", "nonce"] {
        doc.as_object_mut().unwrap().remove(k);
    }
    let job_file = dir.path().join("job.json");
    std::fs::write(&job_file, doc.to_string()).unwrap();
    let out = tokio::task::spawn_blocking({
        let (key, job_file, n) = (key.clone(), job_file.clone(), n.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_monteur"))
                .env_remove("MONTEUR_CONFIG")
                .env("MONTEUR_WORKER__AMQP_URL", rabbitmq::url())
                .env("MONTEUR_WORKER__QUEUE", &n.queue)
                .env("MONTEUR_WORKER__EVENTS_EXCHANGE", &n.events)
                .args(["submit", "--key-id", "sig-tool", "--wait-s", "120", "--key"])
                .arg(&key)
                .arg(&job_file)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (event["event"].as_str(), event["job_id"].as_str()),
        (Some("completed"), Some("by-tool"))
    );
    drop(tool_worker);
    cleanup(&n).await;
}
