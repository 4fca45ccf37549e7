//! Catalogue (F6): the approved services and this person's consent to each. The hub's
//! catalogue is not served yet; the screen says so plainly.

use super::{list, selection, text, Arrange, Item, Page};
use crate::app::state::{Screen, State};

/// The page.
pub fn page(s: &State) -> Page {
    let (c, f) = selection(s, Screen::Catalogue, 0);
    Page {
        arrange: Arrange::Rows,
        sections: vec![
            list(
                s,
                s.t("catalogue.title").into(),
                0,
                c,
                f,
                "catalogue.none",
                |_| Item::default(),
            ),
            text(String::new(), vec![s.t("catalogue.about").into()]),
        ],
    }
}
