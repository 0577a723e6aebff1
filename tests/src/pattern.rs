//! Self-checking payloads: a header naming the frame, a body, a checksum over both.
//!
//! Layout (little-endian u64 words): `[seq, epoch, body..., check]`. The body is one of
//! [`POOL`] pseudo-random blocks chosen by `seq % POOL`; `check` mixes the body's checksum
//! with `seq` and `epoch`. A reader recomputes everything from the bytes it got, so a
//! payload spliced from two frames fails. Bodies are precomputed so that a writer spends
//! its time in the ring write itself — that is where the SIGKILL tests want it to die.

/// Number of distinct bodies; prime, so frames one ring lap apart never share a body.
pub const POOL: u64 = 13;
const WORD: usize = 8;
/// Smallest payload that can carry a pattern (seq, epoch, one body word, check).
pub const MIN_LEN: usize = 4 * WORD;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn word_at(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; WORD];
    w.copy_from_slice(&bytes[i * WORD..(i + 1) * WORD]);
    u64::from_le_bytes(w)
}

/// Order-sensitive checksum of the body words.
fn body_checksum(body: &[u8]) -> u64 {
    body.chunks_exact(WORD).fold(0xCBF2_9CE4_8422_2325, |h, c| {
        let mut w = [0u8; WORD];
        w.copy_from_slice(c);
        (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x0000_0100_0000_01B3)
            .rotate_left(29)
    })
}

fn check_word(body_sum: u64, seq: u64, epoch: u64) -> u64 {
    splitmix(body_sum ^ splitmix(seq ^ splitmix(epoch)))
}

/// Precomputed bodies for payloads of one length.
pub struct Patterns {
    len: usize,
    frames: Vec<(Vec<u8>, u64)>,
}

impl Patterns {
    /// Bodies for payloads of `len` bytes (a multiple of 8, at least [`MIN_LEN`]).
    pub fn new(len: usize) -> Self {
        assert!(
            len >= MIN_LEN && len.is_multiple_of(WORD),
            "pattern length {len}"
        );
        let frames = (0..POOL)
            .map(|k| {
                let mut buf = vec![0u8; len];
                for (i, c) in buf.chunks_exact_mut(WORD).enumerate() {
                    c.copy_from_slice(&splitmix(k << 40 ^ i as u64).to_le_bytes());
                }
                let sum = body_checksum(&buf[2 * WORD..len - WORD]);
                (buf, sum)
            })
            .collect();
        Self { len, frames }
    }

    /// The payload of frame `seq` of writer `epoch`: O(1) work on a precomputed body.
    pub fn frame(&mut self, seq: u64, epoch: u64) -> &[u8] {
        let (buf, sum) = &mut self.frames[(seq % POOL) as usize];
        let check = check_word(*sum, seq, epoch);
        buf[..WORD].copy_from_slice(&seq.to_le_bytes());
        buf[WORD..2 * WORD].copy_from_slice(&epoch.to_le_bytes());
        buf[self.len - WORD..].copy_from_slice(&check.to_le_bytes());
        buf
    }
}

/// What a payload claims to be, if its check word holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub seq: u64,
    pub epoch: u64,
}

/// Checks a payload made by [`Patterns::frame`]; `None` if it is damaged or spliced.
pub fn verify(buf: &[u8]) -> Option<Verified> {
    if buf.len() < MIN_LEN || !buf.len().is_multiple_of(WORD) {
        return None;
    }
    let n = buf.len() / WORD;
    let (seq, epoch, stored) = (word_at(buf, 0), word_at(buf, 1), word_at(buf, n - 1));
    let sum = body_checksum(&buf[2 * WORD..buf.len() - WORD]);
    (check_word(sum, seq, epoch) == stored).then_some(Verified { seq, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_verify_and_spliced_ones_do_not() {
        let mut p = Patterns::new(4096);
        let a = p.frame(7, 1).to_vec();
        let b = p.frame(8, 1).to_vec();
        assert_eq!(verify(&a), Some(Verified { seq: 7, epoch: 1 }));
        assert_eq!(verify(&b), Some(Verified { seq: 8, epoch: 1 }));
        let mut spliced = a.clone();
        spliced[2048..].copy_from_slice(&b[2048..]);
        assert_eq!(verify(&spliced), None);
        // Same seq from a restarted writer (new epoch): the header differs.
        let c = p.frame(7, 2).to_vec();
        let mut mixed = c.clone();
        mixed[..16].copy_from_slice(&a[..16]);
        assert_eq!(verify(&mixed), None);
        let mut flipped = a.clone();
        flipped[4000] ^= 1;
        assert_eq!(verify(&flipped), None);
        // Frames one lap of a 2- or 3-slot ring apart have different bodies.
        let ten = p.frame(10, 1)[16..64].to_vec();
        assert_ne!(ten, p.frame(12, 1)[16..64]);
        assert_ne!(ten, p.frame(13, 1)[16..64]);
    }
}
