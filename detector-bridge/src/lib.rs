//! Orion's detector bridge: newest ring frame → crop and letterbox into a shared-memory
//! tensor slot → the Python ONNX worker → boxes in frame pixels → detection messages.
//!
//! - [`bridge`]: the event loop ([`bridge::Bridge`]): frames, replies, commands, restarts.
//! - [`autofocus`]: following people with a region of interest (pure).
//! - [`letterbox`]: crop, resize (SIMD, bilinear), pad, and the inverse box mapping.
//! - [`tensors`]: the tensor buffer shared with the worker (its layout).
//! - [`worker`]: the worker process and its MsgPack protocol.
//! - [`models`]: model files by size letter.
//! - [`commands`], [`output`], [`events`]: the JSON-lines interface and the event channel.
//! - [`cli`]: the process: arguments, validation, signals.

#![forbid(unsafe_code)]

pub mod autofocus;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod events;
pub mod letterbox;
pub mod models;
pub mod output;
pub mod tensors;
pub mod worker;
