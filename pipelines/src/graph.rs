//! The GStreamer scaffolding the analysis and render graphs share: the decode
//! front end (`source → decodebin`, with a branch per wanted stream), the
//! appsinks at the ends of those branches, the loop that watches a running
//! graph (end, errors, stalls, cancellation) and the translation of
//! GStreamer's errors into [`PipelineError`]s that say whose fault they are.
//!
//! ```text
//! filesrc|monteursrc → decodebin ─ raw video (the selected stream) → video branch
//!                               ├ raw audio (the first stream)   → audio branch
//!                               └ anything else (not decoded)     → fakesink
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::{Cancel, Input, PipelineError};

/// Builds a branch for a decoded pad, inside the running pipeline.
pub(crate) type Attach =
    Box<dyn Fn(&gst::Pipeline, &gst::Pad) -> Result<(), PipelineError> + Send + Sync>;

/// How far the demuxer got in the streams nobody decodes (nanoseconds of
/// buffer time, the end of the latest buffer): with the decoded streams'
/// ends it tells a cut file (every stream stops early) from one whose video
/// simply ends before its audio.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extent(Arc<AtomicU64>);

impl Extent {
    pub fn until(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    fn reach(&self, end: u64) {
        self.0.fetch_max(end, Ordering::Relaxed);
    }
}

/// Which decoded streams get a branch.
pub(crate) struct Branches {
    /// The video stream to decode (by stream id; any when `None`) and its
    /// branch.
    pub video: Option<(Option<String>, Attach)>,
    /// The first audio stream's branch.
    pub audio: Option<Attach>,
    /// Where the other streams' ends are recorded.
    pub extent: Extent,
}

/// How much compressed data decodebin queues per stream when only audio is
/// decoded: some seconds of any compressed audio, and the queues after the
/// decoder (the branch's queue, the appsink, the reader's channel) hold
/// more than that again.
const AUDIO_ONLY_QUEUE_BYTES: u32 = 256 * 1024;

/// `input → decodebin` with `branches` built as decodebin exposes the
/// streams: a branch built up front for a stream that never appears would
/// wait forever for its end. Streams without a branch are demuxed but not
/// decoded.
pub(crate) fn decode_graph(
    name: &str,
    input: &Input,
    branches: Branches,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(name);
    let src = input.element()?;
    let decodebin = make("decodebin")?;
    if branches.video.is_none() {
        // decodebin's multiqueue lets a full stream queue grow past its
        // buffer limit while another stream's queue is empty, up to the
        // byte limit (8 MB when left to decodebin). Audio alone is the
        // recognition pass: its reader is slow, the video beside it drains
        // into a fakesink, so the audio queue always grew to that limit:
        // eleven minutes of compressed audio read ahead, about 27 MB of
        // buffers on a long input against what a short one holds whole.
        decodebin.set_property("max-size-bytes", AUDIO_ONLY_QUEUE_BYTES);
    }
    pipeline.add_many([&src, &decodebin])?;
    src.link(&decodebin)?;
    decodebin.connect("deep-element-added", false, |args| {
        if let Some(element) = args.get(2).and_then(|v| v.get::<gst::Element>().ok()) {
            decode_into_own_buffers(&element);
        }
        None
    });
    decode_only(
        &decodebin,
        branches.video.is_some(),
        branches.audio.is_some(),
    );
    let linked = Mutex::new((false, false));
    let extent = branches.extent.clone();
    let weak = pipeline.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let kind = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let mut done = lock(&linked);
        let result = match (&branches.video, &branches.audio) {
            (Some((wanted, attach)), _) if kind == "video/x-raw" && !done.0 => {
                let stream_ok = match (wanted, pad.stream_id()) {
                    (Some(want), Some(got)) => want.as_str() == got.as_str(),
                    _ => true,
                };
                if stream_ok {
                    done.0 = true;
                    attach(&pipeline, pad)
                } else {
                    attach_fakesink(&pipeline, pad, &extent)
                }
            }
            (_, Some(attach)) if kind == "audio/x-raw" && !done.1 => {
                done.1 = true;
                attach(&pipeline, pad)
            }
            _ => attach_fakesink(&pipeline, pad, &extent),
        };
        // A decoded stream that could not be linked becomes a pipeline
        // error, so the watcher ends the run with its reason.
        if let Err(e) = result {
            gst::element_error!(
                pipeline,
                gst::CoreError::Negotiation,
                ("could not link decoded stream: {}", e)
            );
        }
    });
    Ok(pipeline)
}

/// Has libav decoders (`avdec_*`) decode into their own buffers and copy
/// each finished frame out once, instead of decoding straight into
/// GStreamer buffers ("direct rendering"). With GStreamer 1.22's
/// `avdec_h264` and frame threads, direct rendering saves no copy: a frame
/// libav still holds as a reference stays mapped for writing, so
/// `gst_video_decoder_finish_frame` deep-copies it into freshly allocated
/// memory; frame-sized blocks are above the worker's 1 MiB mmap threshold
/// (`allocator.rs` in the worker), so each is mapped, faulted in and
/// unmapped (measured on a 720p H.264 clip, kernel detector: 0.55 s of
/// system time in page faults against 0.13 s, wall time 1.22-1.29 s against
/// 0.95-0.97 s; `perf record -e page-faults`). Without it, libav decodes
/// into its own recycled pool and each frame is copied once into a
/// recycled GStreamer buffer. Measured on GStreamer 1.22 (Debian 12's):
/// worth measuring again on another. Decodebin adds each decoder (still in
/// NULL state, so before it opens) to itself or to a bin inside it, which
/// `deep-element-added` reports.
fn decode_into_own_buffers(element: &gst::Element) {
    let libav = element
        .factory()
        .is_some_and(|f| f.name().starts_with("avdec_"));
    if libav && element.find_property("direct-rendering").is_some() {
        element.set_property("direct-rendering", false);
    }
}

/// Stops `decodebin` autoplugging at elementary streams nobody reads, so they
/// are demuxed but never decoded (audio for scenes only, subtitles, cover
/// images). Container caps ("video/quicktime", "audio/x-m4a") are not judged:
/// only pads coming out of a demuxer or parser carry one stream.
fn decode_only(decodebin: &gst::Element, video: bool, audio: bool) {
    decodebin.connect("autoplug-continue", false, move |args| {
        let pad = args.get(1).and_then(|v| v.get::<gst::Pad>().ok());
        let elementary = pad
            .and_then(|p| p.parent_element())
            .and_then(|e| e.factory())
            .map(|f| {
                let klass = f.metadata("klass").unwrap_or_default();
                klass.contains("Demux") || klass.contains("Parser")
            })
            .unwrap_or(false);
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let name = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let keep = !elementary
            || (video && name.starts_with("video/"))
            || (audio && name.starts_with("audio/"));
        Some(keep.to_value())
    });
}

fn attach_fakesink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    extent: &Extent,
) -> Result<(), PipelineError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Graph("fakesink has no sink pad".into()))?;
    let extent = extent.clone();
    sinkpad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer()
            && let Some(pts) = b.pts()
        {
            let end = pts + b.duration().unwrap_or(gst::ClockTime::ZERO);
            extent.reach(end.nseconds());
        }
        gst::PadProbeReturn::Ok
    });
    pad.link(&sinkpad)
        .map_err(|e| PipelineError::Graph(format!("{e:?}")))?;
    Ok(())
}

/// Adds `chain` to the running pipeline, links it in order, starts it and
/// feeds it from `pad`.
pub(crate) fn link_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    chain: &[gst::Element],
) -> Result<(), PipelineError> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    for e in chain {
        e.sync_state_with_parent()?;
    }
    let sink = chain
        .first()
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| PipelineError::Graph("branch has no sink pad".into()))?;
    pad.link(&sink)
        .map_err(|e| PipelineError::Graph(format!("{e:?}")))?;
    Ok(())
}

/// An element of our own graphs; a missing one is this worker's fault.
pub(crate) fn make(name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| PipelineError::MissingElement(name.to_string()))
}

/// The `audioconvert` that brings a decoded audio pad to `out` channels (1
/// or 2). Surround layouts of front, centre, surround and LFE channels are
/// folded down with ITU-R BS.775's coefficients (centre and surrounds at
/// -3 dB into their side, LFE dropped; mono is the mean of that stereo
/// pair), unnormalised so dialogue in the centre keeps its level for the
/// silence and speech thresholds; samples are float all the way to the
/// encoder. Other layouts get GStreamer's own mixing.
pub(crate) fn downmix(pad: &gst::Pad, out: usize) -> Result<gst::Element, PipelineError> {
    let convert = make("audioconvert")?;
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    if let Some(matrix) = caps.structure(0).and_then(|s| itu_matrix(s, out)) {
        let rows = matrix
            .iter()
            .map(|row| gst::Array::new(row.iter().copied()).to_send_value());
        convert.set_property("mix-matrix", gst::Array::from_values(rows));
    }
    Ok(convert)
}

/// BS.775 rows (one per output channel) for a decoded layout, when every
/// channel is one the recommendation places.
fn itu_matrix(s: &gst::StructureRef, out: usize) -> Option<Vec<Vec<f32>>> {
    const H: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let channels = usize::try_from(s.get::<i32>("channels").ok()?).ok()?;
    if channels <= 2 || !(1..=2).contains(&out) {
        return None;
    }
    let mask = s.get::<gst::Bitmask>("channel-mask").ok()?.0;
    // GStreamer orders interleaved channels by ascending position bit.
    let positions: Vec<u32> = (0..64).filter(|b| mask & (1u64 << b) != 0).collect();
    if positions.len() != channels {
        return None;
    }
    let mut stereo = [vec![0f32; channels], vec![0f32; channels]];
    for (i, p) in positions.iter().enumerate() {
        let (l, r) = match p {
            0 => (1.0, 0.0),     // front left
            1 => (0.0, 1.0),     // front right
            2 => (H, H),         // front centre
            3 | 9 => (0.0, 0.0), // LFE
            4 | 10 => (H, 0.0),  // rear / side left
            5 | 11 => (0.0, H),  // rear / side right
            8 => (0.5, 0.5),     // rear centre
            _ => return None,
        };
        stereo[0][i] = l;
        stereo[1][i] = r;
    }
    Some(if out == 2 {
        stereo.to_vec()
    } else {
        vec![
            stereo[0]
                .iter()
                .zip(&stereo[1])
                .map(|(l, r)| (l + r) / 2.0)
                .collect(),
        ]
    })
}

/// An appsink that hands every sample to `on_sample` on the streaming
/// thread, and refuses further samples once the job is cancelled, so the
/// streaming threads stop pushing at once.
pub(crate) fn appsink(
    caps: &gst::Caps,
    max_buffers: u32,
    cancel: &Cancel,
    on_sample: impl Fn(gst::Sample) -> Result<(), gst::FlowError> + Send + Sync + 'static,
) -> gst::Element {
    appsink_with_eos(caps, max_buffers, cancel, on_sample, || {})
}

/// [`appsink`], also telling when its stream ends.
pub(crate) fn appsink_with_eos(
    caps: &gst::Caps,
    max_buffers: u32,
    cancel: &Cancel,
    on_sample: impl Fn(gst::Sample) -> Result<(), gst::FlowError> + Send + Sync + 'static,
    on_eos: impl Fn() + Send + Sync + 'static,
) -> gst::Element {
    let cancel = cancel.clone();
    gst_app::AppSink::builder()
        .caps(caps)
        .sync(false)
        .max_buffers(max_buffers)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    if cancel.is_cancelled() {
                        return Err(gst::FlowError::Flushing);
                    }
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    on_sample(sample)?;
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| on_eos())
                .build(),
        )
        .build()
        .upcast()
}

/// Watches running graphs for one message, giving up on an error, a stall
/// or the job's cancellation.
pub(crate) struct Watch<'a> {
    pub cancel: &'a Cancel,
    /// No change of `activity` for this long is a stall.
    pub stall: Duration,
    /// A counter that moves while the graph works (buffers seen).
    pub activity: &'a (dyn Fn() -> u64 + Sync),
    /// Another graph whose errors end the wait too (the render's encoder).
    pub encoder: Option<&'a gst::Bus>,
}

/// How often a watcher looks at the cancel flag and the stall clock: well
/// inside the 2 s in which a cancelled job must stop.
const TICK: Duration = Duration::from_millis(100);

impl Watch<'_> {
    /// Waits for a `what` message on `bus`, calling `tick` every
    /// [`TICK`] (progress reports).
    pub fn until(
        &self,
        bus: &gst::Bus,
        what: gst::MessageType,
        tick: &mut dyn FnMut(),
    ) -> Result<(), PipelineError> {
        let mut last = (self.activity)();
        let mut since = Instant::now();
        loop {
            self.cancel.check()?;
            if let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(TICK.as_nanos() as u64),
                &[what, gst::MessageType::Error],
            ) {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        // Errors after a cancel are the teardown's echo.
                        self.cancel.check()?;
                        return Err(error_from(err));
                    }
                    _ => return Ok(()),
                }
            }
            if let Some(enc) = self.encoder
                && let Some(msg) = enc.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(err) = msg.view()
            {
                self.cancel.check()?;
                return Err(PipelineError::Graph(format!(
                    "encoding failed: {}",
                    describe_error(err)
                )));
            }
            tick();
            let now = (self.activity)();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > self.stall {
                return Err(PipelineError::Stalled(self.stall));
            }
        }
    }
}

/// Sets `pipeline` playing, reporting the first error if it refuses.
pub(crate) fn start(pipeline: &gst::Pipeline, state: gst::State) -> Result<(), PipelineError> {
    pipeline.set_state(state).map(|_| ()).map_err(|_| {
        pipeline
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => Some(error_from(err)),
                _ => None,
            })
            .unwrap_or_else(|| PipelineError::Graph("the graph refused to start".into()))
    })
}

/// What an error message means for the job, by an allow-list of the stream
/// errors that say the data itself is bad (a demuxer or decoder choking on
/// it, a type nobody knows); a codec GStreamer has no decoder for is a
/// missing codec. Anything else (`StreamError::Failed`, which is how a
/// negotiation failure in our own branch reads, resources, library faults)
/// is ours to retry.
pub(crate) fn error_from(err: &gst::message::Error) -> PipelineError {
    let e = err.error();
    let text = describe_error(err);
    let input = [
        gst::StreamError::Decode,
        gst::StreamError::Demux,
        gst::StreamError::Format,
        gst::StreamError::TypeNotFound,
        gst::StreamError::WrongType,
    ];
    if e.matches(gst::StreamError::CodecNotFound) || e.matches(gst::CoreError::MissingPlugin) {
        PipelineError::MissingCodec(text)
    } else if input.iter().any(|k| e.matches(*k)) {
        PipelineError::Decode(text)
    } else {
        PipelineError::Graph(text)
    }
}

/// The error's own message and the element that raised it; GStreamer's debug
/// string is left out as it carries file paths.
pub(crate) fn describe_error(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{} (in {source})", err.error().message())
}

/// The frame's presentation time on the stream's own timeline. Buffer PTS from
/// MP4 include the edit-list offset; the segment maps it back.
pub(crate) fn stream_time(sample: &gst::Sample) -> Option<Duration> {
    let pts = sample.buffer()?.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    segment
        .to_stream_time(pts)
        .map(|t| Duration::from_nanos(t.nseconds()))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; carry on with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How far before the declared end decoding may stop without the input
/// counting as truncated: streams of one file end a little apart (audio
/// priming, a last long frame), and a cut upload loses far more than this.
pub fn truncation_tolerance(declared: Duration) -> Duration {
    Duration::from_secs_f64((declared.as_secs_f64() * 0.03).max(1.5))
}

/// `Err(Truncated)` when decoding reached only `decoded` of the `declared`
/// duration.
pub(crate) fn check_complete(
    decoded: Duration,
    declared: Option<Duration>,
) -> Result<(), PipelineError> {
    match declared {
        Some(d) if decoded + truncation_tolerance(d) < d => Err(PipelineError::Truncated {
            decoded_s: decoded.as_secs_f64(),
            declared_s: d.as_secs_f64(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_input_is_truncated_and_a_whole_one_is_not() {
        let s = Duration::from_secs_f64;
        assert!(check_complete(s(4.0), Some(s(42.45))).is_err());
        assert!(check_complete(s(41.9), Some(s(42.45))).is_ok());
        // Short clips get a floor, long ones a share.
        assert!(check_complete(s(0.6), Some(s(2.0))).is_ok());
        assert!(check_complete(s(3500.0), Some(s(3600.0))).is_ok());
        assert!(check_complete(s(3400.0), Some(s(3600.0))).is_err());
        assert!(check_complete(s(1.0), None).is_ok());
    }

    /// Every libav decoder decodebin plugs runs with direct rendering off
    /// (`decode_into_own_buffers`), checked on an H.264 file made here.
    #[test]
    fn libav_decoders_run_without_direct_rendering() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.mp4");
        let encode = gst::parse::launch(&format!(
            "videotestsrc num-buffers=8 ! video/x-raw,width=64,height=48 ! x264enc ! \
             mp4mux ! filesink location={}",
            path.display()
        ))
        .unwrap();
        encode.set_state(gst::State::Playing).unwrap();
        let bus = encode.bus().unwrap();
        let end = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(matches!(
            end.map(|m| m.type_()),
            Some(gst::MessageType::Eos)
        ));
        encode.set_state(gst::State::Null).unwrap();

        let extent = Extent::default();
        let sink_extent = extent.clone();
        let branches = Branches {
            video: Some((
                None,
                Box::new(move |p: &gst::Pipeline, pad: &gst::Pad| {
                    attach_fakesink(p, pad, &sink_extent)
                }),
            )),
            audio: None,
            extent,
        };
        let pipeline = decode_graph("dr", &Input::file(&path), branches).unwrap();
        pipeline.set_state(gst::State::Paused).unwrap();
        let (ok, _, _) = pipeline.state(gst::ClockTime::from_seconds(30));
        assert!(ok.is_ok(), "the decode graph did not preroll");
        let decoders: Vec<gst::Element> = pipeline
            .iterate_recurse()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.factory().is_some_and(|f| f.name().starts_with("avdec_")))
            .collect();
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(!decoders.is_empty(), "no libav decoder was plugged");
        for d in decoders {
            assert!(!d.property::<bool>("direct-rendering"), "{}", d.name());
        }
    }

    fn layout(channels: i32, mask: u64) -> gst::Structure {
        gst::Structure::builder("audio/x-raw")
            .field("channels", channels)
            .field("channel-mask", gst::Bitmask::new(mask))
            .build()
    }

    #[test]
    fn surround_folds_down_by_bs775_and_stereo_is_left_alone() {
        let _ = gst::init();
        const H: f32 = std::f32::consts::FRAC_1_SQRT_2;
        // 5.1 with rear surrounds: FL FR FC LFE RL RR.
        let m = itu_matrix(&layout(6, 0b11_1111), 2).unwrap();
        assert_eq!(m[0], [1.0, 0.0, H, 0.0, H, 0.0]);
        assert_eq!(m[1], [0.0, 1.0, H, 0.0, 0.0, H]);
        // 5.1 with side surrounds (bits 10, 11), to mono for the models.
        let m = itu_matrix(&layout(6, 0b1100_0000_1111), 1).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0], [0.5, 0.5, H, 0.0, H / 2.0, H / 2.0]);
        // Stereo, unpositioned or unknown layouts: GStreamer's own mixing.
        assert!(itu_matrix(&layout(2, 0b11), 1).is_none());
        assert!(itu_matrix(&layout(6, 0), 2).is_none());
        assert!(itu_matrix(&layout(3, 0b100_0011), 2).is_none());
    }
}
