//! Object storage: inputs read and artifacts written encrypted with the
//! tenant's key, in either mode of [`Encryption`]: SSE-C (the key travels with
//! every request and S3 encrypts) or client-side segmented AEAD (the worker
//! encrypts; S3 only ever sees ciphertext).
//!
//! Inputs are read in blocks by ranged GETs ([`ObjectReader`]); outputs go
//! up from their files, part by part through the encryptor
//! ([`Storage::put_file`], multipart aborted on any failure so no orphaned
//! parts stay behind); the job manifest is written with `If-None-Match: *`,
//! so exactly one attempt of a job can complete it. A purge
//! ([`Storage::purge_prefix`]) deletes every object and aborts every
//! unfinished upload under a prefix.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use monteur_pipelines::{Cancel, ReadError};
use thiserror::Error;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::config::StorageConfig;
use crate::crypto::{self, CryptoError, Key, KeyProvider, stream};
use crate::job::Encryption;

/// Parts of a multipart upload (S3's minimum part is 5 MiB).
const PART: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum StorageError {
    /// Worth another attempt: 5xx, throttling, timeouts, connection loss.
    #[error("object storage unavailable: {0}")]
    Transient(String),
    /// The same request would fail again: missing object, denied, bad key.
    #[error("object storage refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("input is {size} bytes, above the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    /// The job was cancelled while the transfer ran (an upload is aborted).
    #[error("transfer stopped: the job was cancelled")]
    Cancelled,
}

impl StorageError {
    /// True when the object itself (or the request for it) is at fault:
    /// missing, denied, tampered, too large. Outages and cancellations are
    /// not.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, StorageError::Transient(_) | StorageError::Cancelled)
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R>(
    e: SdkError<E, R>,
) -> StorageError
where
    R: std::fmt::Debug,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            matches!(
                code,
                "InternalError" | "ServiceUnavailable" | "SlowDown" | "RequestTimeout"
            ) || code.is_empty()
        }
        _ => false,
    };
    // The SDK's context names the operation and the service's error code;
    // object keys and key material are not part of it.
    let text = DisplayErrorContext(&e).to_string();
    if transient {
        StorageError::Transient(text)
    } else {
        StorageError::Refused(text)
    }
}

/// SSE-C request headers: algorithm, key (wiped when dropped), key MD5.
type SseHeaders = (&'static str, Zeroizing<String>, String);

/// The SSE-C headers `p` needs, if any: every request on an SSE-C object
/// (GET, HEAD, PUT, multipart create and parts) must carry them.
fn sse(p: Protection<'_>) -> Result<Option<SseHeaders>, StorageError> {
    if p.mode == Encryption::SseC {
        Ok(Some(crypto::sse_c(p.key)?))
    } else {
        Ok(None)
    }
}

/// Adds `sse`'s headers to any S3 request builder (each operation has its
/// own builder type, with the same three setters).
macro_rules! with_sse {
    ($req:expr, $sse:expr) => {
        match $sse {
            Some((alg, key, md5)) => $req
                .sse_customer_algorithm(*alg)
                .sse_customer_key(key.as_str())
                .sse_customer_key_md5(md5.as_str()),
            None => $req,
        }
    };
}

/// What a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub objects: u64,
    pub uploads: u64,
    /// Older versions and delete markers removed, on a store with object
    /// versioning; `None` where the store has none (Garage answers
    /// `NotImplemented`), so nothing older exists to delete.
    pub versions: Option<u64>,
}

/// Listing-and-deleting passes before a purge gives up on a prefix that
/// keeps filling (a writer racing it); the job is then retried.
const PURGE_PASSES: usize = 5;

/// The bucket, through one S3 client.
#[derive(Debug, Clone)]
pub struct Storage {
    client: Client,
    bucket: String,
}

/// How one object is protected: the mode, the tenant and its key.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'a> {
    pub mode: Encryption,
    pub tenant: &'a str,
    pub key: &'a Key,
    pub segment_bytes: u32,
}

impl Storage {
    /// A client whose credentials come from the environment variables the
    /// config names.
    pub fn new(cfg: &StorageConfig) -> Self {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        Self::with_credentials(cfg, &var(&cfg.access_key_env), &var(&cfg.secret_key_env))
    }

    pub fn with_credentials(cfg: &StorageConfig, key_id: &str, secret: &str) -> Self {
        let credentials = Credentials::new(key_id, secret, None, None, "monteur-env");
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .force_path_style(cfg.path_style)
            .credentials_provider(credentials)
            // The default checksum trailers break several S3-compatible stores.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // Without these a silent server holds a job (and its slot)
            // until the job deadline.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs_f64(cfg.connect_timeout_s))
                    .operation_attempt_timeout(Duration::from_secs_f64(cfg.attempt_timeout_s))
                    .build(),
            );
        if !cfg.endpoint.is_empty() {
            b = b.endpoint_url(cfg.endpoint.clone());
        }
        Self {
            client: Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
        }
    }

    /// One PUT of `data`, encrypted as `p` says; with `once`, only if `key`
    /// does not exist yet (`Ok(false)` when another attempt wrote it first).
    async fn put_object(
        &self,
        key: &str,
        data: &[u8],
        p: Protection<'_>,
        once: bool,
    ) -> Result<bool, StorageError> {
        let body = match p.mode {
            Encryption::Client => {
                stream::seal(p.key, p.segment_bytes, data, &self.location(key, p))?
            }
            Encryption::SseC => data.to_vec(),
        };
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        if once {
            req = req.if_none_match("*");
        }
        match with_sse!(req, &sse(p)?).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s))
                if once
                    && (s.raw().status().as_u16() == 412
                        || s.err().code() == Some("PreconditionFailed")) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Uploads the file at `path`, encrypted as `p` says, reading and
    /// encrypting it part by part: memory stays at about two parts whatever
    /// the file's size. Returns the plaintext size.
    ///
    /// `cancel` is looked at before every part: a cancelled job's upload is
    /// aborted (no part left behind) and returns [`StorageError::Cancelled`].
    pub async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        p: Protection<'_>,
        cancel: &Cancel,
    ) -> Result<u64, StorageError> {
        use std::io::Read as _;
        let io = |e: std::io::Error| StorageError::Refused(format!("reading an output: {e}"));
        if cancel.is_cancelled() {
            return Err(StorageError::Cancelled);
        }
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size <= PART as u64 {
            let data = Zeroizing::new(std::fs::read(path).map_err(io)?);
            self.put_object(key, &data, p, false).await?;
            return Ok(size);
        }
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut encryptor = match p.mode {
            Encryption::Client => Some(stream::Encryptor::new(
                p.key,
                p.segment_bytes,
                &self.location(key, p),
            )?),
            Encryption::SseC => None,
        };
        let mut pending: Vec<u8> = encryptor
            .as_ref()
            .map(|e| e.header().to_vec())
            .unwrap_or_default();
        let mut buf = Zeroizing::new(vec![0u8; 4 << 20]);
        let mut done = false;
        let mut next = || -> Result<Option<Vec<u8>>, StorageError> {
            if cancel.is_cancelled() {
                return Err(StorageError::Cancelled);
            }
            while !done && pending.len() < PART {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    done = true;
                    if let Some(e) = encryptor.take() {
                        e.finish(&mut pending)?;
                    }
                } else if let Some(e) = encryptor.as_mut() {
                    e.push(&buf[..n], &mut pending)?;
                } else {
                    pending.extend_from_slice(&buf[..n]);
                }
            }
            if pending.is_empty() {
                return Ok(None);
            }
            let take = pending.len().min(PART);
            let rest = pending.split_off(take);
            Ok(Some(std::mem::replace(&mut pending, rest)))
        };
        self.multipart(key, p, &mut next).await?;
        Ok(size)
    }

    /// A multipart upload of the parts `next_part` yields (all but the last
    /// at least 5 MiB), aborted if anything fails.
    async fn multipart(
        &self,
        key: &str,
        p: Protection<'_>,
        next_part: &mut (dyn FnMut() -> Result<Option<Vec<u8>>, StorageError> + Send),
    ) -> Result<(), StorageError> {
        let sse = sse(p)?;
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key);
        let upload = with_sse!(create, &sse).send().await.map_err(classify)?;
        let id = upload
            .upload_id()
            .ok_or_else(|| StorageError::Refused("no upload id".into()))?
            .to_string();
        let result = async {
            let mut parts = Vec::new();
            let mut n = 0i32;
            while let Some(chunk) = next_part()? {
                n += 1;
                let req = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .body(ByteStream::from(chunk));
                let out = with_sse!(req, &sse).send().await.map_err(classify)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
        }
        result
    }

    /// Writes `data` only if `key` does not exist yet: `Ok(false)` when
    /// another attempt already wrote it. Manifests are small JSON documents,
    /// encrypted like everything else.
    pub async fn put_once(
        &self,
        key: &str,
        data: &[u8],
        p: Protection<'_>,
    ) -> Result<bool, StorageError> {
        self.put_object(key, data, p, true).await
    }

    /// Deletes `key` (gone already counts as deleted).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// The id of the tenant key that wrapped a client-mode object's data key,
    /// read from its header without using any key: what the audit record of
    /// a job names before the key is used.
    pub async fn wrapping_key_id(&self, key: &str) -> Result<String, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range("bytes=0-4095")
            .send()
            .await
            .map_err(classify)?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Transient(format!("body cut: {e}")))?
            .into_bytes();
        Ok(stream::key_id_of(&bytes)?)
    }

    /// Where `key` lives, for binding client-mode objects to it.
    fn location<'a>(&'a self, key: &'a str, p: Protection<'a>) -> stream::Location<'a> {
        stream::Location {
            bucket: &self.bucket,
            key,
            tenant: p.tenant,
        }
    }

    /// Whether `key`, written in client mode (or unencrypted), exists: a
    /// HEAD without SSE-C headers.
    pub async fn exists_plain(&self, key: &str) -> Result<bool, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 404 => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    /// Whether `key` exists (the manifest of a finished job).
    pub async fn exists(&self, key: &str, p: Protection<'_>) -> Result<bool, StorageError> {
        let req = self.client.head_object().bucket(&self.bucket).key(key);
        match with_sse!(req, &sse(p)?).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 404 => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

/// An object read in blocks by ranged GETs (pinned to one version with
/// `If-Match`), decrypted block by block in client mode: the input side of a
/// job, with memory bounded by a few blocks whatever the object's size.
pub struct ObjectReader {
    storage: Storage,
    key: String,
    etag: String,
    total: u64,
    sse: Option<SseHeaders>,
    header: Option<stream::Header>,
    size: u64,
    block: u64,
    runtime: tokio::runtime::Handle,
    cache: std::sync::Mutex<Vec<(u64, Block)>>,
    failure: std::sync::Mutex<Option<StorageError>>,
    fetched: AtomicU64,
    /// Set between GStreamer's unlock and unlock_stop, and for good once
    /// the job is cancelled: a read in flight ends at once.
    unlocked: Arc<AtomicBool>,
    cancel: Cancel,
    wake: Arc<Notify>,
    #[cfg(feature = "failpoints")]
    pub(crate) failpoint: std::sync::Mutex<Option<crate::daemon::failpoints::Read>>,
}

/// One decrypted block, shared between the cache and a reader.
type Block = std::sync::Arc<Zeroizing<Vec<u8>>>;

/// Blocks kept decrypted: the demuxer reads mostly forwards, with jumps to
/// an index at the end of the file.
const CACHED_BLOCKS: usize = 4;
/// Block size in SSE-C mode (client mode uses the object's segments).
const SSE_BLOCK: u64 = 4 << 20;

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens `key` for random access: reads its size and ETag and, in client
    /// mode, its header (unwrapping the data key with the tenant's key).
    /// Reads stop at once when `cancel` fires.
    pub async fn open_reader(
        &self,
        key: &str,
        p: Protection<'_>,
        keys: &dyn KeyProvider,
        limit: u64,
        cancel: &Cancel,
    ) -> Result<ObjectReader, StorageError> {
        let sse = sse(p)?;
        let head = self.client.head_object().bucket(&self.bucket).key(key);
        let meta = with_sse!(head, &sse).send().await.map_err(classify)?;
        let total = meta.content_length().unwrap_or(0).max(0) as u64;
        if total > limit {
            return Err(StorageError::TooLarge { size: total, limit });
        }
        let etag = meta.e_tag().unwrap_or_default().to_string();
        let mut reader = ObjectReader {
            storage: self.clone(),
            key: key.to_string(),
            etag,
            total,
            sse,
            header: None,
            size: total,
            block: SSE_BLOCK,
            runtime: tokio::runtime::Handle::current(),
            cache: std::sync::Mutex::new(Vec::new()),
            failure: std::sync::Mutex::new(None),
            fetched: AtomicU64::new(0),
            unlocked: Arc::new(AtomicBool::new(false)),
            cancel: cancel.clone(),
            wake: Arc::new(Notify::new()),
            #[cfg(feature = "failpoints")]
            failpoint: std::sync::Mutex::new(None),
        };
        let wake = Arc::clone(&reader.wake);
        cancel.on_cancel(move || wake.notify_waiters());
        if p.mode == Encryption::Client {
            // The header is at most a few hundred bytes.
            let start = reader.get_range(0, total.min(4096)).await?;
            let at = self.location(key, p);
            let header = stream::Header::parse(&start, &at, keys)?;
            reader.size = header.plaintext_len(total)?;
            reader.block = u64::from(header.segment_size);
            reader.header = Some(header);
        }
        Ok(reader)
    }
}

impl ObjectReader {
    async fn get_range(&self, start: u64, end: u64) -> Result<Vec<u8>, StorageError> {
        let mut last = None;
        // A body cut mid-block is fetched again (the block is small).
        for _ in 0..3 {
            let mut req = self
                .storage
                .client
                .get_object()
                .bucket(&self.storage.bucket)
                .key(&self.key)
                .range(format!("bytes={start}-{}", end.saturating_sub(1)));
            if !self.etag.is_empty() {
                req = req.if_match(&self.etag);
            }
            let out = with_sse!(req, &self.sse).send().await.map_err(classify)?;
            match out.body.collect().await {
                Ok(b) => {
                    let b = b.into_bytes().to_vec();
                    self.fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(e) => {
                    tracing::warn!(error = %e, start, "input block cut; fetching it again");
                    last = Some(StorageError::Transient(format!("body cut: {e}")));
                }
            }
        }
        Err(last.unwrap_or_else(|| StorageError::Transient("body cut".into())))
    }

    /// Resolves once reads must stop: unlocked by GStreamer, or the job
    /// cancelled.
    async fn interrupted(&self) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            // Registered before the flags are read: a wake-up in between is
            // not lost.
            woken.as_mut().enable();
            if self.unlocked.load(Ordering::SeqCst) || self.cancel.is_cancelled() {
                return;
            }
            woken.await;
        }
    }

    /// Waits `d` (forever when `None`) unless reads are interrupted first.
    #[cfg(feature = "failpoints")]
    pub(crate) fn wait_interruptibly(&self, d: Option<std::time::Duration>) -> Result<(), Fetch> {
        self.runtime.block_on(async {
            let sleep = async {
                match d {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => Ok(()),
                () = self.interrupted() => Err(self.why_interrupted()),
            }
        })
    }

    fn why_interrupted(&self) -> Fetch {
        if self.cancel.is_cancelled() {
            Fetch::Cancelled
        } else {
            Fetch::Interrupted
        }
    }

    /// `get_range`, unless reads are interrupted first.
    fn fetch(&self, start: u64, end: u64) -> Result<Vec<u8>, Fetch> {
        self.runtime.block_on(async {
            tokio::select! {
                r = self.get_range(start, end) => r.map_err(Fetch::Failed),
                () = self.interrupted() => Err(self.why_interrupted()),
            }
        })
    }

    /// Plaintext block `i`, from the cache or storage.
    fn block(&self, i: u64) -> Result<Block, Fetch> {
        if let Ok(cache) = self.cache.lock()
            && let Some((_, b)) = cache.iter().find(|(n, _)| *n == i)
        {
            return Ok(b.clone());
        }
        let plain = match &self.header {
            None => {
                let start = i * self.block;
                let end = (start + self.block).min(self.total);
                self.fetch(start, end)?
            }
            Some(h) => {
                let (a, b) = h.segment_range(i, self.total);
                let mut segment = self.fetch(a, b)?;
                let last = i + 1 == h.segments(self.total);
                h.open_segment(i, last, &mut segment)
                    .map_err(|e| Fetch::Failed(e.into()))?;
                segment
            }
        };
        let block = std::sync::Arc::new(Zeroizing::new(plain));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHED_BLOCKS {
                cache.remove(0);
            }
            cache.push((i, block.clone()));
        }
        Ok(block)
    }

    /// Bytes fetched from storage so far (block refetches included).
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// What made a read fail, if one did: the job's outcome depends on it
    /// (a storage outage is retried, tampered data is refused).
    pub fn failure(&self) -> Option<StorageError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

/// Why a block could not be had.
pub(crate) enum Fetch {
    Interrupted,
    Cancelled,
    Failed(StorageError),
}

impl From<StorageError> for Fetch {
    fn from(e: StorageError) -> Self {
        Fetch::Failed(e)
    }
}

impl monteur_pipelines::RandomAccess for ObjectReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
        if self.cancel.is_cancelled() {
            return Err(ReadError::Cancelled);
        }
        #[cfg(feature = "failpoints")]
        match self.failpoint_read(buf.len()) {
            Err(Fetch::Interrupted) => return Err(ReadError::Interrupted),
            Err(Fetch::Cancelled) => return Err(ReadError::Cancelled),
            _ => {}
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            if at >= self.size {
                break;
            }
            let i = at / self.block;
            let block = match self.block(i) {
                Ok(b) => b,
                Err(Fetch::Interrupted) => return Err(ReadError::Interrupted),
                Err(Fetch::Cancelled) => return Err(ReadError::Cancelled),
                Err(Fetch::Failed(e)) => {
                    let text = e.to_string();
                    if let Ok(mut f) = self.failure.lock() {
                        *f = Some(e);
                    }
                    return Err(ReadError::Failed(text));
                }
            };
            let from = (at - i * self.block) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(from));
            if n == 0 {
                break;
            }
            buf[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(done)
    }

    fn unlock(&self) {
        self.unlocked.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    fn unlock_stop(&self) {
        self.unlocked.store(false, Ordering::SeqCst);
    }
}

impl Storage {
    /// Deletes every object under `prefix` and aborts every unfinished
    /// multipart upload there, repeating until a pass finds nothing, so a
    /// completed purge leaves the prefix empty (privacy policy P9).
    pub async fn purge_prefix(&self, prefix: &str) -> Result<PurgeReport, StorageError> {
        let mut report = PurgeReport::default();
        for _ in 0..PURGE_PASSES {
            let objects = self.delete_objects_under(prefix).await?;
            let uploads = self.abort_uploads_under(prefix).await?;
            report.objects += objects;
            report.uploads += uploads;
            if objects == 0 && uploads == 0 {
                // On a versioned bucket the deletions above only stacked
                // delete markers on top of every version: remove them all.
                report.versions = self.delete_versions_under(prefix).await?;
                return Ok(report);
            }
        }
        Err(StorageError::Transient(format!(
            "objects kept appearing under the prefix after {PURGE_PASSES} passes"
        )))
    }

    async fn delete_objects_under(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        loop {
            // Each listing starts over: what was listed before is gone.
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(1000)
                .send()
                .await
                .map_err(classify)?;
            let ids = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Refused(e.to_string()))?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            deleted += self.delete_batch(ids).await?;
        }
    }

    /// Deletes up to 1000 objects (or versions) in one request; any that
    /// failed fail the batch, to be listed and tried again.
    async fn delete_batch(&self, ids: Vec<ObjectIdentifier>) -> Result<u64, StorageError> {
        let n = ids.len() as u64;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::Refused(e.to_string()))?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(classify)?;
        if let Some(first) = out.errors().first() {
            // The error's key is the tenant's object name: left out.
            return Err(StorageError::Transient(format!(
                "{} of {n} deletions failed ({})",
                out.errors().len(),
                first.code().unwrap_or("no code")
            )));
        }
        Ok(n)
    }

    /// Deletes every version and delete marker under `prefix`; `None` when
    /// the store does not implement versioning.
    async fn delete_versions_under(&self, prefix: &str) -> Result<Option<u64>, StorageError> {
        let mut deleted = 0;
        loop {
            let page = match self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(1000)
                .send()
                .await
            {
                Ok(page) => page,
                Err(SdkError::ServiceError(s)) if s.err().code() == Some("NotImplemented") => {
                    return Ok(None);
                }
                Err(e) => return Err(classify(e)),
            };
            let versions = page
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id()))
                .chain(
                    page.delete_markers()
                        .iter()
                        .map(|m| (m.key(), m.version_id())),
                )
                .filter_map(|(k, v)| Some((k?, v?)))
                .map(|(k, v)| ObjectIdentifier::builder().key(k).version_id(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Refused(e.to_string()))?;
            if versions.is_empty() {
                return Ok(Some(deleted));
            }
            deleted += self.delete_batch(versions).await?;
        }
    }

    /// Aborts every unfinished multipart upload under `prefix`.
    pub(crate) async fn abort_uploads_under(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut aborted = 0;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .map_err(classify)?;
            let uploads: Vec<(String, String)> = page
                .uploads()
                .iter()
                .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string())))
                .collect();
            if uploads.is_empty() {
                return Ok(aborted);
            }
            let before = aborted;
            for (key, id) in uploads {
                match self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&key)
                    .upload_id(&id)
                    .send()
                    .await
                {
                    Ok(_) => aborted += 1,
                    // Finished or aborted by its writer meanwhile: gone either way.
                    Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchUpload") => {}
                    Err(e) => return Err(classify(e)),
                }
            }
            // Only vanished uploads listed: listing again would loop.
            if aborted == before {
                return Ok(aborted);
            }
        }
    }
}
