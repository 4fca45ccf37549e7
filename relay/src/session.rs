//! One task per QUIC connection: challenge-response authentication, then a reader that
//! handles requests in order and a writer that owns the stream's send half.
//!
//! The writer drains a bounded queue of responses and the connection's [`Outbox`] of
//! coalesced pushes; a reader that outpaces its writer waits (backpressure), so one slow
//! device never grows the relay's memory. A frame that does not decode or is too large
//! gets a [`RelayFrame::Fatal`] naming the problem, and only that connection is closed.

use mes_protocol::codec::MAX_WIRE_FRAME;
use mes_protocol::framing::{read_frame, read_frame_within, write_frame, FrameError};
use mes_protocol::keys::{verify, CHALLENGE_CONTEXT};
use mes_protocol::time::UnixMillis;
use mes_protocol::wire::{ClientFrame, ErrorCode, RelayFrame, WireError};
use rand::RngCore;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};

use crate::defaults::{CONNECTION_QUEUE, HELLO_TIMEOUT};
use crate::hub::Outbox;
use crate::relay::{Caller, Relay};

/// Serves one connection until it closes.
pub async fn serve_connection(relay: Arc<Relay>, conn: quinn::Connection, fingerprint: Arc<str>) {
    let span = info_span!("conn", remote = %conn.remote_address());
    async move {
        relay.metrics.connections_total.inc();
        relay.metrics.connections.inc();
        let outcome = run(relay.clone(), &conn, &fingerprint).await;
        relay.metrics.connections.dec();
        if let Err(e) = outcome {
            debug!("connection ended: {e}");
        }
    }
    .instrument(span)
    .await
}

/// Builds the bytes a device signs: the challenge and the relay's certificate fingerprint,
/// so a signature made for one relay is worthless at another.
pub fn challenge_message(nonce: &[u8; 32], fingerprint: &str) -> Vec<u8> {
    [nonce.as_slice(), fingerprint.as_bytes()].concat()
}

async fn run(relay: Arc<Relay>, conn: &quinn::Connection, fingerprint: &str) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    write_frame(
        &mut send,
        &RelayFrame::Challenge {
            nonce,
            now: UnixMillis::now(),
        },
    )
    .await?;

    let hello = tokio::time::timeout(
        HELLO_TIMEOUT,
        read_frame::<ClientFrame, _>(&mut recv, MAX_WIRE_FRAME),
    )
    .await;
    // Boxed for the same reason as the handler: it ends before the connection idles.
    let caller = match Box::pin(authenticate(&relay, hello, &nonce, fingerprint)).await {
        Ok((device, principal)) => {
            let outbox = Arc::new(Outbox::default());
            relay.hub.join_principal(principal, device, &outbox);
            Caller {
                device,
                principal,
                outbox,
                source: Some(conn.remote_address().ip()),
                blob_reads: Default::default(),
            }
        }
        Err(e) => {
            write_frame(&mut send, &RelayFrame::Fatal(e.clone()))
                .await
                .ok();
            close(send, conn).await;
            anyhow::bail!("authentication refused: {e}");
        }
    };
    write_frame(
        &mut send,
        &RelayFrame::Welcome {
            device: caller.device,
            principal: caller.principal,
            relay_key: relay.public_key(),
        },
    )
    .await?;

    // Frames are boxed: a channel allocates its slots in blocks of 32, up front, and an
    // idle connection should not hold 32 frames' worth of memory (docs/benchmarks.md,
    // `fanout`).
    let (tx, rx) = mpsc::channel::<Box<RelayFrame>>(CONNECTION_QUEUE);
    let writer = tokio::spawn(write_loop(send, rx, caller.outbox.clone(), conn.clone()));
    let outcome = read_loop(&relay, &caller, &mut recv, &tx).await;
    if let Err(e) = &outcome {
        tx.send(Box::new(RelayFrame::Fatal(e.clone()))).await.ok();
    }
    drop(tx);
    if let Ok(send) = writer.await {
        close(send, conn).await;
    }
    outcome.map_err(Into::into)
}

async fn authenticate(
    relay: &Relay,
    hello: Result<Result<Option<ClientFrame>, FrameError>, tokio::time::error::Elapsed>,
    nonce: &[u8; 32],
    fingerprint: &str,
) -> Result<(mes_protocol::ids::DeviceId, mes_protocol::ids::PrincipalId), WireError> {
    let frame = match hello {
        Err(_) => {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                "no hello before the timeout",
            ))
        }
        Ok(Err(e)) => return Err(frame_error(&e)),
        Ok(Ok(None)) => {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                "closed before hello",
            ))
        }
        Ok(Ok(Some(f))) => f,
    };
    let ClientFrame::Hello {
        cert,
        signature,
        vouch,
    } = frame
    else {
        return Err(WireError::new(
            ErrorCode::Unauthenticated,
            "the first frame must be Hello",
        ));
    };
    cert.verify()
        .map_err(|e| WireError::new(ErrorCode::Unauthenticated, e.to_string()))?;
    verify(
        &cert.body.device.0,
        CHALLENGE_CONTEXT,
        &challenge_message(nonce, fingerprint),
        &signature,
        "challenge",
    )
    .map_err(|e| WireError::new(ErrorCode::Unauthenticated, e.to_string()))?;
    relay.admit(&cert, vouch.as_ref()).await?;
    Ok((cert.body.device, cert.body.principal))
}

fn frame_error(e: &FrameError) -> WireError {
    match e {
        FrameError::Decode(mes_protocol::codec::DecodeError::TooLarge { .. }) => {
            WireError::new(ErrorCode::TooLarge, e.to_string())
        }
        _ => WireError::new(ErrorCode::BadFrame, e.to_string()),
    }
}

/// What a device revoked while connected is told before its connection is closed.
fn revoked() -> WireError {
    WireError::new(
        ErrorCode::Revoked,
        "this device was revoked by its person; it can no longer connect",
    )
}

async fn read_loop(
    relay: &Relay,
    caller: &Caller,
    recv: &mut quinn::RecvStream,
    tx: &mpsc::Sender<Box<RelayFrame>>,
) -> Result<(), WireError> {
    loop {
        let frame = read_frame_within::<ClientFrame, _>(
            recv,
            MAX_WIRE_FRAME,
            Some(crate::defaults::FRAME_BODY_TIMEOUT),
        )
        .await;
        // Whatever arrives after a revocation is refused (the writer closes the
        // connection as soon as it hears of it).
        if caller.outbox.is_revoked() {
            return Err(revoked());
        }
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(FrameError::Io(_)) => return Ok(()),
            Err(e) => return Err(frame_error(&e)),
        };
        let reply = match frame {
            ClientFrame::Ping { nonce } => RelayFrame::Pong { nonce },
            // Boxed: the handler's future is large (a state for every request kind), and
            // inline it would live in every connection's task, idle or not.
            ClientFrame::Request { id, body } => RelayFrame::Response {
                id,
                result: Box::pin(relay.handle(caller, body)).await,
            },
            ClientFrame::Hello { .. } => {
                return Err(WireError::new(ErrorCode::BadFrame, "Hello sent twice"))
            }
        };
        if tx.send(Box::new(reply)).await.is_err() {
            return Ok(());
        }
    }
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<Box<RelayFrame>>,
    outbox: Arc<Outbox>,
    conn: quinn::Connection,
) -> quinn::SendStream {
    loop {
        tokio::select! {
            biased;
            f = rx.recv() => match f {
                Some(f) => {
                    if write_frame(&mut send, &f).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = outbox.notify.notified() => {
                if outbox.is_revoked() {
                    // A device revoked while connected is cut at once: told why, then
                    // closed (its reader then ends too), and hears nothing more.
                    let _ = write_frame(&mut send, &RelayFrame::Fatal(revoked())).await;
                    conn.close(1u32.into(), b"revoked");
                    break;
                }
                for p in outbox.drain() {
                    if write_frame(&mut send, &RelayFrame::Push(p)).await.is_err() {
                        return send;
                    }
                }
            }
        }
    }
    send
}

async fn close(mut send: quinn::SendStream, conn: &quinn::Connection) {
    send.finish().ok();
    // Give the peer a moment to read the last frame before the connection goes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), send.stopped()).await;
    conn.close(0u32.into(), b"bye");
}
