//! The stages of a job, each reading what the earlier ones left in
//! [`State`] and writing its outputs.

use std::time::Instant;

use monteur_pipelines::captions::{self, Cue};
use monteur_pipelines::cutplan::{self, CutMode, CutPlan, Rate};
use monteur_pipelines::listen::{Heard, Scan};
use monteur_pipelines::scenes::{Detector, TransitionKind};
use monteur_pipelines::timeline::{self, SourceMedia};
use monteur_pipelines::transcript::Transcript;
use monteur_pipelines::{
    self as pipelines, AUDIO_RATE, AnalyseSettings, Analysis, AudioExtent, Listener, MediaInfo,
    PipelineError,
};
use tracing::{info, warn};

use super::engine::BoundaryLease;
use super::outputs::{self, Outputs};
use super::plan::{Stage, TaskPlan};
use super::{Engine, ProcessError, ProcessOutcome, Run, StageTime};
use crate::progress::ProgressReporter;
use crate::{Config, Task};

/// What the stages hand on to each other.
pub(crate) struct State<'a> {
    pub engine: &'a Engine,
    pub run: &'a Run,
    pub media: &'a MediaInfo,
    pub plan: &'a TaskPlan,
    pub out: Outputs<'a>,
    pub outcome: ProcessOutcome,
    pub analysis: Option<Analysis>,
    /// What the decode kept of the audio (speech probabilities, loudness).
    pub heard: Option<Heard>,
    /// Hard cuts found by `scenes`, in seconds and as frame indices.
    pub cuts_s: Vec<f64>,
    pub cut_frames: Vec<u64>,
    pub fps: f64,
    pub cues: Vec<Cue>,
    pub transcript: Option<Transcript>,
    pub edit: Option<CutPlan>,
    /// Tasks done: their outputs and seconds (the decode counted once, in
    /// the first analysis task that used it).
    pub done: Vec<(Task, Vec<String>, f64)>,
    decode_s: Option<f64>,
}

impl<'a> State<'a> {
    pub fn new(
        engine: &'a Engine,
        run: &'a Run,
        media: &'a MediaInfo,
        plan: &'a TaskPlan,
        out: Outputs<'a>,
        outcome: ProcessOutcome,
    ) -> Self {
        Self {
            engine,
            run,
            media,
            plan,
            out,
            outcome,
            analysis: None,
            heard: None,
            cuts_s: Vec::new(),
            transcript: None,
            cut_frames: Vec::new(),
            fps: 0.0,
            cues: Vec::new(),
            edit: None,
            done: Vec::new(),
            decode_s: None,
        }
    }

    fn config(&self) -> &Config {
        &self.run.config
    }

    /// Runs `stage`, timing it.
    pub fn run(
        &mut self,
        stage: Stage,
        progress: &mut dyn ProgressReporter,
    ) -> Result<(), ProcessError> {
        self.run.cancel.check()?;
        let started = Instant::now();
        progress.stage(stage.name(), 0.0);
        match stage {
            Stage::Decode => self.decode(progress)?,
            Stage::Scenes => self.scenes()?,
            Stage::Captions => self.captions(progress)?,
            Stage::Autocut => self.autocut()?,
            Stage::Render => self.render(progress)?,
        }
        crate::allocator::release();
        progress.stage(stage.name(), 1.0);
        self.outcome.stages.push(StageTime {
            stage: stage.name(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// The decode's seconds, the first time a task asks (a task that shares
    /// the decode with an earlier one does not count it again).
    fn take_decode_s(&mut self) -> f64 {
        self.decode_s.take().unwrap_or(0.0)
    }

    fn decode(&mut self, progress: &mut dyn ProgressReporter) -> Result<(), ProcessError> {
        let started = Instant::now();
        let settings = self.analyse_settings();
        let lease = self
            .engine
            .kernels()
            .lease()
            .map_err(PipelineError::Kernel)?;
        let mut boundaries = match self.plan.detect_scenes {
            true => self.boundary_model()?,
            false => None,
        };
        // The audio is heard as it is decoded and only what the tasks read
        // later is kept: speech probabilities for captions and speech-mode
        // edits, frame-long loudness for any edit.
        let autocut = self.plan.runs(Stage::Autocut);
        let wants_vad = self.plan.runs(Stage::Captions)
            || (autocut && self.config().autocut.mode == CutMode::Speech);
        let mut speech = match self.plan.decode_audio && wants_vad {
            true => Some(self.engine.speech()?),
            false => None,
        };
        let per_window = autocut.then(|| f64::from(AUDIO_RATE) / self.rate().fps());
        let mut scan = Scan::new(speech.as_mut().map(|s| &mut s.vad), per_window);
        let mut listen = |chunk: &[f32]| scan.push(chunk);
        let listener: Option<Listener<'_>> = match self.plan.decode_audio {
            true => Some(&mut listen),
            false => None,
        };
        let analysis = pipelines::analyse(
            &self.run.input,
            self.media,
            &settings,
            Box::new(lease),
            boundaries.as_mut().map(|b| b.model()),
            listener,
            &self.run.cancel,
            &mut |p| progress.update(p),
        )?;
        progress.finish();
        if self.plan.decode_audio {
            self.heard = Some(scan.finish()?);
        }
        if let Some(note) = &analysis.truncated {
            warn!("input is truncated; analysed what it holds");
            self.outcome.notes.push(note.clone());
        }
        if self.plan.decode_video {
            self.outcome.backend = Some(analysis.backend);
            self.outcome.frames = analysis.frames;
        }
        self.analysis = Some(analysis);
        self.decode_s = Some(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn analyse_settings(&self) -> AnalyseSettings {
        AnalyseSettings {
            video: self.plan.decode_video,
            audio: self.plan.decode_audio,
            allow_truncated: self.run.allow_truncated,
            ..self.config().analysis.settings()
        }
    }

    /// The edit's frame rate: the video's, or a default for audio alone.
    fn rate(&self) -> Rate {
        Rate::from_stream(self.media.primary_video().and_then(|v| v.frame_rate))
    }

    /// The shot-boundary model `scenes.detector` asks for: none for
    /// `kernel`; for `auto`, none (with a warning) when it is not installed.
    fn boundary_model(&self) -> Result<Option<BoundaryLease<'a>>, ProcessError> {
        let models = &self.config().models;
        match self.run.config.scenes.detector {
            Detector::Kernel => Ok(None),
            Detector::Neural => Ok(Some(self.engine.boundaries()?)),
            Detector::Auto if !models.path(&models.transnet).is_file() => {
                warn!(
                    "scenes.detector = auto: the shot-boundary model is not installed \
                     (scripts/setup.sh converts it); using the kernel detector"
                );
                Ok(None)
            }
            Detector::Auto => Ok(Some(self.engine.boundaries()?)),
        }
    }

    fn scenes(&mut self) -> Result<(), ProcessError> {
        let started = Instant::now();
        let analysis = self.analysis.as_ref().ok_or(missing("decode"))?;
        let doc = pipelines::detect_scenes(analysis, self.media, &self.run.config.scenes);
        info!(
            frames = analysis.frames,
            transitions = doc.transitions.len(),
            backend = analysis.backend,
            "scenes detected"
        );
        let cuts = doc
            .transitions
            .iter()
            .filter(|t| t.kind == TransitionKind::Cut);
        self.cuts_s = cuts.clone().map(|t| t.start_s).collect();
        self.cut_frames = cuts.map(|t| t.start_frame).collect();
        self.fps = doc.source.fps;
        if let Some(a) = self.analysis.as_mut() {
            a.forget_frames();
        }
        if self.run.tasks.contains(Task::Scenes) {
            self.out.json(outputs::SCENES_FILE, &doc)?;
            let s = started.elapsed().as_secs_f64() + self.take_decode_s();
            self.done
                .push((Task::Scenes, vec![outputs::SCENES_FILE.into()], s));
        }
        Ok(())
    }

    /// What the decode heard, and where the audio lay.
    fn heard(&self) -> Result<(&Heard, AudioExtent), ProcessError> {
        let extent = self.analysis.as_ref().and_then(|a| a.audio);
        match (&self.heard, extent) {
            (Some(h), Some(e)) => Ok((h, e)),
            _ => Err(missing("decode (audio)")),
        }
    }

    fn captions(&mut self, progress: &mut dyn ProgressReporter) -> Result<(), ProcessError> {
        let started = Instant::now();
        let mut speech = self.engine.speech()?;
        let mut mel = self
            .engine
            .kernels()
            .lease()
            .map_err(PipelineError::Kernel)?;
        let speech = &mut *speech;
        let mut settings = self.run.config.captions.clone();
        if self.run.config.autocut.mode == CutMode::Transcript
            && self.run.tasks.contains(Task::Autocut)
            && settings.initial_prompt.trim().is_empty()
        {
            settings.initial_prompt = captions::VERBATIM_PROMPT.into();
        }
        let (heard, extent) = self.heard()?;
        // Recognition reads the audio again, forward, window by window,
        // rather than the decode holding the whole track for it.
        let (transcript, read) = pipelines::with_audio_stream(
            &self.run.input,
            self.media,
            &self.analyse_settings(),
            &self.run.cancel,
            |track| {
                captions::transcribe(
                    track,
                    heard,
                    extent.start.as_secs_f64(),
                    &settings,
                    &mut speech.whisper,
                    &mut mel,
                    &self.run.cancel,
                    &mut |f| {
                        // Called once per recognition window.
                        crate::allocator::release();
                        progress.stage(Stage::Captions.name(), f)
                    },
                )
            },
        )?;
        if read != extent {
            warn!(
                first = extent.samples,
                second = read.samples,
                "the audio decoded differently the second time"
            );
        }
        let phrases = captions::Phrase::from_transcript(&transcript);
        let c = &self.run.config.captions;
        let cues = captions::build_cues(&phrases, &self.cuts_s, self.fps, c);
        for problem in captions::check_cues(&cues, &self.cuts_s, self.fps, c) {
            warn!(problem = problem.as_str(), "cue breaks a subtitle rule");
        }
        info!(
            segments = transcript.segments.len(),
            words = transcript.words().count(),
            cues = cues.len(),
            "captions built"
        );
        self.outcome.cues = cues.len();
        let (width, height) = self
            .media
            .primary_video()
            .map_or((1920, 1080), |v| (v.width, v.height));
        self.transcript = Some(transcript);
        if !self.run.tasks.contains(Task::Captions) {
            // Only the transcript edit asked for the words: no caption files,
            // and no caption track in the render.
            return Ok(());
        }
        self.cues = cues;
        if let Some(t) = &self.transcript {
            self.out.json(outputs::TRANSCRIPT_FILE, t)?;
        }
        let cues = &self.cues;
        self.out
            .text(outputs::CAPTIONS_SRT, &captions::to_srt(cues))?;
        self.out
            .text(outputs::CAPTIONS_VTT, &captions::to_vtt(cues))?;
        self.out
            .text(outputs::CAPTIONS_WORDS_VTT, &captions::to_karaoke_vtt(cues))?;
        self.out.text(
            outputs::CAPTIONS_ASS,
            &captions::to_ass(cues, width, height),
        )?;
        let s = started.elapsed().as_secs_f64() + self.take_decode_s();
        self.done.push((
            Task::Captions,
            vec![
                outputs::TRANSCRIPT_FILE.into(),
                outputs::CAPTIONS_SRT.into(),
                outputs::CAPTIONS_VTT.into(),
                outputs::CAPTIONS_WORDS_VTT.into(),
                outputs::CAPTIONS_ASS.into(),
            ],
            s,
        ));
        Ok(())
    }

    fn autocut(&mut self) -> Result<(), ProcessError> {
        let started = Instant::now();
        let rate = self.rate();
        let source_frames = match &self.analysis {
            Some(a) if self.plan.decode_video => a.frames,
            _ => self
                .media
                .duration
                .map(|d| (d.as_secs_f64() * rate.fps()).floor() as u64)
                .unwrap_or(0),
        };
        let made = self.make_plan(rate, source_frames)?;
        info!(
            mode = ?made.mode,
            ranges = made.ranges.len(),
            kept_s = made.kept_s,
            source_s = made.source_s,
            "cut plan made"
        );
        self.outcome.kept_s = Some(made.kept_s);
        // The render's captions leave out what a transcript edit removed.
        if let (CutMode::Transcript, Some(t), false) =
            (made.mode, &self.transcript, self.cues.is_empty())
        {
            let removed: Vec<(f64, f64)> =
                made.removed.iter().map(|r| (r.start_s, r.end_s)).collect();
            let phrases = captions::Phrase::from_transcript_without(t, &removed);
            let c = &self.run.config.captions;
            self.cues = captions::build_cues(&phrases, &self.cuts_s, self.fps, c);
        }
        let source = source_media(&self.run.input, self.media);
        let title = format!("{} (monteur autocut)", source.name);
        self.out.json(outputs::CUTPLAN_FILE, &made)?;
        self.out.text(
            outputs::CUTPLAN_OTIO,
            &timeline::to_otio(&made, &source, &title),
        )?;
        self.out.text(
            outputs::CUTPLAN_EDL,
            &timeline::to_edl(&made, &source, &title),
        )?;
        self.out.text(
            outputs::CUTPLAN_FCPXML,
            &timeline::to_fcpxml(&made, &source, &title),
        )?;
        let s = started.elapsed().as_secs_f64() + self.take_decode_s();
        self.done.push((
            Task::Autocut,
            vec![
                outputs::CUTPLAN_FILE.into(),
                outputs::CUTPLAN_OTIO.into(),
                outputs::CUTPLAN_EDL.into(),
                outputs::CUTPLAN_FCPXML.into(),
            ],
            s,
        ));
        self.edit = Some(made);
        Ok(())
    }

    /// The cut plan of `autocut` for the decoded audio.
    fn make_plan(&self, rate: Rate, source_frames: u64) -> Result<CutPlan, ProcessError> {
        let s = &self.run.config.autocut;
        let (heard, extent) = self.heard()?;
        // Frame-long loudness windows from the track's first sample; audio that
        // starts late counts as silence before it.
        let lead = rate.frames_in(extent.start.as_secs_f64()) as usize;
        let peaks: Vec<f32> = std::iter::repeat_n(0.0, lead)
            .chain(heard.levels.iter().map(|l| l.peak))
            .collect();
        let frames = if source_frames > 0 {
            source_frames
        } else {
            peaks.len() as u64
        };
        let mut plan = match s.mode {
            CutMode::Silence => cutplan::plan_silence(&peaks, rate, frames, s),
            CutMode::Speech => {
                let vad_settings = captions::CaptionSettings {
                    min_silence_s: s.speech_min_silence_s,
                    speech_pad_s: 0.0,
                    ..self.run.config.captions.clone()
                };
                let offset = extent.start.as_secs_f64();
                let spans: Vec<(f64, f64)> = captions::speech_regions(&heard.probs, &vad_settings)
                    .into_iter()
                    .map(|(a, b)| (a + offset, b + offset))
                    .collect();
                cutplan::plan_speech(&spans, rate, frames, s)
            }
            CutMode::Transcript => {
                let t = self
                    .transcript
                    .as_ref()
                    .ok_or(missing("captions (transcript)"))?;
                let words: Vec<cutplan::SpokenWord> = t
                    .words()
                    .map(|w| cutplan::SpokenWord {
                        text: w.text.clone(),
                        start_s: w.start_s,
                        end_s: w.end_s,
                    })
                    .collect();
                cutplan::plan_transcript(&words, &t.language, rate, frames, s)
            }
        };
        if s.align_to_scenes {
            plan = cutplan::align_to_cuts(&plan, &self.cut_frames, s);
        }
        if s.target_s > 0.0 {
            let max = peaks
                .iter()
                .cloned()
                .fold(0.0f32, f32::max)
                .max(f32::MIN_POSITIVE);
            let score = |a: u64, b: u64| -> f64 {
                let (a, b) = (a as usize, (b as usize).min(peaks.len()));
                if b <= a {
                    return 0.0;
                }
                peaks[a..b].iter().map(|&p| f64::from(p / max)).sum::<f64>() / (b - a) as f64
            };
            // A transcript edit is trimmed only between words: after a
            // word's end plus the guard, but never into the next word.
            let fps = rate.fps();
            let mut safe_ends: Vec<u64> = match (&self.transcript, s.mode) {
                (Some(t), CutMode::Transcript) => {
                    let words: Vec<_> = t.words().collect();
                    words
                        .iter()
                        .enumerate()
                        .map(|(i, w)| {
                            let end = (w.end_s * fps - 1e-9).ceil() as u64;
                            let guarded = ((w.end_s + s.word_guard_s) * fps - 1e-9).ceil() as u64;
                            let next = words
                                .get(i + 1)
                                .map_or(u64::MAX, |n| (n.start_s * fps + 1e-9).floor() as u64);
                            guarded.min(next).max(end)
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            safe_ends.sort_unstable();
            plan = cutplan::fit_target(&plan, &self.cut_frames, s.target_s, &score, &safe_ends);
        }
        Ok(plan)
    }

    fn render(&mut self, progress: &mut dyn ProgressReporter) -> Result<(), ProcessError> {
        let started = Instant::now();
        // Without a cut plan (autocut not asked for, or no audio to plan
        // from) the render keeps the whole source.
        let plan = match self.edit.take() {
            Some(p) => p,
            None => whole_source(self.media),
        };
        let report = pipelines::render(
            &self.run.input,
            self.media,
            &plan,
            &self.cues,
            &self.run.config.render,
            &self.out.dir.join(outputs::RENDER_FILE),
            &self.run.cancel,
            &mut |f| progress.stage(Stage::Render.name(), f),
        )?;
        self.outcome.render = Some(report);
        self.done.push((
            Task::Render,
            vec![outputs::RENDER_FILE.into()],
            started.elapsed().as_secs_f64(),
        ));
        Ok(())
    }
}

fn missing(stage: &str) -> ProcessError {
    PipelineError::Graph(format!("stage order: {stage} did not run")).into()
}

/// A plan keeping every frame: what a render without autocut plays.
pub(crate) fn whole_source(media: &MediaInfo) -> CutPlan {
    let rate = Rate::from_stream(media.primary_video().and_then(|v| v.frame_rate));
    let frames = media
        .duration
        .map(|d| (d.as_secs_f64() * rate.fps()).round() as u64)
        .unwrap_or(0);
    CutPlan::new(
        CutMode::Silence,
        rate,
        frames,
        vec![(0, frames, cutplan::Reason::Loud, false)],
    )
}

/// How the timeline exports name and locate the source: a streamed input
/// by its object key (the editor's media lives beside the timeline in the
/// same bucket), a file by its path.
fn source_media(input: &monteur_pipelines::Input, media: &MediaInfo) -> SourceMedia {
    let video = media.primary_video();
    let audio = media.audio.first();
    SourceMedia {
        name: input.name(),
        url: input.locator(),
        width: video.map(|v| v.width).unwrap_or(0),
        height: video.map(|v| v.height).unwrap_or(0),
        has_video: video.is_some(),
        has_audio: audio.is_some(),
        audio_rate: audio.map(|a| a.sample_rate).unwrap_or(48_000),
        audio_channels: audio.map(|a| a.channels).unwrap_or(2),
    }
}
