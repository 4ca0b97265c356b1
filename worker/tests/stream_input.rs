//! Inputs that are not files: `monteursrc` feeds the same probe, analysis and
//! render as a file, with random access (testvideo.mp4 keeps its index at
//! its end, so the demuxer must seek), gives the same answers, and a read
//! that never returns cannot hold a cancelled job.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use monteur_kernels::CpuBackend;
use monteur_pipelines::{
    AnalyseSettings, Cancel, Input, PipelineError, RandomAccess, ReadError, analyse, probe,
    with_audio_stream,
};
use monteur_tests::fixtures;

/// Bytes in memory, counting what was read; with `hang_after`, every read
/// past that many bytes blocks until GStreamer unlocks the source.
struct Counted {
    data: Vec<u8>,
    read: AtomicU64,
    hang_after: Option<u64>,
    unlocked: Mutex<bool>,
    wake: Condvar,
    hung: AtomicBool,
}

impl Counted {
    fn new(data: Vec<u8>, hang_after: Option<u64>) -> Self {
        Self {
            data,
            read: AtomicU64::new(0),
            hang_after,
            unlocked: Mutex::new(false),
            wake: Condvar::new(),
            hung: AtomicBool::new(false),
        }
    }
}

impl RandomAccess for Counted {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
        if self
            .hang_after
            .is_some_and(|h| self.read.load(Ordering::Relaxed) > h)
        {
            self.hung.store(true, Ordering::SeqCst);
            let mut unlocked = self.unlocked.lock().unwrap();
            while !*unlocked {
                unlocked = self.wake.wait(unlocked).unwrap();
            }
            return Err(ReadError::Interrupted);
        }
        let from = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn unlock(&self) {
        *self.unlocked.lock().unwrap() = true;
        self.wake.notify_all();
    }
    fn unlock_stop(&self) {
        *self.unlocked.lock().unwrap() = false;
    }
}

fn ignore_audio(_: &[f32]) -> Result<(), PipelineError> {
    Ok(())
}

fn analyse_cpu(
    input: &Input,
    cancel: &Cancel,
) -> Result<monteur_pipelines::Analysis, PipelineError> {
    let info = probe(input, Duration::from_secs(30))?;
    analyse(
        input,
        &info,
        &AnalyseSettings::default(),
        Box::new(CpuBackend::new()),
        None,
        None,
        cancel,
        &mut |_| {},
    )
}

#[test]
fn a_stream_input_probes_and_analyses_like_its_file() {
    monteur_pipelines::init().unwrap();
    let file = fixtures::path("scenes/pyscenedetect/testvideo.mp4");
    let counted = Arc::new(Counted::new(std::fs::read(&file).unwrap(), None));
    let stream = Input::stream(counted.clone(), "tenants/a/in/testvideo.mp4");
    assert_eq!(stream.name(), "testvideo.mp4");
    assert_eq!(stream.locator(), "tenants/a/in/testvideo.mp4");
    let file = Input::file(&file);
    let timeout = Duration::from_secs(30);
    let from_file = probe(&file, timeout).unwrap();
    let from_stream = probe(&stream, timeout).unwrap();
    assert_eq!(from_stream.duration, from_file.duration);
    assert_eq!(from_stream.video.len(), 1);
    assert_eq!(from_stream.video[0].width, from_file.video[0].width);

    let a = analyse_cpu(&file, &Cancel::new()).unwrap();
    let b = analyse_cpu(&stream, &Cancel::new()).unwrap();
    assert_eq!(a.frames, b.frames);
    assert_eq!(a.features, b.features, "same frames, same features");
    assert!(counted.read.load(Ordering::Relaxed) >= counted.data.len() as u64 / 2);
}

#[test]
fn a_cancel_stops_a_decode_whose_read_hangs_within_two_seconds() {
    monteur_pipelines::init().unwrap();
    let data = std::fs::read(fixtures::path("scenes/pyscenedetect/testvideo.mp4")).unwrap();
    // Past the probe's reads, inside the decode.
    let hang_after = data.len() as u64 / 3;
    let source = Arc::new(Counted::new(data, Some(hang_after)));
    let input = Input::stream(source.clone(), "hanging.mp4");
    let info = probe(&input, Duration::from_secs(30)).unwrap();
    // The probe read past the mark too; start the count again for the decode.
    source.read.store(0, Ordering::Relaxed);
    let cancel = Cancel::new();
    let settings = AnalyseSettings {
        // Longer than the test: only the cancel can end the decode.
        stall_timeout: Duration::from_secs(600),
        ..AnalyseSettings::default()
    };
    let worker = {
        let (input, cancel) = (input.clone(), cancel.clone());
        std::thread::spawn(move || {
            analyse(
                &input,
                &info,
                &settings,
                Box::new(CpuBackend::new()),
                None,
                None,
                &cancel,
                &mut |_| {},
            )
        })
    };
    let waited = Instant::now();
    while !source.hung.load(Ordering::SeqCst) {
        assert!(waited.elapsed() < Duration::from_secs(60), "never hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let cancelled = Instant::now();
    cancel.cancel();
    let result = worker.join().unwrap();
    let took = cancelled.elapsed();
    assert!(
        matches!(result, Err(PipelineError::Cancelled)),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    eprintln!("hung decode stopped {took:?} after its cancel");
}

#[test]
fn a_cut_input_is_refused_as_truncated_unless_allowed() {
    monteur_pipelines::init().unwrap();
    let whole = std::fs::read(fixtures::path("autocut/example.mp4")).unwrap();
    // The first tenth of the bytes: the container still declares the whole
    // duration.
    let cut = whole[..whole.len() / 10].to_vec();
    let input = Input::stream(Arc::new(Counted::new(cut, None)), "cut.mp4");
    let info = probe(&input, Duration::from_secs(30)).unwrap();
    let settings = AnalyseSettings {
        audio: true,
        ..AnalyseSettings::default()
    };
    let run = |settings: &AnalyseSettings| {
        analyse(
            &input,
            &info,
            settings,
            Box::new(CpuBackend::new()),
            None,
            Some(&mut ignore_audio),
            &Cancel::new(),
            &mut |_| {},
        )
    };
    match run(&settings) {
        Err(e @ PipelineError::Truncated { .. }) => {
            assert!(e.is_permanent());
            eprintln!("{e}");
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let allowed = AnalyseSettings {
        allow_truncated: true,
        ..settings
    };
    let a = run(&allowed).unwrap();
    assert!(a.frames > 0 && a.truncated.is_some(), "{:?}", a.truncated);
    // The whole file is not truncated.
    let whole = Input::stream(Arc::new(Counted::new(whole, None)), "whole.mp4");
    let info = probe(&whole, Duration::from_secs(30)).unwrap();
    let a = analyse(
        &whole,
        &info,
        &settings,
        Box::new(CpuBackend::new()),
        None,
        Some(&mut ignore_audio),
        &Cancel::new(),
        &mut |_| {},
    )
    .unwrap();
    assert!(a.truncated.is_none());
}

#[test]
fn a_playlist_naming_other_media_is_not_followed() {
    monteur_pipelines::init().unwrap();
    // An HLS playlist whose only segment is a real, decodable file: were
    // the demuxer plugged, the job would read something that is not its
    // input (another tenant's stream, in the daemon).
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("segment.ts");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=2")
        .args(["-c:v", "libx264", "-f", "mpegts"])
        .arg(&segment)
        .status()
        .unwrap();
    assert!(made.success());
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{}\n#EXT-X-ENDLIST\n",
        segment.display()
    );
    let input = Input::stream(
        Arc::new(Counted::new(playlist.into_bytes(), None)),
        "talk.m3u8",
    );
    match probe(&input, Duration::from_secs(10)) {
        Err(e) => assert!(e.is_permanent(), "{e}"),
        Ok(info) => assert!(
            info.video.is_empty() && info.audio.is_empty(),
            "the playlist's segment was followed: {info:?}"
        ),
    }
}

#[test]
fn the_audio_read_again_is_the_audio_heard_in_the_analysis() {
    monteur_pipelines::init().unwrap();
    let bytes = std::fs::read(fixtures::path("autocut/example.mp4")).unwrap();
    let input = Input::stream(Arc::new(Counted::new(bytes, None)), "talk.mp4");
    let info = probe(&input, Duration::from_secs(30)).unwrap();
    let settings = AnalyseSettings {
        audio: true,
        ..AnalyseSettings::default()
    };
    let mut heard: Vec<f32> = Vec::new();
    let mut chunks = 0usize;
    let mut listen = |c: &[f32]| {
        heard.extend_from_slice(c);
        chunks += 1;
        Ok(())
    };
    let a = analyse(
        &input,
        &info,
        &settings,
        Box::new(CpuBackend::new()),
        None,
        Some(&mut listen),
        &Cancel::new(),
        &mut |_| {},
    )
    .unwrap();
    let extent = a.audio.unwrap();
    assert_eq!(extent.samples, heard.len() as u64);
    assert!(chunks > 100, "heard in {chunks} chunks, as decoded");
    // 42.4 s of audio at 16 kHz.
    assert!((heard.len() as f64 / 16_000.0 - 42.4).abs() < 0.1);

    // The second pass, read the way recognition reads: forward in 30 s
    // windows, letting go of each before the next.
    let window = 30 * 16_000;
    let (again, extent2) = with_audio_stream(&input, &info, &settings, &Cancel::new(), |r| {
        let mut all = Vec::new();
        let mut buf = vec![0f32; window];
        let mut at = 0;
        loop {
            r.forget_before(at);
            let n = r.read(at, &mut buf)?;
            all.extend_from_slice(&buf[..n]);
            at += n;
            if n < window {
                return Ok(all);
            }
        }
    })
    .unwrap();
    assert_eq!(extent2, extent);
    assert!(again == heard, "the second decode gave other samples");

    // A reader that stops early leaves the decode to end by itself.
    let (first, _) = with_audio_stream(&input, &info, &settings, &Cancel::new(), |r| {
        let mut one = [0f32; 1];
        r.read(0, &mut one)?;
        Ok(one[0])
    })
    .unwrap();
    assert_eq!(first, heard[0]);
}

#[test]
fn the_audio_read_again_is_not_demuxed_far_ahead_of_its_reader() {
    // Recognition reads the audio slowly, window by window, while the video
    // beside it is demuxed into a fakesink: decodebin's queue for the audio
    // must not grow to minutes of the file ahead of the reader.
    monteur_pipelines::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("three-minutes.mp4");
    monteur_tests::audio::run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=10:duration=180",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=180",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            &clip.to_string_lossy(),
        ],
    )
    .unwrap();
    let counted = Arc::new(Counted::new(std::fs::read(&clip).unwrap(), None));
    let input = Input::stream(counted.clone(), "three-minutes.mp4");
    let info = probe(&input, Duration::from_secs(30)).unwrap();
    let settings = AnalyseSettings {
        audio: true,
        ..AnalyseSettings::default()
    };
    let before = counted.read.load(Ordering::Relaxed);
    let ((), _) = with_audio_stream(&input, &info, &settings, &Cancel::new(), |r| {
        let mut two_seconds = vec![0f32; 2 * 16_000];
        r.read(0, &mut two_seconds)?;
        // Time for the demuxer to run as far ahead as it is let.
        std::thread::sleep(Duration::from_secs(2));
        let read = counted.read.load(Ordering::Relaxed) - before;
        let share = read as f64 / counted.data.len() as f64;
        eprintln!("read {read} bytes ({:.0}% of the file)", share * 100.0);
        // Some seconds of audio queued at each step after the demuxer,
        // about 20 s of the 180: not the file.
        assert!(share < 0.35, "{:.0}% of the file read ahead", share * 100.0);
        Ok(())
    })
    .unwrap();
}
