//! A stand-in goes first: while it only waits to replace another process, it asks the
//! kernel's OOM killer to take it before anything serving (`oom_score_adj` 1000), and
//! gives that back when it takes over. Raising the score needs no privilege; lowering it
//! back is allowed down to where it was (the kernel's `oom_score_adj_min`).

const PATH: &str = "/proc/self/oom_score_adj";

/// The most the score can be raised.
pub const FIRST_TO_GO: i32 = 1000;

/// Marks this process first to go; returns the score it had (None: not changed).
pub fn first_to_go() -> Option<i32> {
    let before: i32 = std::fs::read_to_string(PATH).ok()?.trim().parse().ok()?;
    std::fs::write(PATH, FIRST_TO_GO.to_string()).ok()?;
    Some(before)
}

/// Back to the score it had before [`first_to_go`].
pub fn restore(before: i32) -> std::io::Result<()> {
    std::fs::write(PATH, before.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn score() -> i32 {
        std::fs::read_to_string(PATH)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn raised_and_given_back() {
        // The score is the test process's: raised, then restored as it was.
        let before = first_to_go().unwrap();
        assert_eq!(score(), FIRST_TO_GO);
        restore(before).unwrap();
        assert_eq!(score(), before);
    }
}
