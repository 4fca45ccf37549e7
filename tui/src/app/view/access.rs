//! Access (F7, F8): who accessed what and how, consents, blocks, and this person's
//! devices. The access history, consents and blocks come with consent enforced by keys;
//! until then they say so plainly. Devices are real.

use super::{list, selection, Arrange, Item, Page};
use crate::app::state::{Screen, State};

/// The page.
pub fn page(s: &State) -> Page {
    let sel = |pane| selection(s, Screen::Access, pane);
    let empty = |key: &str, title: &str, pane| {
        let (c, f) = sel(pane);
        list(s, s.t(title).into(), 0, c, f, key, |_| Item::default())
    };
    let (d, df) = sel(3);
    let devices = list(
        s,
        s.t("access.devices").into(),
        s.devices.len(),
        d,
        df,
        "access.no_devices",
        |i| {
            let dev = &s.devices[i];
            Item {
                text: format!("{}  {}", dev.name, dev.device.short()),
                tag: dev
                    .this_device
                    .then(|| format!("[{}]", s.t("access.this_device"))),
            }
        },
    );
    Page {
        arrange: Arrange::Grid,
        sections: vec![
            empty("access.no_history", "access.history", 0),
            empty("access.no_consents", "access.consents", 1),
            empty("access.no_blocks", "access.blocks", 2),
            devices,
        ],
    }
}
