//! The process's allocator settings, made once at start.
//!
//! glibc's malloc raises its mmap threshold each time a large block is freed
//! (up to 32 MiB), after which large tensors and audio windows come from the
//! arenas, where freed memory stays with the process; and it keeps up to
//! eight arenas per core, one for each thread that allocates (GStreamer's
//! streaming threads, ONNX Runtime's, the async runtime's). A long job's peak
//! then crept up with its length. A fixed 1 MiB threshold hands large blocks
//! back to the system when freed, and two arenas bound what freed small
//! blocks can hold (docs/BENCHMARKS.md, "Memory by input length").

/// Blocks this large and up are mapped and unmapped on their own.
pub const MMAP_THRESHOLD: i32 = 1 << 20;
/// Arenas malloc may make.
pub const ARENA_MAX: i32 = 2;

/// Applies the settings; call first in `main`, before any thread starts.
/// Elsewhere than glibc, nothing.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters; it is called before the
    // process starts any thread, and the values are in the documented range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Hands the free memory at the top of malloc's heaps and in its arenas'
/// free pages back to the system. Called between stages and between
/// recognition windows: the decode's and each window's garbage would
/// otherwise stay with the process, and the next stage's peak would sit on
/// top of it. Elsewhere than glibc, nothing.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes
    // malloc's own locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
