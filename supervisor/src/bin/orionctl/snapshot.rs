//! `orionctl snapshot [-o FILE]`: oriond answers `get_snapshot` with its ack and then the
//! image; it is saved 0600 (a picture of a care room is not for every local user).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use orion_protocol::Action;
use orion_protocol::message::{self, Frame, Message};
use orion_protocol::snapshot::{ImageFormat, SnapshotReport, SnapshotRequest};
use orion_protocol::wire;

use crate::{Client, exit_code};

impl Client {
    pub(crate) fn snapshot(&mut self, output: Option<&Path>) -> Result<u8> {
        let format = output.map_or(Ok(ImageFormat::Png), format_of)?;
        let action = Action::GetSnapshot(SnapshotRequest {
            format,
            quality: None,
        });
        let (ack, mut stream) = self.exchange(&action)?;
        let data = match ack.clone().into_result() {
            Ok(data) => data,
            Err(e) if self.json => {
                println!("{}", serde_json::to_string(&ack)?);
                return Ok(exit_code(e.kind));
            }
            Err(e) => {
                eprintln!("snapshot: ERROR {e}");
                return Ok(exit_code(e.kind));
            }
        };
        let report: SnapshotReport = serde_json::from_value(data)
            .context("oriond's snapshot report is not one this orionctl reads")?;
        let image = read_image(&mut stream)?;
        let path = output.map_or_else(
            || PathBuf::from(format!("orion-snapshot-{}.png", report.frame_seq)),
            Path::to_path_buf,
        );
        save(&path, &image)?;
        if self.json {
            let saved = Saved {
                report: &report,
                file: &path,
            };
            println!("{}", serde_json::to_string(&saved)?);
        } else {
            println!("snapshot: saved {} ({})", path.display(), report.describe());
        }
        Ok(0)
    }
}

/// PNG unless the name ends in .jpg or .jpeg.
fn format_of(path: &Path) -> Result<ImageFormat> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "png" => Ok(ImageFormat::Png),
        Some(e) if e == "jpg" || e == "jpeg" => Ok(ImageFormat::Jpeg),
        _ => bail!(
            "snapshot -o {}: the name must end in .png, .jpg or .jpeg",
            path.display()
        ),
    }
}

/// The image oriond sends right after the ack.
fn read_image(stream: &mut UnixStream) -> Result<Vec<u8>> {
    loop {
        let body = wire::read_message_up_to(stream, wire::MAX_FROM_ORIOND)?
            .ok_or_else(|| anyhow!("oriond closed the connection before sending the image"))?;
        if let Ok(Frame::Message(m)) = message::decode(&body)
            && let Message::Snapshot { image_base64, .. } = *m
        {
            return base64::engine::general_purpose::STANDARD
                .decode(image_base64)
                .context("the image from oriond is not base64");
        }
    }
}

fn save(path: &Path, image: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(image)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `orionctl --json snapshot`'s line: the report and the file it was saved to.
#[derive(serde::Serialize)]
struct Saved<'a> {
    #[serde(flatten)]
    report: &'a SnapshotReport,
    file: &'a Path,
}
