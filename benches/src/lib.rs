//! Shared parts of the benchmarks: test media made on demand, timing, and the
//! tables printed for `docs/BENCHMARKS.md`.
//!
//! Every benchmark compares monteur with a peer or a physical limit in the same
//! run, on the same file, so machine load moves both sides alike.
//!
//! # Layout
//! - [`media`]: synthetic clips generated once with ffmpeg into the cache.
//! - [`timing`]: best-of-N wall-clock timing of a closure or a command.

pub mod media;
pub mod timing;
