//! Everything on screen: which screen and pane, the cursor of each list, what the daemon
//! answered so far, and what is open (an overlay, a form, a notice). Only `update` changes
//! it; `draw` only reads it.

use mes_protocol::ids::SpaceId;
use mes_protocol::record::agenda::AgendaItem;
use mes_protocol::record::care::CareItem;
use mes_protocol::record::documents::DocumentMeta;
use mes_protocol::record::measurements::Measurement;
use mes_protocol::record::messages::Messages;
use mes_protocol::record::{Conflict, Emergency, PreventionRecord, Profile, ReminderItem};
use mes_protocol::wire::api::{DeviceSummary, SpaceSummary, StatusReport};
use std::collections::{HashMap, HashSet};

use super::action::Slot;
use super::i18n::{self, Lang};
use super::settings::Settings;
use super::theme::Theme;

/// The screens, in tab order (keys 1 to 9 and 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Screen {
    /// Latest documents, care history, reminders, notifications.
    Home,
    /// Every section of the medical profile (F2), with charts.
    Profile,
    /// Documents (F3): by category, search, preview, hide, add, save.
    Documents,
    /// Secure messages (F4).
    Messages,
    /// Agenda (F5): month and list views, reminders.
    Agenda,
    /// Who accessed what, consents, blocks, devices (F7, F8).
    Access,
    /// Profiles the person manages (F9).
    Relatives,
    /// Approved services (F6).
    Catalogue,
    /// Language, theme, accessibility, notifications.
    Settings,
    /// Keys and the lexicon.
    Help,
}

impl Screen {
    /// Every screen in tab order.
    pub const ALL: [Screen; 10] = [
        Screen::Home,
        Screen::Profile,
        Screen::Documents,
        Screen::Messages,
        Screen::Agenda,
        Screen::Access,
        Screen::Relatives,
        Screen::Catalogue,
        Screen::Settings,
        Screen::Help,
    ];

    /// Its position in the tabs.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The key that opens it ('1'..'9', '0').
    pub fn digit(self) -> char {
        char::from_digit(((self.index() + 1) % 10) as u32, 10).unwrap_or('0')
    }

    /// The catalogue key of its name.
    pub fn name_key(self) -> &'static str {
        match self {
            Screen::Home => "screen.home",
            Screen::Profile => "screen.profile",
            Screen::Documents => "screen.documents",
            Screen::Messages => "screen.messages",
            Screen::Agenda => "screen.agenda",
            Screen::Access => "screen.access",
            Screen::Relatives => "screen.relatives",
            Screen::Catalogue => "screen.catalogue",
            Screen::Settings => "screen.settings",
            Screen::Help => "screen.help",
        }
    }

    /// How many panes focus cycles through.
    pub fn panes(self) -> u8 {
        match self {
            Screen::Home => 4,
            Screen::Profile | Screen::Documents | Screen::Messages | Screen::Help => 2,
            Screen::Access => 4,
            _ => 1,
        }
    }
}

/// The sections of the Medical profile screen (every part of F2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSection {
    /// Identity: name, birth date, sex.
    Person,
    /// Diseases and history (F2.1).
    Conditions,
    /// Treatments (F2.2).
    Treatments,
    /// Allergies (F2.3).
    Allergies,
    /// Vaccinations (F2.4).
    Vaccinations,
    /// Measurements with a chart (F2.5).
    Measurements,
    /// Hospitalisations (F2.6).
    Hospitalisations,
    /// Advance directives, organ donation, personal wishes (F2.7, F2.8).
    Wishes,
    /// Trusted person and contacts (F2.9).
    Contacts,
    /// Socio-economic situation.
    Situation,
    /// The emergency section (F2.10).
    Emergency,
}

impl ProfileSection {
    /// In screen order.
    pub const ALL: [ProfileSection; 11] = [
        ProfileSection::Person,
        ProfileSection::Conditions,
        ProfileSection::Treatments,
        ProfileSection::Allergies,
        ProfileSection::Vaccinations,
        ProfileSection::Measurements,
        ProfileSection::Hospitalisations,
        ProfileSection::Wishes,
        ProfileSection::Contacts,
        ProfileSection::Situation,
        ProfileSection::Emergency,
    ];

    /// The catalogue key of its name.
    pub fn name_key(self) -> &'static str {
        match self {
            ProfileSection::Person => "profile.person",
            ProfileSection::Conditions => "profile.conditions",
            ProfileSection::Treatments => "profile.treatments",
            ProfileSection::Allergies => "profile.allergies",
            ProfileSection::Vaccinations => "profile.vaccinations",
            ProfileSection::Measurements => "profile.measurements",
            ProfileSection::Hospitalisations => "profile.hospitalisations",
            ProfileSection::Wishes => "profile.wishes",
            ProfileSection::Contacts => "profile.contacts",
            ProfileSection::Situation => "profile.situation",
            ProfileSection::Emergency => "profile.emergency",
        }
    }
}

/// The connection to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not answered yet.
    Connecting,
    /// Connected.
    Up,
    /// Lost, with why.
    Lost(String),
}

/// What a form is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormKind {
    /// Add a document: file, title, category, date, author.
    AddDocument,
    /// Save a document's file to a path.
    SaveDocument {
        /// The document.
        id: String,
    },
    /// Reply in a thread.
    Reply {
        /// The thread.
        thread: String,
    },
    /// Activate a profile with the letter's code (F1.3): profile, NIR, serial, code,
    /// identifier, password, email.
    EnrolActivate,
    /// Oppose for a profile (F1.4): profile, NIR, serial, code.
    EnrolOppose,
    /// Follow a profile's enrolment (a child's letter, F1.10): profile, NIR, serial.
    EnrolFollow,
    /// Allow a service to exchange data (F6.2): the data items.
    AllowService {
        /// The service's id.
        service: String,
    },
}

/// A small form over the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    /// What it is for.
    pub kind: FormKind,
    /// Fields: catalogue key of the label, value.
    pub fields: Vec<(&'static str, String)>,
    /// The field typed into.
    pub focus: usize,
    /// The daemon's refusal of the last submission.
    pub error: Option<String>,
}

/// Something that covers the screen until dismissed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// The keys of this screen.
    Keys,
    /// The first-run tutorial, at a step.
    Tutorial(u8),
}

/// How many steps the tutorial has (`tutorial.step0` ...).
pub const TUTORIAL_STEPS: u8 = 5;

/// A one-line notice (what a command did, or why it failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Text.
    pub text: String,
    /// An error.
    pub error: bool,
    /// Ticks left before it goes.
    pub ttl: u8,
}

/// The Documents screen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Docs {
    /// What is typed in the search box.
    pub input: String,
    /// Typing in the search box.
    pub typing: bool,
    /// Matches in all.
    pub total: u32,
    /// The loaded page, newest first.
    pub page: Vec<DocumentMeta>,
    /// The page size asked for (grows while scrolling).
    pub limit: u32,
    /// The last query's error (a malformed date typed).
    pub error: Option<String>,
}

/// The sender the daemon records for the person's own messages.
pub const OWN_SENDER: &str = "me";

/// A message the person has not read (their own never count).
pub fn unread(m: &mes_protocol::record::messages::Message) -> bool {
    m.read_at.is_empty() && m.from != OWN_SENDER
}

/// The label the daemon gives the person's own space.
pub const OWN_SPACE_LABEL: &str = "personal";

/// The first page size of the Documents list, and how much it grows by.
pub const DOC_PAGE: u32 = 100;

/// The whole state.
#[derive(Clone, Debug)]
pub struct State {
    /// Language, theme, modes.
    pub settings: Settings,
    /// The settings changed and should be saved.
    pub settings_dirty: bool,
    /// The screen shown.
    pub screen: Screen,
    /// The terminal's size.
    pub size: (u16, u16),
    /// Today (reminders, agenda).
    pub today: jiff::civil::Date,
    /// The daemon connection.
    pub link: Link,
    /// Sync state.
    pub status: Option<StatusReport>,
    /// Spaces (the person's and those they manage).
    pub spaces: Vec<SpaceSummary>,
    /// The space shown.
    pub space: Option<SpaceId>,
    /// Devices of this principal.
    pub devices: Vec<DeviceSummary>,
    /// The verified access history, newest last as the daemon sends it.
    pub history: mes_protocol::access::consent::AccessHistoryView,
    /// Who holds which rights on the space.
    pub consents: Vec<mes_protocol::access::consent::ConsentView>,
    /// The profiles this device enrols with the hub and their status (F1.10).
    pub enrol_profiles: Vec<mes_protocol::enrolment::EnrolProfile>,
    /// The catalogue of approved services as the space sees it (F6).
    pub catalogue: Vec<mes_protocol::enrolment::catalogue::ServiceView>,
    /// The daemon's notifications, newest first (F8.2).
    pub notifications: Vec<mes_protocol::access::consent::NotificationView>,
    /// What the person blocked, in words (F7.2).
    pub blocks: Vec<String>,
    /// Home's latest documents.
    pub home_docs: Vec<DocumentMeta>,
    /// The Documents screen.
    pub docs: Docs,
    /// The medical profile and its conflicts.
    pub profile: Option<(Profile, Vec<Conflict>)>,
    /// Vaccinations and screenings done.
    pub prevention: Option<PreventionRecord>,
    /// The emergency section.
    pub emergency: Option<Emergency>,
    /// The measurement kind charted (index into the codes' kinds).
    pub measure_kind: usize,
    /// Its points, oldest first.
    pub measurements: Vec<Measurement>,
    /// Care history, newest first.
    pub care: Vec<CareItem>,
    /// Agenda items from the month shown.
    pub agenda: Vec<AgendaItem>,
    /// The month shown (year, month).
    pub month: (i16, i8),
    /// The agenda as a list (true) or a month grid.
    pub agenda_list: bool,
    /// Reminders due within a year.
    pub reminders: Vec<ReminderItem>,
    /// Threads and messages.
    pub messages: Option<Messages>,
    /// The lexicon filter typed in Help.
    pub lexicon_filter: String,
    /// Typing the lexicon filter.
    pub lexicon_typing: bool,
    /// Cursor of each (screen, pane).
    pub cursors: HashMap<(Screen, u8), usize>,
    /// Focused pane of each screen.
    pub panes: HashMap<Screen, u8>,
    /// What covers the screen.
    pub overlay: Option<Overlay>,
    /// The open form.
    pub form: Option<Form>,
    /// The last notice.
    pub notice: Option<Notice>,
    /// Why the last load of a slot failed (shown where its data would be).
    pub load_errors: HashMap<Slot, String>,
    /// Slots answered at least once for the space shown (the first complete frame).
    pub answered: HashSet<Slot>,
    /// Ticks since start.
    pub ticks: u64,
    /// Leave at the next turn.
    pub quit: bool,
}

impl State {
    /// A state before any reply, with these settings, on `today`.
    pub fn new(settings: Settings, today: jiff::civil::Date) -> State {
        let overlay = (!settings.tutorial_done).then_some(Overlay::Tutorial(0));
        State {
            settings,
            settings_dirty: false,
            screen: Screen::Home,
            size: (100, 30),
            today,
            link: Link::Connecting,
            status: None,
            spaces: Vec::new(),
            space: None,
            devices: Vec::new(),
            history: Default::default(),
            consents: Vec::new(),
            enrol_profiles: Vec::new(),
            catalogue: Vec::new(),
            notifications: Vec::new(),
            blocks: Vec::new(),
            home_docs: Vec::new(),
            docs: Docs {
                limit: DOC_PAGE,
                ..Docs::default()
            },
            profile: None,
            prevention: None,
            emergency: None,
            measure_kind: 0,
            measurements: Vec::new(),
            care: Vec::new(),
            agenda: Vec::new(),
            month: (today.year(), today.month()),
            agenda_list: false,
            reminders: Vec::new(),
            messages: None,
            lexicon_filter: String::new(),
            lexicon_typing: false,
            cursors: HashMap::new(),
            panes: HashMap::new(),
            overlay,
            form: None,
            notice: None,
            load_errors: HashMap::new(),
            answered: HashSet::new(),
            ticks: 0,
            quit: false,
        }
    }

    /// The language shown.
    pub fn lang(&self) -> Lang {
        self.settings.lang
    }

    /// A catalogue text.
    pub fn t(&self, key: &str) -> &'static str {
        i18n::tr(self.settings.lang, key)
    }

    /// A catalogue text, or `fallback` when the catalogue has none (a code from data).
    pub fn t_or(&self, key: &str, fallback: &str) -> String {
        i18n::catalogue(self.settings.lang)
            .get(key)
            .cloned()
            .unwrap_or_else(|| fallback.to_string())
    }

    /// A catalogue text with `{name}` placeholders filled.
    pub fn tf(&self, key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        i18n::trf(self.settings.lang, key, args)
    }

    /// The theme's styles.
    pub fn theme(&self) -> Theme {
        Theme::of(self.settings.theme)
    }

    /// The focused pane of a screen.
    pub fn pane(&self, screen: Screen) -> u8 {
        self.panes.get(&screen).copied().unwrap_or(0)
    }

    /// The cursor of a pane.
    pub fn cursor(&self, screen: Screen, pane: u8) -> usize {
        self.cursors.get(&(screen, pane)).copied().unwrap_or(0)
    }

    /// The document selected in the Documents list.
    pub fn selected_doc(&self) -> Option<&DocumentMeta> {
        self.docs.page.get(self.cursor(Screen::Documents, 1))
    }

    /// How a space is named: its label, except the person's own space ("personal"),
    /// named after the person when their profile is shown, else "My space".
    pub fn space_name(&self, sp: &SpaceSummary) -> String {
        if sp.label != OWN_SPACE_LABEL {
            return sp.label.clone();
        }
        match &self.profile {
            Some((p, _)) if Some(sp.space) == self.space && !p.person.name.is_empty() => {
                format!("{} ({})", p.person.name, self.t("relatives.me"))
            }
            _ => self.t("relatives.me").to_string(),
        }
    }

    /// The name of the space shown.
    pub fn space_label(&self) -> Option<String> {
        let s = self.space?;
        self.spaces
            .iter()
            .find(|x| x.space == s)
            .map(|x| self.space_name(x))
    }

    /// Uploads not yet acknowledged by the relay, over every volume of every space.
    pub fn pending_uploads(&self) -> u64 {
        self.status
            .as_ref()
            .map_or(0, |s| s.volumes.iter().map(|v| v.pending_uploads).sum())
    }

    /// Whether the first screen has its real data (the first complete frame): the sync
    /// state, the spaces, and Home's four sections (none when the daemon holds no space).
    pub fn ready(&self) -> bool {
        let base = [Slot::Status, Slot::Spaces];
        if !base.iter().all(|s| self.answered.contains(s)) {
            return false;
        }
        if self.spaces.is_empty() {
            return true;
        }
        [Slot::HomeDocs, Slot::Care, Slot::Reminders, Slot::Messages]
            .iter()
            .all(|s| self.answered.contains(s))
    }

    /// Messages not read yet, over every thread.
    pub fn unread(&self) -> usize {
        self.messages
            .as_ref()
            .map_or(0, |m| m.messages.values().filter(|m| unread(m)).count())
    }
}
