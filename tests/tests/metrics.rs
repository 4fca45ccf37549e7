//! The hub's health and Prometheus metrics on a local HTTP port (issue 7, operator
//! tooling): served by the in-process relay and by the `mes-relay serve` binary, the
//! counters move with what devices do (a refused request is counted under its code).

use mes_protocol::wire::Request;
use mes_tests::{device, home, http_get, online, registered, spawn_relay, target, RawPrincipal};

/// The value of the sample `name` (with its labels) in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_follow_what_devices_do() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = mes_relay::RelayConfig::new(dir.path().join("relay"));
    config.listen = "127.0.0.1:0".parse()?;
    config.metrics = Some("127.0.0.1:0".parse()?);
    let relay = mes_relay::start(config).await?;
    let m = relay
        .ready
        .metrics
        .expect("the ready line names the metrics port");

    let (code, body) = http_get(m, "/health").await?;
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["spaces"], 0);
    let (_, before) = http_get(m, "/metrics").await?;
    assert_eq!(sample(&before, "mes_relay_spaces"), Some(0.0), "{before}");

    let t = target(&relay);
    let a = device(dir.path(), "a", &t).await?;
    online(&a.daemon).await?;
    let space = home(&a.daemon).await?;
    registered(&a, space).await?;
    let stranger = RawPrincipal::new("stranger");
    let c = stranger.connect(&t).await?;
    assert!(c.request(Request::GetEnvelopes { space }).await.is_err());

    let (code, text) = http_get(m, "/metrics").await?;
    assert_eq!(code, 200);
    assert_eq!(sample(&text, "mes_relay_spaces"), Some(1.0), "{text}");
    // The store watchdog's count (issue 23): served, and nothing ran too long here.
    assert_eq!(
        sample(&text, "mes_relay_store_slow_operations"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mes_relay_refusals_total{code=\"NotMember\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "mes_relay_requests_total{request=\"GetEnvelopes\"}")
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "mes_relay_connections").is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mes_relay_enrolment_people{status=\"activated\"}"),
        Some(0.0),
        "{text}"
    );
    let (code, _) = http_get(m, "/elsewhere").await?;
    assert_eq!(code, 404);
    a.shutdown().await;
    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_binary_prints_its_metrics_port_and_answers_health() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut child, ready) = spawn_relay(dir.path(), &["--metrics", "127.0.0.1:0"])?;
    let outcome = async {
        let m = ready.metrics.expect("metrics in the ready line");
        let (code, body) = http_get(m, "/health").await?;
        anyhow::ensure!(code == 200 && body.contains("\"ok\""), "{code} {body}");
        let (_, text) = http_get(m, "/metrics").await?;
        anyhow::ensure!(text.contains("# HELP mes_relay_requests"), "{text}");
        anyhow::Ok(())
    }
    .await;
    child.kill()?;
    child.wait()?;
    outcome
}
