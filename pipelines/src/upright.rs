//! Pictures as people see them: the front of every video branch, between
//! the decoder and whatever reads the frames.
//!
//! ```text
//! decoded video → [deinterlace] → [videoconvert(I420_10LE) → monteurtonemap] → [videoflip] → …
//!                  interlaced      PQ or HLG                                    oriented
//! ```
//!
//! - **Orientation.** Phones store the sensor's pixels and a display matrix
//!   (MP4/MOV `tkhd`) saying how to show them. [`Orientation`] is read from
//!   that matrix where the container has one (GStreamer 1.22's `qtdemux`
//!   names seven of the eight upright transforms and not the anti-diagonal
//!   transpose), else from the demuxer's `image-orientation` tag, and the
//!   pixels are turned (`videoflip`), so analysis, burned-in captions and
//!   the render all work on the upright picture and every player agrees
//!   with the output without reading a tag.
//! - **Interlace.** Decoded caps that say `interleaved` or `mixed` get
//!   `deinterlace method=yadif`, one progressive frame per coded frame
//!   (the field the stream says comes first), as ffmpeg's `yadif` does by
//!   default: the frame rate, the cut plan's clock, is unchanged.
//! - **HDR.** Decoded caps whose transfer is PQ or HLG go through
//!   [`monteur_kernels::tonemap`] (the `monteurtonemap` element below) to
//!   8-bit BT.709, so the render is right on SDR screens and the detectors'
//!   thresholds mean the same thing on HDR footage as on SDR.

use std::sync::{Mutex, OnceLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use gstreamer as gst;
use gstreamer_base as gst_base;
use gstreamer_video as gst_video;
use monteur_kernels::tonemap::{Plane10, PlaneOut, ToneMapper, Transfer};
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::graph::make;
use crate::source::RandomAccess;

/// How the stored picture is turned to be shown: the eight transforms of a
/// display matrix, named as GStreamer's `image-orientation` tag names them
/// (a clockwise rotation, after a horizontal flip for the `flip-` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Orientation {
    #[default]
    #[serde(rename = "rotate-0")]
    Rotate0,
    #[serde(rename = "rotate-90")]
    Rotate90,
    #[serde(rename = "rotate-180")]
    Rotate180,
    #[serde(rename = "rotate-270")]
    Rotate270,
    #[serde(rename = "flip-rotate-0")]
    FlipRotate0,
    #[serde(rename = "flip-rotate-90")]
    FlipRotate90,
    #[serde(rename = "flip-rotate-180")]
    FlipRotate180,
    #[serde(rename = "flip-rotate-270")]
    FlipRotate270,
}

impl Orientation {
    /// From an `image-orientation` tag value.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "rotate-0" => Self::Rotate0,
            "rotate-90" => Self::Rotate90,
            "rotate-180" => Self::Rotate180,
            "rotate-270" => Self::Rotate270,
            "flip-rotate-0" => Self::FlipRotate0,
            "flip-rotate-90" => Self::FlipRotate90,
            "flip-rotate-180" => Self::FlipRotate180,
            "flip-rotate-270" => Self::FlipRotate270,
            _ => return None,
        })
    }

    /// From the linear part `[a b; c d]` of a QuickTime display matrix
    /// (a stored point `(x, y)` is shown at `(a·x + c·y, b·x + d·y)`); only
    /// the signs of the eight axis-aligned transforms are read, scaling is
    /// ignored, and anything else (a shear, an odd angle) is `None`.
    pub fn from_matrix(a: i32, b: i32, c: i32, d: i32) -> Option<Self> {
        Some(match (a.signum(), b.signum(), c.signum(), d.signum()) {
            (1, 0, 0, 1) => Self::Rotate0,
            (0, 1, -1, 0) => Self::Rotate90,
            (-1, 0, 0, -1) => Self::Rotate180,
            (0, -1, 1, 0) => Self::Rotate270,
            (-1, 0, 0, 1) => Self::FlipRotate0,
            (0, -1, -1, 0) => Self::FlipRotate90,
            (1, 0, 0, -1) => Self::FlipRotate180,
            (0, 1, 1, 0) => Self::FlipRotate270,
            _ => return None,
        })
    }

    /// Whether the shown picture is the stored one on its side (width and
    /// height swap).
    pub fn swaps_sides(self) -> bool {
        matches!(
            self,
            Self::Rotate90 | Self::Rotate270 | Self::FlipRotate90 | Self::FlipRotate270
        )
    }

    /// `videoflip`'s `video-direction` for it.
    fn video_direction(self) -> &'static str {
        match self {
            Self::Rotate0 => "identity",
            Self::Rotate90 => "90r",
            Self::Rotate180 => "180",
            Self::Rotate270 => "90l",
            Self::FlipRotate0 => "horiz",
            Self::FlipRotate90 => "ur-ll",
            Self::FlipRotate180 => "vert",
            Self::FlipRotate270 => "ul-lr",
        }
    }
}

/// The display matrix of the first video track of an MP4/MOV file; `None`
/// for other containers, files without a video track or a matrix that is
/// not one of the eight. Only box headers and two small boxes are read, at
/// most a few hundred bytes, wherever `moov` sits in the file.
pub(crate) fn mp4_orientation(file: &dyn RandomAccess) -> Option<Orientation> {
    let size = file.size();
    let moov = children(file, 0, size, 64).find(|b| &b.kind == b"moov")?;
    for trak in children(file, moov.body, moov.end, 256).filter(|b| &b.kind == b"trak") {
        let mut matrix = None;
        let mut video = false;
        for b in children(file, trak.body, trak.end, 64) {
            match &b.kind {
                b"tkhd" => matrix = tkhd_matrix(file, b.body, b.end),
                b"mdia" => {
                    video = children(file, b.body, b.end, 64)
                        .find(|h| &h.kind == b"hdlr")
                        .and_then(|h| read(file, h.body + 8, 4))
                        .is_some_and(|t| t == b"vide");
                }
                _ => {}
            }
        }
        if video {
            let [a, b, c, d] = matrix?;
            return Orientation::from_matrix(a, b, c, d);
        }
    }
    None
}

struct Mp4Box {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// The boxes between `from` and `to`, at most `limit` of them (a crafted
/// file of a million empty boxes must not keep the probe busy).
fn children(
    file: &dyn RandomAccess,
    from: u64,
    to: u64,
    limit: usize,
) -> impl Iterator<Item = Mp4Box> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        if at.checked_add(8)? > to {
            return None;
        }
        let head = read(file, at, 8)?;
        let small = u64::from(u32::from_be_bytes(head[..4].try_into().ok()?));
        let kind = head[4..8].try_into().ok()?;
        let (len, header) = match small {
            1 => (
                u64::from_be_bytes(read(file, at + 8, 8)?.try_into().ok()?),
                16,
            ),
            0 => (to - at, 8),
            n => (n, 8),
        };
        if len < header || at.checked_add(len)? > to {
            return None;
        }
        let b = Mp4Box {
            kind,
            body: at + header,
            end: at + len,
        };
        at += len;
        Some(b)
    })
    .take(limit)
}

/// Exactly `len` bytes at `at`, or `None`.
fn read(file: &dyn RandomAccess, at: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = file.read_at(at, &mut buf).ok()?;
    (n == len).then_some(buf)
}

/// `a, b, c, d` of a `tkhd` box's matrix (16.16 fixed point).
fn tkhd_matrix(file: &dyn RandomAccess, body: u64, end: u64) -> Option<[i32; 4]> {
    let version = *read(file, body, 1)?.first()?;
    // version and flags, times, track id, reserved, duration, then
    // reserved, layer, group, volume, reserved (16 bytes).
    let at =
        body + if version == 1 {
            4 + 16 + 4 + 4 + 8
        } else {
            4 + 8 + 4 + 4 + 4
        } + 16;
    if at + 36 > end {
        return None;
    }
    let m = read(file, at, 36)?;
    let word = |i: usize| -> Option<i32> {
        Some(i32::from_be_bytes(
            m.get(4 * i..4 * i + 4)?.try_into().ok()?,
        ))
    };
    // Stored as a, b, u, c, d, v, x, y, w.
    Some([word(0)?, word(1)?, word(3)?, word(4)?])
}

/// The elements between a decoded video pad with `caps` and the branch's
/// own elements (empty for progressive SDR footage shown as stored).
pub(crate) fn front(
    caps: &gst::CapsRef,
    orientation: Orientation,
) -> Result<Vec<gst::Element>, PipelineError> {
    let mut chain = Vec::new();
    let info = gst_video::VideoInfo::from_caps(caps).ok();
    if let Some(info) = &info
        && matches!(
            info.interlace_mode(),
            gst_video::VideoInterlaceMode::Interleaved | gst_video::VideoInterlaceMode::Mixed
        )
    {
        let bottom_first = info.field_order() == gst_video::VideoFieldOrder::BottomFieldFirst;
        let d = make("deinterlace")?;
        d.set_property_from_str("method", "yadif");
        // One frame per coded frame, from the field shown first.
        d.set_property_from_str("fields", if bottom_first { "bottom" } else { "top" });
        chain.push(d);
    }
    if let Some(transfer) = info.as_ref().and_then(hdr_transfer) {
        let convert = make("videoconvert")?;
        let filter = make("capsfilter")?;
        filter.set_property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I42010le)
                .build(),
        );
        chain.extend([convert, filter, tone_map_element()?]);
        tracing::debug!(?transfer, "tone mapping to BT.709");
    }
    if orientation != Orientation::Rotate0 {
        let flip = make("videoflip")?;
        flip.set_property_from_str("video-direction", orientation.video_direction());
        chain.push(flip);
    }
    Ok(chain)
}

/// PQ or HLG, from decoded caps.
pub(crate) fn hdr_transfer(info: &gst_video::VideoInfo) -> Option<Transfer> {
    match info.colorimetry().transfer() {
        gst_video::VideoTransferFunction::Smpte2084 => Some(Transfer::Pq),
        gst_video::VideoTransferFunction::AribStdB67 => Some(Transfer::Hlg),
        _ => None,
    }
}

fn tone_map_element() -> Result<gst::Element, PipelineError> {
    register_tone_map()?;
    make("monteurtonemap")
}

fn register_tone_map() -> Result<(), PipelineError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        gst::Element::register(
            None,
            "monteurtonemap",
            gst::Rank::NONE,
            ToneMap::static_type(),
        )
        .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(PipelineError::Init)
}

glib::wrapper! {
    pub struct ToneMap(ObjectSubclass<imp::ToneMap>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

mod imp {
    use super::*;
    use gst_video::prelude::VideoFrameExt as _;

    #[derive(Default)]
    pub struct ToneMap {
        state: Mutex<Option<State>>,
    }

    struct State {
        mapper: ToneMapper,
        /// Packed I420 scratch frame: the kernel writes all three planes
        /// at once, the output frame lends them one at a time.
        scratch: Vec<u8>,
    }

    impl std::fmt::Debug for ToneMap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ToneMap").finish_non_exhaustive()
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ToneMap {
        const NAME: &'static str = "MonteurToneMap";
        type Type = super::ToneMap;
        type ParentType = gst_video::VideoFilter;
    }

    impl ObjectImpl for ToneMap {}
    impl GstObjectImpl for ToneMap {}

    impl ElementImpl for ToneMap {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static M: OnceLock<gst::subclass::ElementMetadata> = OnceLock::new();
            Some(M.get_or_init(|| {
                gst::subclass::ElementMetadata::new(
                    "monteur tone map",
                    "Filter/Converter/Video",
                    "PQ or HLG 10-bit video to 8-bit BT.709 (Hable curve)",
                    "monteur",
                )
            }))
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static T: OnceLock<Vec<gst::PadTemplate>> = OnceLock::new();
            T.get_or_init(|| {
                let sink = gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I42010le)
                    .build();
                let src = gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .build();
                [
                    gst::PadTemplate::new(
                        "sink",
                        gst::PadDirection::Sink,
                        gst::PadPresence::Always,
                        &sink,
                    ),
                    gst::PadTemplate::new(
                        "src",
                        gst::PadDirection::Src,
                        gst::PadPresence::Always,
                        &src,
                    ),
                ]
                .into_iter()
                .filter_map(Result::ok)
                .collect()
            })
        }
    }

    impl BaseTransformImpl for ToneMap {
        const MODE: gst_base::subclass::BaseTransformMode =
            gst_base::subclass::BaseTransformMode::NeverInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        fn transform_caps(
            &self,
            direction: gst::PadDirection,
            caps: &gst::Caps,
            filter: Option<&gst::Caps>,
        ) -> Option<gst::Caps> {
            let mut out = caps.clone();
            {
                let out = out.make_mut();
                for s in out.iter_mut() {
                    if direction == gst::PadDirection::Sink {
                        s.set("format", "I420");
                        s.set("colorimetry", "bt709");
                    } else {
                        s.set("format", "I420_10LE");
                        s.remove_field("colorimetry");
                    }
                    s.remove_field("chroma-site");
                }
            }
            Some(match filter {
                Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
                None => out,
            })
        }
    }

    impl VideoFilterImpl for ToneMap {
        fn set_info(
            &self,
            _incaps: &gst::Caps,
            in_info: &gst_video::VideoInfo,
            _outcaps: &gst::Caps,
            _out_info: &gst_video::VideoInfo,
        ) -> Result<(), gst::LoggableError> {
            let transfer = hdr_transfer(in_info).ok_or_else(|| {
                gst::loggable_error!(
                    gst::CAT_RUST,
                    "input is neither PQ nor HLG: nothing to tone-map"
                )
            })?;
            let (w, h) = (in_info.width() as usize, in_info.height() as usize);
            let size = w * h + 2 * w.div_ceil(2) * h.div_ceil(2);
            if let Ok(mut s) = self.state.lock() {
                *s = Some(State {
                    mapper: ToneMapper::new(transfer),
                    scratch: vec![0; size],
                });
            }
            Ok(())
        }

        fn transform_frame(
            &self,
            inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
            outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut guard = self.state.lock().map_err(|_| gst::FlowError::Error)?;
            let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            let (w, h) = (inframe.width() as usize, inframe.height() as usize);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let plane = |i: u32| -> Result<Plane10<'_>, gst::FlowError> {
                Ok(Plane10 {
                    data: inframe.plane_data(i).map_err(|_| gst::FlowError::Error)?,
                    stride: usize::try_from(inframe.plane_stride()[i as usize])
                        .map_err(|_| gst::FlowError::Error)?,
                })
            };
            let input = [plane(0)?, plane(1)?, plane(2)?];
            let (y, chroma) = state.scratch.split_at_mut(w * h);
            let (u, v) = chroma.split_at_mut(cw * ch);
            state
                .mapper
                .frame(
                    (w, h),
                    input,
                    [
                        PlaneOut { data: y, stride: w },
                        PlaneOut {
                            data: u,
                            stride: cw,
                        },
                        PlaneOut {
                            data: v,
                            stride: cw,
                        },
                    ],
                )
                .map_err(|e| {
                    gst::element_imp_error!(self, gst::StreamError::Format, ["{e}"]);
                    gst::FlowError::Error
                })?;
            let mut from = 0;
            for (i, (pw, ph)) in [(w, h), (cw, ch), (cw, ch)].into_iter().enumerate() {
                let stride = usize::try_from(outframe.plane_stride()[i])
                    .map_err(|_| gst::FlowError::Error)?;
                let dst = outframe
                    .plane_data_mut(i as u32)
                    .map_err(|_| gst::FlowError::Error)?;
                for row in 0..ph {
                    let src = &state.scratch[from + row * pw..from + (row + 1) * pw];
                    dst.get_mut(row * stride..row * stride + pw)
                        .ok_or(gst::FlowError::Error)?
                        .copy_from_slice(src);
                }
                from += pw * ph;
            }
            Ok(gst::FlowSuccess::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_name_the_same_transforms_as_the_tags() {
        // The transforms qtdemux tags, checked against its tags by hand
        // (`gst-launch-1.0 -t … ! qtdemux`) and against the picture.
        let cases = [
            ((65536, 0, 0, 65536), "rotate-0"),
            ((0, 65536, -65536, 0), "rotate-90"),
            ((-65536, 0, 0, -65536), "rotate-180"),
            ((0, -65536, 65536, 0), "rotate-270"),
            ((-65536, 0, 0, 65536), "flip-rotate-0"),
            ((65536, 0, 0, -65536), "flip-rotate-180"),
            ((0, 65536, 65536, 0), "flip-rotate-270"),
            ((0, -65536, -65536, 0), "flip-rotate-90"),
        ];
        for ((a, b, c, d), tag) in cases {
            assert_eq!(
                Orientation::from_matrix(a, b, c, d),
                Orientation::from_tag(tag),
                "{tag}"
            );
        }
        assert_eq!(Orientation::from_matrix(46341, 46341, -46341, 46341), None);
        let sides: Vec<bool> = [
            "rotate-90",
            "flip-rotate-270",
            "rotate-180",
            "flip-rotate-0",
        ]
        .iter()
        .filter_map(|t| Orientation::from_tag(t))
        .map(Orientation::swaps_sides)
        .collect();
        assert_eq!(sides, [true, true, false, false]);
    }
}
