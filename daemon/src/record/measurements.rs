//! Measurements (F2.5): checked against their kind's unit and plausible range, written to
//! the partition volume of their kind and year (created on first use, see
//! `partition.rs`), read back as the union of a kind's partitions.

use mes_protocol::ids::SpaceId;
use mes_protocol::invalid::Invalid;
use mes_protocol::record::codes::Codes;
use mes_protocol::record::measurements::{
    partition_label, MeasureQuery, Measurement, SeriesVolume,
};
use mes_protocol::record::Source;
use mes_protocol::wire::api::{ApiError, ApiErrorCode};
use std::collections::BTreeMap;

use crate::daemon::Daemon;
use crate::replica::volume::Replica;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorCode::BadRequest, m)
}

fn internal(e: impl ToString) -> ApiError {
    ApiError::new(ApiErrorCode::Internal, e.to_string())
}

/// The year of a point's time ("2026-11-24T08:30" or "2026-11-24"), checked.
pub fn year_of(at: &str) -> Result<i16, Invalid> {
    if let Ok(t) = at.parse::<jiff::civil::DateTime>() {
        return Ok(t.year());
    }
    at.parse::<jiff::civil::Date>()
        .map(jiff::civil::Date::year)
        .map_err(|_| {
            Invalid(format!(
                "time {at:?} is not like 2026-11-24T08:30 or 2026-11-24"
            ))
        })
}

impl Daemon {
    /// Records points; all are checked before any is written. Answers how many.
    pub async fn measure_add(
        &self,
        space: SpaceId,
        points: Vec<Measurement>,
    ) -> Result<u64, ApiError> {
        let codes = Codes::builtin();
        let mut by_partition: BTreeMap<String, Vec<Measurement>> = BTreeMap::new();
        for (i, mut m) in points.into_iter().enumerate() {
            let kind = codes
                .measurement(&m.kind, m.value)
                .map_err(|e| bad(format!("point {}: {e}", i + 1)))?;
            m.kind = kind.id.clone();
            let year = year_of(&m.at).map_err(|e| bad(format!("point {}: {e}", i + 1)))?;
            if m.id.is_empty() {
                m.id = hex::encode(rand::Rng::gen::<[u8; 8]>(&mut rand::rngs::OsRng));
            }
            if m.source.kind.is_empty() {
                m.source = Source {
                    kind: "person".into(),
                    name: String::new(),
                };
            }
            by_partition
                .entry(partition_label(&m.kind, year))
                .or_default()
                .push(m);
        }
        let mut n = 0u64;
        for (label, points) in by_partition {
            self.ensure_partition(space, &label)?;
            n += points.len() as u64;
            self.local_change(space, &label, |v, _| {
                let Replica::Doc(doc) = v.replica().map_err(internal)? else {
                    return Err(bad("a measurement volume is not a document"));
                };
                doc.reconcile_keys(points.iter().map(|p| (p.id.as_str(), p)))
                    .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))
            })
            .await?;
        }
        Ok(n)
    }

    /// Points matching a query, oldest first.
    pub fn measure_list(
        &self,
        space: SpaceId,
        q: &MeasureQuery,
    ) -> Result<Vec<Measurement>, ApiError> {
        if !q.kind.is_empty() {
            Codes::builtin().measurement_kind(&q.kind).map_err(bad)?;
        }
        let prefix = if q.kind.is_empty() {
            "measurements/".to_string()
        } else {
            format!("measurements/{}/", q.kind)
        };
        let mut st = self.state();
        let mut out = Vec::new();
        for v in st
            .volumes
            .values_mut()
            .filter(|v| v.meta.space == space && v.meta.label.starts_with(&prefix))
        {
            let Replica::Doc(doc) = v.replica().map_err(internal)? else {
                continue;
            };
            let series: SeriesVolume = doc
                .hydrate()
                .map_err(|e| ApiError::new(ApiErrorCode::Internal, e.to_string()))?;
            out.extend(series.into_values().filter(|m| q.matches(m)));
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}
