//! # mes-relay
//!
//! The relay that plays the national hub. It stores, per volume, an append-only log of
//! sealed change bundles with dense sequence numbers, snapshots, key envelopes, blobs and
//! membership records; it authenticates devices, enforces membership, and pushes volume
//! heads to connected members. It never holds a key that opens health data.
//!
//! - [`server`]: QUIC endpoint, accept loop, graceful shutdown;
//! - [`session`]: one task per connection (authentication, reader, writer);
//! - [`relay`]: shared state and the request handler;
//! - [`access`]: access decisions (pure);
//! - [`directory`]: the professional directory import (CSV, checked whole);
//! - [`catalogue`]: the catalogue of approved services import (TOML, checked whole; F6);
//!   the relay lists them, signs them and refuses suspended ones everything;
//! - [`access_history`]: the relay-signed, hash-chained access history (F8.1);
//! - [`enrolment`], [`enrolment_store`], [`enrolment_service`]: opt-out enrolment (F1):
//!   the state machine, its tables, and the operations over them;
//! - [`notification`], [`outbox`]: messages from templates, delivered to a maildir, SMTP
//!   or print files;
//! - [`backup`]: backup and restore of a stopped hub;
//! - [`escrow`]: the emergency escrow identities (F7.5);
//! - [`group_commit`]: concurrent writers sharing one flush;
//! - [`signing`]: the relay's own signing key;
//! - [`hub`]: coalesced pushes and pairing rendezvous;
//! - [`metrics`]: Prometheus counters and the local `/health` and `/metrics` port;
//! - [`store`]: the storage trait and the sled backend;
//! - [`tls`]: the certificate and its fingerprint.

pub mod access;
pub mod access_history;
pub mod backup;
pub mod byte_budget;
pub mod catalogue;
mod catalogue_service;
pub mod checked_csv;
pub mod config;
pub mod defaults;
pub mod directory;
pub mod enrolment;
pub mod enrolment_holds;
pub mod enrolment_pages;
pub mod enrolment_pg;
pub mod enrolment_service;
pub mod enrolment_sled;
pub mod enrolment_store;
pub mod escrow;
pub mod file_quota;
pub mod group_commit;
pub mod hub;
pub mod metrics;
pub mod notification;
pub mod outbox;
pub mod peer_caps;
pub mod population;
pub mod private_files;
pub mod provisional_code;
pub mod pruned_map;
pub mod read_rate;
pub mod relay;
pub mod server;
pub mod session;
pub mod signing;
pub mod store;
pub mod tls;

pub use catalogue_service::CatalogueReport;
pub use server::{start, RelayConfig, RelayReady, RunningRelay};
