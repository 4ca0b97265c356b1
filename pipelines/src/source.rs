//! `monteursrc`: a GStreamer source element that reads any [`RandomAccess`]
//! byte source (an object in S3 read by ranged GETs and decrypted segment by
//! segment, say) with random access, so demuxers can seek (an MP4 whose index
//! sits at its end) and nothing has to be held whole in memory or written to
//! disk. Graphs get one through [`Input::Stream`](crate::Input).
//!
//! GStreamer finds the element by URI (the discoverer builds its own graph
//! from one, and stream ids derive from it), so a stream input is registered
//! in a process-wide table under an opaque URI for as long as the
//! [`Input`](crate::Input) lives; nothing outside this crate sees the URI.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gstreamer as gst;
use gstreamer_base as gst_base;

use crate::PipelineError;

/// Why a read of a [`RandomAccess`] source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// [`RandomAccess::unlock`] or the job's cancellation stopped the read;
    /// the graph is flushing or being torn down, nothing is wrong with the
    /// input.
    #[error("read interrupted")]
    Interrupted,
    /// The job the source reads for was cancelled: no read will work again,
    /// and the graph had better stop at once (the source posts an error
    /// rather than waiting as it does for a flush).
    #[error("read stopped: the job was cancelled")]
    Cancelled,
    /// The bytes could not be had (the source keeps the typed cause for its
    /// owner to judge: an outage is retried, tampered data refused).
    #[error("read failed: {0}")]
    Failed(String),
}

/// Bytes readable at any offset, from any thread.
pub trait RandomAccess: Send + Sync {
    /// Total length in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; returns how many bytes were read (fewer
    /// only at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ReadError>;
    /// Makes a read in progress (and any until [`Self::unlock_stop`]) return
    /// [`ReadError::Interrupted`] at once: GStreamer calls it on flushing
    /// seeks and state changes, which must not wait for a slow network read.
    fn unlock(&self) {}
    /// Reads work again.
    fn unlock_stop(&self) {}
}

const SCHEME: &str = "monteur";

fn registry() -> &'static Mutex<HashMap<String, Arc<dyn RandomAccess>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<dyn RandomAccess>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// A registered source; dropping it unregisters the URI.
pub(crate) struct Registered {
    uri: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").finish_non_exhaustive()
    }
}

impl Registered {
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut r) = registry().lock() {
            r.remove(&self.uri);
        }
    }
}

/// Registers `source` under a fresh, unguessable URI: jobs of different
/// tenants run side by side in one process, and a URI another job's input
/// could name (a playlist, say) must lead nowhere.
pub(crate) fn register(source: Arc<dyn RandomAccess>) -> Registered {
    use std::hash::BuildHasher as _;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Two SipHash outputs under keys the standard library draws from the
    // operating system's randomness.
    let token: String = (0..2)
        .map(|_| {
            format!(
                "{:016x}",
                std::collections::hash_map::RandomState::new().hash_one(n)
            )
        })
        .collect();
    let uri = format!("{SCHEME}://{token}");
    if let Ok(mut r) = registry().lock() {
        r.insert(uri.clone(), source);
    }
    Registered { uri }
}

/// The source registered under `uri`, while it is.
pub(crate) fn lookup(uri: &str) -> Option<Arc<dyn RandomAccess>> {
    registry().lock().ok().and_then(|r| r.get(uri).cloned())
}

/// A `monteursrc` reading the source registered under `uri`.
pub(crate) fn element(uri: &str) -> Result<gst::Element, PipelineError> {
    Ok(gst::ElementFactory::make("monteursrc")
        .property("uri", uri)
        .build()?)
}

/// Registers the `monteursrc` element (once per process).
pub(crate) fn register_element() -> Result<(), PipelineError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        gst::Element::register(
            None,
            "monteursrc",
            gst::Rank::PRIMARY,
            MonteurSrc::static_type(),
        )
        .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(PipelineError::Init)
}

glib::wrapper! {
    pub struct MonteurSrc(ObjectSubclass<imp::MonteurSrc>)
        @extends gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

mod imp {
    use super::*;
    use gst_base::prelude::BaseSrcExt as _;

    #[derive(Default)]
    pub struct MonteurSrc {
        uri: Mutex<Option<String>>,
        source: Mutex<Option<Arc<dyn RandomAccess>>>,
    }

    impl std::fmt::Debug for MonteurSrc {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MonteurSrc").finish_non_exhaustive()
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for MonteurSrc {
        const NAME: &'static str = "MonteurSrc";
        type Type = super::MonteurSrc;
        type ParentType = gst_base::BaseSrc;
        type Interfaces = (gst::URIHandler,);
    }

    impl ObjectImpl for MonteurSrc {
        fn properties() -> &'static [glib::ParamSpec] {
            static P: OnceLock<Vec<glib::ParamSpec>> = OnceLock::new();
            P.get_or_init(|| {
                vec![
                    glib::ParamSpecString::builder("uri")
                        .nick("URI")
                        .blurb("monteur://<n> of a registered source")
                        .build(),
                ]
            })
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            if pspec.name() == "uri"
                && let Ok(uri) = value.get::<Option<String>>()
                && let Ok(mut u) = self.uri.lock()
            {
                *u = uri;
            }
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            self.uri.lock().ok().and_then(|u| u.clone()).to_value()
        }

        fn constructed(&self) {
            self.parent_constructed();
            // Byte offsets, so demuxers can pull at random.
            self.obj().set_format(gst::Format::Bytes);
        }
    }

    impl GstObjectImpl for MonteurSrc {}

    impl ElementImpl for MonteurSrc {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static M: OnceLock<gst::subclass::ElementMetadata> = OnceLock::new();
            Some(M.get_or_init(|| {
                gst::subclass::ElementMetadata::new(
                    "monteur source",
                    "Source/File",
                    "Reads a registered random-access byte source",
                    "monteur",
                )
            }))
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static T: OnceLock<Vec<gst::PadTemplate>> = OnceLock::new();
            T.get_or_init(|| {
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .map(|t| vec![t])
                .unwrap_or_default()
            })
        }
    }

    impl BaseSrcImpl for MonteurSrc {
        fn start(&self) -> Result<(), gst::ErrorMessage> {
            let uri = self
                .uri
                .lock()
                .ok()
                .and_then(|u| u.clone())
                .ok_or_else(|| gst::error_msg!(gst::ResourceError::NotFound, ["no uri set"]))?;
            let source = registry()
                .lock()
                .ok()
                .and_then(|r| r.get(&uri).cloned())
                .ok_or_else(|| {
                    gst::error_msg!(gst::ResourceError::NotFound, ["{uri} is not registered"])
                })?;
            if let Ok(mut s) = self.source.lock() {
                *s = Some(source);
            }
            Ok(())
        }

        fn stop(&self) -> Result<(), gst::ErrorMessage> {
            if let Ok(mut s) = self.source.lock() {
                *s = None;
            }
            Ok(())
        }

        fn is_seekable(&self) -> bool {
            true
        }

        fn unlock(&self) -> Result<(), gst::ErrorMessage> {
            if let Some(s) = self.source.lock().ok().and_then(|s| s.clone()) {
                s.unlock();
            }
            Ok(())
        }

        fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
            if let Some(s) = self.source.lock().ok().and_then(|s| s.clone()) {
                s.unlock_stop();
            }
            Ok(())
        }

        fn size(&self) -> Option<u64> {
            self.source.lock().ok()?.as_ref().map(|s| s.size())
        }

        fn fill(
            &self,
            offset: u64,
            length: u32,
            buffer: &mut gst::BufferRef,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let source = self
                .source
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .ok_or(gst::FlowError::Flushing)?;
            let size = source.size();
            if offset >= size {
                return Err(gst::FlowError::Eos);
            }
            let want = (u64::from(length)).min(size - offset) as usize;
            let read = {
                let mut map = buffer.map_writable().map_err(|_| gst::FlowError::Error)?;
                let slice = &mut map.as_mut_slice()[..want];
                match source.read_at(offset, slice) {
                    Ok(n) => n,
                    Err(ReadError::Interrupted) => return Err(gst::FlowError::Flushing),
                    Err(ReadError::Cancelled) => {
                        gst::element_imp_error!(
                            self,
                            gst::ResourceError::Read,
                            ["reading the input stopped: its job was cancelled"]
                        );
                        return Err(gst::FlowError::Error);
                    }
                    Err(ReadError::Failed(e)) => {
                        gst::element_imp_error!(
                            self,
                            gst::ResourceError::Read,
                            ["reading the input failed: {}", e]
                        );
                        return Err(gst::FlowError::Error);
                    }
                }
            };
            buffer.set_size(read);
            buffer.set_offset(offset);
            buffer.set_offset_end(offset + read as u64);
            Ok(gst::FlowSuccess::Ok)
        }
    }

    impl URIHandlerImpl for MonteurSrc {
        const URI_TYPE: gst::URIType = gst::URIType::Src;

        fn protocols() -> &'static [&'static str] {
            &[SCHEME]
        }

        fn uri(&self) -> Option<String> {
            self.uri.lock().ok().and_then(|u| u.clone())
        }

        fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
            if !uri.starts_with("monteur://") {
                return Err(glib::Error::new(
                    gst::URIError::BadUri,
                    "not a monteur:// URI",
                ));
            }
            if let Ok(mut u) = self.uri.lock() {
                *u = Some(uri.to_string());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Bytes(Vec<u8>);
    impl RandomAccess for Bytes {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
            let from = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
    }

    #[test]
    fn sources_unregister_when_dropped() {
        let r = register(Arc::new(Bytes(vec![1, 2, 3])));
        let uri = r.uri().to_string();
        assert!(registry().lock().unwrap().contains_key(&uri));
        drop(r);
        assert!(!registry().lock().unwrap().contains_key(&uri));
    }
}
