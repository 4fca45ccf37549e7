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
        ts.to_zoned(paris()).strftime("%Y-%m-%d %H:%M").to_string()
    }
}

/// Where a shell reads the time: the wall clock in production, a clock a test or the
/// simulator moves otherwise. Cores take the time it gives as input.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> UnixMillis;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::now()
    }
}

/// A clock that moves only when told, shared by its clones (tests, the simulator).
#[derive(Clone, Debug, Default)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn at(t: UnixMillis) -> Self {
        ManualClock(std::sync::Arc::new(t.0.into()))
    }

    /// Sets the time to `t`.
    pub fn set(&self, t: UnixMillis) {
        self.0.store(t.0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the time on by `millis`.
    pub fn advance(&self, millis: u64) {
        self.0
            .fetch_add(millis, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Europe/Paris, where every calendar rule of the service counts (deadlines, ages,
/// appointments), looked up once; UTC on a system without its time zone data.
pub fn paris() -> jiff::tz::TimeZone {
    static PARIS: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    PARIS
        .get_or_init(|| jiff::tz::TimeZone::get("Europe/Paris").unwrap_or(jiff::tz::TimeZone::UTC))
        .clone()
}

/// The time zone people of a département live in: the overseas départements and
/// collectivities have their own (971 Guadeloupe, 972 Martinique, 973 Guyane, 974 La
/// Réunion, 975 Saint-Pierre-et-Miquelon, 976 Mayotte, 977 Saint-Barthélemy, 978
/// Saint-Martin); everyone else lives on Europe/Paris. Deadlines are still counted in
/// Europe/Paris; this is only how a date is shown to the person.
pub fn zone_of_departement(departement: &str) -> jiff::tz::TimeZone {
    let name = match departement.trim() {
        "971" => "America/Guadeloupe",
        "972" => "America/Martinique",
        "973" => "America/Cayenne",
        "974" => "Indian/Reunion",
        "975" => "America/Miquelon",
        "976" => "Indian/Mayotte",
        "977" => "America/St_Barthelemy",
        "978" => "America/Marigot",
        _ => return paris(),
    };
    jiff::tz::TimeZone::get(name).unwrap_or_else(|_| paris())
}

/// A date as the person of `departement` reads it ("13/04/2026"), in their time zone.
pub fn local_date(t: UnixMillis, departement: &str) -> String {
    let ts = jiff::Timestamp::from_millisecond(t.0 as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(zone_of_departement(departement))
        .strftime("%d/%m/%Y")
        .to_string()
}

/// The day in Europe/Paris at `t` (ages turn at midnight there).
pub fn paris_day(t: UnixMillis) -> jiff::civil::Date {
    let ts = jiff::Timestamp::from_millisecond(t.0 as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(paris()).date()
}

#[cfg(test)]
mod tests {
    #[test]
    fn overseas_people_read_dates_in_their_own_time_zone() {
        // 1 a.m. in Paris on 14 April is still 13 April in Guadeloupe, and 3 a.m. on the
        // 14th in La Réunion.
        let t = super::UnixMillis(
            jiff::civil::date(2026, 4, 14)
                .at(1, 0, 0, 0)
                .to_zoned(super::paris())
                .unwrap()
                .timestamp()
                .as_millisecond() as u64,
        );
        assert_eq!(super::local_date(t, "69"), "14/04/2026");
        assert_eq!(super::local_date(t, "971"), "13/04/2026");
        assert_eq!(super::local_date(t, "974"), "14/04/2026");
        assert_eq!(super::local_date(t, "2A"), "14/04/2026");
    }
}
