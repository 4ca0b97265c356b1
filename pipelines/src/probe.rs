//! What a media file holds, read with GStreamer's discoverer before any decode.

use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use serde::Serialize;

use crate::upright::{self, Orientation};
use crate::{Input, PipelineError};

/// One video stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoStream {
    /// GStreamer's stream id: lets the decoder pick this very stream.
    #[serde(skip)]
    pub stream_id: Option<String>,
    pub codec: String,
    /// The picture as shown (after [`Self::orientation`]): what analysis,
    /// outputs and the render see.
    pub width: u32,
    pub height: u32,
    /// How the stored pixels are turned to be shown (a phone's portrait
    /// video is stored landscape with a display matrix).
    pub orientation: Orientation,
    /// The picture as coded, before the orientation.
    pub stored_width: u32,
    pub stored_height: u32,
    /// Nominal frame rate as a fraction; `None` when the container declares none
    /// (variable frame rate).
    pub frame_rate: Option<(i32, i32)>,
    pub pixel_aspect: (i32, i32),
    /// A still image (cover art) rather than moving pictures.
    pub is_image: bool,
}

impl VideoStream {
    pub fn fps(&self) -> Option<f64> {
        self.frame_rate
            .filter(|&(n, d)| n > 0 && d > 0)
            .map(|(n, d)| f64::from(n) / f64::from(d))
    }
}

/// One audio stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioStream {
    #[serde(skip)]
    pub stream_id: Option<String>,
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaInfo {
    pub container: Option<String>,
    #[serde(rename = "duration_s", serialize_with = "ser_duration_s")]
    pub duration: Option<Duration>,
    pub video: Vec<VideoStream>,
    pub audio: Vec<AudioStream>,
    pub subtitles: usize,
    pub seekable: bool,
    /// Things the probe noticed and worked around, for the job report.
    pub notes: Vec<String>,
}

fn ser_duration_s<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl MediaInfo {
    /// The stream the video tasks analyse: the first moving-picture stream, so a
    /// cover image stored as a second "video" stream is never chosen.
    pub fn primary_video(&self) -> Option<&VideoStream> {
        self.video.iter().find(|v| !v.is_image)
    }

    /// Refuses pictures larger than `max_side` pixels on a side before any
    /// decode: a crafted header must not make the worker allocate gigabytes.
    pub fn check_limits(&self, max_side: u32) -> Result<(), PipelineError> {
        match self
            .video
            .iter()
            .find(|v| v.width > max_side || v.height > max_side)
        {
            Some(v) => Err(PipelineError::Refused(format!(
                "video is {}x{}, above the {max_side}-pixel limit",
                v.width, v.height
            ))),
            None => Ok(()),
        }
    }
}

/// Reads the container and stream layout of `input`.
pub fn probe(input: &Input, timeout: Duration) -> Result<MediaInfo, PipelineError> {
    let uri = input.uri()?;
    let clock_timeout =
        gst::ClockTime::from_nseconds(timeout.as_nanos().min(u64::MAX as u128) as u64);
    let discoverer = pbutils::Discoverer::new(clock_timeout)
        .map_err(|e| PipelineError::Graph(format!("discoverer: {e}")))?;
    let info = match discoverer.discover_uri(&uri) {
        Ok(info) => info,
        Err(e) => return Err(classify_discover_error(&e, timeout)),
    };
    let mut notes = Vec::new();
    match info.result() {
        pbutils::DiscovererResult::Ok => {}
        pbutils::DiscovererResult::MissingPlugins => {
            // A subtitle or data track we cannot decode must not stop the video
            // and audio tasks; a missing audio or video decoder must.
            let details = info.missing_elements_installer_details();
            let (fatal, ignorable): (Vec<&str>, Vec<&str>) =
                details.iter().map(|s| s.as_str()).partition(|d| {
                    missing_media_type(d)
                        .is_none_or(|t| t.starts_with("video/") || t.starts_with("audio/"))
                });
            if !fatal.is_empty() {
                let missing: Vec<String> = fatal.iter().map(|s| describe_missing(s)).collect();
                return Err(PipelineError::MissingCodec(missing.join(", ")));
            }
            notes.extend(
                ignorable
                    .iter()
                    .map(|d| format!("ignored a stream with no decoder: {}", describe_missing(d))),
            );
        }
        pbutils::DiscovererResult::Timeout => return Err(PipelineError::ProbeTimeout(timeout)),
        other => return Err(PipelineError::NotMedia(format!("{other:?}"))),
    }

    let container = info
        .stream_info()
        .filter(|s| s.is::<pbutils::DiscovererContainerInfo>())
        .and_then(|s| s.caps())
        .map(|c| describe_caps(&c));
    // An MP4/MOV display matrix is read directly (GStreamer 1.22 names
    // seven of its eight transforms); other containers' tags are taken as
    // the demuxer gives them.
    let matrix = input
        .bytes()
        .ok()
        .and_then(|b| upright::mp4_orientation(&*b));
    let video = info
        .video_streams()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let tagged = v.tags().and_then(|t| orientation_tag(&t));
            let orientation = match (i, matrix) {
                (0, Some(m)) => m,
                _ => tagged.unwrap_or_default(),
            };
            (v, orientation)
        })
        .map(|(v, orientation)| VideoStream {
            stream_id: v.stream_id().map(|s| s.to_string()),
            codec: v.caps().map(|c| describe_caps(&c)).unwrap_or_default(),
            width: if orientation.swaps_sides() {
                v.height()
            } else {
                v.width()
            },
            height: if orientation.swaps_sides() {
                v.width()
            } else {
                v.height()
            },
            orientation,
            stored_width: v.width(),
            stored_height: v.height(),
            frame_rate: {
                let f = v.framerate();
                (f.numer() > 0 && f.denom() > 0).then(|| (f.numer(), f.denom()))
            },
            pixel_aspect: {
                let p = v.par();
                if p.numer() > 0 && p.denom() > 0 {
                    (p.numer(), p.denom())
                } else {
                    (1, 1)
                }
            },
            is_image: v.is_image(),
        })
        .collect();
    let audio = info
        .audio_streams()
        .iter()
        .map(|a| AudioStream {
            stream_id: a.stream_id().map(|s| s.to_string()),
            codec: a.caps().map(|c| describe_caps(&c)).unwrap_or_default(),
            channels: a.channels(),
            sample_rate: a.sample_rate(),
        })
        .collect();
    let media = MediaInfo {
        container,
        duration: info.duration().map(|d| Duration::from_nanos(d.nseconds())),
        video,
        audio,
        subtitles: info.subtitle_streams().len(),
        seekable: info.is_seekable(),
        notes,
    };
    if media.video.is_empty() && media.audio.is_empty() {
        return Err(PipelineError::NotMedia(
            "no audio or video stream found".into(),
        ));
    }
    Ok(media)
}

fn orientation_tag(tags: &gst::TagList) -> Option<Orientation> {
    tags.get::<gst::tags::ImageOrientation>()
        .and_then(|v| Orientation::from_tag(v.get()))
}

fn classify_discover_error(e: &gst::glib::Error, timeout: Duration) -> PipelineError {
    if e.matches(gst::StreamError::TypeNotFound) || e.matches(gst::StreamError::WrongType) {
        PipelineError::NotMedia(e.message().to_string())
    } else if e.matches(gst::StreamError::CodecNotFound) || e.matches(gst::CoreError::MissingPlugin)
    {
        PipelineError::MissingCodec(e.message().to_string())
    } else if e.matches(gst::ResourceError::NotFound) {
        PipelineError::NotFound(e.message().to_string())
    } else if e.matches(gst::ResourceError::Failed) && e.message().contains("imeout") {
        PipelineError::ProbeTimeout(timeout)
    } else {
        PipelineError::NotMedia(e.message().to_string())
    }
}

/// A human name for a format ("H.264 (High Profile)"), else its caps name.
fn describe_caps(caps: &gst::CapsRef) -> String {
    let owned = caps.to_owned();
    match pbutils::functions::pb_utils_get_codec_description(&owned) {
        s if !s.is_empty() => s.to_string(),
        _ => caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default(),
    }
}

/// The media type a missing element was wanted for, from the installer detail's
/// last field (`decoder-video/x-h265`).
fn missing_media_type(details: &str) -> Option<&str> {
    details
        .rsplit('|')
        .next()
        .and_then(|f| f.split_once('-'))
        .map(|(_, t)| t)
}

/// Installer details look like `gstreamer|1.0|app|H.265 decoder|decoder-video/x-h265`:
/// the fourth field is the readable part.
fn describe_missing(details: &str) -> String {
    details.split('|').nth(3).unwrap_or(details).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn video(width: u32, height: u32) -> VideoStream {
        VideoStream {
            stream_id: None,
            codec: "H.264".into(),
            width,
            height,
            orientation: Orientation::Rotate0,
            stored_width: width,
            stored_height: height,
            frame_rate: Some((30, 1)),
            pixel_aspect: (1, 1),
            is_image: false,
        }
    }

    #[test]
    fn absurd_dimensions_are_refused_before_decoding() {
        let mut info = MediaInfo {
            container: None,
            duration: None,
            video: vec![video(7680, 4320)],
            audio: Vec::new(),
            subtitles: 0,
            seekable: true,
            notes: Vec::new(),
        };
        assert!(info.check_limits(8192).is_ok());
        info.video.push(video(60_000, 60_000));
        let e = info.check_limits(8192).unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains("60000x60000"), "{e}");
    }
}
