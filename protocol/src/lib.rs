//! # mes-protocol
//!
//! Everything that crosses a process boundary in Mon espace santé local-first, and
//! nothing that does IO:
//!
//! - [`ids`]: typed identifiers (spaces, volumes, principals, devices, blobs, sequence numbers);
//! - [`codec`]: the versioned compact binary codec (postcard) with explicit size limits;
//! - [`keys`]: Ed25519 signing keys, X25519 (age) recipients, device certificates;
//! - [`seal`]: change bundles sealed with XChaCha20-Poly1305 and signed by their author;
//! - [`envelope`]: epoch keys wrapped to members with age;
//! - [`membership`]: owner-signed membership records and roles;
//! - [`blob`]: encrypted, chunked, content-addressed document files;
//! - [`pairing`]: the SPAKE2 exchange that adds a device to a person (sans-IO);
//! - [`principal`], [`habilitation`], [`history`]: professionals and the relay's directory,
//!   the habilitation matrix as data, the relay-signed access history (docs/threat-model.md);
//! - [`wire`]: frames between a daemon and the relay (over QUIC, ALPN [`ALPN`]);
//! - [`api`]: frames between `mes` and the daemon (over a Unix socket);
//! - [`catalogue`]: the hub-signed catalogue of approved services (F6);
//! - [`codes`], [`prevention`], [`emergency`]: codes and policy as data (document
//!   categories, vaccine calendar, screenings, emergency numbers), from `protocol/data/`;
//! - [`record`], [`documents`], [`measurements`], [`agenda`], [`messages`], [`care`]: the
//!   health record's types (docs/health-record.md).
//!
//! ```
//! use mes_protocol::{codec, wire::ClientFrame};
//! let frame = ClientFrame::Ping { nonce: 7 };
//! let bytes = codec::encode(&frame);
//! let back: ClientFrame = codec::decode(&bytes, codec::MAX_WIRE_FRAME).unwrap();
//! assert_eq!(back, frame);
//! ```
#![deny(missing_docs)]

pub mod agenda;
pub mod api;
pub mod authority;
pub mod blob;
pub mod care;
pub mod catalogue;
pub mod choices;
pub mod close_later;
pub mod codec;
pub mod codes;
pub mod consent;
pub mod documents;
pub mod emergency;
pub mod enrol;
pub mod envelope;
pub mod escrow;
pub mod framing;
pub mod habilitation;
pub mod history;
pub mod ids;
pub mod inbox;
pub mod keys;
pub mod measurements;
pub mod membership;
pub mod messages;
pub mod nir;
pub mod pairing;
pub mod prevention;
pub mod principal;
pub mod record;
pub mod recovery;
pub mod seal;
pub mod time;
pub mod watchdog;
pub mod wire;

/// Version of the wire and API protocols; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u8 = 9;

/// QUIC ALPN identifier: names the protocol and its version, so a relay and a daemon of
/// different versions fail the TLS handshake with a clear reason instead of garbling frames.
pub const ALPN: &[u8] = b"mes-sync/9";
