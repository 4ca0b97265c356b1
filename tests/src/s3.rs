//! The Garage S3 server used by the tests.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

use crate::START_HINT;

/// Same defaults as `scripts/services.sh`; both read the same variables.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn endpoint() -> String {
    env_or("MONTEUR_TEST_S3_ENDPOINT", "http://127.0.0.1:3900")
}

pub fn bucket() -> String {
    env_or("MONTEUR_TEST_S3_BUCKET", "monteur-test")
}

/// The test access key id and secret (the same defaults `scripts/services.sh`
/// creates), for processes that read them from the environment.
pub fn credentials() -> (String, String) {
    (
        env_or("MONTEUR_TEST_S3_KEY_ID", "GK5b1c0d2e3f4a5b6c7d8e9f0a"),
        env_or(
            "MONTEUR_TEST_S3_SECRET",
            "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f",
        ),
    )
}

/// An S3 client for Garage: path-style addressing, and checksums only where the
/// API requires them (the SDK's default trailers break uploads to Garage).
pub fn client() -> Client {
    let (id, secret) = credentials();
    let credentials = Credentials::new(id, secret, None, None, "monteur-tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("garage"))
        .endpoint_url(endpoint())
        .force_path_style(true)
        .credentials_provider(credentials)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// A client whose bucket is known to answer, or a panic saying what is down.
pub async fn ready_client() -> Client {
    let client = client();
    let bucket = bucket();
    match tokio::time::timeout(
        Duration::from_secs(10),
        client.head_bucket().bucket(&bucket).send(),
    )
    .await
    {
        Ok(Ok(_)) => client,
        Ok(Err(e)) => panic!(
            "S3 bucket {bucket} at {} is not usable: {}; {START_HINT}",
            endpoint(),
            aws_sdk_s3::error::DisplayErrorContext(&e)
        ),
        Err(_) => panic!(
            "S3 at {} did not answer within 10 s; {START_HINT}",
            endpoint()
        ),
    }
}

/// The three SSE-C header values for a 256-bit customer key: algorithm, key
/// and key MD5, both base64.
#[derive(Debug, Clone)]
pub struct SseCustomerKey {
    pub algorithm: &'static str,
    pub key_b64: String,
    pub key_md5_b64: String,
}

impl SseCustomerKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            algorithm: "AES256",
            key_b64: STANDARD.encode(key),
            key_md5_b64: STANDARD.encode(Md5::digest(key)),
        }
    }
}

/// moto's S3 server (`scripts/services.sh`), for what Garage lacks: object
/// versioning. Any credentials pass; nothing encrypted is tested there.
pub fn versioned_endpoint() -> String {
    env_or(
        "MONTEUR_TEST_VERSIONED_S3_ENDPOINT",
        "http://127.0.0.1:3950",
    )
}

/// A client for moto with `bucket` created and versioning enabled on it.
pub async fn versioned_bucket(bucket: &str) -> Client {
    let credentials = Credentials::new("moto", "moto", None, None, "monteur-tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(versioned_endpoint())
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    let client = Client::from_conf(config);
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        client.create_bucket().bucket(bucket).send(),
    )
    .await;
    match created {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.as_service_error().is_some() => {} // it exists
        Ok(Err(e)) => panic!(
            "moto at {} is not usable: {}; {START_HINT}",
            versioned_endpoint(),
            aws_sdk_s3::error::DisplayErrorContext(&e)
        ),
        Err(_) => panic!(
            "moto at {} did not answer within 10 s; {START_HINT}",
            versioned_endpoint()
        ),
    }
    if let Err(e) = client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
    {
        panic!(
            "could not enable versioning on moto: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        );
    }
    client
}
