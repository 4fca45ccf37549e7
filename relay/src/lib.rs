//! # mes-relay
//!
//! The relay that plays the national hub. It stores, per volume, an append-only log of
//! sealed change bundles with dense sequence numbers, snapshots, key envelopes, blobs and
//! membership records; it authenticates devices, enforces membership, and pushes volume
//! heads to connected members. It never holds a key that opens health data.
//!
//! - [`server`]: QUIC endpoint, accept loop, graceful shutdown; its sessions, one task
//!   per connection (`server::session`), byte budgets, rates, per-address caps and TLS;
//! - [`handler`]: shared state and the request handler, one module per concern;
//! - [`access`]: access decisions (pure);
//! - [`directory`]: the professional directory import (CSV, checked whole);
//! - [`catalogue`]: the catalogue of approved services import (TOML, checked whole; F6);
//!   the relay lists them, signs them and refuses suspended ones everything;
//! - [`access_history`]: the relay-signed, hash-chained access history (F8.1);
//! - [`enrolment`]: opt-out enrolment (F1): the state machine, the population import,
//!   provisional codes, holds, its tables (`enrolment::tables`) and the operations over
//!   them (`enrolment::service`);
//! - [`outbox`]: messages from templates (`outbox::notification`), delivered to a maildir, SMTP
//!   or print files;
//! - [`backup`]: backup and restore of a stopped hub;
//! - [`escrow`]: the emergency escrow identities (F7.5);
//! - [`group_commit`]: concurrent writers sharing one flush;
//! - [`signing`]: the relay's own signing key;
//! - [`push`]: per-connection push queues (`PushQueue`), coalesced pushes and pairing rendezvous;
//! - [`metrics`]: Prometheus counters and the local `/health` and `/metrics` port;
//! - [`store`]: the storage trait and its backends.

pub mod access;
pub mod access_history;
pub mod backup;
pub mod catalogue;
pub mod checked_csv;
pub mod config;
pub mod defaults;
pub mod directory;
pub mod enrolment;
pub mod erase;
pub mod escrow;
pub mod group_commit;
pub mod handler;
pub mod metrics;
pub mod outbox;
pub mod private_files;
pub mod pruned_map;
pub mod push;
pub mod server;
pub mod signing;
pub mod store;

pub use handler::CatalogueReport;
pub use server::{start, RelayConfig, RelayReady, RunningRelay};
