//! `update`: applies one action to the state and answers the requests it needs. Pure: no
//! IO, no waiting; replies come back as `Action::Answer`.
//!
//! Over 600 lines: the client's one pure update over every action, tested as a whole.

use mes_protocol::record::codes::Codes;
use mes_protocol::record::documents::{DocQuery, NewDocument};
use mes_protocol::record::measurements::MeasureQuery;
use mes_protocol::record::messages::Message;
use mes_protocol::record::{RecordBody, RecordKind};
use mes_protocol::wire::api::{ApiCall, ApiEvent, ApiReply};

use super::action::{Action, Move, Request, Slot};
use super::search_syntax;
use super::state::{
    Form, FormKind, Link, Notice, Overlay, ProfileSection, Screen, State, DOC_PAGE,
    OWN_SPACE_LABEL, TUTORIAL_STEPS,
};

/// How many ticks (seconds) a notice stays.
const NOTICE_TICKS: u8 = 6;
/// How often (ticks) the sync state is asked again, for pending uploads.
const STATUS_EVERY: u64 = 2;
/// Home's count of latest documents.
const HOME_DOCS: u32 = 8;
/// The settings rows, in screen order.
pub const SETTINGS_ROWS: usize = 5;

fn req(slot: Slot, s: &State, call: ApiCall) -> Request {
    Request {
        slot,
        space: s.space,
        call,
    }
}

/// The requests of a first start: sync state, spaces, devices (space data follows once
/// the spaces are known).
pub fn start(s: &State) -> Vec<Request> {
    vec![
        req(Slot::Status, s, ApiCall::Status),
        req(Slot::Spaces, s, ApiCall::ListSpaces),
        req(Slot::Devices, s, ApiCall::ListDevices),
        req(Slot::EnrolProfiles, s, ApiCall::EnrolProfiles),
    ]
}

/// The Documents query for the state: typed text, category pane, page size.
pub fn doc_query(s: &State) -> DocQuery {
    let mut q = search_syntax::parse(&s.docs.input);
    let cat = s.cursor(Screen::Documents, 0);
    if cat > 0 {
        if let Some(c) = Codes::builtin().category.get(cat - 1) {
            q.category = c.id.clone();
        }
    }
    q.limit = s.docs.limit;
    q.excerpts = true;
    q
}

fn docs_request(s: &State) -> Request {
    req(
        Slot::Docs,
        s,
        ApiCall::DocSearch {
            query: doc_query(s),
        },
    )
}

fn measure_request(s: &State) -> Request {
    let kind = Codes::builtin()
        .measurement
        .get(s.measure_kind)
        .map(|k| k.id.clone())
        .unwrap_or_default();
    req(
        Slot::Measurements,
        s,
        ApiCall::MeasureList {
            query: MeasureQuery {
                kind,
                ..Default::default()
            },
        },
    )
}

fn agenda_request(s: &State) -> Request {
    let (y, m) = s.month;
    req(
        Slot::Agenda,
        s,
        ApiCall::AgendaList {
            from: format!("{y:04}-{m:02}-01"),
            months: 12,
        },
    )
}

/// Everything shown about the current space.
fn space_requests(s: &State) -> Vec<Request> {
    let record = |slot, kind| req(slot, s, ApiCall::RecordGet { kind });
    vec![
        req(
            Slot::HomeDocs,
            s,
            ApiCall::DocSearch {
                query: DocQuery {
                    limit: HOME_DOCS,
                    ..Default::default()
                },
            },
        ),
        record(Slot::Care, RecordKind::Care),
        req(Slot::Reminders, s, ApiCall::Reminders { months: 12 }),
        record(Slot::Messages, RecordKind::Messages),
        docs_request(s),
        record(Slot::Profile, RecordKind::Profile),
        record(Slot::Prevention, RecordKind::Prevention),
        record(Slot::Emergency, RecordKind::Emergency),
        measure_request(s),
        agenda_request(s),
        req(Slot::History, s, ApiCall::AccessHistory),
        req(Slot::Consents, s, ApiCall::Consents),
        req(Slot::Notifications, s, ApiCall::Notifications),
        req(Slot::Blocks, s, ApiCall::Blocks),
    ]
}

/// Everything shown about the current space, the catalogue included: its list comes
/// from the relay, so it is asked on a load, a switch or a command, not on every change
/// the daemon reports.
fn space_and_catalogue(s: &State) -> Vec<Request> {
    let mut out = space_requests(s);
    out.push(req(Slot::Catalogue, s, ApiCall::Catalogue));
    out
}

fn notice(s: &mut State, text: String, error: bool) {
    s.notice = Some(Notice {
        text,
        error,
        ttl: NOTICE_TICKS,
    });
}

/// How many items the focused list of a screen has.
fn list_len(s: &State, screen: Screen, pane: u8) -> usize {
    match (screen, pane) {
        (Screen::Home, 0) => s.home_docs.len(),
        (Screen::Home, 1) => s.care.len(),
        (Screen::Home, 2) => s.reminders.len(),
        (Screen::Home, 3) => s.unread() + s.notifications.len(),
        (Screen::Profile, 0) => ProfileSection::ALL.len(),
        (Screen::Profile, 1) => super::view::profile::detail_len(s),
        (Screen::Documents, 0) => Codes::builtin().category.len() + 1,
        (Screen::Documents, 1) => s.docs.page.len(),
        (Screen::Messages, 0) => s.messages.as_ref().map_or(0, |m| m.threads.len()),
        (Screen::Messages, 1) => super::view::messages::thread_messages(s).len(),
        (Screen::Agenda, _) => super::view::agenda::items_shown(s).len(),
        (Screen::Access, 0) => s.history.entries.len() + usize::from(s.history.alarm.is_some()),
        (Screen::Access, 1) => s.consents.len(),
        (Screen::Access, 2) => s.blocks.len(),
        (Screen::Access, 3) => s.devices.len(),
        (Screen::Relatives, _) => super::view::relatives::rows(s).len(),
        (Screen::Catalogue, _) => s.catalogue.len(),
        (Screen::Settings, _) => SETTINGS_ROWS,
        (Screen::Help, 0) => super::keymap::all_shown().len(),
        (Screen::Help, 1) => super::lexicon::matching(s.lang(), &s.lexicon_filter).len(),
        _ => 0,
    }
}

/// The rows a page move jumps.
fn page_rows(s: &State) -> usize {
    usize::from(s.size.1.saturating_sub(8)).max(1)
}

fn move_cursor(s: &mut State, m: Move) -> Vec<Request> {
    let (screen, pane) = (s.screen, s.pane(s.screen));
    let len = list_len(s, screen, pane);
    let cur = s.cursor(screen, pane);
    let last = len.saturating_sub(1);
    let next = match m {
        Move::Up => cur.saturating_sub(1),
        Move::Down => (cur + 1).min(last),
        Move::PageUp => cur.saturating_sub(page_rows(s)),
        Move::PageDown => (cur + page_rows(s)).min(last),
        Move::First => 0,
        Move::Last => last,
    };
    s.cursors.insert((screen, pane), next);
    let mut out = Vec::new();
    match (screen, pane) {
        (Screen::Documents, 0) if next != cur => {
            s.cursors.insert((Screen::Documents, 1), 0);
            s.docs.limit = DOC_PAGE;
            out.push(docs_request(s));
        }
        // Near the end of the loaded page: ask for a longer one.
        (Screen::Documents, 1)
            if next + 20 >= s.docs.page.len()
                && (s.docs.page.len() as u32) < s.docs.total
                && s.docs.limit <= s.docs.page.len() as u32 =>
        {
            s.docs.limit = s
                .docs
                .limit
                .saturating_add(DOC_PAGE.max(page_rows(s) as u32));
            out.push(docs_request(s));
        }
        // A new thread or profile section shows from its top.
        (Screen::Messages | Screen::Profile, 0) => {
            s.cursors.insert((screen, 1), 0);
        }
        _ => {}
    }
    out
}

fn open_form(s: &mut State, kind: FormKind, fields: Vec<(&'static str, String)>) {
    s.form = Some(Form {
        kind,
        fields,
        focus: 0,
        error: None,
    });
}

/// An absolute path from what was typed (`~/` expanded, relative to the working
/// directory).
fn absolute(typed: &str) -> String {
    let typed = typed.trim();
    let p = match typed.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(rest))
            .unwrap_or_else(|| rest.into()),
        None => std::path::PathBuf::from(typed),
    };
    std::path::absolute(&p)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn submit_form(s: &mut State) -> Vec<Request> {
    let Some(f) = &s.form else { return vec![] };
    let value = |i: usize| {
        f.fields
            .get(i)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let call = match &f.kind {
        FormKind::AddDocument => ApiCall::DocAdd {
            doc: NewDocument {
                path: absolute(&value(0)),
                title: value(1),
                category: value(2),
                date: value(3),
                author: value(4),
                ..Default::default()
            },
        },
        FormKind::SaveDocument { id } => ApiCall::DocGet {
            id: id.clone(),
            out: absolute(&value(0)),
        },
        FormKind::EnrolActivate | FormKind::EnrolOppose | FormKind::EnrolFollow => {
            use mes_protocol::enrolment::{CardHolder, EnrolRequest};
            let holder = CardHolder {
                nir: value(1),
                vitale_serial: value(2),
            };
            let request = match &f.kind {
                FormKind::EnrolActivate => EnrolRequest::Activate {
                    holder,
                    code: value(3),
                    identifier: value(4),
                    // The password as typed: spaces may be part of it.
                    password: f.fields.get(5).map(|(_, v)| v.clone()).unwrap_or_default(),
                    email: value(6),
                    space: mes_protocol::ids::SpaceId([0; 16]),
                },
                FormKind::EnrolOppose => EnrolRequest::Oppose {
                    holder,
                    code: value(3),
                },
                _ => EnrolRequest::Status { holder },
            };
            ApiCall::EnrolFor {
                profile: value(0),
                request,
            }
        }
        FormKind::AllowService { service } => ApiCall::AllowService {
            service: service.clone(),
            data: value(0)
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect(),
        },
        FormKind::Reply { thread } => {
            if value(0).is_empty() {
                let text = s.t("messages.empty_reply").to_string();
                if let Some(f) = &mut s.form {
                    f.error = Some(text);
                }
                return vec![];
            }
            ApiCall::MessagePost {
                message: Message {
                    thread: thread.clone(),
                    body: value(0),
                    ..Default::default()
                },
                subject: String::new(),
            }
        }
    };
    vec![req(Slot::Command, s, call)]
}

/// Opens an enrolment form for the selected profile: its name and card prefilled when
/// known (the letter's code, identifier and password are typed).
fn enrol_form(s: &mut State, kind: FormKind) -> Vec<Request> {
    use super::view::relatives;
    let (label, nir, serial) = match relatives::selected(s) {
        Some(row) if kind != FormKind::EnrolFollow => {
            let p = relatives::profile_of(s, row);
            (
                relatives::profile_label(s, row),
                p.map(|p| p.holder.nir.clone()).unwrap_or_default(),
                p.map(|p| p.holder.vitale_serial.clone())
                    .unwrap_or_default(),
            )
        }
        _ => Default::default(),
    };
    let mut fields = vec![
        ("enrol.field_profile", label),
        ("enrol.field_nir", nir),
        ("enrol.field_serial", serial),
    ];
    match kind {
        FormKind::EnrolActivate => fields.extend([
            ("enrol.field_code", String::new()),
            ("enrol.field_identifier", String::new()),
            (PASSWORD_FIELD, String::new()),
            ("enrol.field_email", String::new()),
        ]),
        FormKind::EnrolOppose => fields.push(("enrol.field_code", String::new())),
        _ => {}
    }
    open_form(s, kind, fields);
    vec![]
}

/// The label of a form field shown masked.
pub const PASSWORD_FIELD: &str = "enrol.field_password";

fn activate(s: &mut State) -> Vec<Request> {
    if s.form.is_some() {
        return submit_form(s);
    }
    if s.docs.typing {
        s.docs.typing = false;
        s.panes.insert(Screen::Documents, 1);
        return vec![];
    }
    if s.lexicon_typing {
        s.lexicon_typing = false;
        return vec![];
    }
    match s.overlay {
        Some(Overlay::Tutorial(n)) if n + 1 < TUTORIAL_STEPS => {
            s.overlay = Some(Overlay::Tutorial(n + 1));
            return vec![];
        }
        Some(Overlay::Tutorial(_)) => return finish_tutorial(s),
        Some(Overlay::Keys) => {
            s.overlay = None;
            return vec![];
        }
        None => {}
    }
    let pane = s.pane(s.screen);
    match (s.screen, pane) {
        (Screen::Documents, 0) | (Screen::Profile, 0) => {
            s.panes.insert(s.screen, 1);
            vec![]
        }
        (Screen::Messages, 0) => {
            s.panes.insert(Screen::Messages, 1);
            super::view::messages::thread_messages(s)
                .into_iter()
                .filter(|m| super::state::unread(m))
                .map(|m| req(Slot::Command, s, ApiCall::MessageRead { id: m.id.clone() }))
                .collect()
        }
        (Screen::Relatives, _) => match super::view::relatives::selected(s) {
            Some(super::view::relatives::Row::Space(i)) => {
                let space = s.spaces[i].space;
                switch_space(s, space)
            }
            // A profile without a space yet: its activation.
            Some(super::view::relatives::Row::Pending(_)) => enrol_form(s, FormKind::EnrolActivate),
            None => vec![],
        },
        (Screen::Settings, _) => {
            toggle_setting(s, s.cursor(Screen::Settings, 0));
            vec![]
        }
        _ => vec![],
    }
}

fn finish_tutorial(s: &mut State) -> Vec<Request> {
    s.overlay = None;
    if !s.settings.tutorial_done {
        s.settings.tutorial_done = true;
        s.settings_dirty = true;
    }
    vec![]
}

fn toggle_setting(s: &mut State, row: usize) {
    let st = &mut s.settings;
    match row {
        0 => st.lang = st.lang.other(),
        1 => st.theme = st.theme.next(),
        2 => st.linear = !st.linear,
        3 => st.notifications = !st.notifications,
        _ => {
            s.overlay = Some(Overlay::Tutorial(0));
            return;
        }
    }
    s.settings_dirty = true;
}

fn switch_space(s: &mut State, space: mes_protocol::ids::SpaceId) -> Vec<Request> {
    s.space = Some(space);
    s.answered
        .retain(|slot| matches!(slot, Slot::Status | Slot::Spaces | Slot::Devices));
    s.cursors
        .retain(|(screen, _), _| *screen == Screen::Relatives);
    s.docs.page.clear();
    s.docs.total = 0;
    s.docs.limit = DOC_PAGE;
    s.home_docs.clear();
    s.profile = None;
    s.prevention = None;
    s.emergency = None;
    s.measurements.clear();
    s.care.clear();
    s.agenda.clear();
    s.reminders.clear();
    s.messages = None;
    let label = s.space_label().unwrap_or_default();
    notice(s, s.tf("relatives.switched", &[("name", &label)]), false);
    space_and_catalogue(s)
}

fn answer(s: &mut State, slot: Slot, result: Result<ApiReply, String>) -> Vec<Request> {
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            s.answered.insert(slot);
            // A command's refusal is said where it was made; a load's stays with what it
            // would have filled (it never hides a command's notice).
            match slot {
                Slot::Docs => s.docs.error = Some(e),
                Slot::Command => match &mut s.form {
                    Some(f) => f.error = Some(e),
                    None => notice(s, e, true),
                },
                _ => {
                    s.load_errors.insert(slot, e);
                }
            }
            return vec![];
        }
    };
    s.answered.insert(slot);
    s.load_errors.remove(&slot);
    s.link = Link::Up;
    match (slot, reply) {
        (Slot::Status, ApiReply::Status(st)) => s.status = Some(st),
        (Slot::Spaces, ApiReply::Spaces(mut spaces)) => {
            // The person's own space first, then the ones they manage by name.
            spaces.sort_by_key(|x| (x.label != OWN_SPACE_LABEL, x.label.clone()));
            s.spaces = spaces;
            let current = s.space.filter(|c| s.spaces.iter().any(|x| x.space == *c));
            match (current, s.spaces.first()) {
                // A space named at start (`mes --space`, `mes demo`): its data loads now,
                // not on the next change the daemon reports.
                (Some(_), _) if !s.answered.contains(&Slot::HomeDocs) => {
                    return space_and_catalogue(s);
                }
                (Some(_), _) => {}
                (None, Some(first)) => {
                    s.space = Some(first.space);
                    return space_and_catalogue(s);
                }
                (None, None) => notice(s, s.t("home.no_space").into(), true),
            }
        }
        (Slot::Devices, ApiReply::Devices(d)) => s.devices = d,
        (Slot::History, ApiReply::AccessHistory(h)) => s.history = h,
        (Slot::Consents, ApiReply::Consents(c)) => s.consents = c,
        (Slot::EnrolProfiles, ApiReply::EnrolProfiles(p)) => s.enrol_profiles = p,
        (Slot::Catalogue, ApiReply::Catalogue(c)) => s.catalogue = c,
        (Slot::Notifications, ApiReply::Notifications(n)) => s.notifications = n,
        (Slot::Blocks, ApiReply::Blocks(b)) => s.blocks = b,
        (Slot::HomeDocs, ApiReply::Documents { docs, .. }) => s.home_docs = docs,
        (Slot::Docs, ApiReply::Documents { total, docs }) => {
            s.docs.total = total;
            s.docs.page = docs;
            s.docs.error = None;
            let last = s.docs.page.len().saturating_sub(1);
            let c = s.cursor(Screen::Documents, 1).min(last);
            s.cursors.insert((Screen::Documents, 1), c);
        }
        (_, ApiReply::Record { record, conflicts }) => match record {
            RecordBody::Profile(p) => s.profile = Some((*p, conflicts)),
            RecordBody::Prevention(p) => s.prevention = Some(*p),
            RecordBody::Emergency(e) => s.emergency = Some(*e),
            RecordBody::Care(c) => {
                let mut items = c.items;
                items.sort_by(|a, b| b.date.cmp(&a.date));
                s.care = items;
            }
            RecordBody::Messages(m) => s.messages = Some(*m),
            RecordBody::Agenda(_) => {}
        },
        (Slot::Measurements, ApiReply::Measurements(m)) => s.measurements = m,
        (Slot::Agenda, ApiReply::Agenda(a)) => s.agenda = a,
        (Slot::Reminders, ApiReply::Reminders(r)) => s.reminders = r,
        (Slot::Command, reply) => return command_done(s, reply),
        _ => {}
    }
    vec![]
}

/// A user's command answered: say what it did, close its form, reload what it changed.
fn command_done(s: &mut State, reply: ApiReply) -> Vec<Request> {
    let form = s.form.take();
    match reply {
        ApiReply::Document(d) => {
            let key = match (&form, d.visibility.hidden_from_professionals) {
                (Some(_), _) => "documents.added",
                (None, true) => "documents.now_hidden",
                (None, false) => "documents.now_visible",
            };
            notice(s, s.tf(key, &[("title", &d.title)]), false);
        }
        ApiReply::Written { path, size } => notice(
            s,
            s.tf("documents.saved", &[("path", &path), ("size", &size)]),
            false,
        ),
        ApiReply::Enrolment(status) => {
            let name = match &form {
                Some(f) => f.fields.first().map(|(_, v)| v.trim().to_string()),
                None => None,
            }
            .unwrap_or_default();
            notice(
                s,
                s.tf("enrol.done", &[("name", &name), ("detail", &status.detail)]),
                false,
            );
            let mut out = start(s);
            out.extend(space_and_catalogue(s));
            return out;
        }
        ApiReply::Service(v) => notice(
            s,
            s.tf(
                "catalogue.allowed_done",
                &[("name", &v.service.name), ("data", &v.allowed.join(", "))],
            ),
            false,
        ),
        ApiReply::Done if form.is_some() => notice(s, s.t("messages.sent").into(), false),
        _ => {}
    }
    // Changes come back as volume events too; asking now shows them without waiting.
    space_and_catalogue(s)
}

fn input(s: &mut State, c: Option<char>) -> Vec<Request> {
    let edit = |text: &mut String| match c {
        Some(c) => text.push(c),
        None => {
            text.pop();
        }
    };
    if let Some(f) = &mut s.form {
        if let Some((_, v)) = f.fields.get_mut(f.focus) {
            edit(v);
        }
        return vec![];
    }
    if s.docs.typing {
        edit(&mut s.docs.input);
        s.cursors.insert((Screen::Documents, 1), 0);
        s.docs.limit = DOC_PAGE;
        return vec![docs_request(s)];
    }
    if s.lexicon_typing {
        edit(&mut s.lexicon_filter);
        s.cursors.insert((Screen::Help, 1), 0);
    }
    vec![]
}

fn cycle_pane(s: &mut State, forward: bool) {
    if let Some(f) = &mut s.form {
        let n = f.fields.len().max(1);
        f.focus = if forward {
            (f.focus + 1) % n
        } else {
            (f.focus + n - 1) % n
        };
        return;
    }
    let n = s.screen.panes();
    let p = s.pane(s.screen);
    let next = if forward {
        (p + 1) % n
    } else {
        (p + n - 1) % n
    };
    s.panes.insert(s.screen, next);
}

fn goto(s: &mut State, screen: Screen) {
    s.screen = screen;
    s.docs.typing = false;
    s.lexicon_typing = false;
}

/// Applies `action`; answers the requests to make.
#[allow(
    clippy::too_many_lines,
    reason = "the client's one match over every action"
)]
pub fn update(s: &mut State, action: Action) -> Vec<Request> {
    match action {
        Action::Quit => {
            s.quit = true;
            vec![]
        }
        Action::Goto(screen) => {
            goto(s, screen);
            vec![]
        }
        Action::NextScreen | Action::PrevScreen => {
            let n = Screen::ALL.len();
            let i = s.screen.index();
            let j = if action == Action::NextScreen {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            goto(s, Screen::ALL[j]);
            vec![]
        }
        Action::Move(m) => move_cursor(s, m),
        Action::NextPane => {
            cycle_pane(s, true);
            vec![]
        }
        Action::PrevPane => {
            cycle_pane(s, false);
            vec![]
        }
        Action::Activate => activate(s),
        Action::Back => {
            if s.form.is_some() {
                s.form = None;
            } else if s.overlay == Some(Overlay::Keys) {
                s.overlay = None;
            } else if let Some(Overlay::Tutorial(_)) = s.overlay {
                return finish_tutorial(s);
            } else if s.docs.typing {
                // Esc in the search box clears the search (Enter keeps it).
                s.docs.typing = false;
                if !s.docs.input.is_empty() {
                    s.docs.input.clear();
                    s.docs.limit = DOC_PAGE;
                    s.cursors.insert((Screen::Documents, 1), 0);
                    return vec![docs_request(s)];
                }
            } else if s.lexicon_typing {
                s.lexicon_typing = false;
                s.lexicon_filter.clear();
            } else {
                s.panes.insert(s.screen, 0);
            }
            vec![]
        }
        Action::ToggleHelp => {
            s.overlay = match s.overlay {
                Some(Overlay::Keys) => None,
                _ => Some(Overlay::Keys),
            };
            vec![]
        }
        Action::Search => {
            match s.screen {
                Screen::Documents => {
                    s.docs.typing = true;
                    s.panes.insert(Screen::Documents, 1);
                }
                Screen::Help => {
                    s.lexicon_typing = true;
                    s.panes.insert(Screen::Help, 1);
                }
                _ => {}
            }
            vec![]
        }
        Action::FlagAccess => match super::view::access::selected_entry(s) {
            Some(seq) => vec![req(Slot::Command, s, ApiCall::FlagAccess { seq })],
            None => vec![],
        },
        Action::ToggleHidden => match s.selected_doc() {
            Some(d) => {
                let call = ApiCall::DocHide {
                    id: d.id.clone(),
                    hidden: !d.visibility.hidden_from_professionals,
                };
                vec![req(Slot::Command, s, call)]
            }
            None => vec![],
        },
        Action::AddDocument => {
            let cat = s.cursor(Screen::Documents, 0);
            let category = Codes::builtin()
                .category
                .get(cat.wrapping_sub(1))
                .map_or("reports", |c| c.id.as_str())
                .to_string();
            let fields = vec![
                ("documents.field_file", String::new()),
                ("documents.field_title", String::new()),
                ("documents.field_category", category),
                ("documents.field_date", s.today.to_string()),
                ("documents.field_author", String::new()),
            ];
            open_form(s, FormKind::AddDocument, fields);
            vec![]
        }
        Action::SaveDocument => {
            if let Some(d) = s.selected_doc() {
                let (id, name) = (d.id.clone(), d.file_name.clone());
                let path = absolute(if name.is_empty() { "document" } else { &name });
                open_form(
                    s,
                    FormKind::SaveDocument { id },
                    vec![("documents.field_path", path)],
                );
            }
            vec![]
        }
        Action::Reply => {
            let thread = s
                .messages
                .as_ref()
                .and_then(|m| m.threads.get(s.cursor(Screen::Messages, 0)))
                .map(|t| t.id.clone());
            if let Some(thread) = thread {
                open_form(
                    s,
                    FormKind::Reply { thread },
                    vec![("messages.field_text", String::new())],
                );
            }
            vec![]
        }
        Action::EnrolActivate | Action::EnrolOppose | Action::EnrolFollow
            if s.screen == Screen::Relatives =>
        {
            let kind = match action {
                Action::EnrolActivate => FormKind::EnrolActivate,
                Action::EnrolOppose => FormKind::EnrolOppose,
                _ => FormKind::EnrolFollow,
            };
            enrol_form(s, kind)
        }
        Action::EnrolActivate | Action::EnrolOppose | Action::EnrolFollow => vec![],
        Action::AllowService => {
            if let Some(v) = super::view::catalogue::selected(s) {
                let service = v.service.id.clone();
                let data = if v.allowed.is_empty() {
                    v.service.data.join(", ")
                } else {
                    v.allowed.join(", ")
                };
                open_form(
                    s,
                    FormKind::AllowService { service },
                    vec![("catalogue.field_data", data)],
                );
            }
            vec![]
        }
        Action::RevokeService => match super::view::catalogue::selected(s) {
            Some(v) if !v.allowed.is_empty() => {
                let (service, name) = (v.service.id.clone(), v.service.name.clone());
                notice(s, s.tf("catalogue.revoked_done", &[("name", &name)]), false);
                vec![req(Slot::Command, s, ApiCall::RevokeService { service })]
            }
            _ => vec![],
        },
        Action::ToggleAgendaView => {
            s.agenda_list = !s.agenda_list;
            s.cursors.insert((Screen::Agenda, 0), 0);
            vec![]
        }
        Action::Previous | Action::Next => {
            let forward = action == Action::Next;
            match s.screen {
                Screen::Agenda => {
                    let (y, m) = s.month;
                    s.month = match (forward, m) {
                        (true, 12) => (y + 1, 1),
                        (true, m) => (y, m + 1),
                        (false, 1) => (y - 1, 12),
                        (false, m) => (y, m - 1),
                    };
                    s.cursors.insert((Screen::Agenda, 0), 0);
                    vec![agenda_request(s)]
                }
                Screen::Profile => {
                    let n = Codes::builtin().measurement.len().max(1);
                    s.measure_kind = if forward {
                        (s.measure_kind + 1) % n
                    } else {
                        (s.measure_kind + n - 1) % n
                    };
                    vec![measure_request(s)]
                }
                _ => vec![],
            }
        }
        Action::Input(c) => input(s, Some(c)),
        Action::Backspace => input(s, None),
        Action::Refresh => {
            let mut out = start(s);
            if s.space.is_some() {
                out.extend(space_and_catalogue(s));
            }
            out
        }
        Action::Resize(w, h) => {
            s.size = (w, h);
            vec![]
        }
        Action::Tick => {
            s.ticks += 1;
            if let Some(n) = &mut s.notice {
                n.ttl = n.ttl.saturating_sub(1);
                if n.ttl == 0 {
                    s.notice = None;
                }
            }
            if s.ticks.is_multiple_of(STATUS_EVERY) && s.link == Link::Up {
                vec![req(Slot::Status, s, ApiCall::Status)]
            } else {
                vec![]
            }
        }
        Action::Answer(slot, result) => answer(s, slot, result),
        Action::Event(ApiEvent::Connection { online }) => {
            if let Some(st) = &mut s.status {
                st.online = online;
            }
            vec![req(Slot::Status, s, ApiCall::Status)]
        }
        Action::Event(ApiEvent::Notified { space }) => {
            if Some(space) == s.space {
                vec![req(Slot::Notifications, s, ApiCall::Notifications)]
            } else {
                Vec::new()
            }
        }
        Action::Event(ApiEvent::AccessHistory { space }) => {
            if Some(space) == s.space {
                vec![req(Slot::History, s, ApiCall::AccessHistory)]
            } else {
                Vec::new()
            }
        }
        Action::Event(ApiEvent::VolumeChanged { space, .. }) => {
            let mut out = vec![req(Slot::Status, s, ApiCall::Status)];
            if Some(space) == s.space {
                out.extend(space_requests(s));
            } else {
                out.push(req(Slot::Spaces, s, ApiCall::ListSpaces));
            }
            out
        }
        Action::Disconnected(why) => {
            s.link = Link::Lost(why);
            vec![]
        }
    }
}
