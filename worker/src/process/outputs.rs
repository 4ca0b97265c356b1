//! The output folder: file names (a contract with the tools that read them)
//! and writes that are whole or absent, and never happen for a job that was
//! stopped.

use std::path::Path;

use monteur_pipelines::Cancel;
use serde::Serialize;

use super::ProcessError;

pub const SCENES_FILE: &str = "scenes.json";
pub const REPORT_FILE: &str = "report.json";
pub const CAPTIONS_SRT: &str = "captions.srt";
pub const CAPTIONS_VTT: &str = "captions.vtt";
/// WebVTT with a timestamp tag per word, and ASS with `\k` karaoke timings.
pub const CAPTIONS_WORDS_VTT: &str = "captions.words.vtt";
pub const CAPTIONS_ASS: &str = "captions.ass";
/// Segments and timed words (docs/transcript.md).
pub const TRANSCRIPT_FILE: &str = "transcript.json";
pub const CUTPLAN_FILE: &str = "cutplan.json";
pub const CUTPLAN_OTIO: &str = "cutplan.otio";
pub const CUTPLAN_EDL: &str = "cutplan.edl";
pub const CUTPLAN_FCPXML: &str = "cutplan.fcpxml";
pub const RENDER_FILE: &str = "render.mp4";

/// Writes into one job's output folder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outputs<'a> {
    pub dir: &'a Path,
    pub cancel: &'a Cancel,
}

impl Outputs<'_> {
    /// `value` as pretty JSON in `name`.
    pub fn json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ProcessError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| ProcessError::Output {
            path: self.dir.join(name),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        self.bytes(name, &bytes)
    }

    pub fn text(&self, name: &str, text: &str) -> Result<(), ProcessError> {
        self.bytes(name, text.as_bytes())
    }

    /// Through a temporary file and a rename, so a reader never sees half a
    /// document; refused once the job is cancelled, so a stopped job whose
    /// thread runs on for a moment cannot leave files behind its cleanup.
    fn bytes(&self, name: &str, bytes: &[u8]) -> Result<(), ProcessError> {
        self.cancel.check()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let err = |source| ProcessError::Output {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, bytes).map_err(err)?;
        if self.cancel.is_cancelled() {
            let _ = std::fs::remove_file(&tmp);
            return Err(monteur_pipelines::PipelineError::Cancelled.into());
        }
        std::fs::rename(&tmp, &path).map_err(err)
    }
}
