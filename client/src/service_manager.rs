//! Telling systemd where a service stands (`Type=notify`, issue 27 item 5): `READY=1`
//! once the ready line is printed, `STOPPING=1` when a shutdown begins. Nothing happens
//! without `NOTIFY_SOCKET` (not started by systemd); a failure is logged, never fatal.

use sd_notify::NotifyState;

fn tell(state: NotifyState<'_>, what: &str) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!("could not tell the service manager that {what}: {e}");
    }
}

/// The service serves (after its JSON ready line).
pub fn ready() {
    tell(NotifyState::Ready, "the service is ready");
}

/// The service is stopping.
pub fn stopping() {
    tell(NotifyState::Stopping, "the service is stopping");
}
