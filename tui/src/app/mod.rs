//! The TUI: a pure core and a thin shell.
//!
//! - [`state::State`] is everything on screen; [`action::Action`] is everything that can
//!   happen (a key, a daemon reply, a change pushed by the daemon, a tick);
//!   [`update::update`] applies an action and answers the daemon [`action::Request`]s to
//!   make. It never waits on the daemon: replies come back later as actions.
//! - [`draw::draw`] is a pure `(&State, &mut Frame)`: each screen builds a
//!   [`view::Page`] (sections of items, text and charts), drawn boxed or, in linear
//!   mode, one item per line for screen readers (F11.2).
//! - [`keymap`] binds keys to actions as data; [`i18n`] holds the French and English
//!   catalogues (F11.1); [`lexicon`] the plain-language medical terms.
//! - [`shell::run`] owns the terminal: a thread reading keys, one connection running
//!   requests, one subscribed to the daemon's events, and a frame drawn after each batch.

pub mod action;
pub mod draw;
pub mod i18n;
pub mod keymap;
pub mod lexicon;
pub mod search_syntax;
pub mod settings;
pub mod shell;
pub mod state;
pub mod theme;
pub mod update;
pub mod view;
