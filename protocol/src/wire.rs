//! Framing on oriond's Unix socket: every message is a 4-byte big-endian length followed by
//! that many bytes of UTF-8 JSON (one object). Messages longer than [`MAX_MESSAGE`] are
//! refused before they are read, so a peer cannot make another allocate without bound.
//! Only what oriond sends may be larger (up to [`MAX_FROM_ORIOND`]: a snapshot's image), and
//! only its clients read with that limit.

use std::io::{self, Read, Write};

/// Largest message body either side accepts.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Largest message body oriond sends (a snapshot: its largest image, base64, and a little).
pub const MAX_FROM_ORIOND: usize = crate::snapshot::MAX_IMAGE / 3 * 4 + 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes one framed message.
pub fn write_message(w: &mut impl Write, body: &[u8]) -> Result<(), WireError> {
    check(body.len(), MAX_MESSAGE)?;
    // Header and body in one write, so concurrent writers on a cloned socket cannot interleave
    // inside a message as long as each holds its own lock.
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

fn check(len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(())
}

/// Reads one framed message; `None` at a clean end of stream.
pub fn read_message(r: &mut impl Read) -> Result<Option<Vec<u8>>, WireError> {
    read_message_up_to(r, MAX_MESSAGE)
}

/// Reads one framed message of at most `max` bytes ([`MAX_FROM_ORIOND`] for oriond's
/// answers); `None` at a clean end of stream.
pub fn read_message_up_to(r: &mut impl Read, max: usize) -> Result<Option<Vec<u8>>, WireError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    check(len, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_oversize_is_refused() {
        let mut buf = Vec::new();
        write_message(&mut buf, b"{\"a\":1}").unwrap();
        write_message(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_message(&mut r).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read_message(&mut r).unwrap().unwrap(), b"");
        assert!(read_message(&mut r).unwrap().is_none());
        let huge = ((MAX_MESSAGE + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_message(&mut &huge[..]),
            Err(WireError::TooLarge { .. })
        ));
        assert!(write_message(&mut Vec::new(), &vec![b' '; MAX_MESSAGE + 1]).is_err());
    }
}

/// The same framing for tokio streams (feature `tokio`), for oriond and orion-control.
#[cfg(feature = "tokio")]
pub mod nonblocking {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{MAX_MESSAGE, WireError, check};

    /// Reads one framed message; `None` at the end of the stream.
    pub async fn read_message(
        r: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<Vec<u8>>, WireError> {
        read_message_up_to(r, MAX_MESSAGE).await
    }

    /// Reads one framed message of at most `max` bytes; `None` at the end of the stream.
    pub async fn read_message_up_to(
        r: &mut (impl AsyncRead + Unpin),
        max: usize,
    ) -> Result<Option<Vec<u8>>, WireError> {
        let len = match r.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        check(len, max)?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        Ok(Some(body))
    }

    /// Writes one framed message (header and body in one write).
    pub async fn write_message(
        w: &mut (impl AsyncWrite + Unpin),
        body: &[u8],
    ) -> Result<(), WireError> {
        write_message_up_to(w, body, MAX_MESSAGE).await
    }

    /// Writes one framed message of at most `max` bytes (oriond: [`super::MAX_FROM_ORIOND`]).
    pub async fn write_message_up_to(
        w: &mut (impl AsyncWrite + Unpin),
        body: &[u8],
        max: usize,
    ) -> Result<(), WireError> {
        check(body.len(), max)?;
        let mut buf = Vec::with_capacity(4 + body.len());
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(body);
        w.write_all(&buf).await?;
        Ok(())
    }
}
