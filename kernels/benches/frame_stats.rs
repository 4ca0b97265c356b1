//! Frame-kernel throughput, CPU and CUDA in one run, each next to its
//! physical limit on the same bytes:
//!
//! - CPU: `copy_from_slice` of the batch (reading every byte once is the
//!   least any kernel over those frames can do);
//! - CUDA: the host-to-device copy of the batch alone (the kernels cannot beat
//!   the transfer that feeds them), when a GPU is present.
//!
//! Then area-averaging a decoded luma plane to analysis size (`decimate`),
//! against a copy of the same plane (the least a pass over it costs).
//!
//! Then tone mapping a 10-bit HDR frame to 8-bit BT.709 (`tonemap`, in
//! bands on every core, as a render runs it), as frames a second against
//! the footage's own 30 and 60 frames a second: a render of HDR footage
//! cannot go faster than real time by more than this.
//!
//! Then the log-mel kernel: one 30 s window per call, as a real-time factor
//! (seconds of compute per second of audio; lower is better).
//!
//! Last, jobs side by side as a worker with several slots runs them: N
//! threads, each with its own leased backend (its own CUDA stream on a GPU),
//! against the same work on one; the ratio says what a slot adds.
//!
//! Run: `cargo bench -p monteur-kernels --bench frame_stats`. Builds and runs
//! without a GPU (the CUDA rows then say so); `scripts/gpu-bundle.sh` carries
//! it to a GPU machine.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use monteur_kernels::cuda::{CudaBackend, cuda_available};
use monteur_kernels::mel::WINDOW_SAMPLES;
use monteur_kernels::testing::noise;
use monteur_kernels::{Backend, BackendChoice, CpuBackend, Decimator, Kernels, LumaBatch, Plane};

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up: first-touch page faults, GPU buffer allocation
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    println!("| frames | backend | frames/s | GB/s read | limit GB/s | vs limit |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut gpu = if cuda_available() {
        match CudaBackend::new(0) {
            Ok(g) => {
                eprintln!("GPU: {}", g.device());
                Some(g)
            }
            Err(e) => {
                eprintln!("CUDA present but unusable: {e}");
                None
            }
        }
    } else {
        eprintln!("no CUDA device: CUDA rows not run");
        None
    };
    for (w, h, n, runs) in [(320usize, 180usize, 32usize, 200usize), (1920, 1080, 8, 10)] {
        let data = noise(w * h * n, 1);
        let prev = noise(w * h, 2);
        let batch = match LumaBatch::new(w, h, &data, Some(&prev)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return;
            }
        };
        let bytes = (data.len() + prev.len()) as f64;
        let mut out = Vec::new();
        let mut copy = vec![0u8; data.len()];
        let limit = best(runs, || copy.copy_from_slice(std::hint::black_box(&data)));
        let mut cpu = CpuBackend::new();
        let t = best(runs, || {
            let _ = cpu.frame_stats(std::hint::black_box(&batch), &mut out);
        });
        let row = |name: &str, t: Duration, limit: Duration| {
            println!(
                "| {w}x{h} x{n} | {name} | {:.0} | {:.2} | {:.2} | {:.2}x |",
                n as f64 / t.as_secs_f64(),
                bytes / t.as_secs_f64() / 1e9,
                bytes / limit.as_secs_f64() / 1e9,
                limit.as_secs_f64() / t.as_secs_f64()
            );
        };
        row("cpu", t, limit);
        if let Some(g) = gpu.as_mut() {
            let t = best(runs, || {
                let _ = g.frame_stats(std::hint::black_box(&batch), &mut out);
            });
            match g.upload_only(&batch) {
                Ok(()) => {
                    let limit = best(runs, || {
                        let _ = g.upload_only(&batch);
                    });
                    row("cuda (incl. upload)", t, limit);
                }
                Err(e) => eprintln!("upload failed: {e}"),
            }
        }
    }
    decimate();
    tonemap();
    let audio: Vec<f32> = noise(WINDOW_SAMPLES, 3)
        .iter()
        .map(|&b| (f32::from(b) - 128.0) / 256.0)
        .collect();
    let mut mel = Vec::new();
    let mut cpu = CpuBackend::new();
    println!("\n| log-mel, one 30 s window | backend | ms | real-time factor |");
    println!("|---|---|---:|---:|");
    let t = best(3, || {
        let _ = cpu.log_mel(std::hint::black_box(&audio), &mut mel);
    });
    println!(
        "| 80 x 3000 | cpu | {:.1} | {:.4} |",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() / 30.0
    );
    if let Some(g) = gpu.as_mut() {
        let t = best(10, || {
            let _ = g.log_mel(std::hint::black_box(&audio), &mut mel);
        });
        println!(
            "| 80 x 3000 | cuda (incl. transfers) | {:.1} | {:.5} |",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / 30.0
        );
    }
    slots(BackendChoice::Cpu);
    if gpu.is_some() {
        slots(BackendChoice::Cuda);
    }
}

/// Decoded luma planes (with a decoder's row padding) to 320 wide.
fn tonemap() {
    use monteur_kernels::tonemap::{Plane10, PlaneOut, ToneMapper, Transfer};
    println!(
        "\n| tone map, one 10-bit frame | transfer | frames/s (all cores) | vs 30 fps | vs 60 fps |"
    );
    println!("|---|---|---:|---:|---:|");
    for (w, h) in [(1920usize, 1080usize), (3840, 2160)] {
        let (cw, ch) = (w / 2, h / 2);
        // Codes spread over the legal range, chroma near neutral.
        let luma: Vec<u8> = noise(w * h, 7)
            .iter()
            .flat_map(|&b| (64 + u16::from(b) * 3).to_le_bytes())
            .collect();
        let chroma: Vec<u8> = noise(cw * ch, 9)
            .iter()
            .flat_map(|&b| (448 + u16::from(b) / 2).to_le_bytes())
            .collect();
        let (mut y, mut u, mut v) = (vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]);
        for transfer in [Transfer::Pq, Transfer::Hlg] {
            let mapper = ToneMapper::new(transfer);
            let t = best(5, || {
                let _ = mapper.frame(
                    (w, h),
                    [
                        Plane10 {
                            data: &luma,
                            stride: 2 * w,
                        },
                        Plane10 {
                            data: &chroma,
                            stride: 2 * cw,
                        },
                        Plane10 {
                            data: &chroma,
                            stride: 2 * cw,
                        },
                    ],
                    [
                        PlaneOut {
                            data: &mut y,
                            stride: w,
                        },
                        PlaneOut {
                            data: &mut u,
                            stride: cw,
                        },
                        PlaneOut {
                            data: &mut v,
                            stride: cw,
                        },
                    ],
                );
            });
            let fps = 1.0 / t.as_secs_f64();
            println!(
                "| {w}x{h} | {transfer:?} | {fps:.1} | {:.2}x | {:.2}x |",
                fps / 30.0,
                fps / 60.0
            );
        }
    }
}

fn decimate() {
    println!("\n| decimate, one luma plane | to | frames/s | GB/s read | copy GB/s | vs copy |");
    println!("|---|---|---:|---:|---:|---:|");
    for (w, h, dh) in [
        (1280usize, 720usize, 180usize),
        (1920, 1080, 180),
        (854, 480, 180),
        (3840, 2160, 180),
    ] {
        let stride = w.next_multiple_of(64);
        let data = noise(stride * h, 4);
        let Ok(plane) = Plane::new(&data, w, h, stride, 1) else {
            eprintln!("bad plane {w}x{h}");
            return;
        };
        let mut out = vec![0u8; 320 * dh];
        let mut d = Decimator::new();
        let t = best(50, || {
            let _ = d.run(std::hint::black_box(&plane), &mut out, 320, dh);
        });
        let mut copy = vec![0u8; data.len()];
        let limit = best(50, || copy.copy_from_slice(std::hint::black_box(&data)));
        let bytes = (w * h) as f64;
        println!(
            "| {w}x{h} | 320x{dh} | {:.0} | {:.2} | {:.2} | {:.2}x |",
            1.0 / t.as_secs_f64(),
            bytes / t.as_secs_f64() / 1e9,
            data.len() as f64 / limit.as_secs_f64() / 1e9,
            limit.as_secs_f64() / t.as_secs_f64()
        );
    }
}

/// Aggregate frame-statistics throughput of `n` concurrent leases, 1 to 8.
fn slots(choice: BackendChoice) {
    let Ok(kernels) = Kernels::select(choice) else {
        return;
    };
    let (w, h, n, batches) = (320usize, 180usize, 32usize, 60usize);
    let data = noise(w * h * n, 7);
    println!(
        "\n| slots ({}) | batches of {w}x{h} x{n} each | frames/s, all slots | vs 1 slot |",
        kernels.name()
    );
    println!("|---:|---:|---:|---:|");
    // Warm-up: eight backends made (device buffers, first-touch pages) and
    // returned to the pool, so every timed lease finds one ready.
    let warm: Vec<_> = (0..8).filter_map(|_| kernels.lease().ok()).collect();
    for mut lease in warm {
        if let Ok(b) = LumaBatch::new(w, h, &data, None) {
            let _ = lease.frame_stats(&b, &mut Vec::new());
        }
    }
    let mut one = 0.0;
    for threads in [1usize, 2, 4, 8] {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (kernels, data) = (kernels.clone(), &data);
                s.spawn(move || {
                    let Ok(mut lease) = kernels.lease() else {
                        return;
                    };
                    let mut out = Vec::new();
                    for _ in 0..batches {
                        if let Ok(b) = LumaBatch::new(w, h, data, None) {
                            let _ = lease.frame_stats(&b, &mut out);
                        }
                    }
                });
            }
        });
        let fps = (threads * batches * n) as f64 / t.elapsed().as_secs_f64();
        if threads == 1 {
            one = fps;
        }
        println!(
            "| {threads} | {batches} | {fps:.0} | {:.2}x |",
            fps / one.max(f64::MIN_POSITIVE)
        );
    }
}
