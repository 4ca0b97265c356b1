//! Deterministic synthetic clips, made once with ffmpeg and cached outside the
//! repository (`$MONTEUR_CACHE/bench`, default `~/.cache/monteur/bench`).

use std::path::PathBuf;
use std::process::Command;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("cannot prepare {path}: {reason}")]
    Prepare { path: String, reason: String },
}

fn cache_dir() -> PathBuf {
    std::env::var_os("MONTEUR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/monteur")))
        .unwrap_or_else(std::env::temp_dir)
        .join("bench")
}

/// A 1080p30 H.264 clip of `seconds_per_shot * 3` seconds: three synthetic
/// shots (moving test pattern, Mandelbrot zoom, colour bars), hard cuts between
/// them at `seconds_per_shot` and twice that.
pub fn h264_1080p_three_shots(seconds_per_shot: u32) -> Result<PathBuf, MediaError> {
    let dir = cache_dir();
    let path = dir.join(format!("1080p30-h264-3shots-{seconds_per_shot}s.mp4"));
    if path.is_file() {
        return Ok(path);
    }
    let fail = |reason: String| MediaError::Prepare {
        path: path.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let d = seconds_per_shot;
    let tmp = dir.join(format!(".tmp-{}.mp4", std::process::id()));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=1920x1080:rate=30:duration={d}"),
        ])
        .args(["-f", "lavfi", "-i", "mandelbrot=size=1920x1080:rate=30"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("smptehdbars=size=1920x1080:rate=30:duration={d}"),
        ])
        .args([
            "-filter_complex",
            &format!("[1]trim=duration={d},setpts=PTS-STARTPTS[m];[0][m][2]concat=n=3:v=1[v]"),
        ])
        .args([
            "-map", "[v]", "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| fail(format!("ffmpeg: {e}")))?;
    if !status.success() {
        return Err(fail(format!("ffmpeg exited with {status}")));
    }
    std::fs::rename(&tmp, &path).map_err(|e| fail(e.to_string()))?;
    Ok(path)
}
