//! Documents: categories on the left (all, then the ten of the product), the matching
//! documents newest first with their total, and a preview of the one selected: its
//! metadata, its visibility in words, and its first lines of text. The search box takes
//! keywords and `auteur:`, `depuis:`, `jusqua:`, `type:` filters as you type.

use super::home::doc_line;
use super::{list, selection, text, Arrange, Item, Page};
use crate::app::i18n::Lang;
use crate::app::state::{Screen, State};
use mes_protocol::record::codes::Codes;

/// A category's name in the language shown.
fn category_name(s: &State, id: &str) -> String {
    Codes::builtin()
        .category(id)
        .map_or(id.to_string(), |c| match s.lang() {
            Lang::Fr => c.fr.clone(),
            Lang::En => c.en.clone(),
        })
}

/// Who can read a document now: the person, and whoever holds read rights on the volume
/// it lives in (computed from the matrix-bound consents, the hidden flag and the grants).
fn readers(s: &State, d: &mes_protocol::record::documents::DocumentMeta) -> String {
    let label = if d.visibility.hidden_from_professionals {
        mes_protocol::access::habilitation::HIDDEN.to_string()
    } else {
        Codes::builtin()
            .doc_type(&d.type_code)
            .map_or_else(|_| String::new(), |t| format!("documents/{}", t.group))
    };
    let mut who = vec![s.t("access.readers_you").to_string()];
    who.extend(
        s.consents
            .iter()
            .filter(|c| c.reads.contains(&label))
            .map(|c| super::access::holder(s, c)),
    );
    who.join(", ")
}

/// The preview of the selected document.
fn preview(s: &State) -> Vec<String> {
    let Some(d) = s.selected_doc() else {
        return vec![s.t("documents.none_selected").into()];
    };
    let codes = Codes::builtin();
    let ty = codes
        .doc_type(&d.type_code)
        .map_or(d.type_code.clone(), |t| match s.lang() {
            Lang::Fr => t.fr.clone(),
            Lang::En => t.en.clone(),
        });
    let visibility = if d.visibility.hidden_from_professionals {
        s.t("documents.visibility_hidden")
    } else {
        s.t("documents.visibility_shared")
    };
    let mut out = vec![
        d.title.clone(),
        format!("{} : {}", s.t("documents.date"), d.date),
        format!(
            "{} : {}",
            s.t("documents.author"),
            super::or_dash(&d.author)
        ),
        format!(
            "{} : {}",
            s.t("documents.category"),
            category_name(s, &d.category)
        ),
        format!("{} : {ty} ({})", s.t("documents.type"), d.type_code),
        format!("{} : {visibility}", s.t("documents.visibility")),
        format!("{} : {}", s.t("access.readers"), readers(s, d)),
        format!(
            "{} : {} ({} o)",
            s.t("documents.file"),
            super::or_dash(&d.file_name),
            d.size
        ),
        String::new(),
    ];
    if d.excerpt.is_empty() {
        out.push(s.t("documents.no_preview").into());
    } else {
        out.extend(d.excerpt.lines().take(40).map(str::to_string));
    }
    out
}

/// The page.
pub fn page(s: &State) -> Page {
    let cats = &Codes::builtin().category;
    let (c, cf) = selection(s, Screen::Documents, 0);
    let categories = list(
        s,
        s.t("documents.categories").into(),
        cats.len() + 1,
        c,
        cf,
        "common.empty",
        |i| {
            Item::new(match i {
                0 => s.t("documents.all").to_string(),
                i => category_name(s, &cats[i - 1].id),
            })
        },
    );
    let (d, df) = selection(s, Screen::Documents, 1);
    let search = if s.docs.typing {
        format!("{} {}▏", s.t("documents.search"), s.docs.input)
    } else if s.docs.input.is_empty() {
        s.t("documents.search_hint").to_string()
    } else {
        format!("{} {}", s.t("documents.search"), s.docs.input)
    };
    let count = s.tf(
        "documents.count",
        &[("shown", &s.docs.page.len()), ("total", &s.docs.total)],
    );
    let mut title = format!("{count} — {search}");
    if let Some(e) = &s.docs.error {
        title = format!("{title} — {e}");
    }
    let docs = list(s, title, s.docs.page.len(), d, df, "documents.none", |i| {
        doc_line(s, &s.docs.page[i])
    });
    Page {
        arrange: Arrange::Columns(vec![20, 45, 35]),
        sections: vec![
            categories,
            docs,
            text(s.t("documents.preview").into(), preview(s)),
        ],
    }
}
