//! Scores the scene detectors on the generated evaluation set
//! (`monteur_tests::sceneset`), clip by clip, from one decode per clip.
//!
//! Each clip is decoded once (CPU kernels and TransNetV2 through ONNX
//! Runtime, exactly as `monteur process` does) and its per-frame features and
//! predictions are cached, so detector settings can be tried in seconds. This
//! is the tuning loop: run it on `--split tuning`; the held-out split is for
//! the final figures only.
//!
//! ```text
//! scene-eval [--split tuning|held-out|all|training] [--settings JSON] [--neural-fps F]
//!            [--neural-coarse N] [--only NAME-PART] [--quiet] [--dump DIR]
//!            [--fold I/K] [--weights TRANSITIONS.json CUTS.json]
//! ```
//! `--fold I/K --weights …` scores networks trained without that fold
//! (`train_transitions.py --fold I/K`) on the clips they never saw.
//! `--neural-fps` and `--neural-coarse` are `analysis.neural_fps` and
//! `analysis.neural_coarse` (each pair decodes and caches anew).
//! `--settings` overrides `SceneSettings` fields, e.g. `'{"span_threshold":0.3}'`.
//! Prints, per clip and pooled: the fused detector (kinds scored), the
//! kernel-only detector, and TransNetV2 alone (boundaries without kinds, the
//! reference's 0.5 rule), all scored by `scenes::eval`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monteur_kernels::{CpuBackend, FrameFeatures, HIST_BINS};
use monteur_models::transnet::Prediction;
use monteur_models::{Runtime, TransNet};
use monteur_pipelines::scenes::eval::{
    Boundary, Labeled, Scores, boundary_truth, evaluate, evaluate_boundaries, spans_to_transitions,
    transnet_boundaries,
};
use monteur_pipelines::scenes::{
    Detector, SceneSettings, Transition, TransitionKind, detect_transitions, learned,
};
use monteur_pipelines::{AnalyseSettings, Cancel, Grid, Input};
use monteur_tests::sceneset::{self, Split};
use monteur_tests::{assets, cache_dir};

/// What one decode leaves for the detectors.
struct Cached {
    features: Vec<FrameFeatures>,
    grids: Vec<Grid>,
    predictions: Vec<Prediction>,
    /// The model's coarse pass, per frame, when it ran.
    coarse: Option<Vec<Prediction>>,
    fps: f64,
}

const FORMAT: &[u8; 8] = b"msev0003";

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn run() -> Result<(), String> {
    let mut split = Some(Split::Tuning);
    let mut training = false;
    let mut overrides = String::from("{}");
    let mut quiet = false;
    let mut dump: Option<PathBuf> = None;
    let mut neural_fps = AnalyseSettings::default().neural_fps;
    let mut neural_coarse = AnalyseSettings::default().neural_coarse;
    let mut only: Option<String> = None;
    // Only the clips whose seed is I modulo K: the fold a network trained
    // by `train_transitions.py --fold I/K` never saw.
    let mut fold: Option<(u64, u64)> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--split" => {
                split = match args.next().as_deref() {
                    Some("tuning") => Some(Split::Tuning),
                    Some("held-out") => Some(Split::HeldOut),
                    Some("all") => None,
                    Some("training") => {
                        training = true;
                        Some(Split::Tuning)
                    }
                    other => {
                        return Err(format!(
                            "--split tuning|held-out|all|training, got {other:?}"
                        ));
                    }
                }
            }
            "--settings" => overrides = args.next().ok_or("--settings JSON")?,
            "--quiet" => quiet = true,
            "--only" => only = Some(args.next().ok_or("--only NAME-PART")?),
            "--neural-fps" => {
                neural_fps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--neural-fps F (0: every frame)")?
            }
            "--neural-coarse" => {
                neural_coarse = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--neural-coarse N (0: no coarse pass)")?
            }
            "--dump" => dump = Some(PathBuf::from(args.next().ok_or("--dump DIR")?)),
            "--fold" => {
                fold = args
                    .next()
                    .and_then(|v| {
                        let (i, k) = v.split_once('/')?;
                        Some((i.parse().ok()?, k.parse().ok()?))
                    })
                    .filter(|&(i, k): &(u64, u64)| i < k)
                    .map(Some)
                    .ok_or("--fold I/K (I < K)")?
            }
            "--weights" => {
                let (t, c) = (
                    args.next().ok_or("--weights TRANSITIONS.json CUTS.json")?,
                    args.next().ok_or("--weights TRANSITIONS.json CUTS.json")?,
                );
                let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
                learned::use_weights(&read(&t)?, &read(&c)?).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let settings = settings(&overrides)?;
    let kernel_settings = SceneSettings {
        detector: Detector::Kernel,
        ..settings.clone()
    };
    monteur_pipelines::init().map_err(|e| e.to_string())?;
    let runtime = Runtime::load(&assets::onnxruntime()).map_err(|e| e.to_string())?;
    let mut model = TransNet::load(
        &runtime,
        &assets::dir().join("models/transnetv2/transnetv2.onnx"),
        2,
    )
    .map_err(|e| e.to_string())?;

    let (mut fused, mut kernel, mut neural, mut fused_b) = Default::default();
    println!(
        "{:<34} {:>5} | fused cut h/fa/m  grad h/fa/m | kernel cut  grad | transnet cut  grad",
        "clip", "n"
    );
    let clips = if training {
        training_clips()?
    } else {
        clips(split)?
    };
    for clip in clips {
        if only
            .as_ref()
            .is_some_and(|o| !clip.name.contains(o.as_str()))
        {
            continue;
        }
        if let Some((i, k)) = fold
            && seed(&clip.name).is_none_or(|s| s % k != i)
        {
            continue;
        }
        let path = clip.path.clone();
        let cached = analysis(&path, &mut model, (neural_fps, neural_coarse))?;
        let truth = clip.truth.clone();
        if let Some(dir) = &dump {
            // For exploring the signals outside Rust: the truth and where the
            // cached features are.
            let json = serde_json::json!({
                "name": clip.name,
                "split": clip.split,
                "cache": cache_path(&path, (neural_fps, neural_coarse)),
                "fps": cached.fps,
                "truth": truth,
                "describe": clip.describe,
            });
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("{}.json", clip.name)), json.to_string())
                .map_err(|e| e.to_string())?;
            // The learned networks' inputs, row by row (f32, little-endian):
            // what `scripts/models/train_transitions.py` trains on.
            write_rows(
                &dir.join(format!("{}.f32", clip.name)),
                learned::window_features(
                    &cached.features,
                    &cached.grids,
                    &cached.predictions,
                    cached.coarse.as_deref(),
                    cached.fps,
                ),
            )?;
            write_rows(
                &dir.join(format!("{}.cut.f32", clip.name)),
                learned::cut_features(
                    &cached.features,
                    &cached.grids,
                    &cached.predictions,
                    cached.fps,
                ),
            )?;
        }
        let detect = |s: &SceneSettings| -> Vec<Transition> {
            spans_to_transitions(detect_transitions(
                &cached.features,
                &cached.grids,
                Some(&cached.predictions),
                cached.coarse.as_deref(),
                cached.fps,
                s,
            ))
        };
        let ours = detect(&settings);
        let f = evaluate(&ours, &truth, 1);
        let k = evaluate(&detect(&kernel_settings), &truth, 1);
        let btruth = boundary_truth(&truth, (cached.fps * 0.5) as u64);
        let n = evaluate_boundaries(&transnet_boundaries(&cached.predictions), &btruth, 1, 2);
        let fb = evaluate_boundaries(
            &ours
                .iter()
                .map(|t| Boundary {
                    start: t.start_frame,
                    end: t.end_frame,
                })
                .collect::<Vec<_>>(),
            &btruth,
            1,
            2,
        );
        let bad = f.cuts.false_alarms + f.cuts.misses + f.gradual.false_alarms + f.gradual.misses;
        if !quiet || bad > 0 {
            println!(
                "{:<34} {:>5} | {:>3}/{}/{} {:>3}/{}/{} | {:.2} {:.2} | {:.2} {:.2}",
                clip.name,
                cached.features.len(),
                f.cuts.hits,
                f.cuts.false_alarms,
                f.cuts.misses,
                f.gradual.hits,
                f.gradual.false_alarms,
                f.gradual.misses,
                k.cuts.f1(),
                k.gradual.f1(),
                n.cuts.f1(),
                n.gradual.f1(),
            );
            if bad > 0 && !quiet {
                println!("    truth: {}", clip.describe);
                println!("    ours:  {}", show(&ours));
            }
        }
        add(&mut fused, f);
        add(&mut kernel, k);
        add(&mut neural, n);
        add(&mut fused_b, fb);
    }
    for (name, s) in [
        ("fused (kinds)", fused),
        ("fused (boundaries)", fused_b),
        ("kernel only (kinds)", kernel),
        ("TransNetV2 alone (boundaries)", neural),
    ] {
        println!("{name:<30} {s}");
    }
    Ok(())
}

struct Clip {
    name: String,
    split: &'static str,
    path: PathBuf,
    truth: Vec<Labeled>,
    describe: String,
}

/// Mixed clips in the learned detector's training pool.
const TRAINING_CLIPS: u64 = 160;

/// The learned detector's training pool (`sceneset::training_set`).
fn training_clips() -> Result<Vec<Clip>, String> {
    sceneset::training_set(TRAINING_CLIPS)
        .iter()
        .map(|clip| generated(clip, "training"))
        .collect()
}

/// A generated clip, made on first use, with its answers.
fn generated(clip: &sceneset::SceneClip, split: &'static str) -> Result<Clip, String> {
    Ok(Clip {
        name: clip.name.clone(),
        split,
        path: clip.path()?,
        truth: monteur_benches::labels(&clip.truth)?,
        describe: clip.describe(),
    })
}

/// The clips of a split. The tuning side also holds the synthetic clips and
/// the fixtures with known answers, which the kernel rules were first set on.
fn clips(split: Option<Split>) -> Result<Vec<Clip>, String> {
    let mut out = Vec::new();
    for clip in sceneset::scene_set() {
        if split.is_some_and(|s| s != clip.split()) {
            continue;
        }
        let name = if clip.split() == Split::Tuning {
            "tuning"
        } else {
            "held-out"
        };
        out.push(generated(&clip, name)?);
    }
    if split == Some(Split::HeldOut) {
        return Ok(out);
    }
    for clip in monteur_tests::synthetic::full_set() {
        out.push(Clip {
            name: format!("synthetic-{}-{}x{}", clip.name, clip.width, clip.height),
            split: "tuning",
            path: clip.path()?,
            truth: monteur_benches::labels(&clip.truth)?,
            describe: format!("{:?}", clip.truth),
        });
    }
    let refined: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/labels/testvideo.mp4.json"),
        )
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let cut = |f: u64| Labeled {
        kind: TransitionKind::Cut,
        start: f,
        end: f,
    };
    for (name, file, truth) in [
        (
            "fixture-testvideo",
            "scenes/pyscenedetect/testvideo.mp4",
            serde_json::from_value(refined["transitions"].clone()).map_err(|e| e.to_string())?,
        ),
        (
            "fixture-goldeneye",
            "scenes/pyscenedetect/goldeneye-vfr-drop3.mp4",
            vec![cut(60), cut(141)],
        ),
        (
            "fixture-counter",
            "scenes/pyscenedetect/counter.mp4",
            vec![],
        ),
    ] {
        out.push(Clip {
            name: name.into(),
            split: "tuning",
            path: monteur_tests::fixtures::path(file),
            describe: format!("{truth:?}"),
            truth,
        });
    }
    Ok(out)
}

fn write_rows<const N: usize>(
    path: &Path,
    rows: impl Iterator<Item = [f32; N]>,
) -> Result<(), String> {
    let bytes: Vec<u8> = rows
        .flat_map(|r| r.into_iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A generated clip's seed: the first number in its name.
fn seed(name: &str) -> Option<u64> {
    name.split('-').find_map(|p| p.parse().ok())
}

fn add(total: &mut Scores, s: Scores) {
    total.add(s);
}

fn settings(overrides: &str) -> Result<SceneSettings, String> {
    let mut base = serde_json::to_value(SceneSettings::default()).map_err(|e| e.to_string())?;
    let over: serde_json::Value = serde_json::from_str(overrides).map_err(|e| e.to_string())?;
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(base).map_err(|e| e.to_string())
}

fn show(t: &[Transition]) -> String {
    t.iter()
        .map(|t| {
            let kind = match t.kind {
                TransitionKind::Cut => "cut",
                TransitionKind::FadeIn => "in",
                TransitionKind::FadeOut => "out",
                TransitionKind::Dissolve => "dis",
                TransitionKind::Wipe => "wipe",
            };
            if t.kind == TransitionKind::Cut {
                format!("{kind}@{}", t.start_frame)
            } else {
                format!("{kind}[{},{})", t.start_frame, t.end_frame)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn cache_path(clip: &Path, (neural_fps, neural_coarse): (f64, usize)) -> PathBuf {
    let name = clip
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    cache_dir()
        .join("scene-eval")
        .join(format!("{name}-nf{neural_fps}-c{neural_coarse}.bin"))
}

fn analysis(
    clip: &Path,
    model: &mut TransNet,
    (neural_fps, neural_coarse): (f64, usize),
) -> Result<Cached, String> {
    let cache = cache_path(clip, (neural_fps, neural_coarse));
    if let Ok(bytes) = std::fs::read(&cache)
        && let Some(c) = decode(&bytes)
    {
        return Ok(c);
    }
    let info = monteur_pipelines::probe(
        &Input::File(clip.to_path_buf()),
        std::time::Duration::from_secs(30),
    )
    .map_err(|e| format!("{}: {e}", clip.display()))?;
    let a = monteur_pipelines::analyse(
        &Input::File(clip.to_path_buf()),
        &info,
        &AnalyseSettings {
            neural_fps,
            neural_coarse,
            ..AnalyseSettings::default()
        },
        Box::new(CpuBackend::new()),
        Some(model),
        None,
        &Cancel::new(),
        &mut |_| {},
    )
    .map_err(|e| format!("{}: {e}", clip.display()))?;
    let fps = a
        .fps
        .or_else(|| info.primary_video().and_then(|v| v.fps()))
        .unwrap_or(25.0);
    let c = Cached {
        predictions: a.boundaries.ok_or("no predictions")?,
        coarse: a.coarse_boundaries,
        features: a.features,
        grids: a.grids,
        fps,
    };
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&cache, encode(&c)).map_err(|e| e.to_string())?;
    Ok(c)
}

fn encode(c: &Cached) -> Vec<u8> {
    let mut out = FORMAT.to_vec();
    out.extend((c.features.len() as u64).to_le_bytes());
    out.extend(c.fps.to_le_bytes());
    out.push(u8::from(c.coarse.is_some()));
    let opt = |v: Option<f32>| v.unwrap_or(f32::NAN).to_le_bytes();
    let none = vec![Prediction::default(); c.predictions.len()];
    let coarse = c.coarse.as_ref().unwrap_or(&none);
    for (((f, g), p), q) in c
        .features
        .iter()
        .zip(&c.grids)
        .zip(&c.predictions)
        .zip(coarse)
    {
        out.extend(f.mean_luma.to_le_bytes());
        out.extend(opt(f.mean_abs_diff));
        out.extend(opt(f.residual_diff));
        out.extend(opt(f.hist_distance));
        for h in f.hist {
            out.extend(h.to_le_bytes());
        }
        out.extend(g);
        out.extend(p.single_frame.to_le_bytes());
        out.extend(p.many_hot.to_le_bytes());
        out.extend(q.single_frame.to_le_bytes());
        out.extend(q.many_hot.to_le_bytes());
    }
    out
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn f32(&mut self) -> Option<f32> {
        self.take::<4>().map(f32::from_le_bytes)
    }
}

fn decode(bytes: &[u8]) -> Option<Cached> {
    let mut r = Cursor(bytes.strip_prefix(FORMAT)?);
    let n = u64::from_le_bytes(r.take::<8>()?) as usize;
    let fps = f64::from_le_bytes(r.take::<8>()?);
    let has_coarse = r.take::<1>()?[0] == 1;
    let mut coarse = Vec::with_capacity(n);
    let some = |v: f32| (!v.is_nan()).then_some(v);
    let (mut features, mut grids, mut predictions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for _ in 0..n {
        let mean_luma = r.f32()?;
        let mean_abs_diff = some(r.f32()?);
        let residual_diff = some(r.f32()?);
        let hist_distance = some(r.f32()?);
        let mut hist = [0u16; HIST_BINS];
        for h in &mut hist {
            *h = u16::from_le_bytes(r.take::<2>()?);
        }
        features.push(FrameFeatures {
            mean_luma,
            mean_abs_diff,
            residual_diff,
            hist_distance,
            hist,
        });
        grids.push(r.take::<{ std::mem::size_of::<Grid>() }>()?);
        predictions.push(Prediction {
            single_frame: r.f32()?,
            many_hot: r.f32()?,
        });
        coarse.push(Prediction {
            single_frame: r.f32()?,
            many_hot: r.f32()?,
        });
    }
    r.0.is_empty().then_some(Cached {
        features,
        grids,
        predictions,
        coarse: has_coarse.then_some(coarse),
        fps,
    })
}
