//! The container image, tested from inside its root filesystem (issue 16):
//! `scripts/image.sh exec` runs the image's own `monteur` in its own mount
//! and PID namespaces, chrooted into the unpacked image as its non-root
//! user, with the environment cleared: only the image's libraries, plugins
//! and models can be loaded. scripts/test.sh builds the image first
//! (`scripts/image.sh build`, cached); without it these tests fail and say
//! so.
//!
//! `monteur process` runs every task on the auto-editor talk fixture, and
//! `monteur worker` completes a signed job against the test RabbitMQ and
//! Garage (the network is the machine's: both listen on loopback).

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

#[path = "daemon/harness.rs"]
mod harness;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use harness::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/image.sh")
}

fn rootfs() -> PathBuf {
    let cache = monteur_tests::cache_dir();
    let root = cache.join("image/bundle/rootfs");
    assert!(
        root.join("usr/local/bin/monteur").is_file(),
        "no image at {}: build it with scripts/image.sh build (scripts/test.sh does)",
        root.display()
    );
    root
}

/// `scripts/image.sh exec` with these binds, then `args`.
fn in_image(binds: &[String], args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg("exec");
    for b in binds {
        cmd.args(["--bind", b]);
    }
    cmd.arg("--").args(args);
    cmd
}

/// A folder the image's user (10001) can read and write.
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

#[test]
fn the_image_holds_no_compiler_and_runs_as_a_user() {
    let root = rootfs();
    for tool in [
        "usr/bin/gcc",
        "usr/bin/cc",
        "usr/bin/rustc",
        "usr/bin/cargo",
        "usr/bin/ld",
    ] {
        assert!(!root.join(tool).exists(), "{tool} in the image");
    }
    let out = in_image(&[], &["/usr/bin/id", "-u"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10001");
    // Every library the binary needs resolves inside the image.
    let out = in_image(&[], &["/usr/bin/ldd", "/usr/local/bin/monteur"])
        .output()
        .unwrap();
    let ldd = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !ldd.contains("not found"), "{ldd}");
    assert!(ldd.contains("libgstreamer-1.0"), "{ldd}");
}

#[test]
fn monteur_process_in_the_image_writes_every_output() {
    let _root = rootfs();
    let fixture = fixtures::path("autocut/example.mp4");
    let out = open_dir();
    let run = in_image(
        &[
            format!("{}:/in/example.mp4", fixture.display()),
            format!("{}:/out", out.path().display()),
        ],
        &["monteur", "process", "/in/example.mp4", "--out", "/out"],
    )
    .output()
    .unwrap();
    assert!(
        run.status.success(),
        "monteur process in the image: {}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    for file in [
        "scenes.json",
        "transcript.json",
        "captions.srt",
        "captions.vtt",
        "captions.words.vtt",
        "captions.ass",
        "cutplan.json",
        "cutplan.otio",
        "cutplan.edl",
        "cutplan.fcpxml",
        "render.mp4",
        "report.json",
    ] {
        let p = out.path().join(file);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{file} missing or empty");
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let text = report.to_string();
    assert!(!text.contains("skipped"), "a task was skipped: {text}");
    // The talk was heard: the transcript holds words.
    let transcript: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("transcript.json")).unwrap())
            .unwrap();
    let words: usize = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["words"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(words > 20, "{words} words heard in 42 s of talk");
}

#[tokio::test(flavor = "multi_thread")]
async fn monteur_worker_in_the_image_completes_a_job() {
    let _root = rootfs();
    let n = names("image");
    let dir = open_dir();
    let keyring = dir.path().join("keys.json");
    // The harness's keyring, readable by the image's user.
    write_keyring(&keyring);
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cmd = in_image(&[dir.path().display().to_string()], &["monteur"]);
    let mut child = spawn_via(cmd, &n, &keyring, &[]);
    let (_conn, ch, mut events) = listen(&n).await;
    submit(&n, &ch, TALK, &job_ids("img", 1)).await;
    let e = next_event(&mut events).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        (e["event"].as_str(), e["job_id"].as_str()),
        (Some("completed"), Some("img0")),
        "{e}"
    );
    assert_one_manifest_and_output_set_each(&n, &job_ids("img", 1)).await;
    let scenes = get_output(
        &format!("{}out/img0/scenes.json", n.prefix),
        Encryption::Client,
    )
    .await;
    let doc: Value = serde_json::from_slice(&scenes).unwrap();
    assert!(doc["scenes"].as_array().is_some_and(|s| !s.is_empty()));
    cleanup(&n).await;
}
