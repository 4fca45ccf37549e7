//! Opt-out enrolment of a population (F1), sans IO: one person's enrolment as a state
//! machine driven by the clock it is given. Deadlines are computed in Europe/Paris
//! calendar time (a letter sent on 2 March gives until 13 April, whatever the daylight
//! saving change in between). The store, the campaign and the notifications drive it
//! (docs/enrolment.md).

pub mod behalf;
pub mod holds;
pub mod pages;
pub mod population;
pub mod provisional_code;
pub mod service;
pub mod store;
pub mod tables;

use jiff::{Span, Timestamp, ToSpan};
use mes_protocol::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// The deadlines a deployment chooses (defaults: the law and seeds 002/003).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// How long a provisional code is valid, in days (one month by default: seed 001).
    pub code_validity_days: i64,
    /// How long after sending a person may oppose before the space is created, in days
    /// (six weeks: the law, R.1111-28; seed 001's pilot used one month and ten days).
    pub opposition_days: i64,
    /// First reminder to the never-activated, in months; then every year (F1.8).
    pub first_reminder_months: i64,
    /// Archive after closure, in years, before deletion (R.1111-36).
    pub archive_years: i64,
    /// An express deletion request is carried out within this many days.
    pub express_deletion_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_validity_days: 30,
            opposition_days: 42,
            first_reminder_months: 6,
            archive_years: 10,
            express_deletion_days: 90,
        }
    }
}

/// Where one person's enrolment stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Imported, not notified yet.
    Imported,
    /// Notified: may activate or oppose until `deadline`, then the space is created.
    Notified {
        /// When the letter or email was sent.
        sent_at: UnixMillis,
        /// The opposition deadline.
        deadline: UnixMillis,
    },
    /// Opposed (reversible: the person may still activate, F1.4).
    Opposed {
        /// When.
        at: UnixMillis,
    },
    /// Created at the deadline without a decision (F1.5); the person may activate it.
    AutoCreated {
        /// When.
        at: UnixMillis,
    },
    /// Activated by the person.
    Activated {
        /// When.
        at: UnixMillis,
    },
    /// Closed: archived until `purge_at`, then deleted; reopening restores it (F1.6).
    Closed {
        /// When.
        at: UnixMillis,
        /// When the archive is deleted.
        purge_at: UnixMillis,
        /// Whether the status before closure had a space (to restore on reopening).
        had_space: bool,
    },
    /// Deleted after the archive period or an express request.
    Deleted {
        /// When.
        at: UnixMillis,
    },
    /// The notification letter came back (NPAI: not living at this address) and no
    /// email is known: nobody has been told, so no deadline runs and no space is created
    /// (F1.2, seed 001). An opposition passed on for them still counts (F1.4). Last of
    /// the variants so records stored before it still read.
    Undeliverable {
        /// When the return was recorded.
        at: UnixMillis,
    },
}

/// A transition refused, with the reason a person or operator reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    /// Not allowed from the current status.
    #[error("cannot {action} an enrolment that is {status}")]
    State {
        /// What was asked.
        action: &'static str,
        /// Where it stands.
        status: &'static str,
    },
}

impl Status {
    /// A short name for messages and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Imported => "imported",
            Status::Notified { .. } => "notified",
            Status::Opposed { .. } => "opposed",
            Status::AutoCreated { .. } => "auto-created",
            Status::Activated { .. } => "activated",
            Status::Closed { .. } => "closed",
            Status::Deleted { .. } => "deleted",
            Status::Undeliverable { .. } => "undeliverable",
        }
    }

    fn refuse(&self, action: &'static str) -> EnrolError {
        EnrolError::State {
            action,
            status: self.name(),
        }
    }

    /// The campaign notifies the person (F1.2).
    pub fn notify(&self, now: UnixMillis, p: &Policy) -> Result<Status, EnrolError> {
        match self {
            Status::Imported => Ok(Status::Notified {
                sent_at: now,
                deadline: after_days(now, p.opposition_days),
            }),
            other => Err(other.refuse("notify")),
        }
    }

    /// The person activates (F1.3; the code and identity were checked by the caller).
    pub fn activate(&self, now: UnixMillis) -> Result<Status, EnrolError> {
        match self {
            Status::Notified { .. } | Status::Opposed { .. } | Status::AutoCreated { .. } => {
                Ok(Status::Activated { at: now })
            }
            other => Err(other.refuse("activate")),
        }
    }

    /// The person opposes (F1.4): before the deadline, or later to close what was
    /// created automatically and never used.
    pub fn oppose(&self, now: UnixMillis) -> Result<Status, EnrolError> {
        match self {
            Status::Notified { .. } | Status::AutoCreated { .. } => Ok(Status::Opposed { at: now }),
            other => Err(other.refuse("oppose")),
        }
    }

    /// The clock passes: the deadline creates the space (F1.5), the archive period ends.
    pub fn tick(&self, now: UnixMillis) -> Option<Status> {
        match self {
            Status::Notified { deadline, .. } if now >= *deadline => {
                Some(Status::AutoCreated { at: now })
            }
            Status::Closed { purge_at, .. } if now >= *purge_at => {
                Some(Status::Deleted { at: now })
            }
            _ => None,
        }
    }

    /// The person closes their space (F1.6): archived, or deleted within the express
    /// delay when asked.
    pub fn close(&self, now: UnixMillis, express: bool, p: &Policy) -> Result<Status, EnrolError> {
        let had_space = match self {
            Status::Activated { .. } | Status::AutoCreated { .. } => true,
            Status::Opposed { .. } | Status::Notified { .. } => false,
            other => return Err(other.refuse("close")),
        };
        let purge_at = if express {
            after_days(now, p.express_deletion_days)
        } else {
            after(now, p.archive_years.years())
        };
        Ok(Status::Closed {
            at: now,
            purge_at,
            had_space,
        })
    }

    /// Reopening restores what is archived (F1.6).
    pub fn reopen(&self, now: UnixMillis) -> Result<Status, EnrolError> {
        match self {
            Status::Closed {
                had_space: true, ..
            } => Ok(Status::Activated { at: now }),
            Status::Closed { .. } => Ok(Status::Opposed { at: now }),
            other => Err(other.refuse("reopen")),
        }
    }
}

/// When the next reminder to a never-activated person is due (F1.8): `first` months after
/// notification, then yearly; `None` once they decided or turned reminders off.
pub fn next_reminder(
    status: &Status,
    reminders_off: bool,
    last: Option<UnixMillis>,
    p: &Policy,
) -> Option<UnixMillis> {
    if reminders_off {
        return None;
    }
    let sent_at = match status {
        Status::Notified { sent_at, .. } => *sent_at,
        Status::AutoCreated { at } => *at,
        _ => return None,
    };
    Some(match last {
        None => after(sent_at, p.first_reminder_months.months()),
        Some(l) => after(l, 1.year()),
    })
}

fn after_days(t: UnixMillis, days: i64) -> UnixMillis {
    after(t, days.days())
}

pub use mes_protocol::time::paris;

/// `t` plus a calendar span in Europe/Paris.
pub fn after(t: UnixMillis, span: Span) -> UnixMillis {
    let tz = paris();
    let ts = Timestamp::from_millisecond(t.0 as i64).unwrap_or(Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned(tz);
    let later = z.checked_add(span).unwrap_or(z);
    UnixMillis(later.timestamp().as_millisecond().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris(s: &str) -> UnixMillis {
        let z: jiff::Zoned = format!("{s}[Europe/Paris]").parse().unwrap();
        UnixMillis(z.timestamp().as_millisecond() as u64)
    }

    #[test]
    fn six_weeks_in_paris_time_across_the_clock_change() {
        let p = Policy::default();
        let sent = paris("2026-03-02T10:00:00");
        let Ok(Status::Notified { deadline, .. }) = Status::Imported.notify(sent, &p) else {
            panic!("notified");
        };
        // Summer time starts on 29 March 2026: still 10:00 in Paris six weeks later.
        assert_eq!(deadline, paris("2026-04-13T10:00:00"));
        let n = Status::Imported.notify(sent, &p).unwrap();
        assert_eq!(n.tick(paris("2026-04-13T09:59:59")), None);
        assert_eq!(n.tick(deadline), Some(Status::AutoCreated { at: deadline }));
    }

    #[test]
    fn opposition_is_reversible_and_closure_archives_or_deletes() {
        let p = Policy::default();
        let t = paris("2026-03-02T10:00:00");
        let n = Status::Imported.notify(t, &p).unwrap();
        let o = n.oppose(t).unwrap();
        assert!(matches!(o.activate(t), Ok(Status::Activated { .. })));
        assert!(o.oppose(t).is_err());
        assert!(Status::Imported.activate(t).is_err());
        let a = n.activate(t).unwrap();
        let c = a.close(t, false, &p).unwrap();
        let Status::Closed { purge_at, .. } = c else {
            panic!()
        };
        assert_eq!(purge_at, paris("2036-03-02T10:00:00"));
        assert_eq!(c.reopen(t), Ok(Status::Activated { at: t }));
        let express = a.close(t, true, &p).unwrap();
        assert_eq!(
            express.tick(paris("2026-05-31T10:00:00")),
            Some(Status::Deleted {
                at: paris("2026-05-31T10:00:00")
            })
        );
        let e = Status::Deleted { at: t }.reopen(t).unwrap_err();
        assert_eq!(e.to_string(), "cannot reopen an enrolment that is deleted");
    }

    #[test]
    fn reminders_after_six_months_then_yearly_unless_turned_off() {
        let p = Policy::default();
        let t = paris("2026-03-02T10:00:00");
        let n = Status::Imported.notify(t, &p).unwrap();
        let first = next_reminder(&n, false, None, &p).unwrap();
        assert_eq!(first, paris("2026-09-02T10:00:00"));
        assert_eq!(
            next_reminder(&n, false, Some(first), &p),
            Some(paris("2027-09-02T10:00:00"))
        );
        assert_eq!(next_reminder(&n, true, None, &p), None);
        assert_eq!(
            next_reminder(&n.activate(t).unwrap(), false, None, &p),
            None
        );
    }
}
