//! Numeric kernels over decoded media, with no I/O and no GStreamer.
//!
//! This crate builds and tests alone so that its test binary can be carried to a
//! GPU machine. Every kernel has a plain CPU reference; accelerated backends
//! implement the same [`Backend`] trait and are checked against the reference.
//!
//! # Layout
//! - [`frame`]: the per-frame luma statistics (histogram, sum, difference to the
//!   previous frame) computed by a backend, in exact integers so backends agree
//!   bit for bit.
//! - [`decimate`]: area-averages a decoded plane down to analysis size (the
//!   luma the frame kernels read, the boundary model's thumbnails).
//! - [`mel`]: Whisper's log-mel spectrogram, the per-window audio kernel.
//! - [`loudness`]: peak and RMS per short window, for silence detection.
//! - [`align`]: word alignment from a speech model's cross-attention
//!   (normalise, median filter, dynamic time warping); CPU only, see why there.
//! - [`tonemap`]: HDR (PQ, HLG) 10-bit frames to SDR BT.709, for renders
//!   and analysis of HDR footage; CPU only.
//! - [`features`]: the normalised, floating-point features the detectors use,
//!   derived on the host from those integers.
//! - [`cpu`]: the reference backend, written so the compiler vectorises it.
//! - [`cuda`]: the same kernels in CUDA C, compiled at run time by NVRTC, and
//!   the safe probe that tells whether a GPU is there.
//! - [`select`](mod@select): picks a backend at run time (`auto`, `cpu`, `cuda`);
//!   [`Kernels`] makes that choice once per process and lends a backend (its
//!   own CUDA stream on a GPU) to each job running at once.
//! - [`Backend`]: the trait every backend implements.
//! - [`testing`]: deterministic frame data for tests and benchmarks.

pub mod align;
mod backend;
pub mod cpu;
pub mod cuda;
pub mod decimate;
mod error;
pub mod features;
pub mod frame;
pub mod loudness;
pub mod mel;
pub mod select;
pub mod testing;
pub mod tonemap;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use decimate::{Decimator, Plane};
pub use error::KernelError;
pub use features::FrameFeatures;
pub use frame::{FrameStats, HIST_BINS, LumaBatch, mean_offset};
pub use loudness::WindowLevel;
pub use select::{BackendChoice, Kernels, Lease, Selected, select};
