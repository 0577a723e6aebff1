//! Orion's detector bridge: newest ring frame → crop and letterbox into a shared-memory
//! tensor slot → the Python ONNX worker → boxes in frame pixels → detection messages.
//!
//! - [`bridge`]: the event loop ([`bridge::Bridge`]) and its parts: the frame pipeline, the
//!   worker link, attention (ROIs, auto-focus), results.
//! - [`autofocus`]: following people with a region of interest (pure).
//! - [`letterbox`]: crop, resize (SIMD, bilinear), pad, and the inverse box mapping.
//! - [`tensors`]: the tensor buffer shared with the worker (its layout).
//! - [`worker`]: the worker process and its MsgPack protocol.
//! - [`io`]: commands in; acks, status and detections out (oriond's socket or stdio).
//! - [`cli`]: the process: arguments, validation, signals.

#![forbid(unsafe_code)]

pub mod autofocus;
pub mod bridge;
pub mod cli;
pub mod io;
pub mod letterbox;
pub mod tensors;
pub mod worker;
