//! Time as the protocol carries it: milliseconds since the Unix epoch, given by the caller
//! (cores never read the clock themselves).

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current wall-clock time; only shells call this, cores take time as input.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(d.as_millis() as u64)
    }

    /// Local time in Europe/Paris, to the minute ("2026-12-02 09:41"), for people.
    pub fn paris(self) -> String {
        let Ok(ts) = jiff::Timestamp::from_millisecond(self.0 as i64) else {
            return format!("{} ms", self.0);
        };
        match jiff::tz::TimeZone::get("Europe/Paris") {
            Ok(tz) => ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string(),
            Err(_) => ts.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}
