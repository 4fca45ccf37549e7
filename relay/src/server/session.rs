//! One task per QUIC connection: challenge-response authentication, then a reader that
//! handles requests in order and a writer that owns the stream's send half.
//!
//! The writer drains a queue of encoded replies and the connection's [`PushQueue`] of
//! coalesced pushes. Everything is bounded in bytes (issue 22 finding 5): a request
//! frame's body draws on the relay-wide pool before it is read, a reply on the
//! connection's queue and the relay-wide pool before it is queued, so a reader that
//! outpaces its writer waits (backpressure), and a writer whose peer takes nothing for
//! [`WRITE_STALL`] closes the connection: a client that stops reading is disconnected,
//! not buffered. A frame that does not decode or is too large gets a
//! [`RelayFrame::Fatal`] naming the problem, and only that connection is closed.

use mes_protocol::crypto::keys::{verify, CHALLENGE_CONTEXT};
use mes_protocol::wire::codec::{self, MAX_WIRE_FRAME};
use mes_protocol::wire::framing::{read_frame, read_frame_reserving, write_frame, FrameError};
use mes_protocol::wire::{ClientFrame, ErrorCode, RelayFrame, WireError};
use rand::RngCore;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};

use crate::defaults::{CONNECTION_QUEUE_BYTES, HELLO_TIMEOUT, SMALL_FRAME, WRITE_STALL};
use crate::handler::{Caller, Relay};
use crate::push::PushQueue;
use crate::server::byte_budget::{ByteBudget, Held};

/// Serves one connection until it closes.
pub async fn serve_connection(
    relay: Arc<Relay>,
    conn: quinn::Connection,
    fingerprint: Arc<str>,
    read_rate: Option<crate::server::read_rate::Rate>,
) {
    let span = info_span!("conn", remote = %conn.remote_address());
    async move {
        relay.metrics.connections_total.inc();
        relay.metrics.connections.inc();
        let outcome = run(relay.clone(), &conn, &fingerprint, read_rate).await;
        relay.metrics.connections.dec();
        if let Err(e) = outcome {
            debug!("connection ended: {e}");
        }
    }
    .instrument(span)
    .await;
}

/// Builds the bytes a device signs: the challenge and the relay's certificate fingerprint,
/// so a signature made for one relay is worthless at another.
pub fn challenge_message(nonce: &[u8; 32], fingerprint: &str) -> Vec<u8> {
    [nonce.as_slice(), fingerprint.as_bytes()].concat()
}

async fn run(
    relay: Arc<Relay>,
    conn: &quinn::Connection,
    fingerprint: &str,
    read_rate: Option<crate::server::read_rate::Rate>,
) -> Result<(), SessionEnd> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| SessionEnd::Lost(e.to_string()))?;
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    write_frame(
        &mut send,
        &RelayFrame::Challenge {
            nonce,
            now: relay.clock.now(),
        },
    )
    .await
    .map_err(|e| SessionEnd::Lost(e.to_string()))?;

    let hello = tokio::time::timeout(
        HELLO_TIMEOUT,
        read_frame::<ClientFrame, _>(&mut recv, MAX_WIRE_FRAME),
    )
    .await;
    // Boxed for the same reason as the handler: it ends before the connection idles.
    let caller = match Box::pin(authenticate(&relay, hello, &nonce, fingerprint)).await {
        Ok((cert, admission)) => {
            let (device, principal) = (cert.body.device, cert.body.principal);
            let outbox = Arc::new(PushQueue::default());
            relay.pushes.join_principal(principal, device, &outbox);
            Caller {
                device,
                principal,
                outbox,
                source: Some(conn.remote_address().ip()),
                blob_reads: Default::default(),
                first_device: match admission {
                    crate::handler::Admission::FirstDevice => {
                        crate::handler::FirstDevice::new(cert)
                    }
                    crate::handler::Admission::Listed => Default::default(),
                },
            }
        }
        Err(e) => {
            write_frame(&mut send, &RelayFrame::Fatal(e.clone()))
                .await
                .ok();
            close(send, conn).await;
            return Err(SessionEnd::Refused(e));
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
    .await
    .map_err(|e| SessionEnd::Lost(e.to_string()))?;

    // Replies wait encoded, with the bytes they hold; the queue is bounded by those.
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio::spawn(write_loop(
        send,
        rx,
        caller.outbox.clone(),
        conn.clone(),
        relay.metrics.stalled_connections.clone(),
    ));
    let queue = ByteBudget::new(CONNECTION_QUEUE_BYTES);
    let rate =
        read_rate.map(|r| crate::server::read_rate::ReadRate::new(r, std::time::Instant::now()));
    let outcome = read_loop(&relay, &caller, &mut recv, &tx, &queue, rate).await;
    if let Err(e) = &outcome {
        tx.send(Queued::unheld(&RelayFrame::Fatal(e.clone()))).ok();
    }
    drop(tx);
    if let Ok(send) = writer.await {
        close(send, conn).await;
    }
    outcome.map_err(SessionEnd::Refused)
}

/// How a connection ended other than by its device closing it.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    /// The connection failed before or while the handshake ran.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The relay refused it (authentication, a fatal frame).
    #[error("refused: {0}")]
    Refused(WireError),
}

async fn authenticate(
    relay: &Relay,
    hello: Result<Result<Option<ClientFrame>, FrameError>, tokio::time::error::Elapsed>,
    nonce: &[u8; 32],
    fingerprint: &str,
) -> Result<
    (
        mes_protocol::crypto::keys::DeviceCert,
        crate::handler::Admission,
    ),
    WireError,
> {
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
    let admission = relay.admit(&cert, vouch.as_ref()).await?;
    Ok((cert, admission))
}

fn frame_error(e: &FrameError) -> WireError {
    match e {
        FrameError::Decode(mes_protocol::wire::codec::DecodeError::TooLarge { .. }) => {
            WireError::new(ErrorCode::TooLarge, e.to_string())
        }
        _ => WireError::new(ErrorCode::BadFrame, e.to_string()),
    }
}

/// An encoded frame waiting for the writer, with the bytes it holds from the
/// connection's queue and the relay-wide pool (given back once written).
struct Queued {
    bytes: Vec<u8>,
    _held: (Held, Held),
}

impl Queued {
    /// A frame that holds no budget (the last words before a close).
    fn unheld(frame: &RelayFrame) -> Self {
        Queued {
            bytes: encoded(frame),
            _held: (Held::none(), Held::none()),
        }
    }
}

/// A frame as it goes on the stream.
fn encoded(frame: &RelayFrame) -> Vec<u8> {
    codec::length_prefixed(&codec::encode(frame))
}

async fn read_loop(
    relay: &Relay,
    caller: &Caller,
    recv: &mut quinn::RecvStream,
    tx: &mpsc::UnboundedSender<Queued>,
    queue: &ByteBudget,
    mut rate: Option<crate::server::read_rate::ReadRate>,
) -> Result<(), WireError> {
    let budgets = &relay.budgets;
    let mut unlisted_pace = crate::server::read_rate::ReadRate::new(
        crate::defaults::UNLISTED_REQUEST_RATE,
        std::time::Instant::now(),
    );
    loop {
        let mut length = 0;
        // A device not on any list yet (a stranger, a device being paired) sends small
        // frames: its first requests are; a large one waits until it is listed.
        let max = if caller.first_device.is_pending() {
            crate::defaults::MAX_UNLISTED_FRAME
        } else {
            MAX_WIRE_FRAME
        };
        let frame = read_frame_reserving::<ClientFrame, _, _, _, _>(
            recv,
            max,
            Some(crate::defaults::FRAME_BODY_TIMEOUT),
            |len| {
                length = len;
                budgets.request(len)
            },
        )
        .await;
        // Over its rate, the connection is not read for a while (its peer slows down).
        if let Some(rate) = rate.as_mut() {
            let wait = rate.take(length + 4, std::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        // A device on no list yet pairs, enrols or registers: a handful of requests. A
        // stranger pipelining thousands is paced, not served at the relay's full speed.
        if caller.first_device.is_pending() {
            let wait = unlisted_pace.take(1, std::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        // Whatever arrives after the hub ended the connection (a revocation) is refused
        // (the writer closes the connection as soon as it hears of it).
        if let Some(why) = caller.outbox.ended() {
            return Err(why.error());
        }
        let (frame, request_bytes) = match frame {
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
        drop(request_bytes);
        let bytes = encoded(&reply);
        drop(reply);
        // The connection's queue first (this peer waits for its own replies), then the
        // relay-wide pool for a large one.
        let mine = queue.hold(bytes.len().max(64)).await;
        let shared = if bytes.len() >= SMALL_FRAME {
            budgets.replies.hold(bytes.len()).await
        } else {
            Held::none()
        };
        let queued = Queued {
            bytes,
            _held: (mine, shared),
        };
        if tx.send(queued).is_err() {
            return Ok(());
        }
        // One request per turn: a peer whose requests are already buffered would
        // otherwise be served thousands in a row (nothing above waits), while every other
        // connection, a person's among them, waits for the worker (`mes-bench hostile`).
        tokio::task::yield_now().await;
    }
}

/// Why a write gave up.
enum WriteFailed {
    /// The stream failed or was closed.
    Closed,
    /// The peer took none of the bytes for [`WRITE_STALL`].
    Stalled,
    /// The hub ended the connection meanwhile.
    Ended(crate::push::Ended),
}

/// Writes `bytes` in pieces, each of which must leave within [`WRITE_STALL`]: a peer that
/// reads slowly is served, one that stops reading is given up, and so is one the hub
/// ends meanwhile.
async fn write_or_stall(
    send: &mut quinn::SendStream,
    bytes: &[u8],
    outbox: &PushQueue,
) -> Result<(), WriteFailed> {
    for piece in bytes.chunks(64 << 10) {
        tokio::select! {
            written = tokio::time::timeout(WRITE_STALL, send.write_all(piece)) => match written {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WriteFailed::Closed),
                Err(_) => return Err(WriteFailed::Stalled),
            },
            why = outbox.until_ended() => return Err(WriteFailed::Ended(why)),
        }
    }
    Ok(())
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    outbox: Arc<PushQueue>,
    conn: quinn::Connection,
    stalled: prometheus_client::metrics::counter::Counter,
) -> quinn::SendStream {
    let outcome = loop {
        tokio::select! {
            biased;
            f = rx.recv() => match f {
                Some(f) => {
                    if let Err(e) = write_or_stall(&mut send, &f.bytes, &outbox).await {
                        break Err(e);
                    }
                }
                None => break Ok(()),
            },
            _ = outbox.notify.notified() => {
                if let Some(why) = outbox.ended() {
                    // A device revoked while connected, or one that let too much wait, is
                    // cut at once: told why, then closed (its reader then ends too), and
                    // hears nothing more.
                    let fatal = encoded(&RelayFrame::Fatal(why.error()));
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), send.write_all(&fatal)).await;
                    conn.close(1u32.into(), why.reason());
                    break Ok(());
                }
                let mut failed = None;
                for p in outbox.drain() {
                    let bytes = encoded(&RelayFrame::Push(p));
                    if let Err(e) = write_or_stall(&mut send, &bytes, &outbox).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
        }
    };
    match outcome {
        Err(WriteFailed::Stalled) => {
            stalled.inc();
            conn.close(2u32.into(), b"stopped reading");
        }
        // Its stream is full: no last word can reach it.
        Err(WriteFailed::Ended(why)) => conn.close(1u32.into(), why.reason()),
        _ => {}
    }
    send
}

async fn close(mut send: quinn::SendStream, conn: &quinn::Connection) {
    send.finish().ok();
    // Give the peer a moment to read the last frame before the connection goes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), send.stopped()).await;
    conn.close(0u32.into(), b"bye");
}
