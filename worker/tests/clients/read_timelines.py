"""Reads monteur's timeline exports with the editors' own libraries and prints
what they understood, as JSON, for worker/tests/autocut_cli.rs to compare with
cutplan.json:

  python read_timelines.py OUT_DIR

- cutplan.otio through opentimelineio (the reference implementation),
- cutplan.edl through pycmx (a CMX 3600 parser used in post-production tools),
- cutplan.fcpxml through Python's XML parser (well-formedness and times).
"""

import json
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pycmx


def otio_ranges(path):
    timeline = otio.adapters.read_from_file(str(path))
    tracks = {}
    for track in timeline.tracks:
        clips = []
        for clip in track.find_clips():
            r = clip.source_range
            clips.append(
                {
                    "start": r.start_time.to_frames(),
                    "frames": r.duration.to_frames(),
                    "rate": r.start_time.rate,
                    "url": clip.media_reference.target_url,
                }
            )
        tracks[track.kind] = clips
    return {"tracks": tracks, "duration_s": timeline.duration().to_seconds()}


def tc_frames(tc, base):
    h, m, s, f = (int(x) for x in tc.replace(";", ":").split(":"))
    return ((h * 60 + m) * 60 + s) * base + f


def edl_ranges(path, base):
    with open(path) as f:
        edl = pycmx.parse_cmx3600(f)
    events = []
    for event in edl.events:
        for edit in event.edits:
            events.append(
                {
                    "number": event.number,
                    "start": tc_frames(edit.source_in, base),
                    "end": tc_frames(edit.source_out, base),
                    "record_in": tc_frames(edit.record_in, base),
                    "record_out": tc_frames(edit.record_out, base),
                    "clip": edit.clip_name,
                    "video": edit.channels.video,
                }
            )
    return {"title": edl.title, "events": events}


def seconds(value):
    return Fraction(value.rstrip("s")) if value != "0s" else Fraction(0)


def fcpxml_ranges(path, fps):
    root = ET.parse(path).getroot()
    clips = []
    for clip in root.iter("asset-clip"):
        clips.append(
            {
                "offset": float(seconds(clip.get("offset")) * fps),
                "start": float(seconds(clip.get("start")) * fps),
                "frames": float(seconds(clip.get("duration")) * fps),
            }
        )
    seq = root.find(".//sequence")
    return {
        "version": root.get("version"),
        "clips": clips,
        "sequence_frames": float(seconds(seq.get("duration")) * fps),
    }


def main():
    out = Path(sys.argv[1])
    plan = json.loads((out / "cutplan.json").read_text())
    fps = Fraction(plan["rate"]["num"], plan["rate"]["den"])
    base = round(fps)
    print(
        json.dumps(
            {
                "otio": otio_ranges(out / "cutplan.otio"),
                "edl": edl_ranges(out / "cutplan.edl", base),
                "fcpxml": fcpxml_ranges(out / "cutplan.fcpxml", fps),
            }
        )
    )


if __name__ == "__main__":
    main()
