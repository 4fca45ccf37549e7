//! # mes-client
//!
//! A client of the daemon's local API: one request at a time over the Unix socket, and a
//! stream of events after `subscribe`; and reading a secret from a file descriptor, as
//! `mes` and `mesd` take passphrases and codes; and the log options the three binaries
//! share ([`logging`]). Small on purpose: `mes` links this, not
//! the daemon or the relay (those only for `mes demo`, behind the `demo` feature).

pub mod logging;
pub mod paths;
pub mod service_manager;
pub mod shell;

use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiCall, ApiError, ApiEvent, ApiFrame, ApiReply, ApiRequest};
use mes_protocol::wire::codec::MAX_API_FRAME;
use mes_protocol::wire::framing::FrameError;
use mes_protocol::wire::framing::{read_frame, write_frame};
use std::path::Path;
use tokio::net::UnixStream;

/// Why a call to the local API failed (the daemon's own refusals are the inner
/// `ApiError` of a reply).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached.
    #[error("cannot reach mesd at {socket} (is it running?) / mesd injoignable: {source}")]
    Unreachable {
        /// The socket's path.
        socket: String,
        /// Why.
        source: std::io::Error,
    },
    /// A frame could not be written or read.
    #[error("local API: {0}")]
    Frame(#[from] FrameError),
    /// The daemon closed the connection.
    #[error("mesd closed the connection / mesd a fermé la connexion")]
    Closed,
    /// A secret could not be read from its file descriptor.
    #[error("{0}")]
    Secret(String),
}

/// The first line of what file descriptor `fd` holds (a passphrase, a password, a code),
/// never shown in the process list; an empty or non-UTF-8 one is refused by name.
pub fn secret_from_fd(fd: u32) -> Result<zeroize::Zeroizing<String>, ClientError> {
    let raw = std::fs::read(format!("/proc/self/fd/{fd}"))
        .map_err(|e| ClientError::Secret(format!("reading file descriptor {fd}: {e}")))?;
    let text = zeroize::Zeroizing::new(
        String::from_utf8(raw)
            .map_err(|_| ClientError::Secret(format!("file descriptor {fd} is not UTF-8")))?,
    );
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(ClientError::Secret(format!(
            "file descriptor {fd} gave an empty secret"
        )));
    }
    Ok(zeroize::Zeroizing::new(line))
}

/// A connection to `mesd`.
pub struct ApiClient {
    stream: UnixStream,
    next_id: u64,
    /// Events received while waiting for responses.
    pub pending_events: Vec<ApiEvent>,
}

impl ApiClient {
    /// Connects to the daemon's socket.
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        let stream =
            UnixStream::connect(socket)
                .await
                .map_err(|source| ClientError::Unreachable {
                    socket: socket.display().to_string(),
                    source,
                })?;
        Ok(ApiClient {
            stream,
            next_id: 1,
            pending_events: Vec::new(),
        })
    }

    /// Sends one call and waits for its answer.
    pub async fn call(
        &mut self,
        space: Option<SpaceId>,
        call: ApiCall,
    ) -> Result<Result<ApiReply, ApiError>, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(&mut self.stream, &ApiRequest { id, space, call })
            .await
            .map_err(FrameError::Io)?;
        loop {
            match read_frame::<ApiFrame, _>(&mut self.stream, MAX_API_FRAME).await? {
                Some(ApiFrame::Response { id: got, result }) if got == id => return Ok(result),
                Some(ApiFrame::Response { result: Err(e), .. }) => return Ok(Err(e)),
                Some(ApiFrame::Response { .. }) => continue,
                Some(ApiFrame::Event(e)) => self.pending_events.push(e),
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// The next event (after a `Subscribe` call).
    pub async fn next_event(&mut self) -> Result<ApiEvent, ClientError> {
        if !self.pending_events.is_empty() {
            return Ok(self.pending_events.remove(0));
        }
        loop {
            match read_frame::<ApiFrame, _>(&mut self.stream, MAX_API_FRAME).await? {
                Some(ApiFrame::Event(e)) => return Ok(e),
                Some(_) => continue,
                None => return Err(ClientError::Closed),
            }
        }
    }
}
