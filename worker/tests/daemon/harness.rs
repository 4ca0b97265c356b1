//! What every daemon test shares: a worker process on private queues,
//! exchanges and an object prefix of its own, publishing signed jobs, reading
//! events, dead letters and outputs back as a platform client would.

// Not every user of the harness (the tests, the slots benchmark) uses all of it.
#![allow(dead_code, unused_imports)]

pub use std::collections::HashMap;
pub use std::process::{Child, Command, Stdio};
pub use std::time::Duration;

pub use aws_sdk_s3::primitives::ByteStream;
pub use base64::Engine as _;
pub use futures_util::StreamExt;
pub use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
pub use lapin::types::{AMQPValue, FieldTable};
pub use lapin::{BasicProperties, Channel};
pub use monteur_tests::{fixtures, rabbitmq, s3};
pub use monteur_worker::crypto::Signer;
pub use monteur_worker::crypto::stream;
pub use monteur_worker::crypto::{Key, KeyProvider, Keyring};
pub use monteur_worker::job::{
    Encryption, Job, JobOptions, Purge, Stamp, envelope, purge_envelope,
};
pub use serde_json::Value;

pub const TENANT_KEY: [u8; 32] = [0x42; 32];

/// A second tenant, whose name is planted in the canary test.
pub const CANARY_TENANT: &str = "zq81globex";

pub const CANARY_KEY: [u8; 32] = [0x43; 32];

/// The producers' signing key (key id `sig-1`), made once per test
/// process; workers get its public key only, allowed every action.
pub fn signer() -> &'static Signer {
    static S: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    S.get_or_init(|| Signer::generate("sig-1").unwrap().0)
}

/// A second trusted producer key (key id `sig-2`, process jobs only): a
/// key id swapped for it must not let a signature by `sig-1` through.
pub fn second_signer() -> &'static Signer {
    static S: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    S.get_or_init(|| Signer::generate("sig-2").unwrap().0)
}

/// A key with the producers' key id that no worker trusts: a forger's.
pub fn impostor() -> Signer {
    Signer::generate("sig-1").unwrap().0
}

/// A stamp valid for an hour from now, with a fresh nonce.
pub fn stamp() -> Stamp {
    Stamp::fresh(3600)
}

pub const REGION: &str = "test-region";

/// 24 s of 720p H.264: long enough that signals and cuts land mid-job.
pub const TALK: &str = "scenes/pyscenedetect/testvideo.mp4";

pub struct Worker {
    pub child: Child,
    pub names: Names,
    pub keyring: std::path::PathBuf,
    pub env: Vec<(String, String)>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
pub struct Names {
    /// The batch lane.
    pub queue: String,
    pub interactive: String,
    pub cancels: String,
    pub control: String,
    pub dlx: String,
    pub dlq: String,
    pub events: String,
    pub audit_x: String,
    pub audit_q: String,
    pub prefix: String,
}

pub fn names(test: &str) -> Names {
    let id = format!("{}-{}-{test}", std::process::id(), nanos());
    Names {
        queue: format!("monteur.test.{id}.jobs"),
        interactive: format!("monteur.test.{id}.interactive"),
        cancels: format!("monteur.test.{id}.cancel"),
        control: format!("monteur.test.{id}.control"),
        dlx: format!("monteur.test.{id}.dlx"),
        dlq: format!("monteur.test.{id}.dead"),
        events: format!("monteur.test.{id}.events"),
        audit_x: format!("monteur.test.{id}.audit"),
        audit_q: format!("monteur.test.{id}.audit"),
        prefix: format!("tenants/acme/{id}/"),
    }
}

/// The test's workers' scratch folder (shared by workers on one queue, as
/// workers on one host share /dev/shm).
pub fn scratch_dir(n: &Names) -> std::path::PathBuf {
    let id = n
        .queue
        .trim_start_matches("monteur.test.")
        .trim_end_matches(".jobs");
    std::path::PathBuf::from(format!("/dev/shm/monteur-test-{id}"))
}

/// Files in the test's scratch folder, besides the workers' lock files.
pub fn scratch_files(n: &Names) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|f| f != ".lock") {
                out.push(p.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&scratch_dir(n), &mut out);
    out
}

/// Scratch folders of worker starts that are gone (their lock is free).
pub fn dead_instances(n: &Names) -> Vec<String> {
    std::fs::read_dir(scratch_dir(n))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::File::open(e.path().join(".lock")).is_ok_and(|f| f.try_lock().is_ok()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn start_worker(test: &str) -> Worker {
    start_worker_with(test, &[])
}

pub fn start_worker_with(test: &str, env: &[(&str, &str)]) -> Worker {
    start_worker_on(names(test), env)
}

/// The test workers' keyring file: both tenants' keys and the producers'
/// verifying keys.
pub fn write_keyring(keyring: &std::path::Path) {
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    std::fs::write(
        keyring,
        format!(
            r#"{{"tenants": [{{"tenant": "acme", "id": "acme-1", "key": "{}", "active": true}},
                             {{"tenant": "{CANARY_TENANT}", "id": "{CANARY_TENANT}-1", "key": "{}", "active": true}}],
                "verify": [{{"id": "sig-1", "public_key": "{}",
                             "actions": ["process", "purge", "cancel"], "tenants": ["*"]}},
                           {{"id": "sig-2", "public_key": "{}",
                             "actions": ["process"], "tenants": ["*"]}}]}}"#,
            b64(&TENANT_KEY),
            b64(&CANARY_KEY),
            b64(&signer().public_key()),
            b64(&second_signer().public_key())
        ),
    )
    .unwrap();
}

/// Sends SIGTERM to `child`, as Kubernetes stops a pod.
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A worker on existing queues (several workers can share them).
pub fn start_worker_on(n: Names, env: &[(&str, &str)]) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keys.json");
    write_keyring(&keyring);
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

pub fn spawn(n: &Names, keyring: &std::path::Path, env: &[(String, String)]) -> Child {
    spawn_via(Command::new(env!("CARGO_BIN_EXE_monteur")), n, keyring, env)
}

/// [`spawn`] through `cmd`, a command that runs `monteur` with the
/// arguments added to it (the image's root filesystem, say).
pub fn spawn_via(
    mut cmd: Command,
    n: &Names,
    keyring: &std::path::Path,
    env: &[(String, String)],
) -> Child {
    let (key_id, secret) = s3::credentials();
    cmd.arg("worker")
        .env_remove("MONTEUR_CONFIG")
        .env("MONTEUR_WORKER__AMQP_URL", rabbitmq::url())
        .env("MONTEUR_WORKER__QUEUE", &n.queue)
        .env("MONTEUR_WORKER__INTERACTIVE_QUEUE", &n.interactive)
        .env("MONTEUR_WORKER__CANCEL_QUEUE", &n.cancels)
        .env("MONTEUR_WORKER__CONTROL_EXCHANGE", &n.control)
        // One slot unless a test asks for more: whatever the machine's cores.
        .env("MONTEUR_WORKER__CONCURRENCY", "1")
        // A scratch folder per test, inside RAM like the default.
        .env("MONTEUR_WORKER__SCRATCH_DIR", scratch_dir(n))
        .env("MONTEUR_WORKER__DEAD_LETTER_EXCHANGE", &n.dlx)
        .env("MONTEUR_WORKER__DEAD_LETTER_QUEUE", &n.dlq)
        .env("MONTEUR_WORKER__EVENTS_EXCHANGE", &n.events)
        .env("MONTEUR_WORKER__AUDIT_EXCHANGE", &n.audit_x)
        .env("MONTEUR_WORKER__AUDIT_QUEUE", &n.audit_q)
        .env("MONTEUR_WORKER__REGION", REGION)
        .env("MONTEUR_STORAGE__RESIDENCY", REGION)
        // Broker and Garage listen on loopback, in plaintext.
        .env("MONTEUR_WORKER__ALLOW_PLAINTEXT_LOOPBACK", "true")
        .env("MONTEUR_WORKER__KEYRING", keyring)
        .env("MONTEUR_WORKER__SEGMENT_BYTES", "65536")
        // These tests are about the daemon, not about scene detection (its
        // own tests cover the fused detector): the kernel detector keeps
        // thirty workers on two cores from each running TransNetV2, which
        // pushed short jobs past the deadlines the lifecycle tests set.
        .env("MONTEUR_SCENES__DETECTOR", "kernel")
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
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.names, &self.keyring, &self.env);
    }
}

/// Removes the test's queues and exchanges so runs leave nothing behind.
pub async fn cleanup(n: &Names) {
    let ch = rabbitmq::connect().await.create_channel().await.unwrap();
    for q in [&n.queue, &n.interactive, &n.cancels, &n.dlq, &n.audit_q] {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let _ = std::fs::remove_dir_all(scratch_dir(n));
    for x in [&n.dlx, &n.events, &n.audit_x, &n.control] {
        let _ = ch
            .exchange_delete(x.as_str().into(), Default::default())
            .await;
    }
}

pub fn keyring() -> Keyring {
    let mut k = Keyring::default();
    k.add_tenant_key("acme", Key::new("acme-1", TENANT_KEY), true)
        .unwrap();
    k.add_tenant_key(
        CANARY_TENANT,
        Key::new(format!("{CANARY_TENANT}-1"), CANARY_KEY),
        true,
    )
    .unwrap();
    k
}

/// A publishing channel (with confirms) and the worker's events, once it
/// is up.
pub async fn listen(n: &Names) -> (lapin::Connection, Channel, lapin::Consumer) {
    let conn = rabbitmq::connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let events = events_queue(&ch, n).await;
    (conn, ch, events)
}

/// Waits for the next `started` event (skipping others).
pub async fn wait_started(events: &mut lapin::Consumer) {
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
pub async fn ready_messages(ch: &Channel, queue: &str) -> u32 {
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
pub async fn events_queue(ch: &Channel, n: &Names) -> lapin::Consumer {
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

pub async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
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

/// The next event that ends a job (`started` and `progress` skipped).
pub async fn next_event(events: &mut lapin::Consumer) -> Value {
    loop {
        let e = next_any(events).await;
        if e["event"] != "started" && e["event"] != "progress" {
            return e;
        }
    }
}

/// The next event, whatever it is.
pub async fn next_any(events: &mut lapin::Consumer) -> Value {
    let d = tokio::time::timeout(Duration::from_secs(90), events.next())
        .await
        .expect("no event within 90 s")
        .unwrap()
        .unwrap();
    d.ack(BasicAckOptions::default()).await.unwrap();
    serde_json::from_slice(&d.data).unwrap()
}

/// Publishes a signed cancel of job `id` to the cancel queue.
pub async fn cancel(ch: &Channel, n: &Names, id: &str) {
    let c = monteur_worker::job::CancelJob {
        job_id: id.into(),
        tenant: "acme".into(),
        region: REGION.into(),
        output_prefix: format!("{}out/{id}/", n.prefix),
        stamp: stamp(),
    };
    let body = monteur_worker::job::cancel_envelope(&c, signer());
    publish(ch, &n.cancels, body.as_bytes()).await;
}

/// Object keys under `prefix`.
pub async fn keys_of(prefix: &str) -> Vec<String> {
    let listed = s3::ready_client()
        .await
        .list_objects_v2()
        .bucket(s3::bucket())
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// The next `count` dead letters of the test (the `failed` event is
/// published before the dead letter): (reason, job id).
pub async fn dead_letters(ch: &Channel, n: &Names, count: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while out.len() < count && std::time::Instant::now() < until {
        match ch
            .basic_get(
                n.dlq.as_str().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await
            .unwrap()
        {
            Some(m) => {
                m.delivery.ack(BasicAckOptions::default()).await.unwrap();
                let body: Value = serde_json::from_slice(&m.delivery.data).unwrap_or(Value::Null);
                let id = body["job"]["job_id"].as_str().unwrap_or("").to_string();
                out.push((reason(&m.delivery), id));
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    out
}

pub fn job(n: &Names, id: &str, input: &str, encryption: Encryption) -> Job {
    Job {
        job_id: id.into(),
        tenant: "acme".into(),
        region: REGION.into(),
        input: format!("{}in/{input}", n.prefix),
        output_prefix: format!("{}out/{id}/", n.prefix),
        tasks: vec!["scenes".into()],
        encryption,
        options: JobOptions::default(),
        stamp: stamp(),
    }
}

/// Stores `fixture` as the input `in/<its file name>` (client-side
/// encrypted) and publishes one signed scenes job on it per id, in order.
pub async fn submit(n: &Names, ch: &Channel, fixture: &str, ids: &[String]) {
    let name = fixture.rsplit('/').next().unwrap();
    let input = std::fs::read(fixtures::path(fixture)).unwrap();
    put_input(n, name, &input, Encryption::Client).await;
    let signer = signer();
    for id in ids {
        let j = job(n, id, name, Encryption::Client);
        publish(ch, &n.queue, envelope(&j, signer).as_bytes()).await;
    }
}

pub fn job_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

pub async fn put_input(n: &Names, name: &str, data: &[u8], mode: Encryption) {
    put_object_as("acme", &format!("{}in/{name}", n.prefix), data, mode).await;
}

/// Stores `data` as a client of the platform would, with `tenant`'s key.
pub async fn put_object_as(tenant: &str, key: &str, data: &[u8], mode: Encryption) {
    let client = s3::ready_client().await;
    let req = client.put_object().bucket(s3::bucket()).key(key);
    match mode {
        Encryption::Client => {
            let sealed = seal_for(tenant, key, data);
            req.body(ByteStream::from(sealed)).send().await.unwrap();
        }
        Encryption::SseC => {
            let (alg, key, md5) = sse_c();
            req.sse_customer_algorithm(alg)
                .sse_customer_key(key)
                .sse_customer_key_md5(md5)
                .body(ByteStream::from(data.to_vec()))
                .send()
                .await
                .unwrap();
        }
    }
}

/// Reads an output back the way a client of the platform would.
pub async fn get_output(key: &str, mode: Encryption) -> Vec<u8> {
    let client = s3::ready_client().await;
    let req = client.get_object().bucket(s3::bucket()).key(key);
    let body = match mode {
        Encryption::Client => req.send().await.unwrap().body,
        Encryption::SseC => {
            let (alg, k, md5) = sse_c();
            req.sse_customer_algorithm(alg)
                .sse_customer_key(k)
                .sse_customer_key_md5(md5)
                .send()
                .await
                .unwrap()
                .body
        }
    };
    let raw = body.collect().await.unwrap().into_bytes().to_vec();
    match mode {
        Encryption::Client => stream::open(&raw, &place("acme", key), &keyring()).unwrap(),
        Encryption::SseC => raw,
    }
}

/// Where an object of `tenant` at `key` lives, for client-side encryption.
pub fn place<'a>(tenant: &'a str, key: &'a str) -> stream::Location<'a> {
    static BUCKET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    stream::Location {
        bucket: BUCKET.get_or_init(s3::bucket),
        key,
        tenant,
    }
}

/// `data` sealed client-side for `tenant`'s object at `key`.
pub fn seal_for(tenant: &str, key: &str, data: &[u8]) -> Vec<u8> {
    let k = keyring();
    stream::seal(
        k.active_key(tenant).unwrap(),
        65536,
        data,
        &place(tenant, key),
    )
    .unwrap()
}

/// The SSE-C headers for acme's key (the SSE-C key derived from it).
pub fn sse_c() -> (String, String, String) {
    let (alg, key, md5) = monteur_worker::crypto::sse_c(&Key::new("acme-1", TENANT_KEY)).unwrap();
    (alg.to_string(), key.to_string(), md5)
}

pub fn reason(d: &lapin::message::Delivery) -> String {
    header(d, "x-monteur-reason")
}

pub fn header(d: &lapin::message::Delivery, name: &str) -> String {
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

/// Exactly one manifest and one set of outputs per job, nothing stray.
pub async fn assert_one_manifest_and_output_set_each(n: &Names, ids: &[String]) {
    for id in ids {
        let keys = keys_of(&format!("{}out/{id}/", n.prefix)).await;
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET: status code and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
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
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// Every message in `queue` now, as JSON (acknowledged).
pub async fn drain_json(ch: &Channel, queue: &str) -> Vec<Value> {
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

pub async fn keys_under(client: &aws_sdk_s3::Client, prefix: &str) -> usize {
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

pub async fn uploads_under(client: &aws_sdk_s3::Client, prefix: &str) -> usize {
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
pub async fn unfinished_upload(client: &aws_sdk_s3::Client, key: &str) {
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

/// A TCP relay in front of the S3 server that counts connections and
/// misbehaves on demand: the first
/// request of each of the first `refuse` connections gets `503 Service
/// Unavailable`, and the first `cut` responses longer than 256 KiB are cut
/// off mid-body.
pub struct S3Relay {
    pub port: u16,
    /// Faults still to inject: (503s, cuts).
    pub left: (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ),
    /// Connections the worker opened to storage (none: no request).
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl S3Relay {
    pub async fn start(refuse: usize, cut: usize) -> Self {
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
        let connections = Arc::new(AtomicUsize::new(0));
        let opened = connections.clone();
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                opened.fetch_add(1, Ordering::SeqCst);
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
        Self {
            port,
            left,
            connections,
        }
    }
}
