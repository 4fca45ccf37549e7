//! The plain-language lexicon (F11.1): medical terms as letters and reports say them, and
//! what they mean in everyday words, in French and English (`tui/data/lexicon.toml`).

use serde::Deserialize;
use std::sync::OnceLock;

use super::i18n::Lang;

/// One term.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// The French term.
    pub fr: String,
    /// The English term.
    pub en: String,
    /// Its plain French explanation.
    pub fr_plain: String,
    /// Its plain English explanation.
    pub en_plain: String,
}

impl Term {
    /// The term and its explanation in `lang`.
    pub fn in_lang(&self, lang: Lang) -> (&str, &str) {
        match lang {
            Lang::Fr => (&self.fr, &self.fr_plain),
            Lang::En => (&self.en, &self.en_plain),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    term: Vec<Term>,
}

/// The lexicon, sorted by French term.
pub fn terms() -> &'static [Term] {
    static TERMS: OnceLock<Vec<Term>> = OnceLock::new();
    TERMS.get_or_init(|| {
        let mut f: File = toml::from_str(include_str!("../../data/lexicon.toml"))
            .expect("tui/data/lexicon.toml parses");
        f.term
            .sort_by_key(|t| mes_protocol::record::documents::fold(&t.fr));
        f.term
    })
}

/// Terms whose name or explanation in `lang` contains `filter` (case and accents
/// ignored), with their position in [`terms`].
pub fn matching(lang: Lang, filter: &str) -> Vec<usize> {
    let f = mes_protocol::record::documents::fold(filter.trim());
    terms()
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            let (term, plain) = t.in_lang(lang);
            f.is_empty()
                || mes_protocol::record::documents::fold(&format!("{term} {plain}")).contains(&f)
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_a_hundred_terms_each_explained_in_both_languages() {
        let t = terms();
        assert!(t.len() >= 100, "{} terms", t.len());
        let mut seen = std::collections::HashSet::new();
        for term in t {
            assert!(seen.insert(term.fr.clone()), "{} twice", term.fr);
            for s in [&term.fr, &term.en, &term.fr_plain, &term.en_plain] {
                assert!(!s.trim().is_empty(), "an empty field in {}", term.fr);
            }
        }
        assert!(!matching(Lang::Fr, "anemie").is_empty(), "accents ignored");
        assert!(!matching(Lang::En, "blood").is_empty());
    }
}
