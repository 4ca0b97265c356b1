//! Which stages a job runs, decided once from the tasks asked for, the
//! probed input and the settings: one decode serves every analysis task.

use monteur_pipelines::MediaInfo;

use crate::{Config, Task, TaskSet};

/// A step of a job, in the order they run. Its name is the `stage` of
/// progress events, stage timings and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// One decode of the input: frames for the kernels, audio for speech.
    Decode,
    Scenes,
    Captions,
    Autocut,
    Render,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Scenes => "scenes",
            Stage::Captions => "captions",
            Stage::Autocut => "autocut",
            Stage::Render => "render",
        }
    }
}

/// What a job will do.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub stages: Vec<Stage>,
    /// Tasks asked for that cannot run on this input, with the reason.
    pub skipped: Vec<(Task, &'static str)>,
    pub decode_video: bool,
    pub decode_audio: bool,
    /// Scenes are detected (for their own output, or because the edit is
    /// aligned to cuts or fitted to a length).
    pub detect_scenes: bool,
}

impl TaskPlan {
    pub fn new(tasks: &TaskSet, media: &MediaInfo, config: &Config) -> Self {
        let has_video = media.primary_video().is_some();
        let has_audio = !media.audio.is_empty();
        let mut skipped = Vec::new();
        for task in tasks.iter() {
            if task.needs_video() && !has_video {
                skipped.push((task, "input has no video stream"));
            } else if task.needs_audio() && !has_audio {
                skipped.push((task, "input has no audio stream"));
            }
        }
        let runs = |t: Task| tasks.contains(t) && !skipped.iter().any(|(s, _)| *s == t);
        let autocut = runs(Task::Autocut);
        // Scene cuts shape the edit when it is aligned to them or fitted to a length.
        let edit_needs_cuts =
            autocut && (config.autocut.align_to_scenes || config.autocut.target_s > 0.0);
        let detect_scenes = (runs(Task::Scenes) || edit_needs_cuts) && has_video;
        let decode_audio = runs(Task::Captions) || autocut;
        let mut stages = Vec::new();
        if detect_scenes || decode_audio {
            stages.push(Stage::Decode);
        }
        if detect_scenes {
            stages.push(Stage::Scenes);
        }
        // A transcript edit needs the words, captions asked for or not.
        let transcript_edit =
            autocut && config.autocut.mode == monteur_pipelines::CutMode::Transcript;
        if runs(Task::Captions) || (transcript_edit && has_audio) {
            stages.push(Stage::Captions);
        }
        if autocut {
            stages.push(Stage::Autocut);
        }
        if runs(Task::Render) {
            stages.push(Stage::Render);
        }
        Self {
            stages,
            skipped,
            decode_video: detect_scenes,
            decode_audio,
            detect_scenes,
        }
    }

    pub fn runs(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use monteur_pipelines::{AudioStream, VideoStream};

    fn media(video: bool, audio: bool) -> MediaInfo {
        MediaInfo {
            container: None,
            duration: None,
            video: video
                .then(|| VideoStream {
                    stream_id: None,
                    codec: "H.264".into(),
                    width: 640,
                    height: 360,
                    orientation: Default::default(),
                    stored_width: 640,
                    stored_height: 360,
                    frame_rate: Some((25, 1)),
                    pixel_aspect: (1, 1),
                    is_image: false,
                })
                .into_iter()
                .collect(),
            audio: audio
                .then(|| AudioStream {
                    stream_id: None,
                    codec: "AAC".into(),
                    channels: 2,
                    sample_rate: 48_000,
                })
                .into_iter()
                .collect(),
            subtitles: 0,
            seekable: true,
            notes: Vec::new(),
        }
    }

    #[test]
    fn one_decode_serves_the_analysis_and_missing_streams_skip_tasks() {
        let all = TaskSet::available();
        let c = Config::default();
        let p = TaskPlan::new(&all, &media(true, true), &c);
        assert_eq!(
            p.stage_names(),
            ["decode", "scenes", "captions", "autocut", "render"]
        );
        let silent = TaskPlan::new(&all, &media(true, false), &c);
        assert_eq!(silent.stage_names(), ["decode", "scenes", "render"]);
        assert_eq!(silent.skipped.len(), 2);
        let render_only = TaskPlan::new(&"render".parse().unwrap(), &media(true, true), &c);
        assert_eq!(render_only.stage_names(), ["render"]);
        assert!(!render_only.decode_video && !render_only.decode_audio);
        // A target length needs the cuts, so the video is decoded for them.
        let mut fit = Config::default();
        fit.autocut.target_s = 30.0;
        let p = TaskPlan::new(&"autocut".parse().unwrap(), &media(true, true), &fit);
        assert_eq!(p.stage_names(), ["decode", "scenes", "autocut"]);
    }
}
