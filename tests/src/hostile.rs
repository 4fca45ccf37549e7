//! Connections that misbehave on purpose (issue 22 finding 5): what `mes-bench hostile`
//! and the resource-limit tests throw at a relay. Each is a raw QUIC connection speaking
//! just enough of the protocol to be admitted, then doing what a well-behaved device
//! never does.

use crate::RawPrincipal;
use mes_daemon::sync::relay_client::{challenge_message, client_config, RelayTarget};
use mes_protocol::crypto::keys::CHALLENGE_CONTEXT;
use mes_protocol::wire::codec::MAX_WIRE_FRAME;
use mes_protocol::wire::framing::{read_frame, write_frame};
use mes_protocol::wire::{ClientFrame, RelayFrame, Request};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An admitted connection whose streams the caller drives by hand.
pub struct RawConn {
    /// The QUIC connection.
    pub conn: quinn::Connection,
    /// Frames to the relay.
    pub send: quinn::SendStream,
    /// Frames from the relay.
    pub recv: quinn::RecvStream,
}

impl RawConn {
    /// Connects and authenticates as `who`'s device.
    pub async fn open(
        endpoint: &quinn::Endpoint,
        t: &RelayTarget,
        who: &RawPrincipal,
    ) -> anyhow::Result<Self> {
        let conn = endpoint
            .connect_with(client_config(&t.fingerprint)?, t.address, "mes-relay")?
            .await?;
        let (mut send, mut recv) = conn.accept_bi().await?;
        let nonce = match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await? {
            Some(RelayFrame::Challenge { nonce, .. }) => nonce,
            other => anyhow::bail!("expected a challenge, got {other:?}"),
        };
        let signature = who.device.signing.sign(
            CHALLENGE_CONTEXT,
            &challenge_message(&nonce, &t.fingerprint.to_ascii_lowercase()),
        );
        write_frame(
            &mut send,
            &ClientFrame::Hello {
                cert: who.cert.clone(),
                signature,
                vouch: None,
            },
        )
        .await?;
        match read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await? {
            Some(RelayFrame::Welcome { .. }) => Ok(RawConn { conn, send, recv }),
            other => anyhow::bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends one request without waiting for its answer.
    pub async fn request(&mut self, id: u64, body: Request) -> std::io::Result<()> {
        write_frame(&mut self.send, &ClientFrame::Request { id, body }).await
    }

    /// Whether the relay closed the connection within `within`.
    pub async fn closed_within(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.conn.closed())
            .await
            .is_ok()
    }
}

/// What an attacking connection does once admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Sends requests as fast as it can and never reads a reply.
    StopReading,
    /// Announces a frame and sends its body a byte at a time.
    Trickle,
    /// Announces 8 MiB frames and sends part of them.
    Announce8MiB,
    /// Opens streams the relay never accepts, and writes into them.
    UnacceptedStreams,
    /// Opens pairing rendezvous and floods its partner, who never reads.
    PairingFlood,
}

impl Attack {
    /// The kinds `MES_HOSTILE_ATTACKS=0,3` names (to tell which one costs what), every
    /// kind when it is not set.
    pub fn chosen() -> anyhow::Result<Vec<Attack>> {
        let kinds: Vec<Attack> = match std::env::var("MES_HOSTILE_ATTACKS") {
            Ok(list) => list
                .split(',')
                .filter_map(|i| Attack::ALL.get(i.trim().parse::<usize>().ok()?).copied())
                .collect(),
            Err(_) => Attack::ALL.to_vec(),
        };
        anyhow::ensure!(
            !kinds.is_empty(),
            "MES_HOSTILE_ATTACKS names no attack (0 to 4)"
        );
        Ok(kinds)
    }

    /// Every attack, in the order connections are given them.
    pub const ALL: [Attack; 5] = [
        Attack::StopReading,
        Attack::Trickle,
        Attack::Announce8MiB,
        Attack::UnacceptedStreams,
        Attack::PairingFlood,
    ];
}

/// What the attackers did and what happened to them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections admitted (reconnections count again).
    pub admitted: AtomicU64,
    /// Connections the relay ended on its own (stall, trickle, overflow).
    pub cut: AtomicU64,
    /// Connections refused at the door.
    pub refused: AtomicU64,
}

impl Tally {
    /// The counts, by name (admitted, cut, refused).
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        [
            ("admitted", &self.admitted),
            ("cut", &self.cut),
            ("refused", &self.refused),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// Runs `attack` from one connection, reconnecting whenever the relay cuts it, until
/// `stop` is set.
pub async fn keep_attacking(
    attack: Attack,
    endpoint: quinn::Endpoint,
    t: RelayTarget,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let who = RawPrincipal::new("attacker");
    while !stop.load(Ordering::Relaxed) {
        let c = match RawConn::open(&endpoint, &t, &who).await {
            Ok(c) => c,
            Err(_) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tally.admitted.fetch_add(1, Ordering::Relaxed);
        let conn = c.conn.clone();
        let run = once(attack, c, &endpoint, &t, &stop);
        tokio::select! {
            _ = run => {}
            _ = conn.closed() => {
                tally.cut.fetch_add(1, Ordering::Relaxed);
            }
            _ = until(&stop) => {}
        }
        conn.close(0u32.into(), b"attacker done");
    }
}

async fn until(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection's attack, until it ends or fails.
async fn once(
    attack: Attack,
    mut c: RawConn,
    endpoint: &quinn::Endpoint,
    t: &RelayTarget,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    match attack {
        Attack::StopReading => {
            let mut id = 0;
            loop {
                id += 1;
                c.request(id, Request::GetHubInfo).await?;
            }
        }
        Attack::Trickle => {
            c.send.write_all(&(1u32 << 20).to_be_bytes()).await?;
            loop {
                c.send.write_all(&[0]).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Attack::Announce8MiB => {
            c.send
                .write_all(&(MAX_WIRE_FRAME as u32).to_be_bytes())
                .await?;
            let junk = vec![0xA5u8; 64 << 10];
            for _ in 0..32 {
                c.send.write_all(&junk).await?;
            }
            until(stop).await;
            Ok(())
        }
        Attack::UnacceptedStreams => {
            for _ in 0..8 {
                if let Ok(Ok((mut s, _))) =
                    tokio::time::timeout(Duration::from_millis(200), c.conn.open_bi()).await
                {
                    let _ = s.write_all(&vec![0u8; 1 << 20]).await;
                }
                if let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_millis(200), c.conn.open_uni()).await
                {
                    let _ = s.write_all(&vec![0u8; 1 << 20]).await;
                }
            }
            until(stop).await;
            Ok(())
        }
        Attack::PairingFlood => {
            // A partner that joins the same rendezvous and never reads.
            let mut p = RawConn::open(endpoint, t, &RawPrincipal::new("partner")).await?;
            let mut rendezvous = Vec::new();
            for i in 0..6u64 {
                let r: [u8; 16] = rand::random();
                c.request(i, Request::PairOpen { rendezvous: r }).await?;
                p.request(i, Request::PairOpen { rendezvous: r }).await?;
                rendezvous.push(r);
            }
            // Our own replies are read, so only the partner is the one not reading.
            let RawConn {
                conn,
                mut send,
                mut recv,
            } = c;
            let drain = tokio::spawn(async move {
                while let Ok(Some(_)) = read_frame::<RelayFrame, _>(&mut recv, MAX_WIRE_FRAME).await
                {
                }
            });
            let body = vec![7u8; 60 << 10];
            let flood = async {
                let mut id = 100;
                loop {
                    for r in &rendezvous {
                        id += 1;
                        let body = Request::PairSend {
                            rendezvous: *r,
                            body: body.clone(),
                        };
                        write_frame(&mut send, &ClientFrame::Request { id, body }).await?;
                    }
                }
            };
            let outcome: anyhow::Result<()> = tokio::select! {
                r = flood => r,
                // The partner was cut: start again with a new one.
                _ = p.conn.closed() => Ok(()),
            };
            drain.abort();
            conn.close(0u32.into(), b"again");
            outcome
        }
    }
}
