//! Settings: language, theme, linear mode, notifications, and the tutorial again. Enter
//! changes the selected row; the choice is saved at once.

use super::{list, selection, Arrange, Item, Page};
use crate::app::i18n::Lang;
use crate::app::state::{Screen, State};
use crate::app::update::SETTINGS_ROWS;

/// The page.
pub fn page(s: &State) -> Page {
    let st = &s.settings;
    let on_off = |b: bool| s.t(if b { "common.on" } else { "common.off" });
    let rows: [(String, String); SETTINGS_ROWS] = [
        (
            s.t("settings.language").into(),
            match st.lang {
                Lang::Fr => "Français".into(),
                Lang::En => "English".into(),
            },
        ),
        (s.t("settings.theme").into(), s.t(st.theme.key()).into()),
        (s.t("settings.linear").into(), on_off(st.linear).into()),
        (
            s.t("settings.notifications").into(),
            on_off(st.notifications).into(),
        ),
        (s.t("settings.tutorial").into(), String::new()),
    ];
    let (c, f) = selection(s, Screen::Settings, 0);
    Page {
        arrange: Arrange::Rows,
        sections: vec![
            list(
                s,
                s.t("screen.settings").into(),
                rows.len(),
                c,
                f,
                "common.empty",
                |i| {
                    let (name, value) = &rows[i];
                    Item {
                        text: if value.is_empty() {
                            name.clone()
                        } else {
                            format!("{name} : {value}")
                        },
                        tag: None,
                    }
                },
            ),
            super::text(String::new(), vec![s.t("settings.hint").into()]),
        ],
    }
}
