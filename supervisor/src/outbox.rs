//! One peer's queue of messages from oriond, bounded by count and by bytes: a peer that
//! does not read (or is sent large messages faster than it reads) is let go instead of
//! growing oriond's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// The supervisor's end: queue a message, or learn that the peer is stuck.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The writer's end, in the connection's task.
pub struct Drain {
    rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// `messages` are waiting already.
    Messages,
    /// The bytes waiting plus this message would pass the limit.
    Bytes { queued: usize, max: usize },
    /// The connection is closed.
    Closed,
}

/// A queue for at most `messages` messages holding at most `max_bytes` bytes.
pub fn outbox(messages: usize, max_bytes: usize) -> (Outbox, Drain) {
    let (tx, rx) = mpsc::channel(messages);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            max_bytes,
        },
        Drain { rx, queued },
    )
}

impl Outbox {
    pub fn try_send(&self, body: Vec<u8>) -> Result<(), Full> {
        let len = body.len();
        let queued = self.queued.load(Ordering::Acquire);
        if queued + len > self.max_bytes {
            return Err(Full::Bytes {
                queued,
                max: self.max_bytes,
            });
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        self.tx.try_send(body).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => Full::Messages,
                mpsc::error::TrySendError::Closed(_) => Full::Closed,
            }
        })
    }
}

impl Drain {
    /// The next message to write; `None` once the supervisor let go.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let body = self.rx.recv().await?;
        self.queued.fetch_sub(body.len(), Ordering::AcqRel);
        Some(body)
    }

    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        let body = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(body.len(), Ordering::AcqRel);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_by_bytes() {
        let (tx, mut rx) = outbox(3, 10);
        assert_eq!(tx.try_send(vec![0; 6]), Ok(()));
        assert_eq!(
            tx.try_send(vec![0; 5]),
            Err(Full::Bytes { queued: 6, max: 10 })
        );
        assert_eq!(tx.try_send(vec![0; 4]), Ok(()));
        assert_eq!(rx.try_recv().map(|b| b.len()), Some(6));
        // Read bytes free their room.
        assert_eq!(tx.try_send(vec![0; 5]), Ok(()));
        assert_eq!(tx.try_send(vec![]), Ok(()));
        assert_eq!(tx.try_send(vec![]), Err(Full::Messages));
        drop(rx);
        assert_eq!(tx.try_send(vec![]), Err(Full::Closed));
    }
}
