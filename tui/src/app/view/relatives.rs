//! Relatives (F9): the person's own space and the spaces they manage (their children's);
//! Enter switches the profile every screen shows.

use super::{list, selection, Arrange, Item, Page};
use crate::app::state::{Screen, State};

/// The page.
pub fn page(s: &State) -> Page {
    let (c, f) = selection(s, Screen::Relatives, 0);
    let own = s.spaces.first().map(|x| x.owner);
    // The first is the person's own (sorted so by `update`); the others they manage.
    let profiles = list(
        s,
        s.t("relatives.title").into(),
        s.spaces.len(),
        c,
        f,
        "relatives.none",
        |i| {
            let sp = &s.spaces[i];
            let mut tags = Vec::new();
            if Some(sp.space) == s.space {
                tags.push(s.t("relatives.shown"));
            }
            if i > 0 && Some(sp.owner) == own {
                tags.push(s.t("relatives.managed"));
            }
            Item {
                text: s.space_name(sp),
                tag: (!tags.is_empty()).then(|| format!("[{}]", tags.join(", "))),
            }
        },
    );
    Page {
        arrange: Arrange::Rows,
        sections: vec![
            profiles,
            super::text(String::new(), vec![s.t("relatives.hint").into()]),
        ],
    }
}
