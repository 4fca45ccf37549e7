//! Message catalogues (F11.1): `tui/i18n/fr.toml` and `en.toml`, flat dotted keys. French
//! is the default; English is complete (a test fails when either lacks a key the code
//! uses). A missing key shows as itself, never as an empty string.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A language of the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Français (the default).
    #[default]
    Fr,
    /// English.
    En,
}

impl Lang {
    /// The language a locale names (`LC_ALL`, `LC_MESSAGES`, `LANG`): English for `en*`,
    /// French otherwise.
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("en") {
            Lang::En
        } else {
            Lang::Fr
        }
    }

    /// The language of the environment's locale.
    pub fn from_env() -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .map_or(Lang::Fr, |l| Lang::from_locale(&l))
    }

    /// The other language.
    pub fn other(self) -> Lang {
        match self {
            Lang::Fr => Lang::En,
            Lang::En => Lang::Fr,
        }
    }
}

/// One catalogue: key to text.
pub type Catalogue = HashMap<String, String>;

const FR: &str = include_str!("../../i18n/fr.toml");
const EN: &str = include_str!("../../i18n/en.toml");

/// Parses a catalogue, flattening tables into dotted keys.
pub fn parse(text: &str) -> Result<Catalogue, String> {
    fn flatten(prefix: &str, t: &toml::Table, out: &mut Catalogue) -> Result<(), String> {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                toml::Value::Table(t) => flatten(&key, t, out)?,
                other => return Err(format!("{key}: expected text, found {}", other.type_str())),
            }
        }
        Ok(())
    }
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = Catalogue::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

/// The built-in catalogue of a language.
pub fn catalogue(lang: Lang) -> &'static Catalogue {
    static CATALOGUES: OnceLock<[Catalogue; 2]> = OnceLock::new();
    let all = CATALOGUES.get_or_init(|| {
        [
            parse(FR).expect("tui/i18n/fr.toml parses"),
            parse(EN).expect("tui/i18n/en.toml parses"),
        ]
    });
    match lang {
        Lang::Fr => &all[0],
        Lang::En => &all[1],
    }
}

/// The text of `key` in `lang` (the key itself when missing, kept once per key so a
/// missing key shows instead of an empty string).
pub fn tr(lang: Lang, key: &str) -> &'static str {
    if let Some(v) = catalogue(lang).get(key) {
        return v.as_str();
    }
    static MISSING: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut missing = MISSING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = missing.iter().find(|k| **k == key) {
        return k;
    }
    let k: &'static str = Box::leak(key.to_string().into_boxed_str());
    missing.push(k);
    k
}

/// `tr` with `{name}` placeholders filled in.
pub fn trf(lang: Lang, key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut s = tr(lang, key).to_string();
    for (name, value) in args {
        s = s.replace(&format!("{{{name}}}"), &value.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Every literal key passed to `tr`/`trf`/`t`/`tf` in the app's sources.
    fn keys_used() -> BTreeSet<String> {
        fn walk(dir: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let src = std::fs::read_to_string(&p).unwrap();
                    for pat in [
                        "t(\"",
                        "tf(\"",
                        "tr(lang, \"",
                        "trf(lang, \"",
                        "tr(l, \"",
                        "trf(l, \"",
                    ] {
                        for (i, _) in src.match_indices(pat) {
                            let rest = &src[i + pat.len()..];
                            let key = &rest[..rest.find('"').unwrap()];
                            if key.contains('.') && !key.contains(' ') {
                                out.insert(key.to_string());
                            }
                        }
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app"),
            &mut out,
        );
        out
    }

    /// What is wrong with a pair of catalogues against the keys the code uses: keys in
    /// one language only, keys used but in neither, empty English texts.
    fn catalogue_problems<V: AsRef<str>>(
        fr: &BTreeMap<String, V>,
        en: &BTreeMap<String, V>,
        used: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for k in fr.keys().filter(|k| !en.contains_key(*k)) {
            problems.push(format!("missing from en.toml: {k}"));
        }
        for k in en.keys().filter(|k| !fr.contains_key(*k)) {
            problems.push(format!("missing from fr.toml: {k}"));
        }
        for k in used.iter().filter(|k| !fr.contains_key(*k)) {
            problems.push(format!("used but in no catalogue: {k}"));
        }
        for (k, v) in en {
            if v.as_ref().trim().is_empty() {
                problems.push(format!("en {k} is empty"));
            }
        }
        problems
    }

    fn sorted(lang: Lang) -> BTreeMap<String, String> {
        catalogue(lang)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn both_catalogues_have_the_same_keys_and_every_key_the_code_uses() {
        let used = keys_used();
        assert!(used.len() > 50, "the scan finds the keys ({})", used.len());
        let problems = catalogue_problems(&sorted(Lang::Fr), &sorted(Lang::En), &used);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_check_catches_a_missing_key() {
        // The control: the same check, on catalogues with one planted fault each, fails
        // and names it.
        let used = keys_used();
        let victim = used.iter().next().unwrap().clone();
        let (fr, en) = (sorted(Lang::Fr), sorted(Lang::En));
        let mut no_fr = fr.clone();
        no_fr.remove(&victim);
        let problems = catalogue_problems(&no_fr, &en, &used);
        assert!(
            problems.contains(&format!("missing from fr.toml: {victim}"))
                && problems.contains(&format!("used but in no catalogue: {victim}")),
            "{problems:?}"
        );
        let mut empty_en = en.clone();
        empty_en.insert(victim.clone(), " ".into());
        assert_eq!(
            catalogue_problems(&fr, &empty_en, &used),
            vec![format!("en {victim} is empty")]
        );
    }

    #[test]
    fn locale_picks_english_only_for_en() {
        assert_eq!(Lang::from_locale("en_GB.UTF-8"), Lang::En);
        assert_eq!(Lang::from_locale("fr_FR.UTF-8"), Lang::Fr);
        assert_eq!(Lang::from_locale("C.UTF-8"), Lang::Fr);
        assert_eq!(trf(Lang::En, "no.such.key", &[]), "no.such.key");
    }
}
