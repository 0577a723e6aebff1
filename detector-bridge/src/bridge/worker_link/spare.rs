//! The spare worker's states: a second worker with the current model loaded, waiting to
//! take over when the serving one dies (see the module above for when it starts).

use std::time::Instant;

use orion_config::models::ModelFiles;

/// A worker with the current model loaded, waiting to take over.
pub(super) struct Spare<W> {
    pub(super) worker: W,
    pub(super) generation: u64,
    pub(super) model: ModelFiles,
    pub(super) started: Instant,
    /// Raised to [`SPARE_RAISED_NICE`](super::SPARE_RAISED_NICE) because its start took long.
    pub(super) raised: bool,
}

pub(super) enum SpareState<W> {
    /// None runs; the next may start at `due` (set when one is first wanted).
    None { due: Option<Instant> },
    /// Started, loading the current model.
    Starting(Spare<W>),
    /// Loaded with these input sizes: it takes over a worker death at once.
    Ready { spare: Spare<W>, sizes: Vec<u32> },
    /// It loaded the swap's model (these input sizes, in this time): it replaces the
    /// worker as soon as the worker has nothing in flight.
    Loaded {
        spare: Spare<W>,
        sizes: Vec<u32>,
        load_ms: f64,
    },
}

impl<W> SpareState<W> {
    pub(super) fn spare(&self) -> Option<&Spare<W>> {
        match self {
            SpareState::None { .. } => None,
            SpareState::Starting(spare)
            | SpareState::Ready { spare, .. }
            | SpareState::Loaded { spare, .. } => Some(spare),
        }
    }

    pub(super) fn spare_mut(&mut self) -> Option<&mut Spare<W>> {
        match self {
            SpareState::None { .. } => None,
            SpareState::Starting(spare)
            | SpareState::Ready { spare, .. }
            | SpareState::Loaded { spare, .. } => Some(spare),
        }
    }
}
