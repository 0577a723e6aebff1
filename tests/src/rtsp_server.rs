//! The test RTSP server (binary `rtsp-test-server`; `orion-bench` runs it as a child too): an RTSP server (GStreamer's RTSP server library) on localhost that serves a
//! looping video file or a moving test pattern as H.264 or H.265, over RTSP or, with a
//! certificate, RTSPS (TLS). Clients choose TCP-interleaved or UDP transport. Prints
//! `{"ready": "rtsp://..."}` (or `rtsps://`) once listening; runs until stdin closes or it
//! is killed (tests kill it to simulate a camera outage and start it again on the same port).
//!
//! Each client gets its own media: a feeder pipeline (file decoded in real time and looped
//! with a seek at end of stream, or `videotestsrc`) pushes raw frames into the media's
//! `appsrc`, which encodes them. The feeder is built element by element; the media's own
//! launch line is a constant.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

#[derive(clap::Parser, Clone, Debug)]
#[command(name = "rtsp-test-server")]
pub struct Args {
    /// TCP port on 127.0.0.1 (0: any free port)
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value = "/cam")]
    mount: String,
    /// Video file to loop; without it a moving test pattern is served
    #[arg(long)]
    file: Option<PathBuf>,
    /// Test pattern size and rate
    #[arg(long, default_value_t = 640)]
    width: i32,
    #[arg(long, default_value_t = 480)]
    height: i32,
    #[arg(long, default_value_t = 30)]
    fps: i32,
    /// One media for every client (one encoder), as a camera serves several viewers;
    /// without it each client gets its own.
    #[arg(long)]
    shared: bool,
    /// Video codec sent to clients
    #[arg(long, value_enum, default_value_t = Codec::H264)]
    codec: Codec,
    /// Serve RTSPS (RTSP over TLS) with this PEM certificate (and --tls-key)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// Encoder settings: no B-frames or lookahead (first frame out at once), a keyframe every
/// 15 frames, parameter sets with every keyframe so late joiners decode quickly.
const MEDIA_H264: &str = "( appsrc name=feed is-live=true format=time do-timestamp=true \
    ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 \
    ! rtph264pay name=pay0 pt=96 config-interval=-1 )";
const MEDIA_H265: &str = "( appsrc name=feed is-live=true format=time do-timestamp=true \
    ! videoconvert ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=15 \
    ! rtph265pay name=pay0 pt=96 config-interval=-1 )";

/// Starts the `rtsp-test-server` helper as a child with `args` and waits until it listens;
/// returns it (stopped when dropped) and the stream's URL from its `ready` line.
pub fn spawn(args: &[&str]) -> Result<(crate::child::ChildGuard, String)> {
    let mut cmd = std::process::Command::new(crate::bins::locate("rtsp-test-server")?);
    cmd.args(args);
    let mut server = crate::child::ChildGuard::spawn(cmd)?;
    let line = server.next_line()?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("rtsp-test-server: {line}"))?;
    let url = ready["ready"]
        .as_str()
        .with_context(|| format!("rtsp-test-server: {line}"))?
        .to_owned();
    Ok((server, url))
}

/// Serves until stdin closes.
pub fn serve(args: &Args) -> Result<()> {
    if !args.mount.starts_with('/') || args.mount.len() > 100 {
        bail!("--mount must start with '/' and be at most 100 characters");
    }
    if let Some(file) = &args.file
        && !file.is_file()
    {
        bail!("--file {} is not a readable file", file.display());
    }
    gst::init()?;
    let main_loop = glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&args.port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(match args.codec {
        Codec::H264 => MEDIA_H264,
        Codec::H265 => MEDIA_H265,
    });
    factory.set_shared(args.shared);
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            serve_tls(&server, &factory, cert, key)?;
            "rtsps"
        }
        _ => "rtsp",
    };
    let feed_args = args.clone();
    let args = args.clone();
    factory.connect_media_configure(move |_, media| {
        if let Err(err) = start_feeder(media, &feed_args) {
            eprintln!("rtsp-test-server: feeder: {err:#}");
        }
    });
    server
        .mount_points()
        .context("mount points")?
        .add_factory(&args.mount, factory);
    let source_id = server
        .attach(None)
        .context("attach server (port in use?)")?;
    println!(
        "{}",
        serde_json::json!({"ready": format!("{scheme}://127.0.0.1:{}{}", server.bound_port(), args.mount)})
    );

    // Stop when stdin closes: the test that started us is gone or done.
    let quit = main_loop.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        quit.quit();
    });
    main_loop.run();
    source_id.remove();
    Ok(())
}

/// RTSPS: the certificate on the server's auth, and every client (anonymous) allowed to
/// play the media, as a camera with TLS and no login does.
fn serve_tls(
    server: &rtsp::RTSPServer,
    factory: &rtsp::RTSPMediaFactory,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<()> {
    let cert =
        rtsp::gio::TlsCertificate::from_files(cert, key).context("load --tls-cert / --tls-key")?;
    let auth = rtsp::RTSPAuth::new();
    auth.set_tls_certificate(Some(&cert));
    let role = "anonymous";
    let mut token = rtsp::RTSPToken::builder()
        .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
        .build();
    auth.set_default_token(Some(&mut token));
    factory.add_role_from_structure(
        &gst::Structure::builder(role)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
    server.set_auth(Some(&auth));
    Ok(())
}

/// Starts a pipeline that feeds raw frames into the media's `appsrc` until the media goes.
fn start_feeder(media: &rtsp::RTSPMedia, args: &Args) -> Result<()> {
    let bin = media
        .element()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow::anyhow!("media is not a bin"))?;
    let appsrc = bin
        .by_name("feed")
        .context("no appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| anyhow::anyhow!("feed is not an appsrc"))?;
    let feeder = build_feeder(args)?;
    let sink = feeder
        .by_name("out")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow::anyhow!("out is not an appsink"))?;
    let target = appsrc.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                // Fails once the client is gone: that stops the feeder's streaming.
                target.push_sample(&sample)
            })
            .build(),
    );
    let bus = feeder.bus().context("feeder bus")?;
    let looping = args.file.is_some();
    let weak = feeder.downgrade();
    let watch = bus.add_watch(move |_, msg| {
        let Some(feeder) = weak.upgrade() else {
            return glib::ControlFlow::Break;
        };
        match msg.view() {
            gst::MessageView::Eos(_) if looping => {
                let _ = feeder.seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                    gst::ClockTime::ZERO,
                );
            }
            gst::MessageView::Error(_) | gst::MessageView::Eos(_) => {
                let _ = feeder.set_state(gst::State::Null);
                return glib::ControlFlow::Break;
            }
            _ => {}
        }
        glib::ControlFlow::Continue
    })?;
    feeder.set_state(gst::State::Playing)?;
    // The feeder lives as long as the media: stop it when the media is torn down.
    let holder = std::sync::Mutex::new(Some((feeder, watch)));
    media.connect_unprepared(move |_| {
        if let Ok(mut held) = holder.lock()
            && let Some((feeder, _watch)) = held.take()
        {
            let _ = feeder.set_state(gst::State::Null);
        }
    });
    Ok(())
}

fn build_feeder(args: &Args) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::new();
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .build();
    let sink = gst_app::AppSink::builder()
        .name("out")
        .caps(&caps)
        .sync(true)
        .max_buffers(2)
        .build();
    pipeline.add_many([&convert, sink.upcast_ref()])?;
    convert.link(&sink)?;
    match &args.file {
        Some(file) => {
            let src = gst::ElementFactory::make("filesrc")
                .property("location", file.to_string_lossy().as_ref())
                .build()?;
            let decode = gst::ElementFactory::make("decodebin").build()?;
            pipeline.add_many([&src, &decode])?;
            src.link(&decode)?;
            let next = convert.static_pad("sink").context("convert pad")?;
            decode.connect_pad_added(move |_, pad| {
                let video = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")));
                if video == Some(true) && !next.is_linked() {
                    let _ = pad.link(&next);
                }
            });
        }
        None => {
            let src = gst::ElementFactory::make("videotestsrc")
                .property("is-live", true)
                .property_from_str("pattern", "ball")
                .build()?;
            let raw = gst::Caps::builder("video/x-raw")
                .field("width", args.width)
                .field("height", args.height)
                .field("framerate", gst::Fraction::new(args.fps, 1))
                .build();
            let filter = gst::ElementFactory::make("capsfilter")
                .property("caps", &raw)
                .build()?;
            pipeline.add_many([&src, &filter])?;
            gst::Element::link_many([&src, &filter, &convert])?;
        }
    }
    Ok(pipeline)
}
