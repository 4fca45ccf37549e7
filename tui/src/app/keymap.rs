//! Keys as data: each binding names its key, where it applies, the action, and the
//! catalogue key of its description (the keys overlay and Help list them from here).
//!
//! Lookup order: Ctrl-C always quits; a form or a search box takes typed characters
//! (`TYPING`); an overlay takes Esc and Enter; then the screen's own bindings, then the
//! global ones.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Move};
use super::state::{Screen, State};

/// A key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character.
    Char(char),
    /// A special key.
    Code(KeyCode),
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere (outside typing).
    Global,
    /// On one screen.
    On(Screen),
    /// While typing in a form or a search box.
    Typing,
}

/// One binding.
#[derive(Debug)]
pub struct Binding {
    /// The key.
    pub key: Key,
    /// Where.
    pub context: Context,
    /// What it does.
    pub action: Action,
    /// Catalogue key of its description.
    pub help: &'static str,
}

const fn b(key: Key, context: Context, action: Action, help: &'static str) -> Binding {
    Binding {
        key,
        context,
        action,
        help,
    }
}

use Context::{Global, On, Typing};
use Key::{Char, Code};

/// Every binding.
pub static KEYMAP: &[Binding] = &[
    b(Char('q'), Global, Action::Quit, "keys.quit"),
    b(Char('?'), Global, Action::ToggleHelp, "keys.help"),
    b(
        Code(KeyCode::Tab),
        Global,
        Action::NextScreen,
        "keys.next_screen",
    ),
    b(
        Code(KeyCode::BackTab),
        Global,
        Action::PrevScreen,
        "keys.prev_screen",
    ),
    b(
        Char('1'),
        Global,
        Action::Goto(Screen::Home),
        "keys.goto_home",
    ),
    b(
        Char('2'),
        Global,
        Action::Goto(Screen::Profile),
        "keys.goto_profile",
    ),
    b(
        Char('3'),
        Global,
        Action::Goto(Screen::Documents),
        "keys.goto_documents",
    ),
    b(
        Char('4'),
        Global,
        Action::Goto(Screen::Messages),
        "keys.goto_messages",
    ),
    b(
        Char('5'),
        Global,
        Action::Goto(Screen::Agenda),
        "keys.goto_agenda",
    ),
    b(
        Char('6'),
        Global,
        Action::Goto(Screen::Access),
        "keys.goto_access",
    ),
    b(
        Char('7'),
        Global,
        Action::Goto(Screen::Relatives),
        "keys.goto_relatives",
    ),
    b(
        Char('8'),
        Global,
        Action::Goto(Screen::Catalogue),
        "keys.goto_catalogue",
    ),
    b(
        Char('9'),
        Global,
        Action::Goto(Screen::Settings),
        "keys.goto_settings",
    ),
    b(
        Char('0'),
        Global,
        Action::Goto(Screen::Help),
        "keys.goto_help",
    ),
    b(Code(KeyCode::Up), Global, Action::Move(Move::Up), "keys.up"),
    b(Char('k'), Global, Action::Move(Move::Up), "keys.up"),
    b(
        Code(KeyCode::Down),
        Global,
        Action::Move(Move::Down),
        "keys.down",
    ),
    b(Char('j'), Global, Action::Move(Move::Down), "keys.down"),
    b(
        Code(KeyCode::PageUp),
        Global,
        Action::Move(Move::PageUp),
        "keys.page_up",
    ),
    b(
        Code(KeyCode::PageDown),
        Global,
        Action::Move(Move::PageDown),
        "keys.page_down",
    ),
    b(
        Code(KeyCode::Home),
        Global,
        Action::Move(Move::First),
        "keys.first",
    ),
    b(
        Code(KeyCode::End),
        Global,
        Action::Move(Move::Last),
        "keys.last",
    ),
    b(
        Code(KeyCode::Right),
        Global,
        Action::NextPane,
        "keys.next_pane",
    ),
    b(
        Code(KeyCode::Left),
        Global,
        Action::PrevPane,
        "keys.prev_pane",
    ),
    b(
        Code(KeyCode::Enter),
        Global,
        Action::Activate,
        "keys.activate",
    ),
    b(Code(KeyCode::Esc), Global, Action::Back, "keys.back"),
    b(Char('R'), Global, Action::Refresh, "keys.refresh"),
    b(
        Char('/'),
        On(Screen::Documents),
        Action::Search,
        "keys.search",
    ),
    b(
        Char('m'),
        On(Screen::Documents),
        Action::ToggleHidden,
        "keys.hide",
    ),
    b(
        Char('a'),
        On(Screen::Documents),
        Action::AddDocument,
        "keys.add",
    ),
    b(
        Char('s'),
        On(Screen::Documents),
        Action::SaveDocument,
        "keys.save",
    ),
    b(Char('r'), On(Screen::Messages), Action::Reply, "keys.reply"),
    b(
        Char('a'),
        On(Screen::Relatives),
        Action::EnrolActivate,
        "keys.enrol_activate",
    ),
    b(
        Char('o'),
        On(Screen::Relatives),
        Action::EnrolOppose,
        "keys.enrol_oppose",
    ),
    b(
        Char('n'),
        On(Screen::Relatives),
        Action::EnrolFollow,
        "keys.enrol_follow",
    ),
    b(
        Char('a'),
        On(Screen::Catalogue),
        Action::AllowService,
        "keys.allow_service",
    ),
    b(
        Char('x'),
        On(Screen::Catalogue),
        Action::RevokeService,
        "keys.revoke_service",
    ),
    b(
        Char('f'),
        On(Screen::Access),
        Action::FlagAccess,
        "keys.flag",
    ),
    b(
        Char('v'),
        On(Screen::Agenda),
        Action::ToggleAgendaView,
        "keys.agenda_view",
    ),
    b(
        Char('['),
        On(Screen::Agenda),
        Action::Previous,
        "keys.prev_month",
    ),
    b(
        Char(']'),
        On(Screen::Agenda),
        Action::Next,
        "keys.next_month",
    ),
    b(
        Char('['),
        On(Screen::Profile),
        Action::Previous,
        "keys.prev_kind",
    ),
    b(
        Char(']'),
        On(Screen::Profile),
        Action::Next,
        "keys.next_kind",
    ),
    b(
        Char('/'),
        On(Screen::Help),
        Action::Search,
        "keys.lexicon_search",
    ),
    b(
        Code(KeyCode::Enter),
        Typing,
        Action::Activate,
        "keys.submit",
    ),
    b(
        Code(KeyCode::Esc),
        Typing,
        Action::Back,
        "keys.cancel_search",
    ),
    b(
        Code(KeyCode::Tab),
        Typing,
        Action::NextPane,
        "keys.next_field",
    ),
    b(
        Code(KeyCode::BackTab),
        Typing,
        Action::PrevPane,
        "keys.prev_field",
    ),
    b(
        Code(KeyCode::Backspace),
        Typing,
        Action::Backspace,
        "keys.backspace",
    ),
    b(Code(KeyCode::Up), Typing, Action::Move(Move::Up), "keys.up"),
    b(
        Code(KeyCode::Down),
        Typing,
        Action::Move(Move::Down),
        "keys.down",
    ),
    b(
        Code(KeyCode::PageUp),
        Typing,
        Action::Move(Move::PageUp),
        "keys.page_up",
    ),
    b(
        Code(KeyCode::PageDown),
        Typing,
        Action::Move(Move::PageDown),
        "keys.page_down",
    ),
];

/// Whether typed characters go into an input now.
pub fn typing(s: &State) -> bool {
    s.form.is_some() || s.docs.typing || s.lexicon_typing
}

fn find(key: Key, context: Context) -> Option<Action> {
    KEYMAP
        .iter()
        .find(|b| b.key == key && b.context == context)
        .map(|b| b.action.clone())
}

/// The action a key press stands for in this state.
pub fn action_for(s: &State, ev: KeyEvent) -> Option<Action> {
    if ev.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(ev.code, KeyCode::Char('c' | 'q')).then_some(Action::Quit);
    }
    let key = match ev.code {
        KeyCode::Char(c) => Char(c),
        other => Code(other),
    };
    if typing(s) {
        return match key {
            Char(c) => Some(Action::Input(c)),
            k => find(k, Typing),
        };
    }
    if s.overlay.is_some() {
        return match key {
            Code(KeyCode::Enter) | Char(' ') => Some(Action::Activate),
            Code(KeyCode::Esc) | Char('?') | Char('q') => Some(Action::Back),
            _ => None,
        };
    }
    find(key, On(s.screen)).or_else(|| find(key, Global))
}

/// The bindings the keys overlay shows on a screen: the screen's, then the global ones,
/// one per description.
pub fn shown_on(screen: Screen) -> Vec<&'static Binding> {
    let mut seen = std::collections::HashSet::new();
    KEYMAP
        .iter()
        .filter(|b| b.context == On(screen))
        .chain(KEYMAP.iter().filter(|b| b.context == Global))
        .filter(|b| seen.insert(b.help))
        .collect()
}

/// Every binding once per description and context, for Help.
pub fn all_shown() -> Vec<&'static Binding> {
    let mut seen = std::collections::HashSet::new();
    KEYMAP
        .iter()
        .filter(|b| seen.insert((b.help, b.context)))
        .collect()
}

/// A key as the overlay writes it.
pub fn key_name(k: Key) -> String {
    match k {
        Char(' ') => "Espace/Space".into(),
        Char(c) => c.to_string(),
        Code(KeyCode::Tab) => "Tab".into(),
        Code(KeyCode::BackTab) => "Maj+Tab".into(),
        Code(KeyCode::Up) => "↑".into(),
        Code(KeyCode::Down) => "↓".into(),
        Code(KeyCode::Left) => "←".into(),
        Code(KeyCode::Right) => "→".into(),
        Code(KeyCode::PageUp) => "PgUp".into(),
        Code(KeyCode::PageDown) => "PgDn".into(),
        Code(KeyCode::Home) => "Début/Home".into(),
        Code(KeyCode::End) => "Fin/End".into(),
        Code(KeyCode::Enter) => "Entrée/Enter".into(),
        Code(KeyCode::Esc) => "Échap/Esc".into(),
        Code(KeyCode::Backspace) => "⌫".into(),
        Code(other) => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                assert!(
                    !(a.key == b.key && a.context == b.context),
                    "{:?} bound twice in {:?}",
                    a.key,
                    a.context
                );
            }
        }
    }
}
