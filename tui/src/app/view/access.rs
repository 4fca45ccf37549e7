//! Access (F7, F8): the verified access history (newest first, with the alarm on top when
//! the relay's history failed a check), consents and rights, blocks, and this person's
//! devices. `f` flags the selected history entry as suspicious (F8.3).

use mes_protocol::access::consent::{AccessEntryView, ConsentView};
use mes_protocol::access::habilitation::Matrix;

use super::{list, selection, Arrange, Item, Page};
use crate::app::action::Slot;
use crate::app::i18n::Lang;
use crate::app::state::{Screen, State};

/// The profession's name in the person's language, or its code.
pub fn profession_name(s: &State, code: &str) -> String {
    Matrix::builtin()
        .profession(code)
        .map_or(code.to_string(), |p| match s.lang() {
            Lang::Fr => p.fr.clone(),
            Lang::En => p.en.clone(),
        })
}

fn who(s: &State, e: &AccessEntryView) -> String {
    match &e.name {
        Some(n) => {
            let mut parts = vec![n.clone()];
            if let Some(p) = &e.profession {
                parts.push(profession_name(s, p));
            }
            parts.extend(e.specialty.clone());
            parts.extend(e.structure.clone());
            parts.join(", ")
        }
        None => format!("{} {}", s.t("access.someone"), e.actor.short()),
    }
}

/// A volume's name for people (`documents/mental` → "Santé mentale").
pub fn volume_name(s: &State, label: &str) -> String {
    let key = if label.starts_with("measurements/") {
        "volume.measurements".to_string()
    } else {
        format!("volume.{}", label.replace('/', "_"))
    };
    s.t_or(&key, label)
}

/// A consent's holder in words.
pub fn holder(s: &State, c: &ConsentView) -> String {
    match (&c.name, &c.profession) {
        (Some(n), Some(p)) => format!("{n} ({})", profession_name(s, p)),
        (Some(n), None) => n.clone(),
        _ => format!("{} {}", s.t("access.someone"), c.principal.short()),
    }
}

/// Entries newest first, behind the alarm row when there is one.
fn rows(s: &State) -> (Option<&str>, Vec<&AccessEntryView>) {
    (
        s.history.alarm.as_deref(),
        s.history.entries.iter().rev().collect(),
    )
}

/// The seq of the history entry under the cursor, if any.
pub fn selected_entry(s: &State) -> Option<u64> {
    let (alarm, entries) = rows(s);
    let i = s.cursor(Screen::Access, 0);
    let i = if alarm.is_some() {
        i.checked_sub(1)?
    } else {
        i
    };
    entries.get(i).map(|e| e.seq)
}

/// The page.
pub fn page(s: &State) -> Page {
    let sel = |pane| selection(s, Screen::Access, pane);
    let (alarm, entries) = rows(s);
    let (h, hf) = sel(0);
    let offset = usize::from(alarm.is_some());
    let history = list(
        s,
        s.t("access.history").into(),
        entries.len() + offset,
        h,
        hf,
        "access.no_history",
        |i| {
            if i < offset {
                return Item {
                    text: alarm.unwrap_or_default().to_string(),
                    tag: Some(format!("[{}]", s.t("access.alarm"))),
                };
            }
            // What and how first: the name is what a narrow pane cuts.
            let e = entries[i - offset];
            let flag = if e.suspicious {
                format!("[{}] ", s.t("access.flagged"))
            } else {
                String::new()
            };
            Item::new(format!(
                "{flag}{}  {} · {} · {}",
                e.at.paris(),
                volume_name(s, &e.target),
                s.t(&format!("access.mode_{}", e.mode.replace('-', "_"))),
                who(s, e)
            ))
        },
    );
    let (c, cf) = sel(1);
    let consents = list(
        s,
        s.t("access.consents").into(),
        s.consents.len(),
        c,
        cf,
        "access.no_consents",
        |i| {
            let c = &s.consents[i];
            let mut what = c
                .reads
                .iter()
                .map(|l| volume_name(s, l))
                .collect::<Vec<_>>()
                .join(", ");
            if what.is_empty() {
                what = s.t("access.drops_only").into();
            }
            Item::new(format!("{} : {what}", holder(s, c)))
        },
    )
    .or_error(s, Slot::Consents);
    let (b, bf) = sel(2);
    let blocks = list(
        s,
        s.t("access.blocks").into(),
        s.blocks.len(),
        b,
        bf,
        "access.no_blocks",
        |i| Item::new(s.blocks[i].clone()),
    )
    .or_error(s, Slot::Blocks);
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
        sections: vec![history, consents, blocks, devices],
    }
}
