//! A client of the daemon's local API: one request at a time over the Unix socket, and a
//! stream of events after `subscribe`.

use anyhow::Context;
use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiCall, ApiError, ApiEvent, ApiFrame, ApiReply, ApiRequest};
use mes_protocol::wire::codec::MAX_API_FRAME;
use mes_protocol::wire::framing::{read_frame, write_frame};
use std::path::Path;
use tokio::net::UnixStream;

/// A connection to `mesd`.
pub struct ApiClient {
    stream: UnixStream,
    next_id: u64,
    /// Events received while waiting for responses.
    pub pending_events: Vec<ApiEvent>,
}

impl ApiClient {
    /// Connects to the daemon's socket.
    pub async fn connect(socket: &Path) -> anyhow::Result<Self> {
        let stream = UnixStream::connect(socket).await.with_context(|| {
            format!(
                "cannot reach mesd at {} (is it running?) / mesd injoignable",
                socket.display()
            )
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
    ) -> anyhow::Result<Result<ApiReply, ApiError>> {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(&mut self.stream, &ApiRequest { id, space, call }).await?;
        loop {
            match read_frame::<ApiFrame, _>(&mut self.stream, MAX_API_FRAME).await? {
                Some(ApiFrame::Response { id: got, result }) if got == id => return Ok(result),
                Some(ApiFrame::Response { result: Err(e), .. }) => return Ok(Err(e)),
                Some(ApiFrame::Response { .. }) => continue,
                Some(ApiFrame::Event(e)) => self.pending_events.push(e),
                None => anyhow::bail!("mesd closed the connection"),
            }
        }
    }

    /// The next event (after a `Subscribe` call).
    pub async fn next_event(&mut self) -> anyhow::Result<ApiEvent> {
        if !self.pending_events.is_empty() {
            return Ok(self.pending_events.remove(0));
        }
        loop {
            match read_frame::<ApiFrame, _>(&mut self.stream, MAX_API_FRAME).await? {
                Some(ApiFrame::Event(e)) => return Ok(e),
                Some(_) => continue,
                None => anyhow::bail!("mesd closed the connection"),
            }
        }
    }
}
