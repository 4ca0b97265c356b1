//! The CUDA kernels: compiled by NVRTC on every machine (CI has no GPU but has
//! NVRTC), and compared with the CPU reference wherever a GPU is present.
//!
//! Tests that need a device are marked ignored, each with its reason, so a machine
//! without one lists them as ignored rather than passing them: on a GPU
//! machine run `-- --include-ignored` with `MONTEUR_REQUIRE_GPU=1`, so a
//! missing or broken device fails instead of falling back.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use monteur_kernels::cuda::{self, CudaBackend};
use monteur_kernels::testing::noise;
use monteur_kernels::{Backend, BackendChoice, CpuBackend, Kernels, LumaBatch, select};

fn require_gpu() -> bool {
    std::env::var("MONTEUR_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

#[test]
fn nvrtc_compiles_every_kernel_for_hopper_without_spills() {
    assert!(
        cuda::nvrtc_available(),
        "NVRTC not found: run scripts/setup.sh and `source ~/.cache/monteur/assets/env.sh` \
         (scripts/test.sh does both)"
    );
    let ptx = cuda::compile_report("compute_90").unwrap();
    assert!(ptx.image_bytes > 1000, "PTX suspiciously small: {ptx:?}");
    let cubin = cuda::compile_report("sm_90").unwrap();
    assert!(cubin.image_bytes > 1000, "cubin suspiciously small");
    for kernel in cuda::KERNELS {
        assert!(
            cubin.log.contains(kernel),
            "ptxas report does not mention {kernel}:\n{}",
            cubin.log
        );
    }
    assert!(cubin.spills().is_empty(), "register spills:\n{}", cubin.log);
    eprintln!("ptxas report for sm_90:\n{}", cubin.log);
}

#[test]
fn a_broken_kernel_would_fail_the_build() {
    // The same path as above must turn a compile error into an error, not a
    // pass: compile a deliberately broken copy.
    assert!(cuda::nvrtc_available(), "NVRTC not found");
    let broken = cudarc::nvrtc::compile_ptx(cuda::SOURCE.replace(
        "atomicAdd(&sums[f], v);",
        "atomicAdd(&sums[f], undefined_name);",
    ));
    assert!(broken.is_err());
}

#[test]
fn probing_never_panics_and_auto_always_gets_a_backend() {
    let present = cuda::cuda_available();
    let selected = select(BackendChoice::Auto).unwrap();
    if present {
        assert_eq!(
            selected.backend.name(),
            "cuda",
            "{:?}",
            selected.fallback_reason
        );
    } else {
        assert!(
            !require_gpu(),
            "MONTEUR_REQUIRE_GPU=1 but no CUDA device was found"
        );
        assert_eq!(selected.backend.name(), "cpu");
        assert!(selected.fallback_reason.is_some());
        assert!(CudaBackend::new(0).is_err());
        assert!(select(BackendChoice::Cuda).is_err());
    }
}

/// Frames shaped like footage: a gradient, a brightness step, noise, flat.
fn frames(w: usize, h: usize, n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * n);
    for f in 0..n {
        let kind = (f as u64 + seed) % 4;
        let noisy = noise(w * h, seed + f as u64);
        out.extend((0..w * h).map(|i| match kind {
            0 => ((i % w) * 255 / w.max(1)) as u8,
            1 => (((i % w) * 200 / w.max(1)) as u8).saturating_add(40),
            2 => noisy[i],
            _ => 17,
        }));
    }
    out
}

#[test]
#[ignore = "needs a CUDA device: cargo test -p monteur-kernels --test cuda -- --ignored on a GPU machine (scripts/gpu-check.sh)"]
fn cuda_matches_cpu_reference_exactly() {
    let mut gpu = CudaBackend::new(0).unwrap();
    eprintln!("parity on {}", gpu.device());
    let mut cpu = CpuBackend::new();
    for (w, h, n) in [
        (320, 180, 32),
        (1, 1, 3),
        (97, 61, 7),
        (1920, 1080, 4),
        (320, 180, 1),
    ] {
        let data = frames(w, h, n, (w * h) as u64);
        let prev = noise(w * h, 99);
        for previous in [None, Some(prev.as_slice())] {
            let batch = LumaBatch::new(w, h, &data, previous).unwrap();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            cpu.frame_stats(&batch, &mut a).unwrap();
            gpu.frame_stats(&batch, &mut b).unwrap();
            assert_eq!(a, b, "{w}x{h}x{n}, previous: {}", previous.is_some());
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: cargo test -p monteur-kernels --test cuda -- --ignored on a GPU machine (scripts/gpu-check.sh)"]
fn cuda_log_mel_matches_cpu_reference() {
    use monteur_kernels::mel::WINDOW_SAMPLES;
    let mut gpu = CudaBackend::new(0).unwrap();
    let mut cpu = CpuBackend::new();
    // Two windows: noise with a quiet start, and a short tone then silence.
    let mut audio: Vec<f32> = noise(WINDOW_SAMPLES, 5)
        .iter()
        .map(|&b| (f32::from(b) - 128.0) / 256.0)
        .collect();
    audio[..8000].iter_mut().for_each(|x| *x *= 0.01);
    audio.extend((0..WINDOW_SAMPLES).map(|i| {
        if i < 16000 {
            (i as f32 * 0.3).sin() * 0.2
        } else {
            0.0
        }
    }));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    cpu.log_mel(&audio, &mut a).unwrap();
    gpu.log_mel(&audio, &mut b).unwrap();
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    // Same sums in a different order: float rounding, before a log.
    assert!(worst < 1e-3, "log-mel differs by up to {worst}");
}

#[test]
#[ignore = "needs a CUDA device: cargo test -p monteur-kernels --test cuda -- --ignored on a GPU machine (scripts/gpu-check.sh)"]
fn cuda_loudness_matches_cpu_reference() {
    let mut gpu = CudaBackend::new(0).unwrap();
    let mut cpu = CpuBackend::new();
    // 10 s at 16 kHz: noise, a silent stretch and a loud tone; windows of a
    // fractional length (30 fps) and of a whole one (48 kHz / 25 fps).
    let mut audio: Vec<f32> = noise(160_000, 11)
        .iter()
        .map(|&b| (f32::from(b) - 128.0) / 512.0)
        .collect();
    audio[40_000..80_000].iter_mut().for_each(|x| *x = 0.0);
    audio[100_000..120_000]
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i as f32 * 0.05).sin() * 0.9);
    for spw in [16_000.0 / 30.0, 16_000.0 / 25.0, 48_000.0 / 29.97] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        cpu.loudness(&audio, spw, &mut a).unwrap();
        gpu.loudness(&audio, spw, &mut b).unwrap();
        assert_eq!(a.len(), b.len(), "window count at {spw}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x.peak, y.peak, "peak of window {i} at {spw}");
            let tol = 1e-6 * x.mean_square.max(1e-12);
            assert!(
                (x.mean_square - y.mean_square).abs() <= tol,
                "mean square of window {i} at {spw}: {} vs {}",
                x.mean_square,
                y.mean_square
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: cargo test -p monteur-kernels --test cuda -- --ignored on a GPU machine (scripts/gpu-check.sh)"]
fn leased_backends_on_their_own_streams_agree_with_the_cpu_side_by_side() {
    // What a worker with several slots does: one compiled program, a backend
    // (stream) per job, jobs on threads of their own at the same time.
    let kernels = Kernels::select(BackendChoice::Cuda).unwrap();
    assert_eq!(kernels.name(), "cuda");
    let (w, h, n) = (320, 180, 32);
    let expected: Vec<_> = (0..4u64)
        .map(|seed| {
            let data = frames(w, h, n, seed);
            let mut out = Vec::new();
            CpuBackend::new()
                .frame_stats(&LumaBatch::new(w, h, &data, None).unwrap(), &mut out)
                .unwrap();
            (data, out)
        })
        .collect();
    std::thread::scope(|s| {
        for (data, want) in &expected {
            let kernels = kernels.clone();
            s.spawn(move || {
                let mut lease = kernels.lease().unwrap();
                for _ in 0..20 {
                    let mut got = Vec::new();
                    lease
                        .frame_stats(&LumaBatch::new(w, h, data, None).unwrap(), &mut got)
                        .unwrap();
                    assert_eq!(&got, want);
                }
            });
        }
    });
    assert!(
        kernels.idle() >= 1 && kernels.idle() <= 4,
        "leases returned"
    );
}
