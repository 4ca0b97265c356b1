//! The daemon, measured in one run against the work itself:
//!
//! - job overhead: latency from publishing a job to its confirmed `completed`
//!   event (queue wait, S3 read and client-side decryption, the run,
//!   encryption, uploads, manifest, event), p50 and p99 over 40 sequential
//!   jobs, beside `monteur process` of the same input (the work without the
//!   daemon, process start included);
//! - peak RSS of a fresh worker after one job on a 1-minute and on a
//!   20-minute input (same picture size and codec).
//!
//! Needs the test services (`scripts/services.sh start`).
//! Run: `cargo build --release --bin monteur && cargo bench -p monteur-benches --bench worker`

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use monteur_benches::timing;
use monteur_tests::{fixtures, rabbitmq, s3};
use monteur_worker::crypto::{Key, Signer, stream};
use monteur_worker::job::{Encryption, Job, JobOptions, Stamp, envelope};

const JOBS: usize = 40;
const TENANT_KEY: [u8; 32] = [0x42; 32];
/// The producer's key (the worker gets its public half).
fn signer() -> &'static Signer {
    static S: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    S.get_or_init(|| match Signer::generate("sig-1") {
        Ok((s, _)) => s,
        Err(e) => panic!("no signing key: {e}"),
    })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return monteur_benches::finish(Err(e.to_string())),
    };
    monteur_benches::finish(rt.block_on(run()))
}

/// One worker process on queues of its own, and a listener on its events.
struct Bench {
    child: Child,
    _dir: tempfile::TempDir,
    ch: Channel,
    events: Consumer,
    /// Jobs queue, dead-letter exchange and queue, events exchange, audit
    /// exchange and queue (one name).
    names: [String; 5],
    prefix: String,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bench {
    async fn start(tag: &str) -> Result<Self, String> {
        let monteur = monteur_benches::monteur_bin()?;
        let id = format!("bench-{}-{tag}", std::process::id());
        let names = [
            format!("monteur.{id}.jobs"),
            format!("monteur.{id}.dlx"),
            format!("monteur.{id}.dead"),
            format!("monteur.{id}.events"),
            format!("monteur.{id}.audit"),
        ];
        let dir = tempfile::tempdir().map_err(err)?;
        let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
        let keyring = dir.path().join("keys.json");
        std::fs::write(
            &keyring,
            format!(
                r#"{{"tenants": [{{"tenant": "acme", "id": "acme-1", "key": "{}", "active": true}}],
                    "verify": [{{"id": "sig-1", "public_key": "{}", "actions": ["process"], "tenants": ["*"]}}]}}"#,
                b64(&TENANT_KEY),
                b64(&signer().public_key())
            ),
        )
        .map_err(err)?;
        let (key_id, secret) = s3::credentials();
        let child = Command::new(&monteur)
            .arg("worker")
            .env_remove("MONTEUR_CONFIG")
            .env("MONTEUR_WORKER__AMQP_URL", rabbitmq::url())
            .env("MONTEUR_WORKER__QUEUE", &names[0])
            .env("MONTEUR_WORKER__DEAD_LETTER_EXCHANGE", &names[1])
            .env("MONTEUR_WORKER__DEAD_LETTER_QUEUE", &names[2])
            .env("MONTEUR_WORKER__EVENTS_EXCHANGE", &names[3])
            .env("MONTEUR_WORKER__AUDIT_EXCHANGE", &names[4])
            .env("MONTEUR_WORKER__AUDIT_QUEUE", &names[4])
            .env("MONTEUR_WORKER__KEYRING", &keyring)
            .env("MONTEUR_WORKER__ALLOW_PLAINTEXT_LOOPBACK", "true")
            .env("MONTEUR_WORKER__HTTP_ADDR", "127.0.0.1:0")
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
            .map_err(err)?;
        let conn = rabbitmq::connect().await;
        let ch = conn.create_channel().await.map_err(err)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err)?;
        if !rabbitmq::wait_for_queue(&names[0], Duration::from_secs(20)).await {
            return Err("worker did not declare its queue".into());
        }
        let q = rabbitmq::private_queue(&ch, Some((names[3].as_str(), "job.completed")))
            .await
            .map_err(err)?;
        let events = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
        Ok(Self {
            child,
            _dir: dir,
            ch,
            events,
            names,
            prefix: format!("tenants/acme/{id}/"),
        })
    }

    /// Uploads `file` encrypted as this bench's input `name`.
    async fn upload(&self, file: &Path, name: &str) -> Result<(), String> {
        let input = std::fs::read(file).map_err(err)?;
        let (bucket, key) = (s3::bucket(), format!("{}in/{name}", self.prefix));
        let sealed = stream::seal(
            &Key::new("acme-1", TENANT_KEY),
            stream::DEFAULT_SEGMENT,
            &input,
            &stream::Location {
                bucket: &bucket,
                key: &key,
                tenant: "acme",
            },
        )
        .map_err(err)?;
        s3::ready_client()
            .await
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(sealed))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Publishes a job on input `name` and waits for its completion.
    async fn job(&mut self, name: &str, id: &str) -> Result<Duration, String> {
        let job = Job {
            job_id: id.into(),
            tenant: "acme".into(),
            region: "local".into(),
            input: format!("{}in/{name}", self.prefix),
            output_prefix: format!("{}out/{id}/", self.prefix),
            tasks: vec!["scenes".into()],
            encryption: Encryption::Client,
            options: JobOptions::default(),
            stamp: Stamp::fresh(3600),
        };
        let started = Instant::now();
        self.ch
            .basic_publish(
                "".into(),
                self.names[0].as_str().into(),
                BasicPublishOptions::default(),
                envelope(&job, signer()).as_bytes(),
                lapin::BasicProperties::default(),
            )
            .await
            .map_err(err)?
            .await
            .map_err(err)?;
        let d = tokio::time::timeout(Duration::from_secs(600), self.events.next())
            .await
            .map_err(|_| "no completion within 600 s".to_string())?
            .ok_or("events ended")?
            .map_err(err)?;
        let took = started.elapsed();
        d.ack(BasicAckOptions::default()).await.map_err(err)?;
        Ok(took)
    }

    /// The worker's peak resident set so far (VmHWM), MiB.
    fn peak_rss_mib(&self) -> Result<f64, String> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).map_err(err)?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .ok_or_else(|| "no VmHWM".into())
    }

    async fn stop(self) {
        for q in [&self.names[0], &self.names[2], &self.names[4]] {
            let _ = self
                .ch
                .queue_delete(q.as_str().into(), Default::default())
                .await;
        }
        for x in [&self.names[1], &self.names[3], &self.names[4]] {
            let _ = self
                .ch
                .exchange_delete(x.as_str().into(), Default::default())
                .await;
        }
    }
}

/// A `minutes`-long 320x240 H.264 + AAC clip, made once.
fn clip(minutes: u32) -> Result<PathBuf, String> {
    let dir = monteur_benches::cache_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(err)?;
    let path = dir.join(format!("rss-{minutes}min.mp4"));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = dir.join(format!("rss-{minutes}min.tmp.mp4"));
    let secs = minutes * 60;
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={secs}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&tmp)
        .status()
        .map_err(err)?
        .success();
    if !ok {
        return Err("ffmpeg could not make the clip".into());
    }
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

async fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let input_path = fixtures::path("inputs/testsrc.mkv");
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

    let mut bench = Bench::start("overhead").await?;
    bench.upload(&input_path, "clip.mkv").await?;
    let mut latencies = Vec::new();
    for i in 0..JOBS {
        latencies.push(bench.job("clip.mkv", &format!("j{i}")).await?.as_secs_f64());
    }
    bench.stop().await;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0;

    let mut rss = Vec::new();
    for minutes in [1, 20] {
        let file = clip(minutes)?;
        let size = std::fs::metadata(&file).map_err(err)?.len();
        let mut b = Bench::start(&format!("rss{minutes}")).await?;
        b.upload(&file, "long.mp4").await?;
        let took = b.job("long.mp4", "r").await?;
        rss.push((minutes, size, took, b.peak_rss_mib()?));
        b.stop().await;
    }

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
    println!("\nPeak RSS of a fresh worker after one job (320x240 H.264 + AAC, task scenes):\n");
    println!("| input | file MiB | job s | worker peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    for (m, size, took, mib) in rss {
        println!(
            "| {m} min | {:.1} | {:.1} | {mib:.0} |",
            size as f64 / (1 << 20) as f64,
            took.as_secs_f64()
        );
    }
    Ok(())
}
