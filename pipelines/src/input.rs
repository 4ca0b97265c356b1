//! What a job reads: a local file, or a stream of bytes with random access
//! (an object in storage) known by a name. Probe, analyse and render take an
//! [`Input`] and build the right source element for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gstreamer as gst;

use crate::PipelineError;
use crate::source::{RandomAccess, Registered};

/// A job's input.
#[derive(Debug, Clone)]
pub enum Input {
    File(PathBuf),
    Stream(Stream),
}

/// A byte source registered with `monteursrc` for as long as any clone of
/// it lives.
#[derive(Debug, Clone)]
pub struct Stream {
    registered: Arc<Registered>,
    name: String,
}

impl Input {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Input::File(path.into())
    }

    /// `source` read through `monteursrc`; `name` is what outputs call it
    /// (an object key: timeline exports point editors at it).
    pub fn stream(source: Arc<dyn RandomAccess>, name: impl Into<String>) -> Self {
        Input::Stream(Stream {
            registered: Arc::new(crate::source::register(source)),
            name: name.into(),
        })
    }

    /// How outputs name the input: the file name, or the object's key.
    pub fn name(&self) -> String {
        match self {
            Input::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "source".into()),
            Input::Stream(s) => s.name.rsplit('/').next().unwrap_or(&s.name).to_string(),
        }
    }

    /// Where editors find the input: a `file://` URL, or the object key.
    pub fn locator(&self) -> String {
        match self {
            Input::File(p) => std::fs::canonicalize(p)
                .map(|p| format!("file://{}", p.display()))
                .unwrap_or_else(|_| self.name()),
            Input::Stream(s) => s.name.clone(),
        }
    }

    /// The local file, when the input is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Input::File(p) => Some(p),
            Input::Stream(_) => None,
        }
    }

    /// The URI the discoverer opens. A file's is built from its canonical
    /// path, as is the path the decode graphs open, so both derive the same
    /// stream ids.
    pub(crate) fn uri(&self) -> Result<String, PipelineError> {
        match self {
            Input::Stream(s) => Ok(s.registered.uri().to_string()),
            Input::File(p) => {
                let path = canonical_file(p)?;
                gst::glib::filename_to_uri(&path, None)
                    .map(|u| u.to_string())
                    .map_err(|e| PipelineError::NotFound(format!("{}: {e}", path.display())))
            }
        }
    }

    /// The source element of a decode graph.
    pub(crate) fn element(&self) -> Result<gst::Element, PipelineError> {
        match self {
            Input::Stream(s) => crate::source::element(s.registered.uri()),
            Input::File(p) => {
                let path = canonical_file(p)?;
                Ok(gst::ElementFactory::make("filesrc")
                    .property("location", path.to_string_lossy().as_ref())
                    .build()?)
            }
        }
    }
}

/// `path` made absolute, when it is a regular file. Symlinks are not
/// resolved: a caller may hand over `/proc/self/fd/N` of an in-memory file,
/// whose target is no path at all.
fn canonical_file(path: &Path) -> Result<PathBuf, PipelineError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PipelineError::NotFound(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(PipelineError::NotFound(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    std::path::absolute(path)
        .map_err(|e| PipelineError::NotFound(format!("{}: {e}", path.display())))
}
