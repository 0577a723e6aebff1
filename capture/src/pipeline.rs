//! Builds the GStreamer pipeline for a source, element by element (never from a string):
//!
//! ```text
//! source → (decode) → videorate → videoconvert → videoscale → capsfilter(RGB, W×H, rate) → appsink
//! ```
//!
//! `videorate` comes first so that frames beyond the requested rate are dropped before they
//! cost a conversion; it only drops (a slow camera is not padded with duplicates).

use gio::prelude::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use orion_protocol::{FrameSize, RateHz};

use crate::source::{RtspTransport, Source};

/// A built, not yet started pipeline and the sink that receives its frames.
pub struct Built {
    pub pipeline: gst::Pipeline,
    pub sink: gst_app::AppSink,
}

/// Frame size and rate the pipeline delivers.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    pub size: FrameSize,
    pub rate: RateHz,
}

fn make(factory: &str) -> Result<gst::Element, glib::BoolError> {
    gst::ElementFactory::make(factory).name(factory).build()
}

pub fn build(source: &Source, settings: StreamSettings) -> Result<Built, glib::BoolError> {
    let pipeline = gst::Pipeline::with_name("capture");
    let rate = gst::ElementFactory::make("videorate")
        .name("rate")
        .property("drop-only", true)
        .build()?;
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let (num, den) = settings.rate.as_fraction();
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", settings.size.width() as i32)
        .field("height", settings.size.height() as i32)
        .field("framerate", gst::Fraction::new(num, den))
        .build();
    let filter = gst::ElementFactory::make("capsfilter")
        .name("filter")
        .property("caps", &caps)
        .build()?;
    let sink = gst_app::AppSink::builder()
        .name("frames")
        .caps(&caps)
        .max_buffers(1)
        .drop(true)
        // Files are paced by the clock (real time); live sources pace themselves.
        .sync(!source.is_live())
        .build();
    pipeline.add_many([&rate, &convert, &scale, &filter, sink.upcast_ref()])?;
    gst::Element::link_many([&rate, &convert, &scale, &filter, sink.upcast_ref()])?;

    match source {
        Source::Rtsp {
            location,
            user,
            password,
            transport,
            tls_ca,
        } => {
            let decode = uri_decoder(location.as_str())?;
            let rtsp = RtspSettings {
                user: user.clone(),
                password: password.clone(),
                transport: *transport,
                tls_ca: tls_ca.clone(),
            };
            decode.connect("source-setup", false, move |args| {
                if let Some(Ok(src)) = args.get(1).map(|v| v.get::<gst::Element>()) {
                    rtsp.configure(&src);
                }
                None
            });
            attach_decoder(&pipeline, &decode, &rate)?;
        }
        Source::File(path) => {
            let uri = glib::filename_to_uri(path, None)
                .map_err(|e| glib::bool_error!("file path to URI: {e}"))?;
            attach_decoder(&pipeline, &uri_decoder(&uri)?, &rate)?;
        }
        Source::V4l2(device) => {
            let src = gst::ElementFactory::make("v4l2src")
                .name("camera")
                .property("device", device.to_string_lossy().as_ref())
                .build()?;
            let decode = make("decodebin")?;
            pipeline.add_many([&src, &decode])?;
            src.link(&decode)?;
            connect_decoded_video(&decode, &rate);
        }
        Source::Test(pattern) => {
            let src = gst::ElementFactory::make("videotestsrc")
                .name("pattern")
                .property("is-live", true)
                .property_from_str("pattern", pattern.nick())
                .build()?;
            pipeline.add(&src)?;
            src.link(&rate)?;
        }
    }
    Ok(Built { pipeline, sink })
}

fn uri_decoder(uri: &str) -> Result<gst::Element, glib::BoolError> {
    gst::ElementFactory::make("uridecodebin")
        .name("decode")
        .property("uri", uri)
        .build()
}

fn attach_decoder(
    pipeline: &gst::Pipeline,
    decode: &gst::Element,
    rate: &gst::Element,
) -> Result<(), glib::BoolError> {
    pipeline.add(decode)?;
    connect_decoded_video(decode, rate);
    Ok(())
}

/// Links the decoder's first raw-video pad to `next` when it appears.
fn connect_decoded_video(decode: &gst::Element, next: &gst::Element) {
    let Some(sink_pad) = next.static_pad("sink") else {
        return;
    };
    decode.connect_pad_added(move |_, pad| {
        if sink_pad.is_linked() {
            return;
        }
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_raw_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/x-raw"));
        if is_raw_video && let Err(err) = pad.link(&sink_pad) {
            tracing::warn!(%err, "could not link decoded video");
        }
    });
}

/// What `rtspsrc` is told: low latency, the chosen transport, credentials as properties
/// (never in the location), and for `rtsps://` the CAs to trust.
struct RtspSettings {
    user: Option<String>,
    password: Option<String>,
    transport: RtspTransport,
    /// Read when rtspsrc is set up (the sandbox lets the capture read that one file; it
    /// was checked to hold a certificate at start).
    tls_ca: Option<std::path::PathBuf>,
}

impl RtspSettings {
    fn configure(&self, src: &gst::Element) {
        if src.find_property("latency").is_none() {
            return; // not rtspsrc (uridecodebin may be handed another source)
        }
        src.set_property("latency", 0u32);
        src.set_property_from_str(
            "protocols",
            match self.transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            },
        );
        if let Some(user) = &self.user {
            src.set_property("user-id", user);
        }
        if let Some(password) = &self.password {
            src.set_property("user-pw", password);
        }
        if let Some(ca) = &self.tls_ca {
            match gio::TlsFileDatabase::new(ca) {
                Ok(db) => src.set_property("tls-database", db.upcast::<gio::TlsDatabase>()),
                // The camera's certificate is then checked against the system's CAs and
                // the connection fails with a TLS error in the status.
                Err(err) => tracing::warn!(%err, path = %ca.display(), "tls_ca unreadable"),
            }
        }
    }
}
