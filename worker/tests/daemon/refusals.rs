//! Messages and inputs that are refused: each with its reason, the worker
//! serving on.

use crate::harness::*;

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
    let signer = signer();

    let good = job(&n, "good", "good.mkv", Encryption::Client);
    let good_text = envelope(&good, signer);
    let mut foreign = good.clone();
    foreign.stamp = stamp();
    foreign.job_id = "foreign".into();
    foreign.input = "tenants/globex/in/their.mkv".into();
    let mut region = good.clone();
    region.stamp = stamp();
    region.job_id = "region".into();
    region.region = "elsewhere".into();
    let mut missing = good.clone();
    missing.stamp = stamp();
    missing.job_id = "missing".into();
    missing.input = format!("{}in/absent.mkv", n.prefix);
    let truncated = job(&n, "truncated", "cut.mp4", Encryption::Client);
    // A ciphertext with one byte flipped in its body: fails authentication.
    let mut sealed = seal_for("acme", &format!("{}in/tampered.mkv", n.prefix), &input);
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
                r#"{{"schema":"monteur.job.v2","job":{}}}"#,
                serde_json::to_string(&v["job"]).unwrap()
            ),
        ),
        ("bad_signature", envelope(&good, &impostor())),
        ("foreign_object", envelope(&foreign, signer)),
        ("wrong_region", envelope(&region, signer)),
        ("input_unreadable", envelope(&missing, signer)),
        ("bad_media", envelope(&truncated, signer)),
        ("corrupt_input", envelope(&tampered, signer)),
        ("bad_media", envelope(&huge, signer)),
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
    for id in ["tampered", "truncated", "huge"] {
        let keys = keys_of(&format!("{}out/{id}/", n.prefix)).await;
        assert!(keys.is_empty(), "{id} left outputs: {keys:?}");
    }
    drop(w);
    cleanup(&n).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_upload_is_refused_with_its_own_reason() {
    let w = start_worker("trunc");
    let n = w.names.clone();
    let (_conn, ch, mut events) = listen(&n).await;
    // The first tenth of a clip whose index sits at its start: it probes as
    // 42 s but decodes 3.4 s. Analysing that as the whole would be a lie.
    let whole = std::fs::read(fixtures::path("autocut/example.mp4")).unwrap();
    put_input(
        &n,
        "cut.mp4",
        &whole[..whole.len() / 10],
        Encryption::Client,
    )
    .await;
    let mut j = job(&n, "t0", "cut.mp4", Encryption::Client);
    j.tasks = vec!["scenes".into(), "captions".into(), "autocut".into()];
    publish(&ch, &n.queue, envelope(&j, signer()).as_bytes()).await;
    let e = next_event(&mut events).await;
    assert_eq!(
        (e["event"].as_str(), e["reason"].as_str()),
        (Some("failed"), Some("truncated_input")),
        "{e}"
    );
    assert_eq!(
        dead_letters(&ch, &n, 1).await,
        vec![("truncated_input".to_string(), "t0".to_string())]
    );
    assert!(keys_of(&format!("{}out/t0/", n.prefix)).await.is_empty());
    drop(w);
    cleanup(&n).await;
}
