//! `mesd`: the per-device daemon. It holds an encrypted replica of the person's spaces in
//! sled, serves a local API on a Unix socket, and syncs with the relay over QUIC.
//!
//! Layout (docs/architecture.md, "Where things are"): [`replica`] (the sealed store,
//! keyring, pure volume replicas, spaces, generations, files, measurement partitions),
//! [`sync`] (the sans-IO core `sync::step`, sealing, opening, the upload and catch-up
//! pipeline, the QUIC client, the loop), [`devices`] (identity, unlocking, pairing,
//! listing and revoking, recovery, enrolment), [`access`] (membership and keys, consent,
//! minors, emergency, holds, history, choices, services), [`record`] (notes, typed record
//! documents, documents, measurements, threads, inbox items, notifications, the search
//! index), [`export`], [`daemon`] (the handle over them), [`api_server`], and [`run`]
//! which wires them.

pub mod access;
pub mod api_server;
pub mod daemon;
pub mod devices;
pub mod export;
pub mod fuzzing;
pub mod record;
pub mod replica;
pub mod run;
pub mod sandbox;
pub mod sync;
