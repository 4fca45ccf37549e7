//! `mesd`: the per-device daemon. It holds an encrypted replica of the person's spaces in
//! sled, serves a local API on a Unix socket, and syncs with the relay over QUIC.
//!
//! Layout (docs/architecture.md, "Where things are"): [`replica`] (the sealed store,
//! keyring, pure volume replicas, spaces, generations), [`sync`] (the sans-IO core
//! `sync::step`, the QUIC client, the loop), [`devices`] (identity, unlocking, pairing,
//! recovery, enrolment), [`access`] (consent, minors, emergency, holds, history,
//! choices), [`record`] (documents, measurements, threads, notifications, the search
//! index), [`export`], [`daemon`] (operations), [`blobs`], [`api_server`], and [`run`]
//! which wires them.

pub mod access;
pub mod api_server;
pub mod blobs;
pub mod catalogue;
pub mod daemon;
pub mod devices;
pub mod export;
pub mod fuzzing;
pub mod inbox_items;
pub mod opening;
pub mod partition;
pub mod record;
pub mod replica;
pub mod run;
pub mod sandbox;
pub mod sync;
