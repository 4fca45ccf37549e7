//! What the relay counts (Prometheus, through prometheus-client) and the local HTTP port
//! that serves it: `GET /metrics` in the Prometheus text format, `GET /health` as JSON
//! (`{"status":"ok",...}`, or 503 with the reason when the store does not answer).
//! Counters are updated where things happen (connections, requests, refusals); gauges
//! that need a scan (enrolment statuses) are set after each sweep, never at scrape time.
//!
//! Import circle: with `handler`, the relay counts into its `Metrics`, and the metrics port reads the relay's gauges when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// A request kind label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// `Upload`, `Fetch`, ...
    pub request: String,
}

/// A refusal label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `Forbidden`, `NotMember`, ...
    pub code: String,
}

/// An enrolment status label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `awaiting_decision`, `activated`, ...
    pub status: String,
}

/// The relay's metrics.
pub struct Metrics {
    registry: Registry,
    /// Open device connections.
    pub connections: Gauge,
    /// Connections accepted since start.
    pub connections_total: Counter,
    /// Requests handled, by kind.
    pub requests: Family<RequestLabel, Counter>,
    /// Requests refused, by error code.
    pub refusals: Family<RefusalLabel, Counter>,
    /// Spaces known.
    pub spaces: Gauge,
    /// People in the enrolment tables, by status (after the last sweep).
    pub enrolment: Family<StatusLabel, Gauge>,
    /// Enrolment sweeps run.
    pub sweeps: Counter,
    /// Store operations that ran longer than 5 s (the store watchdog, issue 23).
    pub store_slow: Gauge,
    /// Connections refused before the handshake: their address held too many.
    pub refused_connections: Counter,
    /// Connections ended because their peer stopped reading (issue 22 finding 5).
    pub stalled_connections: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mes_relay");
        let m = Metrics {
            connections: Gauge::default(),
            connections_total: Counter::default(),
            requests: Family::default(),
            refusals: Family::default(),
            spaces: Gauge::default(),
            enrolment: Family::default(),
            sweeps: Counter::default(),
            store_slow: Gauge::default(),
            refused_connections: Counter::default(),
            stalled_connections: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open device connections",
            m.connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted since start",
            m.connections_total.clone(),
        );
        registry.register("requests", "Requests handled", m.requests.clone());
        registry.register("refusals", "Requests refused", m.refusals.clone());
        registry.register("spaces", "Spaces known", m.spaces.clone());
        registry.register(
            "enrolment_people",
            "People in the enrolment tables by status, after the last sweep",
            m.enrolment.clone(),
        );
        registry.register("enrolment_sweeps", "Enrolment sweeps run", m.sweeps.clone());
        registry.register(
            "store_slow_operations",
            "Store operations (flushes, batches) that ran longer than 5 s since start",
            m.store_slow.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused before the handshake: their address held too many",
            m.refused_connections.clone(),
        );
        registry.register(
            "connections_stalled",
            "Connections ended because their peer stopped reading",
            m.stalled_connections.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Counts a handled request, and its refusal if it was refused.
    pub fn request(&self, request: &str, refused: Option<&str>) {
        self.requests
            .get_or_create(&RequestLabel {
                request: request.into(),
            })
            .inc();
        if let Some(code) = refused {
            self.refusals
                .get_or_create(&RefusalLabel { code: code.into() })
                .inc();
        }
    }

    /// Sets the enrolment gauges from campaign statistics.
    pub fn set_enrolment(&self, s: &crate::enrolment::service::Stats) {
        for (status, n) in [
            ("pending_notification", s.pending_notification),
            ("awaiting_decision", s.awaiting_decision),
            ("activated", s.activated),
            ("opposed", s.opposed),
            ("auto_created", s.auto_created),
            ("closed", s.closed),
            ("deleted", s.deleted),
            ("undeliverable", s.undeliverable),
        ] {
            self.enrolment
                .get_or_create(&StatusLabel {
                    status: status.into(),
                })
                .set(n as i64);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.store_slow
            .set(crate::store::WATCHDOG.slow_total() as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

type Body = http_body_util::Full<hyper::body::Bytes>;

fn respond(status: u16, content_type: &str, body: String) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::new(body.into()))
        .expect("a valid response")
}

/// Answers one HTTP request.
async fn answer(relay: &crate::handler::Relay, path: &str) -> hyper::Response<Body> {
    match path {
        "/metrics" => {
            relay.metrics.spaces.set(relay.space_count() as i64);
            respond(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                relay.metrics.encode(),
            )
        }
        "/health" => match relay.health().await {
            Ok(()) => respond(
                200,
                "application/json",
                serde_json::json!({
                    "status": "ok",
                    "spaces": relay.space_count(),
                    "connections": relay.metrics.connections.get(),
                })
                .to_string(),
            ),
            Err(e) => respond(
                503,
                "application/json",
                serde_json::json!({ "status": "failing", "reason": e.to_string() }).to_string(),
            ),
        },
        _ => respond(
            404,
            "text/plain; charset=utf-8",
            "not found: try /health or /metrics\n".into(),
        ),
    }
}

/// Binds the metrics port and serves it until the task is aborted; returns the address
/// bound (port 0 picks one).
pub async fn serve(
    relay: Arc<crate::handler::Relay>,
    address: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let named = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("binding the metrics port {address}: {e}"))
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(named)?;
    let bound = listener.local_addr().map_err(named)?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let relay = relay.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let (relay, path) = (relay.clone(), req.uri().path().to_owned());
                    async move { Ok::<_, std::convert::Infallible>(answer(&relay, &path).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}
