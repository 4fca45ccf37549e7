//! `mesd`: the per-device daemon. It holds an encrypted replica of the person's spaces in
//! sled, serves a local API on a Unix socket, and syncs with the relay over QUIC.
//!
//! Layout: [`store`] (sealed sled), [`keyring`], [`volume`] (pure replicas), [`spaces`]
//! (their storage), [`sync::step`] (sans-IO sync decisions), [`daemon`] (operations),
//! [`sync`] (async engine and its QUIC client), [`devices`] (identity, unlocking, pairing,
//! recovery, enrolment), [`access`] (consent, minors, emergency, holds, history,
//! choices), [`blobs`], [`api_server`], and [`run`] which wires them.

pub mod access;
pub mod api_client;
pub mod api_server;
pub mod blobs;
pub mod catalogue;
pub mod daemon;
pub mod devices;
pub mod doc_index;
pub mod documents;
pub mod export;
pub mod fuzzing;
pub mod generation;
pub mod inbox_items;
pub mod keyring;
pub mod measurements;
pub mod notifications;
pub mod opening;
pub mod partition;
pub mod record;
pub mod run;
pub mod sandbox;
pub mod spaces;
pub mod store;
pub mod sync;
pub mod threads;
pub mod volume;
