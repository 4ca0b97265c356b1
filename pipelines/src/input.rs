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

    /// The input's bytes, for the few containers fields GStreamer does not
    /// expose (see [`crate::upright`]).
    pub(crate) fn bytes(&self) -> Result<Arc<dyn RandomAccess>, PipelineError> {
        match self {
            Input::Stream(s) => crate::source::lookup(s.registered.uri())
                .ok_or_else(|| PipelineError::NotFound("the input stream went away".into())),
            Input::File(p) => {
                let file = std::fs::File::open(canonical_file(p)?)
                    .map_err(|e| PipelineError::NotFound(format!("{}: {e}", p.display())))?;
                let size = file
                    .metadata()
                    .map_err(|e| PipelineError::NotFound(format!("{}: {e}", p.display())))?
                    .len();
                Ok(Arc::new(LocalFile { file, size }))
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

/// A local file read at offsets.
struct LocalFile {
    file: std::fs::File,
    size: u64,
}

impl RandomAccess for LocalFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, crate::ReadError> {
        use std::os::unix::fs::FileExt as _;
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(crate::ReadError::Failed(e.to_string())),
            }
        }
        Ok(done)
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
