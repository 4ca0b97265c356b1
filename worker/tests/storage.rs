//! Object storage on Garage: large outputs go up as streamed, encrypted
//! multipart uploads and come back byte for byte through the ranged reader
//! the worker reads inputs with, in both encryption modes.

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
