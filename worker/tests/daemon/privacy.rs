//! The privacy policy held end to end: no identifier in diagnostics, purges,
//! audit records, diagnostics' retention.

use crate::harness::*;

/// Speech from espeak-ng, as a WAV file's bytes.
fn speech(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-s", "140", "-w", wav.to_str().unwrap(), text])
        .status()
        .unwrap();
    assert!(status.success(), "espeak-ng failed");
    std::fs::read(wav).unwrap()
}

/// Every `.json` crash report in `dir`, concatenated.
fn crash_reports(dir: &std::path::Path) -> (usize, String) {
    let mut n = 0;
    let mut text = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        n += 1;
        text += &std::fs::read_to_string(e.path()).unwrap();
        text.push('\n');
    }
    (n, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_identifiers_never_reach_the_logs_metrics_or_crash_reports() {
    let http = free_port();
    let http_addr = format!("127.0.0.1:{http}");
    let diag = tempfile::tempdir().unwrap();
    let w = start_worker_with(
        "canary",
        &[
            ("MONTEUR_WORKER__HTTP_ADDR", http_addr.as_str()),
            ("MONTEUR_DIAGNOSTICS__DIR", diag.path().to_str().unwrap()),
            // The failpoint panics inside this job, with the job's input,
            // tenant and id in the panic message.
            ("MONTEUR_FAILPOINTS", "job.panic=canaryzq81panic"),
        ],
    );
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    let signer = signer();
    // Planted: e-mail addresses in object keys, marked job ids, a tenant
    // name, a tampered input whose failure text travels through the logs,
    // and spoken words that become caption text.
    put_input(
        &n,
        "john.doe@example.com/clip.mkv",
        &input,
        Encryption::Client,
    )
    .await;
    let tampered_key = format!("{}in/mary.major@example.org/bad.mkv", n.prefix);
    let mut tampered = seal_for("acme", &tampered_key, &input);
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    s3::ready_client()
        .await
        .put_object()
        .bucket(s3::bucket())
        .key(format!("{}in/mary.major@example.org/bad.mkv", n.prefix))
        .body(ByteStream::from(tampered))
        .send()
        .await
        .unwrap();
    let spoken = ["bartholomew", "marmalade", "invoice", "thursday"];
    let words = speech(
        "Please send the marmalade invoice to Bartholomew before Thursday. \
         Bartholomew will pay the invoice on Thursday.",
    );
    put_input(
        &n,
        "kim.lee@example.com/memo.wav",
        &words,
        Encryption::Client,
    )
    .await;
    let globex_prefix = n
        .prefix
        .replace("tenants/acme/", &format!("tenants/{CANARY_TENANT}/"));
    put_object_as(
        CANARY_TENANT,
        &format!("{globex_prefix}in/ceo@example.com/panic.mkv"),
        &input,
        Encryption::Client,
    )
    .await;
    let ok = job(
        &n,
        "canaryzq81ok",
        "john.doe@example.com/clip.mkv",
        Encryption::Client,
    );
    let bad = job(
        &n,
        "canaryzq81bad",
        "mary.major@example.org/bad.mkv",
        Encryption::Client,
    );
    let missing = job(
        &n,
        "canaryzq81gone",
        "jane.roe@example.net/none.mkv",
        Encryption::Client,
    );
    let mut forged = job(&n, "canaryzq81forged", "clip.mkv", Encryption::Client);
    forged.input = "tenants/acme/ceo@example.com/secret-plans.mkv".into();
    let mut panics = job(&n, "canaryzq81panic", "x", Encryption::Client);
    panics.tenant = CANARY_TENANT.into();
    panics.input = format!("{globex_prefix}in/ceo@example.com/panic.mkv");
    panics.output_prefix = format!("{globex_prefix}out/canaryzq81panic/");
    let mut captions = job(
        &n,
        "canaryzq81words",
        "kim.lee@example.com/memo.wav",
        Encryption::Client,
    );
    captions.tasks = vec!["captions".into()];
    for body in [
        envelope(&ok, signer),
        envelope(&bad, signer),
        envelope(&missing, signer),
        envelope(&forged, &impostor()),
        envelope(&panics, signer),
        envelope(&captions, signer),
    ] {
        publish(&ch, &n.queue, body.as_bytes()).await;
    }
    let mut ended = HashMap::new();
    for _ in 0..6 {
        let e = next_event(&mut events).await;
        ended.insert(e["job_id"].as_str().unwrap_or("forged").to_string(), e);
    }
    assert_eq!(ended["canaryzq81ok"]["event"], "completed");
    assert_eq!(
        ended["canaryzq81panic"]["reason"], "worker_panic",
        "{ended:?}"
    );
    // The worker served on after the panic: the next job completed.
    let words_done = &ended["canaryzq81words"];
    assert_eq!(words_done["event"], "completed", "{words_done}");
    let manifest: Value = serde_json::from_slice(
        &get_output(words_done["manifest"].as_str().unwrap(), Encryption::Client).await,
    )
    .unwrap();
    let vtt_key = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .find(|k| k.ends_with("captions.vtt"))
        .unwrap();
    let vtt = String::from_utf8(get_output(vtt_key, Encryption::Client).await)
        .unwrap()
        .to_lowercase();
    let heard: Vec<&str> = spoken.iter().copied().filter(|w| vtt.contains(w)).collect();
    assert!(
        heard.len() >= 2,
        "the captions should carry the planted words, or the check below proves nothing:\n{vtt}"
    );

    // stderr is unbuffered: everything said so far is in the file. The
    // metrics text and the crash reports are searched as well.
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let (crashes, crash_text) = crash_reports(diag.path());
    assert_eq!(crashes, 1, "one panic, one crash report:\n{crash_text}");
    assert!(
        crash_text.contains("monteur.crash.v1") && crash_text.contains("failpoint job.panic"),
        "{crash_text}"
    );
    let log = std::fs::read_to_string(w.keyring.with_file_name("worker.log")).unwrap();
    let n2 = w.names.clone();
    drop(w);
    assert!(
        log.contains("job completed") && log.contains("job refused") && log.contains("panic at"),
        "{log}"
    );
    let everything = format!("{log}\n{metrics}\n{crash_text}").to_lowercase();
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let mut planted = vec![
        "canaryzq81".to_string(),
        "zq81globex".into(),
        "example.com".into(),
        "example.org".into(),
        "example.net".into(),
        "john.doe".into(),
        "mary.major".into(),
        "jane.roe".into(),
        "kim.lee".into(),
        "secret-plans".into(),
        "tenants/acme".into(),
        b64(&TENANT_KEY).to_lowercase(),
        b64(&CANARY_KEY).to_lowercase(),
        b64(&signer.public_key()).to_lowercase(),
    ];
    planted.extend(heard.iter().map(|w| w.to_string()));
    for p in &planted {
        assert!(
            !everything.contains(p.as_str()),
            "`{p}` leaked:\n{log}\n{crash_text}"
        );
    }
    // Correlation still works: jobs appear as pseudonyms.
    assert!(log.contains("job_id=p:"), "{log}");
    cleanup(&n2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_deletes_a_project_and_its_unfinished_uploads_and_audits_it() {
    let w = start_worker("purge");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let client = s3::ready_client().await;
    let p1 = format!("{}projects/p1/", n.prefix);
    let p2 = format!("{}projects/p2/", n.prefix);
    // More objects than one listing page (1000) or one DeleteObjects call.
    let bodies: Vec<String> = (0..1003)
        .map(|i| format!("{p1}frames/{i:05}.json"))
        .collect();
    for chunk in bodies.chunks(64) {
        futures_util::future::join_all(chunk.iter().map(|k| {
            client
                .put_object()
                .bucket(s3::bucket())
                .key(k)
                .body(ByteStream::from_static(b"{}"))
                .send()
        }))
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    }
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_object_as(
        "acme",
        &format!("{p1}in/clip.mkv"),
        &input,
        Encryption::Client,
    )
    .await;
    put_object_as("acme", &format!("{p1}in/sse.mkv"), &input, Encryption::SseC).await;
    unfinished_upload(&client, &format!("{p1}out/render.mp4")).await;
    put_object_as(
        "acme",
        &format!("{p2}in/clip.mkv"),
        &input,
        Encryption::Client,
    )
    .await;
    unfinished_upload(&client, &format!("{p2}out/render.mp4")).await;
    assert_eq!(keys_under(&client, &p1).await, 1005);
    assert_eq!(uploads_under(&client, &p1).await, 1);

    let signer = signer();
    let purge = Purge {
        job_id: "purge-1".into(),
        tenant: "acme".into(),
        region: REGION.into(),
        prefix: p1.clone(),
        stamp: stamp(),
    };
    publish(&ch, &n.queue, purge_envelope(&purge, signer).as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(e["event"], "purged", "{e}");
    assert_eq!(e["job_id"], "purge-1");
    assert_eq!(e["prefix"], p1.as_str());
    assert_eq!(e["objects_deleted"], 1005, "{e}");
    assert_eq!(e["uploads_aborted"], 1, "{e}");
    assert_eq!(
        keys_under(&client, &p1).await,
        0,
        "objects left under the prefix"
    );
    assert_eq!(
        uploads_under(&client, &p1).await,
        0,
        "uploads left under the prefix"
    );
    // The neighbouring project is untouched.
    assert_eq!(keys_under(&client, &p2).await, 1);
    assert_eq!(uploads_under(&client, &p2).await, 1);

    // The same message again is a replay: refused, nothing done.
    publish(&ch, &n.queue, purge_envelope(&purge, signer).as_bytes()).await;
    let replayed = next_event(&mut events).await;
    assert_eq!(replayed["reason"], "replayed", "{replayed}");
    // A new purge of the prefix: nothing left to delete, completed again.
    let fresh = Purge {
        stamp: stamp(),
        ..purge.clone()
    };
    publish(&ch, &n.queue, purge_envelope(&fresh, signer).as_bytes()).await;
    let again = next_event(&mut events).await;
    assert_eq!(again["event"], "purged");
    assert_eq!(again["objects_deleted"], 0);
    // Another tenant's prefix, or a forged purge: refused, nothing deleted.
    let mut foreign = purge.clone();
    foreign.stamp = stamp();
    foreign.job_id = "purge-2".into();
    foreign.prefix = "tenants/globex/".into();
    publish(&ch, &n.queue, purge_envelope(&foreign, signer).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["reason"], "foreign_object");
    let mut forged = purge.clone();
    forged.stamp = stamp();
    forged.prefix = p2.clone();
    publish(
        &ch,
        &n.queue,
        purge_envelope(&forged, &impostor()).as_bytes(),
    )
    .await;
    assert_eq!(next_event(&mut events).await["reason"], "bad_signature");
    assert_eq!(keys_under(&client, &p2).await, 1);

    // The audit sink holds the purge's start and completion, apart from the
    // events, naming the tenant, job and prefix.
    let audit = drain_json(&ch, &n.audit_q).await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "purge.started",
            "purge.completed",
            "purge.started",
            "purge.completed"
        ],
        "{audit:?}"
    );
    let done = &audit[1];
    assert_eq!(done["schema"], "monteur.audit.v1");
    assert_eq!(done["tenant"], "acme");
    assert_eq!(done["job_id"], "purge-1");
    assert_eq!(done["prefix"], p1.as_str());
    assert_eq!(done["objects_deleted"], 1005);
    assert_eq!(done["uploads_aborted"], 1);
    assert!(done["actor"].as_str().unwrap().contains('/'));
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_use_is_audited_before_the_key_is_used() {
    let w = start_worker("keyaudit");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "clip.mkv", &input, Encryption::SseC).await;
    let j = job(&n, "audited-1", "clip.mkv", Encryption::SseC);
    publish(&ch, &n.queue, envelope(&j, signer()).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["event"], "completed");
    let audit = drain_json(&ch, &n.audit_q).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["action"], "key.use");
    assert_eq!(audit[0]["tenant"], "acme");
    assert_eq!(audit[0]["job_id"], "audited-1");
    assert_eq!(audit[0]["key_id"], "acme-1");
    let text = audit[0].to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(TENANT_KEY);
    assert!(!text.contains(&b64), "key material in the audit record");

    // With the audit queue gone, no event is recorded: the job waits in
    // the queue (retried with backoff) instead of using the key unaudited.
    let admin = rabbitmq::connect().await.create_channel().await.unwrap();
    admin
        .queue_delete(n.audit_q.as_str().into(), Default::default())
        .await
        .unwrap();
    let mut j2 = j.clone();
    j2.stamp = stamp();
    j2.job_id = "audited-2".into();
    j2.output_prefix = format!("{}out/audited-2/", n.prefix);
    publish(&ch, &n.queue, envelope(&j2, signer()).as_bytes()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = s3::ready_client().await;
    assert_eq!(
        keys_under(&client, &j2.output_prefix).await,
        0,
        "the job ran without its audit record"
    );
    // The sink back (as the worker declares it): the next attempt records
    // the key use, then runs.
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    admin
        .queue_declare(
            n.audit_q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            quorum,
        )
        .await
        .unwrap();
    admin
        .queue_bind(
            n.audit_q.as_str().into(),
            n.audit_x.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let e = next_event(&mut events).await;
    assert_eq!(e["event"], "completed", "{e}");
    assert_eq!(e["job_id"], "audited-2");
    let audit = drain_json(&ch, &n.audit_q).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["job_id"], "audited-2");

    // The audit exchange deleted: publishing to it closes the worker's
    // channel; the worker rebuilds its session, which declares the exchange
    // again, and the job runs with its record.
    admin
        .exchange_delete(n.audit_x.as_str().into(), Default::default())
        .await
        .unwrap();
    let mut j3 = j.clone();
    j3.stamp = stamp();
    j3.job_id = "audited-3".into();
    j3.output_prefix = format!("{}out/audited-3/", n.prefix);
    publish(&ch, &n.queue, envelope(&j3, signer()).as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(e["event"], "completed", "{e}");
    assert_eq!(e["job_id"], "audited-3");
    let audit = drain_json(&ch, &n.audit_q).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["job_id"], "audited-3");
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_diagnostics_are_deleted_at_start_and_on_schedule() {
    let diag = tempfile::tempdir().unwrap();
    let aged = |name: &str, days: u64| {
        let path = diag.path().join(name);
        std::fs::write(&path, "{}").unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path
    };
    let old = aged("crash-old.json", 31);
    let recent = aged("crash-recent.json", 29);
    let w = start_worker_with(
        "retention",
        &[
            ("MONTEUR_DIAGNOSTICS__DIR", diag.path().to_str().unwrap()),
            ("MONTEUR_DIAGNOSTICS__RETENTION_DAYS", "30"),
            ("MONTEUR_DIAGNOSTICS__SWEEP_INTERVAL_S", "1"),
        ],
    );
    let n = w.names.clone();
    let _ = listen(&n).await;
    assert!(!old.exists(), "a 31-day-old file survived the start");
    assert!(recent.exists(), "a 29-day-old file was deleted");
    // Ages past the limit while the worker runs: the scheduled sweep takes it.
    let later = aged("crash-later.json", 45);
    let mut gone = false;
    for _ in 0..50 {
        if !later.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the scheduled sweep did not delete an expired file");
    assert!(recent.exists());
    // The policy's limit holds: a worker asked to keep 91 days refuses to start.
    let mut too_long = Command::new(env!("CARGO_BIN_EXE_monteur"))
        .arg("worker")
        .env("MONTEUR_DIAGNOSTICS__RETENTION_DAYS", "91")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = too_long.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(too_long.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("retention_days must be 1 to 90"), "{err}");
    drop(w);
    cleanup(&n).await;
}
