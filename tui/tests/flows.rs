//! Key-driven flows through the pure core, as a person types them: each key goes through
//! the keymap and `update`; the requests it answers are what the shell would send; the
//! daemon's answers are fed back as it would.

mod fixture;

use mes_protocol::wire::api::{ApiCall, ApiReply};
use mes_tui::app::action::{Action, Request, Slot};
use mes_tui::app::i18n::Lang;
use mes_tui::app::keymap::action_for;
use mes_tui::app::state::{FormKind, Screen, State};
use mes_tui::app::update::update;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn key(s: &mut State, code: KeyCode) -> Vec<Request> {
    let ev = KeyEvent::new(code, KeyModifiers::NONE);
    match action_for(s, ev) {
        Some(a) => update(s, a),
        None => vec![],
    }
}

fn typed(s: &mut State, text: &str) -> Vec<Request> {
    text.chars()
        .flat_map(|c| key(s, KeyCode::Char(c)))
        .collect()
}

#[test]
fn search_as_you_type_with_filters() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('3'));
    assert_eq!(s.screen, Screen::Documents);
    key(&mut s, KeyCode::Char('/'));
    let sent = typed(&mut s, "genou auteur:dialo");
    assert_eq!(sent.len(), "genou auteur:dialo".len(), "one query per key");
    let ApiCall::DocSearch { query } = &sent.last().unwrap().call else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (query.text.as_str(), query.author.as_str()),
        ("genou", "dialo")
    );
    assert!(query.limit > 0 && query.excerpts);
    // 'q' typed into the box is text, not quit.
    typed(&mut s, " q");
    assert!(!s.quit && s.docs.input.ends_with(" q"));
    key(&mut s, KeyCode::Backspace);
    key(&mut s, KeyCode::Backspace);
    let radio = fixture::documents()[3].clone();
    update(
        &mut s,
        Action::Answer(
            Slot::Docs,
            Ok(ApiReply::Documents {
                total: 1,
                docs: vec![radio.clone()],
            }),
        ),
    );
    key(&mut s, KeyCode::Enter);
    assert!(!s.docs.typing);
    assert_eq!(
        s.selected_doc().map(|d| d.id.as_str()),
        Some(radio.id.as_str())
    );
    // A malformed date typed shows the daemon's error on the list, and nothing breaks.
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, " depuis:hier");
    update(
        &mut s,
        Action::Answer(Slot::Docs, Err("from \"hier\" is not a date".into())),
    );
    assert!(s.docs.error.as_deref().unwrap().contains("hier"));
}

#[test]
fn hide_and_show_again() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('3'));
    key(&mut s, KeyCode::Right);
    let target = s.selected_doc().unwrap().clone();
    assert!(!target.visibility.hidden_from_professionals);
    let sent = key(&mut s, KeyCode::Char('m'));
    assert_eq!(
        sent.iter().map(|r| &r.call).collect::<Vec<_>>(),
        vec![&ApiCall::DocHide {
            id: target.id.clone(),
            hidden: true
        }]
    );
    let mut hidden = target.clone();
    hidden.visibility.hidden_from_professionals = true;
    let reload = update(
        &mut s,
        Action::Answer(Slot::Command, Ok(ApiReply::Document(Box::new(hidden)))),
    );
    assert!(s.notice.as_ref().unwrap().text.contains("masqué"));
    assert!(
        reload.iter().any(|r| r.slot == Slot::Docs),
        "the list is asked again"
    );
}

#[test]
fn add_a_document_from_a_path_and_a_refusal_keeps_the_form() {
    let mut s = fixture::state(Lang::En, false);
    key(&mut s, KeyCode::Char('3'));
    key(&mut s, KeyCode::Char('a'));
    assert!(matches!(
        s.form.as_ref().unwrap().kind,
        FormKind::AddDocument
    ));
    typed(&mut s, "/tmp/bilan.txt");
    key(&mut s, KeyCode::Tab);
    typed(&mut s, "Bilan");
    let sent = key(&mut s, KeyCode::Enter);
    let ApiCall::DocAdd { doc } = &sent[0].call else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (
            doc.path.as_str(),
            doc.title.as_str(),
            doc.category.as_str(),
            doc.date.as_str()
        ),
        ("/tmp/bilan.txt", "Bilan", "reports", "2026-12-01")
    );
    update(
        &mut s,
        Action::Answer(Slot::Command, Err("cannot read /tmp/bilan.txt".into())),
    );
    let form = s.form.as_ref().expect("a refusal keeps the form open");
    assert!(form.error.as_deref().unwrap().contains("cannot read"));
    key(&mut s, KeyCode::Esc);
    assert!(s.form.is_none());
}

#[test]
fn switch_profile_asks_everything_for_the_new_space() {
    let mut s = fixture::state(Lang::Fr, false);
    let (own, child) = fixture::spaces();
    assert_eq!(s.space, Some(own), "the person's own space is shown first");
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Down);
    let sent = key(&mut s, KeyCode::Enter);
    assert_eq!(s.space, Some(child));
    assert!(
        s.home_docs.is_empty() && s.profile.is_none(),
        "nothing of the other space stays"
    );
    assert!(sent.len() >= 6 && sent.iter().all(|r| r.space == Some(child)));
    assert!(!s.ready(), "until the new space's answers arrive");
}

#[test]
fn a_change_pushed_by_the_daemon_reloads_the_space_without_a_key() {
    let mut s = fixture::state(Lang::Fr, false);
    let (own, child) = fixture::spaces();
    let volume = "ab".repeat(16).parse().unwrap();
    let sent = update(
        &mut s,
        Action::Event(mes_protocol::wire::api::ApiEvent::VolumeChanged { space: own, volume }),
    );
    assert!(sent.iter().any(|r| r.slot == Slot::HomeDocs));
    let other = update(
        &mut s,
        Action::Event(mes_protocol::wire::api::ApiEvent::VolumeChanged {
            space: child,
            volume,
        }),
    );
    assert!(
        !other.iter().any(|r| r.slot == Slot::HomeDocs),
        "another space's change only updates the list of spaces"
    );
    update(
        &mut s,
        Action::Event(mes_protocol::wire::api::ApiEvent::Connection { online: false }),
    );
    assert!(!s.status.as_ref().unwrap().online);
}

#[test]
fn settings_change_language_and_are_marked_for_saving() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('9'));
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.settings.lang, Lang::En);
    assert!(s.settings_dirty);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Enter);
    assert!(s.settings.linear);
}

#[test]
fn coalescing_keeps_the_newest_query_and_every_command() {
    use mes_tui::app::shell::coalesce;
    let s = fixture::state(Lang::Fr, false);
    let r = |slot, call| Request {
        slot,
        space: s.space,
        call,
    };
    let q = |text: &str| ApiCall::DocSearch {
        query: mes_protocol::record::documents::DocQuery {
            text: text.into(),
            ..Default::default()
        },
    };
    let out = coalesce(
        [
            r(Slot::Docs, q("g")),
            r(
                Slot::Command,
                ApiCall::DocHide {
                    id: "a".into(),
                    hidden: true,
                },
            ),
            r(Slot::Docs, q("ge")),
            r(
                Slot::Command,
                ApiCall::DocHide {
                    id: "b".into(),
                    hidden: true,
                },
            ),
            r(Slot::Docs, q("gen")),
        ]
        .into(),
    );
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].call, q("gen"));
}

#[test]
fn open_a_thread_marks_it_read_and_reply_in_it() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('4'));
    let read = key(&mut s, KeyCode::Enter);
    assert_eq!(
        read.iter().map(|r| &r.call).collect::<Vec<_>>(),
        vec![&ApiCall::MessageRead { id: "m1".into() }],
        "opening the thread marks its unread message read"
    );
    key(&mut s, KeyCode::Char('r'));
    assert!(matches!(
        s.form.as_ref().unwrap().kind,
        FormKind::Reply { .. }
    ));
    assert!(
        key(&mut s, KeyCode::Enter).is_empty(),
        "an empty reply is not sent"
    );
    assert!(s.form.as_ref().unwrap().error.is_some());
    typed(&mut s, "Merci docteur");
    let sent = key(&mut s, KeyCode::Enter);
    let ApiCall::MessagePost { message, subject } = &sent[0].call else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (
            message.thread.as_str(),
            message.body.as_str(),
            subject.as_str()
        ),
        ("th1", "Merci docteur", "")
    );
    update(&mut s, Action::Answer(Slot::Command, Ok(ApiReply::Done)));
    assert!(s.form.is_none());
    assert_eq!(s.notice.as_ref().unwrap().text, "Message envoyé.");
    // The person's own message, as the daemon records it, is never "unread".
    let before = s.unread();
    let own = mes_protocol::record::messages::Message {
        id: "m2".into(),
        thread: "th1".into(),
        from: "me".into(),
        body: "Merci docteur".into(),
        ..Default::default()
    };
    s.messages
        .as_mut()
        .unwrap()
        .messages
        .insert("m2".into(), own);
    assert_eq!(s.unread(), before);
}

#[test]
fn flag_an_access_as_suspicious_and_the_alarm_comes_first() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('6'));
    assert_eq!(s.screen, Screen::Access);
    // Newest first: the cursor starts on entry 2; down moves to entry 1.
    key(&mut s, KeyCode::Down);
    let sent = key(&mut s, KeyCode::Char('f'));
    assert!(
        matches!(sent.as_slice(), [r] if r.call == ApiCall::FlagAccess { seq: 1 }),
        "{sent:?}"
    );
    // A history event asks for the history only.
    let space = s.space.unwrap();
    let sent = update(
        &mut s,
        Action::Event(mes_protocol::wire::api::ApiEvent::AccessHistory { space }),
    );
    assert!(
        matches!(sent.as_slice(), [r] if r.call == ApiCall::AccessHistory),
        "{sent:?}"
    );
    // With an alarm, it is the first row, and flagging it does nothing.
    let mut h = s.history.clone();
    h.alarm = Some("access history has a gap: expected entry 3, got 4".into());
    update(
        &mut s,
        Action::Answer(Slot::History, Ok(ApiReply::AccessHistory(h))),
    );
    key(&mut s, KeyCode::Home);
    assert!(key(&mut s, KeyCode::Char('f')).is_empty());
    let page = mes_tui::app::view::access::page(&s);
    let first = &page.sections[0];
    assert!(
        format!("{first:?}").contains("expected entry 3"),
        "{first:?}"
    );
}

#[test]
fn a_parent_activates_a_child_awaiting_a_decision_with_the_password_never_drawn() {
    let mut s = fixture::state(Lang::Fr, false);
    key(&mut s, KeyCode::Char('7'));
    // Own space, Mathis, then Lola awaiting a decision: Enter opens her activation.
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Down);
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    let form = s.form.as_ref().expect("the activation form");
    assert_eq!(form.kind, FormKind::EnrolActivate);
    assert_eq!(form.fields[0].1, "Lola");
    assert_eq!(form.fields[1].1, "2170697412388", "her card, as followed");
    for _ in 0..3 {
        key(&mut s, KeyCode::Tab);
    }
    typed(&mut s, "123456789ABC");
    key(&mut s, KeyCode::Tab);
    typed(&mut s, "lola.payet");
    key(&mut s, KeyCode::Tab);
    typed(&mut s, "Lola-2015!");
    let drawn = {
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
        t.draw(|f| mes_tui::app::draw::draw(&s, f)).unwrap();
        format!("{:?}", t.backend().buffer())
    };
    assert!(!drawn.contains("Lola-2015!"), "the password is masked");
    assert!(drawn.contains("••••••••••"), "its length shows");
    let sent = key(&mut s, KeyCode::Enter);
    let ApiCall::EnrolFor { profile, request } = &sent[0].call else {
        panic!("{sent:?}")
    };
    assert_eq!(profile, "Lola");
    let mes_protocol::enrolment::EnrolRequest::Activate {
        holder,
        code,
        identifier,
        password,
        ..
    } = request
    else {
        panic!("{request:?}")
    };
    assert_eq!(
        (
            holder.vitale_serial.as_str(),
            code.as_str(),
            identifier.as_str(),
            password.as_str()
        ),
        ("VIT0003", "123456789ABC", "lola.payet", "Lola-2015!")
    );
    // A refusal keeps the form; the hub's answer closes it and reloads the profiles.
    update(
        &mut s,
        Action::Answer(
            Slot::Command,
            Err("the code is wrong: 4 attempt(s) left".into()),
        ),
    );
    assert!(s.form.as_ref().unwrap().error.is_some());
    let sent = update(
        &mut s,
        Action::Answer(
            Slot::Command,
            Ok(ApiReply::Enrolment(mes_protocol::enrolment::EnrolStatus {
                status: "activated".into(),
                detail: "Activé le 02/12/2026 / Activated on 02/12/2026".into(),
            })),
        ),
    );
    assert!(s.form.is_none());
    assert!(s.notice.as_ref().unwrap().text.starts_with("Lola : Activé"));
    assert!(sent.iter().any(|r| r.call == ApiCall::EnrolProfiles));
    // `o` on a profile opens the opposition with the code only; `n` follows a new one.
    key(&mut s, KeyCode::Char('o'));
    assert_eq!(s.form.as_ref().unwrap().kind, FormKind::EnrolOppose);
    assert_eq!(s.form.as_ref().unwrap().fields.len(), 4);
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('n'));
    let f = s.form.as_ref().unwrap();
    assert_eq!(
        (f.kind.clone(), f.fields[0].1.as_str()),
        (FormKind::EnrolFollow, "")
    );
}

#[test]
fn allow_a_service_some_data_and_revoke_it() {
    let mut s = fixture::state(Lang::En, false);
    key(&mut s, KeyCode::Char('8'));
    assert_eq!(s.screen, Screen::Catalogue);
    // Vaccins en famille, not allowed yet: `x` does nothing, `a` offers all its data.
    key(&mut s, KeyCode::Down);
    assert!(key(&mut s, KeyCode::Char('x')).is_empty());
    key(&mut s, KeyCode::Char('a'));
    let f = s.form.as_ref().unwrap();
    assert_eq!(f.fields[0].1, "prevention");
    let sent = key(&mut s, KeyCode::Enter);
    assert_eq!(
        sent[0].call,
        ApiCall::AllowService {
            service: "vaccins-famille".into(),
            data: vec!["prevention".into()],
        }
    );
    key(&mut s, KeyCode::Esc);
    // Tensio Suivi is allowed: `x` revokes it.
    key(&mut s, KeyCode::Up);
    let sent = key(&mut s, KeyCode::Char('x'));
    assert_eq!(
        sent[0].call,
        ApiCall::RevokeService {
            service: "tensio-suivi".into()
        }
    );
}
