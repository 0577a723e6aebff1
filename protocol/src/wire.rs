//! Framing on oriond's Unix socket: every message is a 4-byte big-endian length followed by
//! that many bytes of UTF-8 JSON (one object). Messages longer than [`MAX_MESSAGE`] are
//! refused before they are read, so a peer cannot make another allocate without bound.

use std::io::{self, Read, Write};

/// Largest message body either side accepts.
pub const MAX_MESSAGE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {len} bytes is over the {max}-byte limit", max = MAX_MESSAGE)]
    TooLarge { len: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes one framed message.
pub fn write_message(w: &mut impl Write, body: &[u8]) -> Result<(), WireError> {
    if body.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge { len: body.len() });
    }
    // Header and body in one write, so concurrent writers on a cloned socket cannot interleave
    // inside a message as long as each holds its own lock.
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one framed message; `None` at a clean end of stream.
pub fn read_message(r: &mut impl Read) -> Result<Option<Vec<u8>>, WireError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLarge { len });
    }
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

    use super::{MAX_MESSAGE, WireError};

    /// Reads one framed message; `None` at the end of the stream.
    pub async fn read_message(
        r: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<Vec<u8>>, WireError> {
        let len = match r.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if len > MAX_MESSAGE {
            return Err(WireError::TooLarge { len });
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        Ok(Some(body))
    }

    /// Writes one framed message (header and body in one write).
    pub async fn write_message(
        w: &mut (impl AsyncWrite + Unpin),
        body: &[u8],
    ) -> Result<(), WireError> {
        if body.len() > MAX_MESSAGE {
            return Err(WireError::TooLarge { len: body.len() });
        }
        let mut buf = Vec::with_capacity(4 + body.len());
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(body);
        w.write_all(&buf).await?;
        Ok(())
    }
}
