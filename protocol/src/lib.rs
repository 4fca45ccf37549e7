//! # mes-protocol
//!
//! Everything that crosses a process boundary in Mon espace santé local-first, and
//! nothing that does IO:
//!
//! - [`ids`]: typed identifiers (spaces, volumes, principals, devices, blobs, sequence numbers);
//!   [`time`]: Unix milliseconds, the clock as an input, Europe/Paris;
//! - [`wire`]: frames between a daemon and the relay (over QUIC, ALPN [`ALPN`]); its
//!   [`wire::api`] frames between `mes` and the daemon (over a Unix socket), the versioned
//!   [`wire::codec`] with explicit size limits, and [`wire::framing`];
//! - [`crypto`]: Ed25519 and X25519 (age) keys and device certificates, change bundles
//!   sealed with XChaCha20-Poly1305, key envelopes, encrypted chunked files, recovery
//!   kits, the SPAKE2 pairing exchange;
//! - [`access`]: owner-signed membership and roles, the habilitation matrix as data,
//!   consents, the person's choices, authority over minors, emergency escrow, the
//!   relay-signed access history (docs/threat-model.md);
//! - [`record`]: the health record's types (docs/health-record.md): profile, documents,
//!   measurements, agenda, messages, care, prevention, inbox items, emergency numbers, and
//!   the codes of the record, as data from `protocol/data/`;
//! - [`enrolment`]: what a person asks of the hub (F1), the NIR, professionals and the
//!   directory, the hub-signed catalogue of approved services (F6);
//! - [`watchdog`], [`close_later`]: the store watchdog's core and closing a store off
//!   the caller's thread.
//!
//! ```
//! use mes_protocol::wire::{codec, ClientFrame};
//! let frame = ClientFrame::Ping { nonce: 7 };
//! let bytes = codec::encode(&frame);
//! let back: ClientFrame = codec::decode(&bytes, codec::MAX_WIRE_FRAME).unwrap();
//! assert_eq!(back, frame);
//! ```
#![deny(missing_docs)]

pub mod access;
pub mod close_later;
pub mod crypto;
pub mod enrolment;
pub mod fuzzing;
pub mod ids;
pub mod invalid;
pub mod record;
pub mod store_error;
pub mod time;
pub mod watchdog;
pub mod wire;

/// Version of the wire and API protocols; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u8 = 10;

/// QUIC ALPN identifier: names the protocol and its version, so a relay and a daemon of
/// different versions fail the TLS handshake with a clear reason instead of garbling frames.
pub const ALPN: &[u8] = b"mes-sync/10";
