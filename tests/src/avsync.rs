//! Reading a render back for sync checks: where its white flashes are (by
//! frame) and where its beeps start (by time), both decoded by ffmpeg, not
//! by the graphs under test. Clips with a flash and a beep at the same
//! moments show any audio/video offset as the difference.

use std::path::Path;
use std::process::Command;

/// Runs of consecutive flash frames (mean luma above mid-grey) in `file`,
/// as `(first, last)` frame indices.
pub fn flash_runs(file: &Path) -> Result<Vec<(usize, usize)>, String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-vf",
            "scale=16:12",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let flashes = out
        .stdout
        .chunks_exact(16 * 12)
        .enumerate()
        .filter(|(_, f)| f.iter().map(|&p| u32::from(p)).sum::<u32>() / (16 * 12) > 128)
        .map(|(i, _)| i);
    for i in flashes {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    Ok(runs)
}

/// Times (s) where a beep starts in `file`: the first sample louder than
/// 0.1 after 0.2 s of quiet (48 kHz mono, ffmpeg's decode).
pub fn beep_onsets(file: &Path) -> Result<Vec<f64>, String> {
    let samples = crate::uploads::audio(file, 0, None, 48_000)?;
    let mut onsets = Vec::new();
    let mut quiet = usize::MAX / 2;
    for (i, &x) in samples.iter().enumerate() {
        if x.abs() > 0.1 {
            if quiet >= 9600 {
                onsets.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    Ok(onsets)
}
