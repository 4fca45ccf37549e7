//! Constants and timeouts of the relay, in one place.

use std::time::Duration;

/// Bytes of replies queued to one connection's writer; its reader waits beyond them (a
/// reply larger than this is queued alone). Issue 22 finding 5.
pub const CONNECTION_QUEUE_BYTES: usize = 256 << 10;
/// Bytes of replies queued or being written to all connections at once.
pub const REPLY_BYTES: usize = 128 << 20;
/// Bytes of request frames being read or handled by all connections at once (a frame
/// under [`SMALL_FRAME`] takes none of it).
pub const REQUEST_BYTES: usize = 64 << 20;
/// Largest frame from a device not listed yet (a stranger, a device being paired):
/// larger ones wait until a request of it succeeded and listed it.
pub const MAX_UNLISTED_FRAME: usize = 1 << 20;
/// Requests a device on no list yet may send (per second, and at once): pairing takes
/// a few dozen at most, a stranger flooding cheap requests is paced (`mes-bench hostile`).
pub const UNLISTED_REQUEST_RATE: crate::server::read_rate::Rate = crate::server::read_rate::Rate {
    per_second: 20,
    burst: 100,
};
/// Frames under this size do not draw on the relay-wide pools.
pub const SMALL_FRAME: usize = 64 << 10;
/// A connection whose peer takes none of its bytes for this long is closed: a client
/// that stops reading is disconnected, not buffered.
pub const WRITE_STALL: Duration = Duration::from_secs(15);
/// Bytes of pushes other than heads (pairing messages, membership changes) waiting for
/// one connection; beyond them it is ended and told to reconnect.
pub const OUTBOX_BYTES: usize = 256 << 10;
/// Bytes a device may send that the relay has not read yet (QUIC flow control).
pub const RECEIVE_WINDOW: u32 = 512 << 10;
/// Bytes the relay sends a device that it has not acknowledged yet.
pub const SEND_WINDOW: usize = 512 << 10;
/// Largest pairing message forwarded (the SPAKE2 and sealed-identity messages are a few
/// KiB).
pub const MAX_PAIRING_MESSAGE: usize = 64 << 10;
/// Pairing messages one connection may send (a pairing takes a handful).
pub const MAX_PAIRING_MESSAGES_PER_CONNECTION: usize = 64;
/// Pairing rendezvous one connection may join.
pub const MAX_RENDEZVOUS_PER_CONNECTION: usize = 4;
/// Live connections one network address may hold at once, by default
/// (`serve.max_connections_per_address`).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 1024;
/// New connections one network address may open, by default
/// (`serve.new_connections_per_second` and `serve.new_connections_burst`).
pub const ARRIVAL_RATE: crate::server::read_rate::Rate = crate::server::read_rate::Rate {
    per_second: 20,
    burst: 200,
};
/// What one connection may send the relay, by default (`serve.bytes_per_second` and
/// `serve.burst_bytes`): a home uplink's pace, and a whole snapshot at once.
pub const READ_RATE: crate::server::read_rate::Rate = crate::server::read_rate::Rate {
    per_second: 4 << 20,
    burst: 16 << 20,
};
/// A connection with no frame and no keep-alive for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a device has to answer the challenge.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a frame's body may take to arrive once its length came (a client trickling a
/// frame is disconnected, issue 22 finding 5).
pub const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest blob chunk accepted.
pub const MAX_BLOB_CHUNK: usize = mes_protocol::crypto::blob::CHUNK_CIPHERTEXT;
/// Chunks of one file (1 GiB of ciphertext): an upload never committed holds at most
/// this much under one id (issue 22 finding 6).
pub const MAX_BLOB_CHUNKS: usize = 16_384;
/// Bytes of files one space may hold at the hub by default, committed or being uploaded
/// (`serve.file_bytes_per_space`; issue 22 finding 6).
pub const FILE_BYTES_PER_SPACE: u64 = 8 << 30;
/// An upload that has not grown for this long is swept (its chunks removed), at the
/// relay's periodic sweep.
pub const UNCOMMITTED_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// Spaces one principal may own (a person, their minors' spaces until handed over).
pub const MAX_SPACES_PER_PRINCIPAL: usize = 64;
/// Largest bundle batch in one append.
pub const MAX_APPEND_BUNDLES: usize = 4096;
/// Graceful shutdown: how long connections get to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
