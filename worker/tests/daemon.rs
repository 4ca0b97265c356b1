//! `monteur worker` on the real services: RabbitMQ (quorum queue, dead-letter
//! exchange, events with confirms) and Garage S3 (SSE-C and client-side
//! encryption). Each test gets its own queue, exchanges and object prefix, and
//! runs the real binary as a child process.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use monteur_tests::{fixtures, rabbitmq, s3};
use monteur_worker::crypto::stream;
use monteur_worker::crypto::{Key, KeyProvider, Keyring};
use monteur_worker::job::{Encryption, Job, JobOptions, Purge, envelope, purge_envelope};
use serde_json::Value;

const TENANT_KEY: [u8; 32] = [0x42; 32];
/// A second tenant, whose name is planted in the canary test.
const CANARY_TENANT: &str = "zq81globex";
const CANARY_KEY: [u8; 32] = [0x43; 32];
const SIGNING_KEY: [u8; 32] = [0x17; 32];
const REGION: &str = "test-region";
/// 24 s of 720p H.264: long enough that signals and cuts land mid-job.
const TALK: &str = "scenes/pyscenedetect/testvideo.mp4";

struct Worker {
    child: Child,
    names: Names,
    keyring: std::path::PathBuf,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Names {
    queue: String,
    dlx: String,
    dlq: String,
    events: String,
    audit_x: String,
    audit_q: String,
    prefix: String,
}

fn names(test: &str) -> Names {
    let id = format!("{}-{}-{test}", std::process::id(), nanos());
    Names {
        queue: format!("monteur.test.{id}.jobs"),
        dlx: format!("monteur.test.{id}.dlx"),
        dlq: format!("monteur.test.{id}.dead"),
        events: format!("monteur.test.{id}.events"),
        audit_x: format!("monteur.test.{id}.audit"),
        audit_q: format!("monteur.test.{id}.audit"),
        prefix: format!("tenants/acme/{id}/"),
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn start_worker(test: &str) -> Worker {
    start_worker_with(test, &[])
}

fn start_worker_with(test: &str, env: &[(&str, &str)]) -> Worker {
    start_worker_on(names(test), env)
}

/// A worker on existing queues (several workers can share them).
fn start_worker_on(n: Names, env: &[(&str, &str)]) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let keyring = dir.path().join("keys.json");
    std::fs::write(
        &keyring,
        format!(
            r#"{{"tenants": [{{"tenant": "acme", "id": "acme-1", "key": "{}", "active": true}},
                             {{"tenant": "{CANARY_TENANT}", "id": "{CANARY_TENANT}-1", "key": "{}", "active": true}}],
                "signing": [{{"id": "sig-1", "key": "{}"}}]}}"#,
            b64(&TENANT_KEY),
            b64(&CANARY_KEY),
            b64(&SIGNING_KEY)
        ),
    )
    .unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let child = spawn(&n, &keyring, &env);
    Worker {
        child,
        names: n,
        keyring,
        env,
        _dir: dir,
    }
}

fn spawn(n: &Names, keyring: &std::path::Path, env: &[(String, String)]) -> Child {
    let (key_id, secret) = s3::credentials();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monteur"));
    cmd.arg("worker")
        .env_remove("MONTEUR_CONFIG")
        .env("MONTEUR_WORKER__AMQP_URL", rabbitmq::url())
        .env("MONTEUR_WORKER__QUEUE", &n.queue)
        .env("MONTEUR_WORKER__DEAD_LETTER_EXCHANGE", &n.dlx)
        .env("MONTEUR_WORKER__DEAD_LETTER_QUEUE", &n.dlq)
        .env("MONTEUR_WORKER__EVENTS_EXCHANGE", &n.events)
        .env("MONTEUR_WORKER__AUDIT_EXCHANGE", &n.audit_x)
        .env("MONTEUR_WORKER__AUDIT_QUEUE", &n.audit_q)
        .env("MONTEUR_WORKER__REGION", REGION)
        .env("MONTEUR_WORKER__KEYRING", keyring)
        .env("MONTEUR_WORKER__SEGMENT_BYTES", "65536")
        // Parallel tests: any free port unless the test names one.
        .env("MONTEUR_WORKER__HTTP_ADDR", "127.0.0.1:0")
        .env("MONTEUR_STORAGE__ENDPOINT", s3::endpoint())
        .env("MONTEUR_STORAGE__REGION", "garage")
        .env("MONTEUR_STORAGE__BUCKET", s3::bucket())
        .env("MONTEUR_TEST_KEY_ID", key_id)
        .env("MONTEUR_TEST_SECRET", secret)
        .env("MONTEUR_STORAGE__ACCESS_KEY_ENV", "MONTEUR_TEST_KEY_ID")
        .env("MONTEUR_STORAGE__SECRET_KEY_ENV", "MONTEUR_TEST_SECRET")
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("MONTEUR_TEST_WORKER_LOG").is_some() {
            Stdio::inherit()
        } else {
            // Every run of this worker appends to one log the canary reads.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(keyring.with_file_name("worker.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

impl Worker {
    /// SIGKILL, then a fresh process on the same queue.
    fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.names, &self.keyring, &self.env);
    }
}

/// Removes the test's queues and exchanges so runs leave nothing behind.
async fn cleanup(n: &Names) {
    let ch = rabbitmq::connect().await.create_channel().await.unwrap();
    for q in [&n.queue, &n.dlq, &n.audit_q] {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    for x in [&n.dlx, &n.events, &n.audit_x] {
        let _ = ch
            .exchange_delete(x.as_str().into(), Default::default())
            .await;
    }
}

fn keyring() -> Keyring {
    let mut k = Keyring::default();
    k.add_tenant_key("acme", Key::new("acme-1", TENANT_KEY), true)
        .unwrap();
    k.add_tenant_key(
        CANARY_TENANT,
        Key::new(format!("{CANARY_TENANT}-1"), CANARY_KEY),
        true,
    )
    .unwrap();
    k.add_signing_key(Key::new("sig-1", SIGNING_KEY));
    k
}

/// A publishing channel (with confirms) and the worker's events, once it
/// is up.
async fn listen(n: &Names) -> (lapin::Connection, Channel, lapin::Consumer) {
    let conn = rabbitmq::connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let events = events_queue(&ch, n).await;
    (conn, ch, events)
}

/// Waits for the next `started` event (skipping others).
async fn wait_started(events: &mut lapin::Consumer) {
    loop {
        let d = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("no job started within 60 s")
            .unwrap()
            .unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
        let e: Value = serde_json::from_slice(&d.data).unwrap();
        if e["event"] == "started" {
            return;
        }
    }
}

/// Messages ready in `queue`.
async fn ready_messages(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

/// Waits until the worker has declared its queue, then binds a queue of ours
/// to its events exchange.
async fn events_queue(ch: &Channel, n: &Names) -> lapin::Consumer {
    assert!(
        rabbitmq::wait_for_queue(&n.queue, Duration::from_secs(20)).await,
        "the worker did not declare its queue"
    );
    let q = rabbitmq::private_queue(ch, Some((n.events.as_str(), "job.#")))
        .await
        .unwrap();
    ch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    let c = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
}

/// The next completed or failed event (progress events are skipped).
async fn next_event(events: &mut lapin::Consumer) -> Value {
    loop {
        let d = tokio::time::timeout(Duration::from_secs(90), events.next())
            .await
            .expect("no event within 90 s")
            .unwrap()
            .unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
        let e: Value = serde_json::from_slice(&d.data).unwrap();
        if e["event"] != "started" {
            return e;
        }
    }
}

fn job(n: &Names, id: &str, input: &str, encryption: Encryption) -> Job {
    Job {
        job_id: id.into(),
        tenant: "acme".into(),
        region: REGION.into(),
        input: format!("{}in/{input}", n.prefix),
        output_prefix: format!("{}out/{id}/", n.prefix),
        tasks: vec!["scenes".into()],
        encryption,
        options: JobOptions::default(),
    }
}

/// Stores `fixture` as the input `in/<its file name>` (client-side
/// encrypted) and publishes one signed scenes job on it per id, in order.
async fn submit(n: &Names, ch: &Channel, fixture: &str, ids: &[String]) {
    let name = fixture.rsplit('/').next().unwrap();
    let input = std::fs::read(fixtures::path(fixture)).unwrap();
    put_input(n, name, &input, Encryption::Client).await;
    let signer = Key::new("sig-1", SIGNING_KEY);
    for id in ids {
        let j = job(n, id, name, Encryption::Client);
        publish(ch, &n.queue, envelope(&j, &signer).as_bytes()).await;
    }
}

fn job_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

async fn put_input(n: &Names, name: &str, data: &[u8], mode: Encryption) {
    put_object_as("acme", &format!("{}in/{name}", n.prefix), data, mode).await;
}

/// Stores `data` as a client of the platform would, with `tenant`'s key.
async fn put_object_as(tenant: &str, key: &str, data: &[u8], mode: Encryption) {
    let client = s3::ready_client().await;
    let req = client.put_object().bucket(s3::bucket()).key(key);
    match mode {
        Encryption::Client => {
            let k = keyring();
            let sealed = stream::seal(k.active_key(tenant).unwrap(), 65536, data).unwrap();
            req.body(ByteStream::from(sealed)).send().await.unwrap();
        }
        Encryption::SseC => {
            let c = s3::SseCustomerKey::new(&TENANT_KEY);
            req.sse_customer_algorithm(c.algorithm)
                .sse_customer_key(c.key_b64)
                .sse_customer_key_md5(c.key_md5_b64)
                .body(ByteStream::from(data.to_vec()))
                .send()
                .await
                .unwrap();
        }
    }
}

/// Reads an output back the way a client of the platform would.
async fn get_output(key: &str, mode: Encryption) -> Vec<u8> {
    let client = s3::ready_client().await;
    let req = client.get_object().bucket(s3::bucket()).key(key);
    let body = match mode {
        Encryption::Client => req.send().await.unwrap().body,
        Encryption::SseC => {
            let c = s3::SseCustomerKey::new(&TENANT_KEY);
            req.sse_customer_algorithm(c.algorithm)
                .sse_customer_key(c.key_b64)
                .sse_customer_key_md5(c.key_md5_b64)
                .send()
                .await
                .unwrap()
                .body
        }
    };
    let raw = body.collect().await.unwrap().into_bytes().to_vec();
    match mode {
        Encryption::Client => stream::open(&raw, "acme", &keyring()).unwrap(),
        Encryption::SseC => raw,
    }
}

async fn happy_path(mode: Encryption, test: &str) {
    let w = start_worker(test);
    let (_conn, ch, mut events) = listen(&w.names).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&w.names, "clip.mkv", &input, mode).await;
    let mut j = job(&w.names, "job-1", "clip.mkv", mode);
    j.tasks = vec!["scenes".into(), "autocut".into()];
    publish(
        &ch,
        &w.names.queue,
        envelope(&j, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
    )
    .await;
    let e = next_event(&mut events).await;
    assert_eq!(e["event"], "completed", "{e}");
    assert_eq!(e["job_id"], "job-1");
    let manifest: Value =
        serde_json::from_slice(&get_output(e["manifest"].as_str().unwrap(), mode).await).unwrap();
    let keys: Vec<&str> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let scenes_key = keys.iter().find(|k| k.ends_with("scenes.json")).unwrap();
    let scenes: Value = serde_json::from_slice(&get_output(scenes_key, mode).await).unwrap();
    assert_eq!(scenes["source"]["frames"], 60, "{scenes}");
    // The timeline exports point at the input object, not at a local handle.
    let edl_key = keys.iter().find(|k| k.ends_with("cutplan.edl")).unwrap();
    let edl = String::from_utf8(get_output(edl_key, mode).await).unwrap();
    assert!(edl.contains("* FROM CLIP NAME: clip.mkv"), "{edl}");
    let otio_key = keys.iter().find(|k| k.ends_with("cutplan.otio")).unwrap();
    let otio = String::from_utf8(get_output(otio_key, mode).await).unwrap();
    assert!(
        otio.contains(&format!("\"{}in/clip.mkv\"", w.names.prefix)),
        "{otio}"
    );
    // Stored bytes are not the plaintext: in client mode S3 holds ciphertext.
    if mode == Encryption::Client {
        let raw = s3::ready_client()
            .await
            .get_object()
            .bucket(s3::bucket())
            .key(*scenes_key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(raw.starts_with(b"MNTR") && !raw.windows(6).any(|w| w == b"frames"));
    }

    // Redelivered (sent again): acknowledged as done, nothing redone.
    publish(
        &ch,
        &w.names.queue,
        envelope(&j, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
    )
    .await;
    let again = next_event(&mut events).await;
    assert_eq!(again["event"], "completed");
    assert_eq!(again["manifest"], e["manifest"]);
    let n = w.names.clone();
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn completes_a_job_with_client_side_encryption() {
    happy_path(Encryption::Client, "client").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn completes_a_job_with_sse_c() {
    happy_path(Encryption::SseC, "ssec").await;
}

fn reason(d: &lapin::message::Delivery) -> String {
    header(d, "x-monteur-reason")
}

fn header(d: &lapin::message::Delivery, name: &str) -> String {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_are_dead_lettered_with_reasons_and_the_worker_serves_on() {
    let w = start_worker("bad");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&n, "good.mkv", &input, Encryption::Client).await;
    // Half of an MP4 whose index sits at its end: not decodable media.
    let mp4 = std::fs::read(fixtures::path(TALK)).unwrap();
    put_input(&n, "cut.mp4", &mp4[..mp4.len() / 2], Encryption::Client).await;
    let signer = Key::new("sig-1", SIGNING_KEY);

    let good = job(&n, "good", "good.mkv", Encryption::Client);
    let good_text = envelope(&good, &signer);
    let mut foreign = good.clone();
    foreign.job_id = "foreign".into();
    foreign.input = "tenants/globex/in/their.mkv".into();
    let mut region = good.clone();
    region.job_id = "region".into();
    region.region = "elsewhere".into();
    let mut missing = good.clone();
    missing.job_id = "missing".into();
    missing.input = format!("{}in/absent.mkv", n.prefix);
    let truncated = job(&n, "truncated", "cut.mp4", Encryption::Client);
    // A ciphertext with one byte flipped in its body: fails authentication.
    let mut sealed = stream::seal(keyring().active_key("acme").unwrap(), 65536, &input).unwrap();
    let at = sealed.len() / 2;
    sealed[at] ^= 0x01;
    s3::ready_client()
        .await
        .put_object()
        .bucket(s3::bucket())
        .key(format!("{}in/tampered.mkv", n.prefix))
        .body(ByteStream::from(sealed))
        .send()
        .await
        .unwrap();
    let tampered = job(&n, "tampered", "tampered.mkv", Encryption::Client);
    // A valid one-frame video of absurd size (9000x9000 PNG in Matroska,
    // 240 KB): refused before any decode.
    let huge_file = tempfile::tempdir().unwrap();
    let huge_path = huge_file.path().join("huge.mkv");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=c=black:s=9000x9000:d=0.04:r=25")
        .args(["-frames:v", "1", "-c:v", "png"])
        .arg(&huge_path)
        .status()
        .unwrap();
    assert!(made.success());
    put_input(
        &n,
        "huge.mkv",
        &std::fs::read(&huge_path).unwrap(),
        Encryption::Client,
    )
    .await;
    let huge = job(&n, "huge", "huge.mkv", Encryption::Client);
    let v: Value = serde_json::from_str(&good_text).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("malformed", "{not json".into()),
        (
            "unsigned",
            format!(
                r#"{{"schema":"monteur.job.v1","job":{}}}"#,
                serde_json::to_string(&v["job"]).unwrap()
            ),
        ),
        (
            "bad_signature",
            envelope(&good, &Key::new("sig-1", [0; 32])),
        ),
        ("foreign_object", envelope(&foreign, &signer)),
        ("wrong_region", envelope(&region, &signer)),
        ("input_unreadable", envelope(&missing, &signer)),
        ("bad_media", envelope(&truncated, &signer)),
        ("corrupt_input", envelope(&tampered, &signer)),
        ("bad_media", envelope(&huge, &signer)),
    ];
    for (_, body) in &cases {
        publish(&ch, &n.queue, body.as_bytes()).await;
    }
    // Still serving: a good job after all of them completes.
    publish(&ch, &n.queue, good_text.as_bytes()).await;
    let mut completed = false;
    for _ in 0..cases.len() + 1 {
        let e = next_event(&mut events).await;
        if e["event"] == "completed" {
            assert_eq!(e["job_id"], "good");
            completed = true;
        }
    }
    assert!(completed, "the good job did not complete");

    let mut dead = ch
        .basic_consume(
            n.dlq.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got: HashMap<String, usize> = HashMap::new();
    let mut details = Vec::new();
    for _ in 0..cases.len() {
        let d = tokio::time::timeout(Duration::from_secs(30), dead.next())
            .await
            .expect("dead letter missing")
            .unwrap()
            .unwrap();
        *got.entry(reason(&d)).or_default() += 1;
        details.push(header(&d, "x-monteur-detail"));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert!(
        details
            .iter()
            .any(|d| d.contains("9000x9000") && d.contains("limit")),
        "the oversized video was not refused for its size: {details:?}"
    );
    let mut want: HashMap<String, usize> = HashMap::new();
    for (r, _) in &cases {
        *want.entry(r.to_string()).or_default() += 1;
    }
    assert_eq!(got, want);
    // Refused jobs leave no output behind.
    let client = s3::ready_client().await;
    for id in ["tampered", "truncated", "huge"] {
        let listed = client
            .list_objects_v2()
            .bucket(s3::bucket())
            .prefix(format!("{}out/{id}/", n.prefix))
            .send()
            .await
            .unwrap();
        assert!(listed.contents().is_empty(), "{id} left outputs");
    }
    drop(w);
    cleanup(&n).await;
}

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
    let dead_scratch = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("monteur-job-"))
            .filter(|name| {
                name.split('-')
                    .nth(2)
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            })
            .collect()
    };
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

/// Exactly one manifest and one set of outputs per job, nothing stray.
async fn assert_one_manifest_and_output_set_each(n: &Names, ids: &[String]) {
    let client = s3::ready_client().await;
    for id in ids {
        let listed = client
            .list_objects_v2()
            .bucket(s3::bucket())
            .prefix(format!("{}out/{id}/", n.prefix))
            .send()
            .await
            .unwrap();
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        let manifests = keys.iter().filter(|k| k.ends_with("manifest.json")).count();
        assert_eq!(manifests, 1, "{id}: {keys:?}");
        let manifest: Value = serde_json::from_slice(
            &get_output(
                &format!("{}out/{id}/manifest.json", n.prefix),
                Encryption::Client,
            )
            .await,
        )
        .unwrap();
        let mut listed_outputs: Vec<String> = manifest["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect();
        listed_outputs.push(format!("{}out/{id}/manifest.json", n.prefix));
        listed_outputs.sort();
        let mut stored = keys.clone();
        stored.sort();
        assert_eq!(stored, listed_outputs, "{id}: stray or missing outputs");
    }
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

/// A TCP relay in front of the S3 server that misbehaves on demand: the first
/// request of each of the first `refuse` connections gets `503 Service
/// Unavailable`, and the first `cut` responses longer than 256 KiB are cut
/// off mid-body.
struct S3Relay {
    port: u16,
    /// Faults still to inject: (503s, cuts).
    left: (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ),
}

impl S3Relay {
    async fn start(refuse: usize, cut: usize) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = s3::endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refuse = Arc::new(AtomicUsize::new(refuse));
        let cut = Arc::new(AtomicUsize::new(cut));
        let left = (refuse.clone(), cut.clone());
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (refuse, cut, target) = (refuse.clone(), cut.clone(), target.clone());
                tokio::spawn(async move {
                    // The first request's head (forwarded unless refused).
                    let mut head = vec![0u8; 8192];
                    let Ok(n) = inbound.read(&mut head).await else {
                        return;
                    };
                    head.truncate(n);
                    if take(&refuse) {
                        let _ = inbound
                            .write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    if outbound.write_all(&head).await.is_err() {
                        return;
                    }
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let up = tokio::io::copy(&mut ri, &mut wo);
                    let down = async {
                        let mut buf = vec![0u8; 65536];
                        let mut sent = 0usize;
                        let mut armed = true;
                        loop {
                            let n = match ro.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            sent += n;
                            if armed && sent > 256 * 1024 {
                                armed = false;
                                if take(&cut) {
                                    // Mid-body: the client sees a reset.
                                    break;
                                }
                            }
                            if wi.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        () = down => {}
                    }
                });
            }
        });
        Self { port, left }
    }
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
    let signer = Key::new("sig-1", SIGNING_KEY);
    let j = job(&n, "f0", "talk.mp4", Encryption::Client);
    publish(&ch, &n.queue, envelope(&j, &signer).as_bytes()).await;
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET: status code and body.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample in Prometheus text.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
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
    let signer = Key::new("sig-1", SIGNING_KEY);
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
    let mut tampered = stream::seal(keyring().active_key("acme").unwrap(), 65536, &input).unwrap();
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
        envelope(&ok, &signer),
        envelope(&bad, &signer),
        envelope(&missing, &signer),
        envelope(&forged, &Key::new("sig-1", [3; 32])),
        envelope(&panics, &signer),
        envelope(&captions, &signer),
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
        b64(&SIGNING_KEY).to_lowercase(),
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

/// Every message in `queue` now, as JSON (acknowledged).
async fn drain_json(ch: &Channel, queue: &str) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), lapin::options::BasicGetOptions::default())
        .await
        .unwrap()
    {
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        out.push(serde_json::from_slice(&m.delivery.data).unwrap());
    }
    out
}

async fn keys_under(client: &aws_sdk_s3::Client, prefix: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(s3::bucket())
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        n += page.contents().len();
        token = page.next_continuation_token().map(String::from);
        if token.is_none() {
            return n;
        }
    }
}

async fn uploads_under(client: &aws_sdk_s3::Client, prefix: &str) -> usize {
    client
        .list_multipart_uploads()
        .bucket(s3::bucket())
        .prefix(prefix)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

/// Starts a multipart upload under `key` with one part, never completed.
async fn unfinished_upload(client: &aws_sdk_s3::Client, key: &str) {
    let up = client
        .create_multipart_upload()
        .bucket(s3::bucket())
        .key(key)
        .send()
        .await
        .unwrap();
    client
        .upload_part()
        .bucket(s3::bucket())
        .key(key)
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(vec![7u8; 1 << 20]))
        .send()
        .await
        .unwrap();
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

    let signer = Key::new("sig-1", SIGNING_KEY);
    let purge = Purge {
        job_id: "purge-1".into(),
        tenant: "acme".into(),
        region: REGION.into(),
        prefix: p1.clone(),
    };
    publish(&ch, &n.queue, purge_envelope(&purge, &signer).as_bytes()).await;
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

    // Redelivered: nothing left to delete, completed again.
    publish(&ch, &n.queue, purge_envelope(&purge, &signer).as_bytes()).await;
    let again = next_event(&mut events).await;
    assert_eq!(again["event"], "purged");
    assert_eq!(again["objects_deleted"], 0);
    // Another tenant's prefix, or a forged purge: refused, nothing deleted.
    let mut foreign = purge.clone();
    foreign.job_id = "purge-2".into();
    foreign.prefix = "tenants/globex/".into();
    publish(&ch, &n.queue, purge_envelope(&foreign, &signer).as_bytes()).await;
    assert_eq!(next_event(&mut events).await["reason"], "foreign_object");
    let mut forged = purge.clone();
    forged.prefix = p2.clone();
    publish(
        &ch,
        &n.queue,
        purge_envelope(&forged, &Key::new("sig-1", [9; 32])).as_bytes(),
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
    publish(
        &ch,
        &n.queue,
        envelope(&j, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
    )
    .await;
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
    j2.job_id = "audited-2".into();
    j2.output_prefix = format!("{}out/audited-2/", n.prefix);
    publish(
        &ch,
        &n.queue,
        envelope(&j2, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
    )
    .await;
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
    j3.job_id = "audited-3".into();
    j3.output_prefix = format!("{}out/audited-3/", n.prefix);
    publish(
        &ch,
        &n.queue,
        envelope(&j3, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
    )
    .await;
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
        envelope(&j, &Key::new("sig-1", SIGNING_KEY)).as_bytes(),
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
