//! Length-prefixed frames over any async byte stream (a QUIC stream, a Unix socket).
//!
//! [`read_frame`] tells a clean close at a frame boundary (`Ok(None)`) from a frame cut in
//! the middle ([`FrameError::Truncated`]), and refuses an announced length over the
//! channel's limit before reading the body.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::codec::{self, DecodeError};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The frame did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's body did not arrive within the time allowed once its length came.
    #[error("a frame of {len} bytes did not arrive within {secs} s")]
    TooSlow {
        /// Announced length.
        len: usize,
        /// Seconds allowed.
        secs: u64,
    },
}

/// Reads one frame; `Ok(None)` on a clean close between frames.
pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    read_frame_within(r, max, None).await
}

/// Reads one frame as [`read_frame`], and when `body_within` is given, refuses a body
/// that does not arrive within it once the length came (a peer trickling a frame holds
/// no memory or task for long, issue 22 finding 5). The body's memory grows as its bytes
/// arrive: an announced length reserves nothing.
pub async fn read_frame_within<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    body_within: Option<std::time::Duration>,
) -> Result<Option<T>, FrameError> {
    Ok(read_frame_reserving(r, max, body_within, |_| async {})
        .await?
        .map(|(frame, ())| frame))
}

/// Reads one frame as [`read_frame_within`], first awaiting `reserve(length)` once the
/// length is known and before any of the body is read: a server bounds the bytes all its
/// peers' frames hold at once by handing out a permit there, which it keeps with the
/// frame until it is handled (issue 22 finding 5).
pub async fn read_frame_reserving<T, R, P, F, Fut>(
    r: &mut R,
    max: usize,
    body_within: Option<std::time::Duration>,
    reserve: F,
) -> Result<Option<(T, P)>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
    F: FnOnce(usize) -> Fut,
    Fut: std::future::Future<Output = P>,
{
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = codec::check_length(u32::from_be_bytes(len), max)?;
    let permit = reserve(len).await;
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY));
    let mut limited = (&mut *r).take(len as u64);
    let read = limited.read_to_end(&mut body);
    match body_within {
        Some(d) => tokio::time::timeout(d, read)
            .await
            .map_err(|_| FrameError::TooSlow {
                len,
                secs: d.as_secs(),
            })??,
        None => read.await?,
    };
    if body.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(Some((codec::decode(&body, max)?, permit)))
}

/// What a frame's body reserves before its bytes arrive.
const INITIAL_BODY: usize = 64 * 1024;

/// Writes one frame.
pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &T,
) -> std::io::Result<()> {
    w.write_all(&codec::length_prefixed(&codec::encode(frame)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Issue 22, finding 5: a peer that announces a large frame and trickles it is cut off
    /// once the time allowed runs out, and a whole frame still reads. Control: without a
    /// deadline the same read is still waiting.
    #[tokio::test]
    async fn a_trickled_frame_is_cut_off_and_a_whole_one_reads() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let frame = codec::length_prefixed(&codec::encode(&(7u32, "bonjour".to_string())));
        client.write_all(&frame).await.unwrap();
        let got: Option<(u32, String)> = read_frame(&mut server, 1 << 20).await.unwrap();
        assert_eq!(got, Some((7, "bonjour".into())));
        // 8 MiB announced, 10 bytes sent, then nothing.
        client.write_all(&(8u32 << 20).to_be_bytes()).await.unwrap();
        client.write_all(&[1; 10]).await.unwrap();
        let within = read_frame_within::<(u32, String), _>(
            &mut server,
            16 << 20,
            Some(Duration::from_millis(200)),
        )
        .await;
        assert!(
            matches!(within, Err(FrameError::TooSlow { .. })),
            "{within:?}"
        );
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&(8u32 << 20).to_be_bytes()).await.unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(400),
            read_frame::<(u32, String), _>(&mut server, 16 << 20),
        )
        .await;
        assert!(waiting.is_err(), "control: with no deadline it still waits");
        drop(client);
    }

    /// A frame cut in the middle is named as such.
    #[tokio::test]
    async fn a_cut_frame_is_truncated() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&100u32.to_be_bytes()).await.unwrap();
        client.write_all(&[0; 10]).await.unwrap();
        drop(client);
        let r = read_frame::<(u32, String), _>(&mut server, 1 << 20).await;
        assert!(matches!(r, Err(FrameError::Truncated)), "{r:?}");
    }
}
