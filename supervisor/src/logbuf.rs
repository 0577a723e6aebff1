//! A child's recent output, bounded in bytes, with absolute offsets so `orionctl tail -f`
//! can follow it.

use std::collections::VecDeque;

pub struct LogBuffer {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Offset of the byte after the newest one.
    end: u64,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            end: 0,
        }
    }

    pub fn push_line(&mut self, line: &str) {
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            if self.bytes.len() == self.capacity {
                self.bytes.pop_front();
            }
            self.bytes.push_back(b);
        }
        self.end += line.len() as u64 + 1;
    }

    /// Up to `max` bytes starting at `from` (clamped to what is kept); without `from`, the
    /// last `max` bytes. Returns the text and the offset to continue from.
    pub fn read(&self, from: Option<u64>, max: usize) -> (String, u64) {
        let start_kept = self.end - self.bytes.len() as u64;
        let from = match from {
            Some(f) => f.clamp(start_kept, self.end),
            None => self.end.saturating_sub(max as u64).max(start_kept),
        };
        let skip = (from - start_kept) as usize;
        let take = max.min(self.bytes.len() - skip);
        let chunk: Vec<u8> = self.bytes.iter().skip(skip).take(take).copied().collect();
        (
            String::from_utf8_lossy(&chunk).into_owned(),
            from + take as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buffer_keeps_the_newest_bytes_with_offsets() {
        let mut log = LogBuffer::new(10);
        log.push_line("abc");
        assert_eq!(log.read(None, 100), ("abc\n".into(), 4));
        log.push_line("0123456789");
        // 15 bytes written, the last 10 kept.
        let (text, end) = log.read(None, 100);
        assert_eq!((text.as_str(), end), ("123456789\n", 15));
        assert_eq!(log.read(Some(13), 100), ("9\n".into(), 15));
        assert_eq!(log.read(Some(0), 3), ("123".into(), 8));
        assert_eq!(log.read(Some(15), 3), (String::new(), 15));
    }
}
