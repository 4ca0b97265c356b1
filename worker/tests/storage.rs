//! Object storage on Garage: large outputs go up as streamed, encrypted
//! multipart uploads and come back byte for byte through the ranged reader
//! the worker reads inputs with, in both encryption modes. And purges on a
//! store with object versioning (moto; Garage has none) remove every
//! version, not just the current one.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use monteur_pipelines::Cancel;
use monteur_pipelines::RandomAccess as _;
use monteur_tests::s3;
use monteur_worker::config::StorageConfig;
use monteur_worker::crypto::{Key, KeyProvider, Keyring};
use monteur_worker::job::Encryption;
use monteur_worker::storage::{Protection, Storage};

#[tokio::test(flavor = "multi_thread")]
async fn large_files_round_trip_through_multipart_in_both_modes() {
    s3::ready_client().await;
    let cfg = StorageConfig {
        endpoint: s3::endpoint(),
        region: "garage".into(),
        bucket: s3::bucket(),
        ..StorageConfig::default()
    };
    let (id, secret) = s3::credentials();
    let storage = Storage::with_credentials(&cfg, &id, &secret);
    let mut ring = Keyring::default();
    ring.add_tenant_key("acme", Key::new("acme-1", [9; 32]), true)
        .unwrap();
    let key = ring.active_key("acme").unwrap();
    // 40 MiB and a bit: three parts, the last one short.
    let data: Vec<u8> = (0..(40 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("render.mp4");
    std::fs::write(&file, &data).unwrap();
    let prefix = format!("tenants/acme/storage-{}-", std::process::id());
    for mode in [Encryption::Client, Encryption::SseC] {
        let p = Protection {
            mode,
            tenant: "acme",
            key,
            segment_bytes: 1 << 20,
        };
        let object = format!("{prefix}{mode:?}");
        let written = storage
            .put_file(&object, &file, p, &Cancel::new())
            .await
            .unwrap();
        assert_eq!(written, data.len() as u64);
        // Read back the way the worker reads inputs: ranged blocks,
        // decrypted and authenticated one by one.
        let reader = storage
            .open_reader(&object, p, &ring, 1 << 30, &Cancel::new())
            .await
            .unwrap();
        assert_eq!(reader.size(), data.len() as u64);
        let back = tokio::task::spawn_blocking(move || {
            let mut back = vec![0u8; reader.size() as usize];
            let n = reader.read_at(0, &mut back).unwrap();
            back.truncate(n);
            back
        })
        .await
        .unwrap();
        assert!(back == data, "{mode:?}: round trip differs");
        // What the bucket holds, read without the key.
        let raw = s3::ready_client()
            .await
            .get_object()
            .bucket(s3::bucket())
            .key(&object)
            .send()
            .await;
        match mode {
            Encryption::Client => {
                let raw = raw.unwrap().body.collect().await.unwrap().into_bytes();
                assert!(raw.starts_with(b"MNTR"));
                assert!(raw.len() > data.len());
                assert!(raw[raw.len() / 2..][..4096] != data[data.len() / 2..][..4096]);
            }
            // SSE-C objects cannot be read without the key at all.
            Encryption::SseC => assert!(raw.is_err()),
        }
        s3::ready_client()
            .await
            .delete_object()
            .bucket(s3::bucket())
            .key(&object)
            .send()
            .await
            .unwrap();
    }
    // No multipart upload was left unfinished.
    let open = s3::ready_client()
        .await
        .list_multipart_uploads()
        .bucket(s3::bucket())
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty());
}

/// The keys and version ids under `prefix` (versions and delete markers).
async fn versions_under(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let page = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut out: Vec<String> = page
        .versions()
        .iter()
        .map(|v| format!("{} {}", v.key().unwrap(), v.version_id().unwrap()))
        .chain(
            page.delete_markers()
                .iter()
                .map(|m| format!("{} {} (marker)", m.key().unwrap(), m.version_id().unwrap())),
        )
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_on_a_versioned_store_removes_every_version_and_marker() {
    let bucket = format!("monteur-versioned-{}", std::process::id());
    let client = s3::versioned_bucket(&bucket).await;
    let put = |key: &'static str, body: &'static str| {
        client
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
    };
    // Three versions of one render, a caption file deleted before the purge
    // (its old version hides under a delete marker), and a file outside the
    // prefix that must stay.
    for body in ["one", "two", "three"] {
        put("tenants/acme/projects/p7/render.mp4", body)
            .await
            .unwrap();
    }
    put("tenants/acme/projects/p7/captions.srt", "old")
        .await
        .unwrap();
    client
        .delete_object()
        .bucket(&bucket)
        .key("tenants/acme/projects/p7/captions.srt")
        .send()
        .await
        .unwrap();
    put("tenants/acme/projects/p8/render.mp4", "keep")
        .await
        .unwrap();
    let prefix = "tenants/acme/projects/p7/";
    // 3 + 1 versions and a marker: what a purge that deleted only current
    // objects would leave behind.
    assert_eq!(versions_under(&client, &bucket, prefix).await.len(), 5);

    let cfg = StorageConfig {
        endpoint: s3::versioned_endpoint(),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        ..StorageConfig::default()
    };
    let storage = Storage::with_credentials(&cfg, "moto", "moto");
    let report = storage.purge_prefix(prefix).await.unwrap();
    assert_eq!(report.objects, 1, "{report:?}");
    // The 5 above plus the marker the current render's deletion stacked.
    assert_eq!(report.versions, Some(6), "{report:?}");
    assert_eq!(
        versions_under(&client, &bucket, prefix).await,
        Vec::<String>::new()
    );
    assert_eq!(
        versions_under(&client, &bucket, "tenants/acme/projects/p8/")
            .await
            .len(),
        1
    );

    // Garage answers NotImplemented to version listings: the purge still
    // completes and says the store keeps no versions.
    s3::ready_client().await;
    let garage = Storage::with_credentials(
        &StorageConfig {
            endpoint: s3::endpoint(),
            region: "garage".into(),
            bucket: s3::bucket(),
            ..StorageConfig::default()
        },
        &s3::credentials().0,
        &s3::credentials().1,
    );
    let empty = format!("tenants/acme/versionless-{}/", std::process::id());
    let report = garage.purge_prefix(&empty).await.unwrap();
    assert_eq!((report.objects, report.versions), (0, None), "{report:?}");
}
