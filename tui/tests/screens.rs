//! Every screen drawn on ratatui's `TestBackend` from a fixed state, compared with the
//! committed snapshots (`tui/tests/snapshots`): Home in French, in English and in linear
//! mode, then each screen, overlay and form. Review changes with `cargo insta review`.

mod fixture;

use mes_tui::app::action::{Action, Move};
use mes_tui::app::draw::draw;
use mes_tui::app::i18n::Lang;
use mes_tui::app::state::{Screen, State};
use mes_tui::app::theme::ThemeName;
use mes_tui::app::update::update;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The screen as text, one line per row.
fn screen(s: &State) -> String {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| draw(s, f)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

fn on(screen: Screen, lang: Lang) -> State {
    let mut s = fixture::state(lang, false);
    update(&mut s, Action::Goto(screen));
    s
}

#[test]
fn home_in_french_english_and_linear_mode() {
    insta::assert_snapshot!("home_fr", screen(&on(Screen::Home, Lang::Fr)));
    insta::assert_snapshot!("home_en", screen(&on(Screen::Home, Lang::En)));
    let linear = fixture::state(Lang::Fr, true);
    let text = screen(&linear);
    for box_drawing in ['┌', '│', '─', '└'] {
        assert!(!text.contains(box_drawing), "linear mode draws no boxes");
    }
    insta::assert_snapshot!("home_linear_fr", text);
}

#[test]
fn every_screen() {
    for (name, sc) in [
        ("profile", Screen::Profile),
        ("documents", Screen::Documents),
        ("messages", Screen::Messages),
        ("agenda_month", Screen::Agenda),
        ("access", Screen::Access),
        ("relatives", Screen::Relatives),
        ("catalogue", Screen::Catalogue),
        ("settings", Screen::Settings),
        ("help", Screen::Help),
    ] {
        insta::assert_snapshot!(name, screen(&on(sc, Lang::Fr)));
    }
    let mut s = on(Screen::Agenda, Lang::En);
    update(&mut s, Action::ToggleAgendaView);
    insta::assert_snapshot!("agenda_list_en", screen(&s));
}

#[test]
fn profile_sections_and_the_measurement_chart() {
    let mut s = on(Screen::Profile, Lang::Fr);
    for _ in 0..3 {
        update(&mut s, Action::Move(Move::Down));
    }
    insta::assert_snapshot!("profile_allergies", screen(&s));
    update(&mut s, Action::Move(Move::Down));
    update(&mut s, Action::Move(Move::Down));
    let chart = screen(&s);
    assert!(
        chart.contains("24 mesures"),
        "the chart says itself in words:\n{chart}"
    );
    insta::assert_snapshot!("profile_measurements", chart);
}

#[test]
fn overlays_forms_and_the_tutorial() {
    let mut s = on(Screen::Documents, Lang::Fr);
    update(&mut s, Action::ToggleHelp);
    insta::assert_snapshot!("keys_documents", screen(&s));
    update(&mut s, Action::Back);
    update(&mut s, Action::AddDocument);
    insta::assert_snapshot!("add_document_form", screen(&s));

    let mut first_run = on(Screen::Home, Lang::En);
    first_run.settings.tutorial_done = false;
    first_run.overlay = Some(mes_tui::app::state::Overlay::Tutorial(0));
    insta::assert_snapshot!("tutorial_en", screen(&first_run));
}

#[test]
fn themes_never_rely_on_colour_alone() {
    // The same text in every theme: markers and words carry the state, colour only adds.
    let base = screen(&on(Screen::Documents, Lang::Fr));
    for theme in ThemeName::ALL {
        let mut s = on(Screen::Documents, Lang::Fr);
        s.settings.theme = theme;
        assert_eq!(screen(&s), base, "{theme:?}");
    }
    assert!(base.contains("▶ Tous"), "the selection is marked");
    assert!(base.contains("[masqué]"), "a hidden document says so");
}

#[test]
fn a_narrow_terminal_keeps_every_screen_reachable() {
    let mut s = on(Screen::Documents, Lang::Fr);
    s.size = (60, 20);
    let text = screen(&s);
    let top = text.lines().next().unwrap();
    assert!(
        top.contains("[3 Documents]") && top.contains(" 9 ") && top.ends_with(" 0"),
        "{top}"
    );
}
