//! The frame pipeline: the newest ring frame cropped and letterboxed into a free tensor
//! slot, slots handed to the worker, results matched to their frames. One slot is prepared
//! while the worker runs the other and handed over at once, so the worker finds it waiting
//! when it finishes the current frame; which frame gets inferred is the same as if it were
//! sent later: a slot is filled with the newest frame when it becomes free.

use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use anyhow::Result;
use orion_protocol::{NormRect, RoiSource};
use orion_ring::{FrameMeta, Read, RingReader, ShmSource};

use crate::letterbox::{Letterbox, PixelRect, Preparer};
use crate::tensors::{SLOTS, TensorBuffer};
use crate::worker::{Request, Worker};

/// A frame on its way through a tensor slot.
pub struct Job {
    pub id: u64,
    pub meta: FrameMeta,
    pub lb: Letterbox,
    pub region: NormRect,
    pub roi_source: RoiSource,
    pub started: Instant,
    pub prep_ms: f64,
    /// When the worker started on it (sent, or the job before it finished).
    pub sent: Option<Instant>,
}

enum Slot {
    Free,
    Prepared(Job),
    InFlight(Job),
}

/// What a prepare attempt gave.
pub enum Prepared {
    /// A slot holds a new job.
    Job(RoiSource),
    /// Nothing new in the ring (or no free slot).
    Nothing,
    /// The read raced the writer: dropped, counted.
    Torn,
}

pub struct Pipeline {
    reader: RingReader,
    /// The newest frame, copied out of the ring (reused).
    frame: Vec<u8>,
    tensors: TensorBuffer,
    preparer: Preparer,
    slots: [Slot; SLOTS],
    taken_seq: u64,
    next_id: u64,
    /// Asks the frame watcher for one wake-up when a frame newer than the given one exists.
    arm: Sender<u64>,
    armed: bool,
}

impl Pipeline {
    /// Reads `ring` through `reader`; `on_frame` is called (on the watcher thread) when a
    /// frame the pipeline asked to wait for is published.
    pub fn new(
        ring: ShmSource,
        reader: RingReader,
        tensors: TensorBuffer,
        on_frame: impl Fn(u64) -> bool + Send + 'static,
    ) -> Result<Self> {
        Ok(Self {
            reader,
            frame: Vec::new(),
            tensors,
            preparer: Preparer::default(),
            slots: [Slot::Free, Slot::Free],
            taken_seq: 0,
            next_id: 1,
            arm: spawn_frame_watcher(ring, on_frame)?,
            armed: false,
        })
    }

    pub fn tensors(&self) -> &TensorBuffer {
        &self.tensors
    }

    /// The watcher woke the loop.
    pub fn woken(&mut self) {
        self.armed = false;
    }

    pub fn has_prepared(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Prepared(_)))
    }

    /// Fills a free slot with the newest frame cropped to `region`; with no new frame, asks
    /// to be woken for the next one.
    pub fn prepare(
        &mut self,
        region: NormRect,
        source: RoiSource,
        threshold_320: u64,
        has_320: bool,
    ) -> Prepared {
        let Some(index) = self.slots.iter().position(|s| matches!(s, Slot::Free)) else {
            return Prepared::Nothing;
        };
        if self.reader.latest_seq() <= self.taken_seq {
            if !self.armed {
                // Wake us for the next frame; until then the watcher sleeps on the ring.
                self.armed = self.arm.send(self.taken_seq).is_ok();
            }
            return Prepared::Nothing;
        }
        let started = Instant::now();
        let slot = self.tensors.slot_mut(index);
        let preparer = &mut self.preparer;
        // A private copy first (the writer may be changing the slot; a torn copy is
        // dropped before any work is spent on it), then letterboxed into the tensor.
        let read = self
            .reader
            .read_latest_into(&mut self.frame)
            .map(|read| match read {
                Read::Frame(meta) => {
                    let (w, h) = (meta.geometry.width(), meta.geometry.height());
                    let crop = PixelRect::from_norm(&region, w, h);
                    let imgsz = if has_320 && crop.area() <= threshold_320 {
                        320
                    } else {
                        640
                    };
                    let lb = Letterbox::new(crop, imgsz);
                    let prepared = preparer.prepare(&meta, &self.frame, &lb, slot);
                    Read::Frame((meta, (lb, prepared)))
                }
                Read::Torn { seq } => Read::Torn { seq },
                Read::NoFrame => Read::NoFrame,
            });
        match read {
            Ok(Read::Frame((meta, (lb, Ok(()))))) => {
                self.taken_seq = meta.seq;
                let id = self.next_id;
                self.next_id += 1;
                self.slots[index] = Slot::Prepared(Job {
                    id,
                    meta,
                    lb,
                    region,
                    roi_source: source,
                    started,
                    prep_ms: started.elapsed().as_secs_f64() * 1e3,
                    sent: None,
                });
                Prepared::Job(source)
            }
            Ok(Read::Frame((meta, (_, Err(err))))) => {
                self.taken_seq = meta.seq;
                tracing::error!(%err, seq = meta.seq, "frame cannot be prepared");
                Prepared::Nothing
            }
            Ok(Read::Torn { .. }) => Prepared::Torn,
            Ok(Read::NoFrame) => Prepared::Nothing,
            Err(err) => {
                self.taken_seq = self.reader.latest_seq();
                tracing::error!(%err, "ring read failed");
                Prepared::Nothing
            }
        }
    }

    /// Hands a prepared slot to `worker`; false if sending failed (the job is dropped).
    pub fn send_prepared(&mut self, worker: &mut Worker) -> Option<bool> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Prepared(_)))?;
        let Slot::Prepared(mut job) = std::mem::replace(&mut self.slots[index], Slot::Free) else {
            return None;
        };
        let request = Request::Infer {
            id: job.id,
            slot: index,
            imgsz: job.lb.imgsz,
            frame_seq: job.meta.seq,
        };
        if let Err(err) = worker.send(&request) {
            tracing::warn!(error = format!("{err:#}"), "cannot send to the worker");
            return Some(false);
        }
        job.sent = Some(Instant::now());
        tracing::trace!(id = job.id, seq = job.meta.seq, "infer sent");
        self.slots[index] = Slot::InFlight(job);
        Some(true)
    }

    /// The job a result answers; the job that waited behind it starts its clock now.
    pub fn take_in_flight(&mut self, id: u64) -> Option<Job> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::InFlight(j) if j.id == id))?;
        let Slot::InFlight(job) = std::mem::replace(&mut self.slots[index], Slot::Free) else {
            return None;
        };
        for slot in &mut self.slots {
            if let Slot::InFlight(next) = slot {
                next.sent = Some(Instant::now());
            }
        }
        Some(job)
    }

    /// Frames the worker has and has not answered yet.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::InFlight(_)))
            .count()
    }

    /// A job the worker has had longer than `timeout`.
    pub fn overdue(&self, timeout: Duration) -> bool {
        self.slots.iter().any(
            |s| matches!(s, Slot::InFlight(j) if j.sent.is_some_and(|t| t.elapsed() > timeout)),
        )
    }

    /// Frees every slot (the worker is gone); the jobs it had.
    pub fn abandon(&mut self) -> usize {
        let mut lost = 0;
        for slot in &mut self.slots {
            if matches!(slot, Slot::InFlight(_)) {
                lost += 1;
            }
            *slot = Slot::Free;
        }
        lost
    }

    pub fn frames_skipped(&self) -> u64 {
        self.reader.stats().skipped
    }
}

/// Wakes the loop once per request: each `u64` received means "tell me when a frame newer
/// than this one is published". Between requests it sleeps on the channel, so frames the
/// bridge has no slot for cost no wake-ups; while armed it sleeps on the ring's futex.
fn spawn_frame_watcher(
    ring: ShmSource,
    on_frame: impl Fn(u64) -> bool + Send + 'static,
) -> Result<Sender<u64>> {
    let reader = RingReader::attach(ring)?;
    let (arm, requests) = channel::<u64>();
    std::thread::Builder::new()
        .name("frames".into())
        .spawn(move || {
            while let Ok(after) = requests.recv() {
                loop {
                    if let Some(seq) = reader.wait_for_newer(after, Duration::from_secs(1)) {
                        if !on_frame(seq) {
                            return;
                        }
                        break;
                    }
                }
            }
        })?;
    Ok(arm)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use orion_ring::{
        CaptureTime, FrameGeometry, PixelFormat, RingGeometry, RingOwner, RingWriter,
    };

    #[test]
    fn the_newest_frame_goes_into_a_free_slot_once() {
        let geometry = RingGeometry::for_frames(3, 64, 48, PixelFormat::Rgb8).unwrap();
        let owner = RingOwner::create_sealed("orion-unit-pipeline", geometry).unwrap();
        let ring = owner.source().clone();
        let reader = RingReader::attach(ring.clone()).unwrap();
        let tensors = TensorBuffer::create("orion-unit-pipeline-tensors").unwrap();
        let (woken_tx, woken) = std::sync::mpsc::channel();
        let mut p = Pipeline::new(ring.clone(), reader, tensors, move |seq| {
            woken_tx.send(seq).is_ok()
        })
        .unwrap();
        // Nothing yet: it asks to be woken for a frame.
        assert!(matches!(
            p.prepare(NormRect::FULL, RoiSource::Full, 0, false),
            Prepared::Nothing
        ));
        let mut writer = RingWriter::attach(ring).unwrap();
        let frame = FrameGeometry::packed(64, 48, PixelFormat::Rgb8).unwrap();
        writer
            .write(frame, CaptureTime::now(), &[100; 64 * 48 * 3])
            .unwrap();
        assert_eq!(woken.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        p.woken();
        // The frame is taken once: a second prepare finds nothing new.
        assert!(matches!(
            p.prepare(NormRect::FULL, RoiSource::Full, 0, false),
            Prepared::Job(RoiSource::Full)
        ));
        assert!(p.has_prepared());
        assert!(matches!(
            p.prepare(NormRect::FULL, RoiSource::Full, 0, false),
            Prepared::Nothing
        ));
        // Nothing in flight: nothing overdue, nothing lost when the worker goes.
        assert!(!p.overdue(Duration::ZERO));
        assert_eq!(p.abandon(), 0);
        assert!(!p.has_prepared());
    }
}
