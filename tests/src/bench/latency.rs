//! `sync-latency`: an edit through A's local API until B's API shows it (B subscribed to
//! events), through the relay, on a volume already holding 10,000 changes, with 100
//! other devices of the person connected, subscribed and idle. `sync-latency-crowd`:
//! the same with 1,000 devices of other people connected to the relay besides
//! (issue 23).

use super::{percentile, Measure, Size};
use crate::{converged, device, pair, relay, target, volume};
use mes_client::ApiClient;
use mes_daemon::sync::relay_client::RelayClient;
use mes_protocol::wire::api::{ApiCall, ApiEvent, ApiReply};
use mes_protocol::wire::Request;
use std::time::Instant;

pub async fn run(size: Size) -> anyhow::Result<Vec<Measure>> {
    measure_with(size, "sync-latency", 0).await
}

/// `sync-latency` with 1,000 connected devices of other people.
pub async fn crowd(size: Size) -> anyhow::Result<Vec<Measure>> {
    measure_with(size, "sync-latency-crowd", size.pick(1_000, 20)).await
}

async fn measure_with(
    size: Size,
    scenario: &'static str,
    others: usize,
) -> anyhow::Result<Vec<Measure>> {
    let (prefill, idle, samples) = (
        size.pick(10_000, 200),
        size.pick(100, 5),
        size.pick(300, 20),
    );
    let dir = tempfile::tempdir()?;
    let r = relay(dir.path(), None, false).await?;
    // Other people's devices, each its own principal, connected and idle.
    let mut crowd = Vec::with_capacity(others);
    for i in 0..others {
        let p = crate::RawPrincipal::new(&format!("other-{i}"));
        crowd.push(p.connect(&target(&r)).await?);
    }
    let t = target(&r);
    let a = device(dir.path(), "a", &t).await?;
    let b = device(dir.path(), "b", &t).await?;
    let space = pair(&a.daemon, &b.daemon).await?;
    let notes = volume(&a.daemon, space, "notes").expect("notes");
    let principal = super::principal_keys(&a.daemon)?;
    // Prefill: one-change bundles, as an interactive device would have uploaded them.
    super::append_one_change_bundles(&a.daemon, &t, space, notes, prefill).await?;
    converged(&a.daemon, &b.daemon, space, "notes").await?;
    // Idle devices: real authenticated connections subscribed to the volume.
    let endpoint = mes_daemon::sync::relay_client::endpoint(t.address)?;
    let mut idle_devices = Vec::new();
    let (lister, _) = crate::connect_as(&a.daemon, &t).await?;
    for i in 0..idle {
        let (dev, cert) = super::listed_device(&lister, &principal, &format!("idle-{i}")).await?;
        let (c, pushes) = RelayClient::connect(&endpoint, &t, &cert, &dev.signing).await?;
        c.request(Request::Subscribe {
            space,
            volumes: vec![notes],
        })
        .await?;
        idle_devices.push((c, pushes));
    }
    let mut writer = ApiClient::connect(&a.ready.socket).await?;
    let mut reader = ApiClient::connect(&b.ready.socket).await?;
    let mut events = ApiClient::connect(&b.ready.socket).await?;
    events.call(Some(space), ApiCall::Subscribe).await??;
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples {
        ms.push(one_edit(&mut writer, &mut reader, &mut events, space, notes, i).await?);
        // Drain the idle devices' pushes so they stay idle readers.
        for (_, p) in &mut idle_devices {
            while p.try_recv().is_ok() {}
        }
    }
    ms.sort_by(f64::total_cmp);
    drop(crowd);
    Ok(vec![
        Measure {
            scenario,
            metric: "p50_ms",
            value: percentile(&ms, 50.0),
            unit: "ms",
        },
        Measure {
            scenario,
            metric: "p99_ms",
            value: percentile(&ms, 99.0),
            unit: "ms",
        },
    ])
}

/// One edit through `writer`'s API until `reader`'s API shows it, told by `events` (a
/// connection subscribed to the space's events), in milliseconds.
pub(super) async fn one_edit(
    writer: &mut ApiClient,
    reader: &mut ApiClient,
    events: &mut ApiClient,
    space: mes_protocol::ids::SpaceId,
    notes: mes_protocol::ids::VolumeId,
    i: usize,
) -> anyhow::Result<f64> {
    let value = format!("mesure {i}");
    let start = Instant::now();
    writer
        .call(
            Some(space),
            ApiCall::NoteSet {
                key: "tension".into(),
                value: value.clone(),
            },
        )
        .await??;
    loop {
        if let ApiEvent::VolumeChanged { volume, .. } = events.next_event().await? {
            if volume != notes {
                continue;
            }
            if let Ok(ApiReply::Values(v)) = reader
                .call(
                    Some(space),
                    ApiCall::NoteGet {
                        key: "tension".into(),
                    },
                )
                .await?
            {
                if v == vec![value.clone()] {
                    return Ok(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
}
