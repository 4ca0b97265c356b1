//! Timeline exports of a cut plan, for editors to refine: OpenTimelineIO
//! (`cutplan.otio`), CMX 3600 EDL (`cutplan.edl`) and Final Cut Pro XML
//! (`cutplan.fcpxml`).
//!
//! Every export is written in whole frames of the plan's rate, so each one
//! gives back exactly the plan's ranges: the tests read them with
//! `opentimelineio` and `pycmx`, the editors' own libraries.

use std::fmt::Write as _;

use serde_json::json;

use crate::cutplan::{CutPlan, Removal, RemovalKind};

/// The source the timelines point at.
#[derive(Debug, Clone)]
pub struct SourceMedia {
    /// Clip name shown in the editor (the file name).
    pub name: String,
    /// Where the editor finds the media (`file://` URL or a relative path).
    pub url: String,
    pub width: u32,
    pub height: u32,
    pub has_video: bool,
    pub has_audio: bool,
    pub audio_rate: u32,
    pub audio_channels: u32,
}

fn otio_time(value: u64, rate: f64) -> serde_json::Value {
    json!({"OTIO_SCHEMA": "RationalTime.1", "rate": rate, "value": value as f64})
}

fn otio_range(start: u64, duration: u64, rate: f64) -> serde_json::Value {
    json!({
        "OTIO_SCHEMA": "TimeRange.1",
        "start_time": otio_time(start, rate),
        "duration": otio_time(duration, rate),
    })
}

/// OpenTimelineIO JSON: one video and one audio track, a clip per range.
pub fn to_otio(plan: &CutPlan, media: &SourceMedia, title: &str) -> String {
    let rate = plan.rate.fps();
    let clips = |kind: &str| -> Vec<serde_json::Value> {
        plan.ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "OTIO_SCHEMA": "Clip.2",
                    "name": format!("{} {}", media.name, i + 1),
                    "metadata": {"monteur": {"reason": r.reason, "kind": kind}},
                    "source_range": otio_range(r.start_frame, r.frames(), rate),
                    "effects": [],
                    "markers": [],
                    "enabled": true,
                    "media_references": {
                        "DEFAULT_MEDIA": {
                            "OTIO_SCHEMA": "ExternalReference.1",
                            "name": media.name,
                            "metadata": {},
                            "available_range": otio_range(0, plan.source_frames, rate),
                            "available_image_bounds": null,
                            "target_url": media.url,
                        }
                    },
                    "active_media_reference_key": "DEFAULT_MEDIA",
                })
            })
            .collect()
    };
    // What a transcript edit took out, marked where it was cut on the edit's
    // timeline, for review.
    let markers: Vec<serde_json::Value> = plan
        .removed
        .iter()
        .map(|r| {
            let at = plan
                .edit_time(r.start_s)
                .map_or(plan.kept_frames, |t| (t * rate).round() as u64);
            json!({
                "OTIO_SCHEMA": "Marker.2",
                "name": removal_label(r),
                "color": match r.kind {
                    RemovalKind::Filler => "YELLOW",
                    RemovalKind::Pause => "CYAN",
                    RemovalKind::Dropped => "RED",
                },
                "marked_range": otio_range(at, 0, rate),
                "comment": format!("{:.3}-{:.3} s of the source", r.start_s, r.end_s),
                "metadata": {"monteur": {
                    "kind": r.kind,
                    "source_start_s": r.start_s,
                    "source_end_s": r.end_s,
                    "text": r.text,
                }},
            })
        })
        .collect();
    let track = |name: &str, kind: &str| {
        json!({
            "OTIO_SCHEMA": "Track.1",
            "name": name,
            "kind": kind,
            "metadata": {},
            "source_range": null,
            "effects": [],
            "markers": markers,
            "enabled": true,
            "children": clips(kind),
        })
    };
    let mut tracks = Vec::new();
    if media.has_video {
        tracks.push(track("V1", "Video"));
    }
    if media.has_audio {
        tracks.push(track("A1", "Audio"));
    }
    let doc = json!({
        "OTIO_SCHEMA": "Timeline.1",
        "name": title,
        "metadata": {"monteur": {"schema": plan.schema, "mode": plan.mode}},
        "global_start_time": otio_time(0, rate),
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "name": "tracks",
            "metadata": {},
            "source_range": null,
            "effects": [],
            "markers": [],
            "enabled": true,
            "children": tracks,
        }
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn removal_label(r: &Removal) -> String {
    let kind = match r.kind {
        RemovalKind::Filler => "filler",
        RemovalKind::Pause => "pause",
        RemovalKind::Dropped => "deleted",
    };
    if r.text.is_empty() {
        format!("{kind} {:.1} s", r.end_s - r.start_s)
    } else {
        let text: String = r.text.chars().take(60).collect();
        format!("{kind}: {text}")
    }
}

/// `HH:MM:SS:FF` at `base` frames per timecode second (non-drop).
fn timecode(frame: u64, base: u64) -> String {
    let (ff, secs) = (frame % base, frame / base);
    format!(
        "{:02}:{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ff
    )
}

/// CMX 3600 EDL, non-drop frame, one cut event per range. Record times start
/// at 00:00:00:00. The reel is `AX` (file-based media), the clip named in a
/// `FROM CLIP NAME` comment as Premiere and Resolve expect.
pub fn to_edl(plan: &CutPlan, media: &SourceMedia, title: &str) -> String {
    let base = plan.rate.timecode_base();
    let channels = match (media.has_video, media.has_audio) {
        (true, true) => "AA/V",
        (true, false) => "V",
        _ => "AA",
    };
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut out = String::new();
    let _ = writeln!(out, "TITLE: {}", clean(title));
    let _ = writeln!(out, "FCM: NON-DROP FRAME\n");
    let mut rec = 0u64;
    for (i, r) in plan.ranges.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:03}  {:<8} {:<4}  {:<4} {:<3} {} {} {} {}",
            i + 1,
            "AX",
            channels,
            "C",
            "",
            timecode(r.start_frame, base),
            timecode(r.end_frame, base),
            timecode(rec, base),
            timecode(rec + r.frames(), base),
        );
        let _ = writeln!(out, "* FROM CLIP NAME: {}", clean(&media.name));
        // Removals cut after this event (before the next one starts).
        let next = plan.ranges.get(i + 1).map_or(f64::INFINITY, |n| n.start_s);
        for m in plan
            .removed
            .iter()
            .filter(|m| (i == 0 || m.start_s >= r.start_s) && m.start_s < next)
        {
            let _ = writeln!(
                out,
                "* MONTEUR REMOVED {} SRC {} {}",
                clean(&removal_label(m)),
                timecode((m.start_s * plan.rate.fps()).round() as u64, base),
                timecode((m.end_s * plan.rate.fps()).round() as u64, base),
            );
        }
        out.push('\n');
        rec += r.frames();
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Final Cut Pro XML 1.9: one asset, a project whose spine holds an
/// `asset-clip` per range.
pub fn to_fcpxml(plan: &CutPlan, media: &SourceMedia, title: &str) -> String {
    let (num, den) = (u64::from(plan.rate.num), u64::from(plan.rate.den));
    // Frame counts as rational seconds: frames * den / num.
    let t = |frames: u64| -> String {
        if frames == 0 {
            "0s".into()
        } else {
            format!("{}/{}s", frames * den, num)
        }
    };
    let name = xml_escape(&media.name);
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(out, "<!DOCTYPE fcpxml>");
    let _ = writeln!(out, r#"<fcpxml version="1.9">"#);
    let _ = writeln!(out, "  <resources>");
    let _ = writeln!(
        out,
        r#"    <format id="r1" frameDuration="{den}/{num}s" width="{}" height="{}"/>"#,
        media.width, media.height
    );
    let _ = writeln!(
        out,
        r#"    <asset id="r2" name="{name}" start="0s" duration="{}" hasVideo="{}" hasAudio="{}" format="r1" audioSources="{}" audioChannels="{}" audioRate="{}">"#,
        t(plan.source_frames),
        u8::from(media.has_video),
        u8::from(media.has_audio),
        u8::from(media.has_audio),
        media.audio_channels,
        media.audio_rate
    );
    let _ = writeln!(
        out,
        r#"      <media-rep kind="original-media" src="{}"/>"#,
        xml_escape(&media.url)
    );
    let _ = writeln!(out, "    </asset>");
    let _ = writeln!(out, "  </resources>");
    let _ = writeln!(out, "  <library>");
    let _ = writeln!(out, r#"    <event name="monteur">"#);
    let _ = writeln!(out, r#"      <project name="{}">"#, xml_escape(title));
    let _ = writeln!(
        out,
        r#"        <sequence format="r1" duration="{}" tcStart="0s" tcFormat="NDF">"#,
        t(plan.kept_frames)
    );
    let _ = writeln!(out, "          <spine>");
    let mut offset = 0;
    for r in &plan.ranges {
        let _ = writeln!(
            out,
            r#"            <asset-clip ref="r2" name="{name}" offset="{}" start="{}" duration="{}" format="r1" tcFormat="NDF"/>"#,
            t(offset),
            t(r.start_frame),
            t(r.frames())
        );
        offset += r.frames();
    }
    let _ = writeln!(out, "          </spine>");
    let _ = writeln!(out, "        </sequence>");
    let _ = writeln!(out, "      </project>");
    let _ = writeln!(out, "    </event>");
    let _ = writeln!(out, "  </library>");
    let _ = writeln!(out, "</fcpxml>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cutplan::{CutMode, Rate, Reason};

    fn sample() -> (CutPlan, SourceMedia) {
        let plan = CutPlan::new(
            CutMode::Silence,
            Rate {
                num: 30000,
                den: 1001,
            },
            2000,
            vec![
                (14, 28, Reason::Loud, false),
                (1790, 1900, Reason::Loud, false),
            ],
        );
        let media = SourceMedia {
            name: "talk & <take 1>.mp4".into(),
            url: "file:///media/talk.mp4".into(),
            width: 1280,
            height: 720,
            has_video: true,
            has_audio: true,
            audio_rate: 48_000,
            audio_channels: 2,
        };
        (plan, media)
    }

    #[test]
    fn edl_events_have_the_columns_cmx_readers_expect() {
        let (plan, media) = sample();
        let edl = to_edl(&plan, &media, "talk");
        let events: Vec<&str> = edl.lines().filter(|l| l.starts_with("00")).collect();
        assert_eq!(events.len(), 2);
        // Fixed columns: event (3) + 2 + reel (8) + 1 + channels (4) + 2 +
        // transition (4) + 1 + duration (3) + 4 timecodes.
        assert_eq!(
            events[1],
            "002  AX       AA/V  C        00:00:59:20 00:01:03:10 00:00:00:14 00:00:04:04"
        );
        assert!(edl.contains("* FROM CLIP NAME: talk & <take 1>.mp4"));
    }

    #[test]
    fn fcpxml_times_are_whole_frames_and_names_escaped() {
        let (plan, media) = sample();
        let x = to_fcpxml(&plan, &media, "talk");
        assert!(x.contains(r#"frameDuration="1001/30000s""#));
        assert!(
            x.contains(r#"offset="14014/30000s" start="1791790/30000s" duration="110110/30000s""#)
        );
        assert!(x.contains("talk &amp; &lt;take 1&gt;.mp4"));
    }

    #[test]
    fn otio_is_json_with_one_clip_per_range_and_track() {
        let (plan, media) = sample();
        let v: serde_json::Value = serde_json::from_str(&to_otio(&plan, &media, "talk")).unwrap();
        let tracks = v["tracks"]["children"].as_array().unwrap();
        assert_eq!(tracks.len(), 2);
        let clip = &tracks[0]["children"][1];
        assert_eq!(clip["source_range"]["start_time"]["value"], 1790.0);
        assert_eq!(clip["source_range"]["duration"]["value"], 110.0);
    }
}
