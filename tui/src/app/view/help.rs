//! Help: every key (from the keymap) and the plain-language lexicon; `/` filters the
//! lexicon as you type.

use super::{list, selection, Arrange, Item, Page};
use crate::app::keymap::{all_shown, key_name, Context};
use crate::app::lexicon;
use crate::app::state::{Screen, State};

/// The page.
pub fn page(s: &State) -> Page {
    let keys = all_shown();
    let (k, kf) = selection(s, Screen::Help, 0);
    let keys_section = list(
        s,
        s.t("help.keys").into(),
        keys.len(),
        k,
        kf,
        "common.empty",
        |i| {
            let b = keys[i];
            let context = match b.context {
                Context::On(screen) => format!(" ({})", s.t(screen.name_key())),
                Context::Typing => format!(" ({})", s.t("help.typing")),
                Context::Global => String::new(),
            };
            Item::new(format!("{:<14} {}{context}", key_name(b.key), s.t(b.help)))
        },
    );
    let terms = lexicon::matching(s.lang(), &s.lexicon_filter);
    let all = lexicon::terms();
    let (l, lf) = selection(s, Screen::Help, 1);
    let title = if s.lexicon_typing || !s.lexicon_filter.is_empty() {
        format!(
            "{} — {} {}▏",
            s.t("help.lexicon"),
            s.t("documents.search"),
            s.lexicon_filter
        )
    } else {
        format!(
            "{} — {}",
            s.t("help.lexicon"),
            s.tf("help.lexicon_count", &[("n", &terms.len())])
        )
    };
    let lexicon_section = list(s, title, terms.len(), l, lf, "help.no_terms", |i| {
        Item::new(all[terms[i]].in_lang(s.lang()).0)
    });
    let definition = match terms.get(s.cursor(Screen::Help, 1)) {
        Some(&i) => {
            let (term, plain) = all[i].in_lang(s.lang());
            vec![term.to_string(), String::new(), plain.to_string()]
        }
        None => vec![],
    };
    Page {
        arrange: Arrange::Columns(vec![38, 27, 35]),
        sections: vec![
            keys_section,
            lexicon_section,
            super::text(s.t("help.definition").into(), definition),
        ],
    }
}
