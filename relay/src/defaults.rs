//! Constants and timeouts of the relay, in one place.

use std::time::Duration;

/// Frames queued to one connection's writer before the relay answers `Busy`.
pub const CONNECTION_QUEUE: usize = 256;
/// A connection with no frame and no keep-alive for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a device has to answer the challenge.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a frame's body may take to arrive once its length came (a client trickling a
/// frame is disconnected, issue 22 finding 5).
pub const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest blob chunk accepted.
pub const MAX_BLOB_CHUNK: usize = mes_protocol::blob::CHUNK_CIPHERTEXT;
/// Largest bundle batch in one append.
pub const MAX_APPEND_BUNDLES: usize = 4096;
/// Graceful shutdown: how long connections get to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
