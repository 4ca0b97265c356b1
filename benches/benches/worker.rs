//! Job overhead of the daemon, in one run against the work itself: latency
//! from publishing a job to its confirmed `completed` event (queue wait, S3
//! read and client-side decryption, the run, encryption, uploads, manifest,
//! event), p50 and p99 over 40 sequential jobs, beside `monteur process` of
//! the same input (the work without the daemon, process start included).
//!
//! Needs the test services (`scripts/services.sh start`).
//! Run: `cargo build --release --bin monteur && cargo bench -p monteur-benches --bench worker`

#![allow(clippy::print_stdout)]

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use monteur_benches::timing;
use monteur_tests::{fixtures, rabbitmq, s3};
use monteur_worker::crypto::{Key, stream};
use monteur_worker::job::{Encryption, Job, JobOptions, envelope};

const JOBS: usize = 40;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return monteur_benches::finish(Err(e.to_string())),
    };
    monteur_benches::finish(rt.block_on(run()))
}

async fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let input_path = fixtures::path("inputs/testsrc.mkv");
    let e = |e: &dyn std::fmt::Display| e.to_string();
    // The work alone.
    let out = std::env::temp_dir().join(format!("monteur-overhead-{}", std::process::id()));
    let alone = timing::process(
        5,
        &monteur.to_string_lossy(),
        &[
            "process".into(),
            input_path.to_string_lossy().into_owned(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
            "--tasks".into(),
            "scenes".into(),
        ],
    )?;
    let _ = std::fs::remove_dir_all(&out);

    let id = format!("bench-{}", std::process::id());
    let (queue, dlx, dlq, events_x) = (
        format!("monteur.{id}.jobs"),
        format!("monteur.{id}.dlx"),
        format!("monteur.{id}.dead"),
        format!("monteur.{id}.events"),
    );
    let dir = tempfile::tempdir().map_err(|x| e(&x))?;
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let keyring = dir.path().join("keys.json");
    let (tenant_key, signing) = ([0x42u8; 32], [0x17u8; 32]);
    std::fs::write(
        &keyring,
        format!(
            r#"{{"tenants": [{{"tenant": "acme", "id": "acme-1", "key": "{}", "active": true}}],
                "signing": [{{"id": "sig-1", "key": "{}"}}]}}"#,
            b64(&tenant_key),
            b64(&signing)
        ),
    )
    .map_err(|x| e(&x))?;
    let (key_id, secret) = s3::credentials();
    let _worker = Kill(
        Command::new(&monteur)
            .arg("worker")
            .env_remove("MONTEUR_CONFIG")
            .env("MONTEUR_WORKER__AMQP_URL", rabbitmq::url())
            .env("MONTEUR_WORKER__QUEUE", &queue)
            .env("MONTEUR_WORKER__DEAD_LETTER_EXCHANGE", &dlx)
            .env("MONTEUR_WORKER__DEAD_LETTER_QUEUE", &dlq)
            .env("MONTEUR_WORKER__EVENTS_EXCHANGE", &events_x)
            .env("MONTEUR_WORKER__KEYRING", &keyring)
            .env("MONTEUR_STORAGE__ENDPOINT", s3::endpoint())
            .env("MONTEUR_STORAGE__REGION", "garage")
            .env("MONTEUR_STORAGE__BUCKET", s3::bucket())
            .env("BENCH_KEY_ID", key_id)
            .env("BENCH_SECRET", secret)
            .env("MONTEUR_STORAGE__ACCESS_KEY_ENV", "BENCH_KEY_ID")
            .env("MONTEUR_STORAGE__SECRET_KEY_ENV", "BENCH_SECRET")
            .env("MONTEUR_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|x| e(&x))?,
    );
    let conn = rabbitmq::connect().await;
    let ch = conn.create_channel().await.map_err(|x| e(&x))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|x| e(&x))?;
    // Wait for the worker's topology, then listen to its events.
    let mut ready = false;
    for _ in 0..100 {
        let probe = rabbitmq::connect()
            .await
            .create_channel()
            .await
            .map_err(|x| e(&x))?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if probe
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ready {
        return Err("worker did not declare its queue".into());
    }
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|x| e(&x))?;
    ch.queue_bind(
        q.name().as_str().into(),
        events_x.as_str().into(),
        "job.completed".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|x| e(&x))?;
    let mut events = ch
        .basic_consume(
            q.name().as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|x| e(&x))?;
    let input = std::fs::read(&input_path).map_err(|x| e(&x))?;
    let tkey = Key::new("acme-1", tenant_key);
    let sealed = stream::seal(&tkey, stream::DEFAULT_SEGMENT, &input).map_err(|x| e(&x))?;
    let prefix = format!("tenants/acme/{id}/");
    s3::ready_client()
        .await
        .put_object()
        .bucket(s3::bucket())
        .key(format!("{prefix}in/clip.mkv"))
        .body(ByteStream::from(sealed))
        .send()
        .await
        .map_err(|x| e(&x))?;
    let signer = Key::new("sig-1", signing);
    let mut latencies = Vec::new();
    for i in 0..JOBS {
        let job = Job {
            job_id: format!("j{i}"),
            tenant: "acme".into(),
            region: "local".into(),
            input: format!("{prefix}in/clip.mkv"),
            output_prefix: format!("{prefix}out/j{i}/"),
            tasks: vec!["scenes".into()],
            encryption: Encryption::Client,
            options: JobOptions::default(),
        };
        let started = Instant::now();
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            envelope(&job, &signer).as_bytes(),
            lapin::BasicProperties::default(),
        )
        .await
        .map_err(|x| e(&x))?
        .await
        .map_err(|x| e(&x))?;
        let d = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .map_err(|_| "no completion within 60 s".to_string())?
            .ok_or("events ended")?
            .map_err(|x| e(&x))?;
        latencies.push(started.elapsed().as_secs_f64());
        d.ack(BasicAckOptions::default()).await.map_err(|x| e(&x))?;
    }
    for name in [&queue, &dlq] {
        let _ = ch
            .queue_delete(name.as_str().into(), Default::default())
            .await;
    }
    for name in [&dlx, &events_x] {
        let _ = ch
            .exchange_delete(name.as_str().into(), Default::default())
            .await;
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0;
    println!(
        "input: inputs/testsrc.mkv (2 s, 320x240, 60 frames), task scenes, client-side encryption; {JOBS} jobs one after another\n"
    );
    println!("| measure | ms |");
    println!("|---|---:|");
    println!(
        "| `monteur process` of the same input, best of 5 (process start included) | {:.0} |",
        alone.wall_s * 1000.0
    );
    println!(
        "| daemon: publish → confirmed `completed`, p50 | {:.0} |",
        pct(0.5)
    );
    println!(
        "| daemon: publish → confirmed `completed`, p99 | {:.0} |",
        pct(0.99)
    );
    Ok(())
}
