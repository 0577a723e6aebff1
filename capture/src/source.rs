//! Camera sources: parsed and validated from a URI, with credentials kept out of logs.

use std::fmt;
use std::path::PathBuf;

use url::Url;

/// Longest source URI accepted (bounds everything derived from it).
pub const MAX_URI_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("camera source is not a valid URI: {0}")]
    Syntax(String),
    #[error("camera source longer than {MAX_URI_LEN} characters")]
    TooLong,
    #[error(
        "unsupported camera source scheme {0:?}: use rtsp://, file:///, v4l2:///dev/videoN or test://"
    )]
    Scheme(String),
    #[error("camera source {uri}: {reason}")]
    Invalid { uri: String, reason: String },
    #[error("tls_ca: {0}")]
    TlsCa(String),
}

/// How RTSP media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: works through NAT and firewalls.
    Tcp,
    /// RTP over UDP: lower overhead on a clean LAN.
    Udp,
}

/// A camera source. Credentials of an RTSP URI are split off so that the location handed
/// to GStreamer (and shown in logs and status) never contains them.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    Rtsp {
        location: Url,
        user: Option<String>,
        password: Option<String>,
        transport: RtspTransport,
        /// PEM CA certificates an `rtsps://` camera's certificate must chain to (a
        /// self-signed camera: its own certificate); `None`: the system's CAs.
        tls_ca: Option<PathBuf>,
    },
    /// A local video file, played in real time and looped forever.
    File(PathBuf),
    V4l2(PathBuf),
    /// GStreamer's synthetic test pattern (`test://` or `test://ball`, `test://smpte`).
    Test(TestPattern),
}

/// The synthetic patterns a `test://` source can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestPattern {
    /// A moving ball: every frame differs.
    Ball,
    /// Colour bars: the top two thirds of every row are identical, which makes stride
    /// mistakes visible.
    Smpte,
}

impl TestPattern {
    /// The `videotestsrc` pattern nick.
    pub fn nick(self) -> &'static str {
        match self {
            TestPattern::Ball => "ball",
            TestPattern::Smpte => "smpte",
        }
    }
}

/// What a cheap look at the camera found, between two full connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It answers (the RTSP port accepts a TCP connection; the device node exists).
    Answers,
    /// It does not.
    Silent,
    /// Nothing to probe (a file, a test pattern): only the backoff decides.
    NotProbed,
}

/// Longest a probe waits for a TCP connection.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

impl Source {
    /// A cheap look at the camera: a TCP connect to the RTSP port (closed at once), or the
    /// device node's presence. Never a session: a camera that accepts connections but fails
    /// the session is still paced by the backoff.
    pub fn probe(&self) -> Probe {
        match self {
            Source::Rtsp { location, .. } => {
                let port = location.port().unwrap_or(if location.scheme() == "rtsps" {
                    322
                } else {
                    554
                });
                let Some(host) = location.host_str() else {
                    return Probe::Silent;
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let addrs = match std::net::ToSocketAddrs::to_socket_addrs(&(host, port)) {
                    Ok(a) => a,
                    Err(_) => return Probe::Silent,
                };
                for addr in addrs.take(4) {
                    if std::net::TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok() {
                        return Probe::Answers;
                    }
                }
                Probe::Silent
            }
            Source::V4l2(path) => {
                if path.exists() {
                    Probe::Answers
                } else {
                    Probe::Silent
                }
            }
            Source::File(_) | Source::Test(_) => Probe::NotProbed,
        }
    }

    /// Trusts the CA certificates in `path` (PEM) for an `rtsps://` camera.
    pub fn with_tls_ca(mut self, path: PathBuf) -> Result<Self, SourceError> {
        let Source::Rtsp {
            location, tls_ca, ..
        } = &mut self
        else {
            return Err(SourceError::TlsCa(
                "only an rtsps:// camera takes one".into(),
            ));
        };
        if location.scheme() != "rtsps" {
            return Err(SourceError::TlsCa(format!(
                "{} is not rtsps://",
                redact(location)
            )));
        }
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| SourceError::TlsCa(format!("{}: {e}", path.display())))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(SourceError::TlsCa(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        *tls_ca = Some(path);
        Ok(self)
    }

    pub fn parse(uri: &str, transport: RtspTransport) -> Result<Self, SourceError> {
        if uri.len() > MAX_URI_LEN {
            return Err(SourceError::TooLong);
        }
        let url = Url::parse(uri).map_err(|e| SourceError::Syntax(e.to_string()))?;
        let invalid = |reason: &str| SourceError::Invalid {
            uri: redact(&url),
            reason: reason.to_owned(),
        };
        match url.scheme() {
            "rtsp" | "rtsps" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("has no host"));
                }
                let user = (!url.username().is_empty()).then(|| decode(url.username()));
                let password = url.password().map(decode);
                let mut location = url.clone();
                // Infallible for URLs with a host, which rtsp:// URLs have (checked above).
                let _ = location.set_username("");
                let _ = location.set_password(None);
                Ok(Source::Rtsp {
                    location,
                    user,
                    password,
                    transport,
                    tls_ca: None,
                })
            }
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("is not an absolute local path"))?;
                if !path.is_file() {
                    return Err(invalid("does not name a readable file"));
                }
                Ok(Source::File(path))
            }
            "v4l2" => {
                let path = PathBuf::from(url.path());
                let is_video_dev = path
                    .to_str()
                    .and_then(|p| p.strip_prefix("/dev/video"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if url.host_str().is_some_and(|h| !h.is_empty()) || !is_video_dev {
                    return Err(invalid("must be v4l2:///dev/videoN"));
                }
                Ok(Source::V4l2(path))
            }
            "test" => match url.host_str().unwrap_or("") {
                "" | "ball" => Ok(Source::Test(TestPattern::Ball)),
                "smpte" => Ok(Source::Test(TestPattern::Smpte)),
                _ => Err(invalid(
                    "test pattern must be test://, test://ball or test://smpte",
                )),
            },
            other => Err(SourceError::Scheme(other.to_owned())),
        }
    }

    /// True for sources that pace themselves (cameras); files are paced by the clock.
    pub fn is_live(&self) -> bool {
        !matches!(self, Source::File(_))
    }

    /// True if end of stream means "start over" rather than "camera gone".
    pub fn loops(&self) -> bool {
        matches!(self, Source::File(_))
    }
}

/// Undoes percent-encoding of a URI's user or password part.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URI with username, password, query and fragment removed.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Shows the source without credentials and without the query (cameras put access tokens
/// there): safe for logs and status.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Rtsp { location, .. } => write!(f, "{}", redact(location)),
            Source::File(p) => write!(f, "file://{}", p.display()),
            Source::V4l2(p) => write!(f, "v4l2://{}", p.display()),
            Source::Test(p) => write!(f, "test://{}", p.nick()),
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<Source, SourceError> {
        Source::parse(uri, RtspTransport::Tcp)
    }

    #[test]
    fn rtsp_credentials_are_split_off_and_never_shown() {
        let s = parse("rtsp://admin:s3cr%40t+1@127.0.0.1:8554/cam?token=abc").unwrap();
        let Source::Rtsp {
            location,
            user,
            password,
            ..
        } = &s
        else {
            panic!()
        };
        // GStreamer gets the query; logs and status never show it.
        assert_eq!(location.as_str(), "rtsp://127.0.0.1:8554/cam?token=abc");
        assert_eq!(user.as_deref(), Some("admin"));
        assert_eq!(password.as_deref(), Some("s3cr@t+1"));
        assert_eq!(s.to_string(), "rtsp://127.0.0.1:8554/cam");
        for shown in [s.to_string(), format!("{s:?}")] {
            assert!(
                !shown.contains("s3cr") && !shown.contains("admin") && !shown.contains("token"),
                "{shown}"
            );
        }
    }

    #[test]
    fn bad_sources_get_clear_errors() {
        let err = parse("http://example.invalid/cam").unwrap_err();
        assert_eq!(err, SourceError::Scheme("http".into()));
        assert!(
            err.to_string()
                .contains("rtsp://, file:///, v4l2:///dev/videoN or test://")
        );
        assert!(matches!(parse("not a uri"), Err(SourceError::Syntax(_))));
        assert!(matches!(
            parse("v4l2:///etc/passwd"),
            Err(SourceError::Invalid { .. })
        ));
        assert!(matches!(
            parse("file:///no/such/file.mp4"),
            Err(SourceError::Invalid { .. })
        ));
        let err = parse("rtsp://u:pw@/x").unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
        assert_eq!(
            parse(&format!("test://{}", "a".repeat(3000))),
            Err(SourceError::TooLong)
        );
    }

    #[test]
    fn good_sources_parse() {
        assert_eq!(
            parse("v4l2:///dev/video0").unwrap(),
            Source::V4l2("/dev/video0".into())
        );
        assert_eq!(parse("test://").unwrap(), Source::Test(TestPattern::Ball));
        assert_eq!(
            parse("test://smpte").unwrap(),
            Source::Test(TestPattern::Smpte)
        );
        assert!(parse("test://nope").is_err());
        assert!(parse("file:///etc/hostname").unwrap().loops());
        assert!(parse("test://").unwrap().is_live());
    }
}
