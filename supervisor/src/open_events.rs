//! The care events still open when oriond stops (`events-{id}.json` in the state dir):
//! given back to the room logic at the next start, so an event open across a restart is
//! carried on — never started twice, never lost.

use std::path::Path;

use anyhow::Result;
use orion_protocol::event::CareEvent;

/// Largest file read back (a few dozen open events at most: the room, 16 zones, 8 classes).
const MAX_FILE: u64 = 64 * 1024;

/// The events saved at `path`, if any; a file that cannot be used is moved aside and
/// reported.
pub fn load(path: &Path) -> (Vec<CareEvent>, Option<String>) {
    match crate::atomic_file::read_json(path, MAX_FILE) {
        Ok(open) => (open.unwrap_or_default(), None),
        Err(e) => {
            let aside = crate::atomic_file::set_aside(path);
            let why = format!(
                "ignoring the open events saved in {} ({e:#}); moved to {}: they will not be ended",
                path.display(),
                aside.display()
            );
            (Vec::new(), Some(why))
        }
    }
}

/// Saves atomically.
pub fn save(path: &Path, open: &[CareEvent]) -> Result<()> {
    crate::atomic_file::write_atomically(path, &serde_json::to_vec(open)?)
}
