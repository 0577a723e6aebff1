//! `orion-snapshot`: one snapshot and exit. oriond starts it with the frame ring read-only
//! at descriptor 3 and an [`Overlay`](orion_protocol::snapshot::Overlay) on stdin; it takes
//! the newest frame ([`frame`]), draws the overlay ([`draw`]), encodes it ([`encode`]) and
//! writes the report and the image to stdout. A process of its own, so that oriond stays
//! small (no image codecs in it) and a bad frame can only crash this one.

pub mod draw;
pub mod encode;
pub mod frame;

pub use draw::{Palette, draw};
