//! Jobs that complete: outputs encrypted in both modes, readable by a
//! platform client, idempotent under redelivery.

use crate::harness::*;

async fn happy_path(mode: Encryption, test: &str) {
    let w = start_worker(test);
    let (_conn, ch, mut events) = listen(&w.names).await;
    let input = std::fs::read(fixtures::path("inputs/testsrc.mkv")).unwrap();
    put_input(&w.names, "clip.mkv", &input, mode).await;
    let mut j = job(&w.names, "job-1", "clip.mkv", mode);
    j.tasks = vec!["scenes".into(), "autocut".into()];
    publish(&ch, &w.names.queue, envelope(&j, signer()).as_bytes()).await;
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

    // The same message sent again is a replay: refused.
    publish(&ch, &w.names.queue, envelope(&j, signer()).as_bytes()).await;
    let replayed = next_event(&mut events).await;
    assert_eq!(replayed["reason"], "replayed", "{replayed}");
    // The same job in a new message: acknowledged as done, nothing redone.
    let again_job = Job {
        stamp: stamp(),
        ..j.clone()
    };
    publish(
        &ch,
        &w.names.queue,
        envelope(&again_job, signer()).as_bytes(),
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
