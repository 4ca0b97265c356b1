//! The CUDA backend: the kernels of `cuda/frame_stats.cu`, compiled at run time
//! by NVRTC for the device found, and launched once per batch.
//!
//! Nothing here may panic on a machine without a GPU: `cudarc` panics when it
//! cannot load `libcuda`, so every entry point goes through [`cuda_available`]
//! first.

use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::backend::mel_windows;
use crate::loudness::{self, WindowLevel};
use crate::mel::{MelTables, N_MELS, WINDOW_FRAMES};
use crate::{Backend, FrameStats, HIST_BINS, KernelError, LumaBatch};

/// The CUDA C source of every kernel, compiled as one program.
pub const SOURCE: &str = concat!(
    include_str!("cuda/frame_stats.cu"),
    "\n",
    include_str!("cuda/log_mel.cu"),
    "\n",
    include_str!("cuda/loudness.cu")
);
/// Entry points in [`SOURCE`].
pub const KERNELS: [&str; 5] = [
    "frame_sums",
    "frame_diffs",
    "log_mel_frames",
    "log_mel_normalise",
    "window_levels",
];
const THREADS: u32 = 256;

/// True when the CUDA driver loads and reports at least one device. Never
/// panics, whatever the machine has.
pub fn cuda_available() -> bool {
    cuda_device_count() > 0
}

/// CUDA devices the driver reports; 0 without a driver. Never panics.
pub fn cuda_device_count() -> usize {
    // SAFETY: only tries to dlopen the driver library; no CUDA call is made.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return 0;
    }
    match catch_unwind(CudaContext::device_count) {
        Ok(Ok(n)) if n > 0 => n as usize,
        _ => 0,
    }
}

/// True when the NVRTC library can be loaded (it compiles the kernels).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the NVRTC library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

fn device_err(e: impl std::fmt::Debug) -> KernelError {
    KernelError::Device(format!("{e:?}"))
}

/// The kernels compiled once for one device: a process selects its backend
/// once and every job's backend shares this program, each on its own stream.
pub struct CudaProgram {
    ctx: Arc<CudaContext>,
    sums_fn: CudaFunction,
    diffs_fn: CudaFunction,
    mel_fn: CudaFunction,
    mel_norm_fn: CudaFunction,
    levels_fn: CudaFunction,
    device: String,
}

impl std::fmt::Debug for CudaProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaProgram")
            .field("device", &self.device)
            .finish()
    }
}

impl CudaProgram {
    /// Opens device `ordinal` and compiles the kernels for its architecture.
    pub fn compile(ordinal: usize) -> Result<Arc<Self>, KernelError> {
        if !cuda_available() {
            return Err(KernelError::Unavailable("no CUDA driver or device".into()));
        }
        if !nvrtc_available() {
            return Err(KernelError::Unavailable(
                "NVRTC library not found (run scripts/setup.sh and source its env.sh)".into(),
            ));
        }
        let ctx = catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| KernelError::Unavailable("CUDA context creation panicked".into()))?
            .map_err(device_err)?;
        let major = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(device_err)?;
        let minor = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(device_err)?;
        let ptx = compile_ptx_with_opts(
            SOURCE,
            CompileOptions {
                options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
                name: Some("frame_stats.cu".into()),
                ..CompileOptions::default()
            },
        )
        .map_err(|e| KernelError::Compile(e.to_string()))?;
        let module = ctx.load_module(ptx).map_err(device_err)?;
        let device = ctx.name().unwrap_or_else(|_| format!("cuda:{ordinal}"));
        Ok(Arc::new(Self {
            sums_fn: module.load_function("frame_sums").map_err(device_err)?,
            diffs_fn: module.load_function("frame_diffs").map_err(device_err)?,
            mel_fn: module.load_function("log_mel_frames").map_err(device_err)?,
            mel_norm_fn: module
                .load_function("log_mel_normalise")
                .map_err(device_err)?,
            levels_fn: module.load_function("window_levels").map_err(device_err)?,
            ctx,
            device,
        }))
    }

    /// The device's name, for logs.
    pub fn device(&self) -> &str {
        &self.device
    }
}

/// Frame statistics on an NVIDIA GPU; results equal [`crate::CpuBackend`]'s
/// bit for bit. Each backend has a stream of its own, so jobs running side by
/// side on one device never wait on each other's copies and launches.
pub struct CudaBackend {
    program: Arc<CudaProgram>,
    stream: Arc<CudaStream>,
    /// Log-mel tables on the device, uploaded on first use.
    mel: Option<MelDevice>,
    /// Device buffers sized for `frames_capacity` frames of `pixels` each,
    /// reused across batches.
    buffers: Option<Buffers>,
}

struct MelDevice {
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    filters: CudaSlice<f32>,
    band_lo: CudaSlice<i32>,
    band_hi: CudaSlice<i32>,
}

struct Buffers {
    pixels: usize,
    frames_capacity: usize,
    frames: CudaSlice<u8>,
    sums: CudaSlice<u64>,
    hists: CudaSlice<u32>,
    abs_diff: CudaSlice<u64>,
    residual: CudaSlice<u64>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.program.device)
            .finish()
    }
}

impl CudaBackend {
    /// Opens device `ordinal`, compiles the kernels and makes one backend:
    /// for tests and tools. A process that runs many jobs compiles once
    /// ([`CudaProgram::compile`]) and makes a backend per job with [`Self::on`].
    pub fn new(ordinal: usize) -> Result<Self, KernelError> {
        Self::on(&CudaProgram::compile(ordinal)?)
    }

    /// A backend on a new stream of `program`'s device.
    pub fn on(program: &Arc<CudaProgram>) -> Result<Self, KernelError> {
        Ok(Self {
            stream: program.ctx.new_stream().map_err(device_err)?,
            program: Arc::clone(program),
            mel: None,
            buffers: None,
        })
    }

    /// The device's name, for logs.
    pub fn device(&self) -> &str {
        &self.program.device
    }

    /// Copies the batch to the device and waits, without running a kernel:
    /// the transfer cost that bounds [`Backend::frame_stats`], for benchmarks.
    pub fn upload_only(&mut self, batch: &LumaBatch<'_>) -> Result<(), KernelError> {
        let px = batch.pixels();
        let total = batch.len() + 1;
        let stream = Arc::clone(&self.stream);
        let b = self.buffers(px, total)?;
        stream
            .memcpy_htod(batch.data(), &mut b.frames.slice_mut(px..total * px))
            .map_err(device_err)?;
        stream.synchronize().map_err(device_err)
    }

    fn buffers(&mut self, pixels: usize, frames: usize) -> Result<&mut Buffers, KernelError> {
        let fits = self
            .buffers
            .as_ref()
            .is_some_and(|b| b.pixels == pixels && b.frames_capacity >= frames);
        if !fits {
            let s = &self.stream;
            self.buffers = Some(Buffers {
                pixels,
                frames_capacity: frames,
                frames: s.alloc_zeros(pixels * frames).map_err(device_err)?,
                sums: s.alloc_zeros(frames).map_err(device_err)?,
                hists: s.alloc_zeros(frames * HIST_BINS).map_err(device_err)?,
                abs_diff: s.alloc_zeros(frames).map_err(device_err)?,
                residual: s.alloc_zeros(frames).map_err(device_err)?,
            });
        }
        self.buffers
            .as_mut()
            .ok_or_else(|| KernelError::Device("device buffers missing".into()))
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn frame_stats(
        &mut self,
        batch: &LumaBatch<'_>,
        out: &mut Vec<FrameStats>,
    ) -> Result<(), KernelError> {
        out.clear();
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        let px = batch.pixels();
        let px_arg = i32::try_from(px)
            .map_err(|_| KernelError::InvalidBatch(format!("{px} pixels per frame is too many")))?;
        // Slot 0 holds the frame before the batch (zeros when there is none),
        // so frame i's predecessor is always slot i - 1.
        let total = n + 1;
        let stream = Arc::clone(&self.stream);
        let (sums_fn, diffs_fn) = (self.program.sums_fn.clone(), self.program.diffs_fn.clone());
        let b = self.buffers(px, total)?;
        match batch.previous() {
            Some(prev) => stream
                .memcpy_htod(prev, &mut b.frames.slice_mut(0..px))
                .map_err(device_err)?,
            None => stream
                .memset_zeros(&mut b.frames.slice_mut(0..px))
                .map_err(device_err)?,
        }
        stream
            .memcpy_htod(batch.data(), &mut b.frames.slice_mut(px..total * px))
            .map_err(device_err)?;
        stream.memset_zeros(&mut b.sums).map_err(device_err)?;
        stream.memset_zeros(&mut b.hists).map_err(device_err)?;
        stream.memset_zeros(&mut b.abs_diff).map_err(device_err)?;
        stream.memset_zeros(&mut b.residual).map_err(device_err)?;

        // Enough blocks per frame to fill the SMs across a batch, each thread
        // striding over a few dozen pixels.
        let blocks = (px as u32).div_ceil(THREADS * 32).clamp(1, 256);
        let mut launch = stream.launch_builder(&sums_fn);
        launch
            .arg(&b.frames)
            .arg(&px_arg)
            .arg(&mut b.sums)
            .arg(&mut b.hists);
        // SAFETY: the buffers hold `total` frames of `px` bytes, `total` sums
        // and `total * HIST_BINS` bins, matching the grid's y extent.
        unsafe {
            launch.launch(LaunchConfig {
                grid_dim: (blocks, total as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .map_err(device_err)?;
        let mut launch = stream.launch_builder(&diffs_fn);
        launch
            .arg(&b.frames)
            .arg(&px_arg)
            .arg(&b.sums)
            .arg(&mut b.abs_diff)
            .arg(&mut b.residual);
        // SAFETY: grid y covers frames 1..total, each reading its predecessor
        // and writing slot y of the `n`-long difference buffers.
        unsafe {
            launch.launch(LaunchConfig {
                grid_dim: (blocks, n as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .map_err(device_err)?;

        let sums = stream
            .clone_dtoh(&b.sums.slice(0..total))
            .map_err(device_err)?;
        let hists = stream
            .clone_dtoh(&b.hists.slice(0..total * HIST_BINS))
            .map_err(device_err)?;
        let abs_diff = stream
            .clone_dtoh(&b.abs_diff.slice(0..n))
            .map_err(device_err)?;
        let residual = stream
            .clone_dtoh(&b.residual.slice(0..n))
            .map_err(device_err)?;
        let has_prev = batch.previous().is_some();
        for i in 0..n {
            let slot = i + 1;
            let mut hist = [0u32; HIST_BINS];
            hist.copy_from_slice(&hists[slot * HIST_BINS..(slot + 1) * HIST_BINS]);
            let diff = i > 0 || has_prev;
            out.push(FrameStats {
                luma_sum: sums[slot],
                abs_diff_sum: diff.then(|| abs_diff[i]),
                residual_diff_sum: diff.then(|| residual[i]),
                hist,
            });
        }
        Ok(())
    }

    fn log_mel(&mut self, windows: &[f32], out: &mut Vec<f32>) -> Result<(), KernelError> {
        let n = mel_windows(windows)?;
        let stream = Arc::clone(&self.stream);
        if self.mel.is_none() {
            let t = MelTables::whisper80();
            let lo: Vec<i32> = t.bands.iter().map(|b| b.0 as i32).collect();
            let hi: Vec<i32> = t.bands.iter().map(|b| b.1 as i32).collect();
            self.mel = Some(MelDevice {
                cos: stream.clone_htod(&t.cos).map_err(device_err)?,
                sin: stream.clone_htod(&t.sin).map_err(device_err)?,
                filters: stream.clone_htod(&t.filters).map_err(device_err)?,
                band_lo: stream.clone_htod(&lo).map_err(device_err)?,
                band_hi: stream.clone_htod(&hi).map_err(device_err)?,
            });
        }
        let tables = self
            .mel
            .as_ref()
            .ok_or_else(|| KernelError::Device("mel tables missing".into()))?;
        let per = N_MELS * WINDOW_FRAMES;
        let d_windows = stream.clone_htod(windows).map_err(device_err)?;
        let mut d_out = stream.alloc_zeros::<f32>(n * per).map_err(device_err)?;
        let mut d_max = stream
            .clone_htod(&vec![f32::NEG_INFINITY; n])
            .map_err(device_err)?;
        let mut launch = stream.launch_builder(&self.program.mel_fn);
        launch
            .arg(&d_windows)
            .arg(&tables.cos)
            .arg(&tables.sin)
            .arg(&tables.filters)
            .arg(&tables.band_lo)
            .arg(&tables.band_hi)
            .arg(&mut d_out)
            .arg(&mut d_max);
        // SAFETY: `d_windows` holds `n` whole windows, `d_out` `n * per`
        // values and `d_max` `n`, matching the grid; the tables have the sizes
        // log_mel.cu's constants expect (built by MelTables::whisper80).
        unsafe {
            launch.launch(LaunchConfig {
                grid_dim: (WINDOW_FRAMES as u32, n as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .map_err(device_err)?;
        let mut launch = stream.launch_builder(&self.program.mel_norm_fn);
        launch.arg(&mut d_out).arg(&d_max);
        // SAFETY: the grid covers `per` values of each of the `n` windows.
        unsafe {
            launch.launch(LaunchConfig {
                grid_dim: ((per as u32).div_ceil(THREADS), n as u32, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .map_err(device_err)?;
        *out = stream.clone_dtoh(&d_out).map_err(device_err)?;
        Ok(())
    }

    fn loudness(
        &mut self,
        samples: &[f32],
        samples_per_window: f64,
        out: &mut Vec<WindowLevel>,
    ) -> Result<(), KernelError> {
        let n = loudness::window_count(samples.len(), samples_per_window)?;
        out.clear();
        if n == 0 {
            return Ok(());
        }
        let stream = Arc::clone(&self.stream);
        let d_samples = stream.clone_htod(samples).map_err(device_err)?;
        let mut d_peaks = stream.alloc_zeros::<f32>(n).map_err(device_err)?;
        let mut d_ms = stream.alloc_zeros::<f32>(n).map_err(device_err)?;
        let len = samples.len() as i64;
        let mut launch = stream.launch_builder(&self.program.levels_fn);
        launch
            .arg(&d_samples)
            .arg(&len)
            .arg(&samples_per_window)
            .arg(&mut d_peaks)
            .arg(&mut d_ms);
        let blocks = u32::try_from(n)
            .map_err(|_| KernelError::InvalidBatch(format!("{n} windows is too many")))?;
        // SAFETY: one block per window; every window lies inside `d_samples`
        // (bounds clamped to `len` in the kernel) and writes slot `blockIdx.x`
        // of the two `n`-long outputs.
        unsafe {
            launch.launch(LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .map_err(device_err)?;
        let peaks = stream.clone_dtoh(&d_peaks).map_err(device_err)?;
        let ms = stream.clone_dtoh(&d_ms).map_err(device_err)?;
        out.extend(
            peaks
                .into_iter()
                .zip(ms)
                .map(|(peak, mean_square)| WindowLevel { peak, mean_square }),
        );
        Ok(())
    }
}

/// What NVRTC and ptxas said about the kernels for one architecture.
#[derive(Debug, Clone)]
pub struct CompileReport {
    /// The NVRTC program log, including ptxas's `-v` resource report.
    pub log: String,
    /// Size of the produced image (PTX text or cubin).
    pub image_bytes: usize,
}

impl CompileReport {
    /// Lines of the ptxas report that mention spilled registers with a
    /// non-zero byte count.
    pub fn spills(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| {
                l.contains("spill") && !l.contains("0 bytes spill stores, 0 bytes spill loads")
            })
            .collect()
    }
}

/// Compiles [`SOURCE`] with NVRTC for `arch`: `compute_XY` yields PTX,
/// `sm_XY` a cubin through ptxas with its verbose resource report. This is
/// what CI runs so a broken kernel fails the build even without a GPU.
pub fn compile_report(arch: &str) -> Result<CompileReport, KernelError> {
    use cudarc::nvrtc::{result, sys};
    if !nvrtc_available() {
        return Err(KernelError::Unavailable(
            "NVRTC library not found (run scripts/setup.sh and source its env.sh)".into(),
        ));
    }
    let src = CString::new(SOURCE).map_err(|e| KernelError::Compile(e.to_string()))?;
    let name = c"frame_stats.cu";
    let cubin = arch.starts_with("sm_");
    let mut options = vec![format!("--gpu-architecture={arch}")];
    if cubin {
        options.push("--ptxas-options=-v".into());
    }
    let prog = catch_unwind(AssertUnwindSafe(|| {
        result::create_program(&src, Some(name))
    }))
    .map_err(|_| KernelError::Unavailable("NVRTC failed to load".into()))?
    .map_err(|e| KernelError::Compile(format!("{e:?}")))?;
    // SAFETY: `prog` is a live program created above; it is destroyed once, at
    // the end, whatever happens in between.
    let outcome = unsafe {
        let compiled = result::compile_program(prog, &options);
        let log = result::get_program_log(prog)
            .map(|raw| CStr::from_ptr(raw.as_ptr()).to_string_lossy().into_owned())
            .unwrap_or_default();
        match compiled {
            Err(e) => Err(KernelError::Compile(format!("{e:?} for {arch}:\n{log}"))),
            Ok(()) => {
                let mut size = 0usize;
                let status = if cubin {
                    sys::nvrtcGetCUBINSize(prog, &mut size)
                } else {
                    sys::nvrtcGetPTXSize(prog, &mut size)
                };
                status
                    .result()
                    .map_err(|e| KernelError::Compile(format!("{e:?}")))
                    .map(|()| CompileReport {
                        log,
                        image_bytes: size,
                    })
            }
        }
    };
    // SAFETY: see above; `prog` is not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    outcome
}
