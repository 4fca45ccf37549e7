//! What can happen to the TUI, and what it asks of the daemon.
//!
//! Keys become [`Action`]s through the keymap; daemon replies, pushed events and ticks
//! arrive as actions too. `update` answers [`Request`]s; the shell runs them and feeds
//! each reply back as [`Action::Answer`] with the request's [`Slot`], so a newer request
//! for the same slot supersedes an older one still queued.
//!
//! Import circle: with `state`, an action names a screen to go to, and the state remembers which slots it loaded.

use mes_protocol::ids::SpaceId;
use mes_protocol::wire::api::{ApiCall, ApiEvent, ApiReply};

use super::state::Screen;

/// What a request's reply fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Sync state (online, pending uploads).
    Status,
    /// The spaces the daemon holds (profiles).
    Spaces,
    /// This principal's devices.
    Devices,
    /// Home's latest documents.
    HomeDocs,
    /// The Documents list.
    Docs,
    /// The medical profile.
    Profile,
    /// The prevention record (vaccinations).
    Prevention,
    /// The emergency section.
    Emergency,
    /// Measurements for the chart.
    Measurements,
    /// Care history.
    Care,
    /// Agenda items.
    Agenda,
    /// Reminders.
    Reminders,
    /// Threads and messages.
    Messages,
    /// The verified access history (F8.1).
    History,
    /// Consents and other rights on the space (F7).
    Consents,
    /// The profiles enrolled from this device (F1.10).
    EnrolProfiles,
    /// The catalogue of approved services (F6).
    Catalogue,
    /// The daemon's notifications (F8.2).
    Notifications,
    /// What the person blocked (F7.2).
    Blocks,
    /// A user's command (hide, add, save, reply, read): its reply shows as a notice.
    Command,
}

/// A call for the daemon.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// What its reply fills in.
    pub slot: Slot,
    /// The space it acts on.
    pub space: Option<SpaceId>,
    /// The call.
    pub call: ApiCall,
}

/// Movement in a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// One up.
    Up,
    /// One down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// The first.
    First,
    /// The last.
    Last,
}

/// Everything that can happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Leave.
    Quit,
    /// Go to a screen.
    Goto(Screen),
    /// The next or previous screen.
    NextScreen,
    /// The previous screen.
    PrevScreen,
    /// Move in the focused list.
    Move(Move),
    /// Focus the next pane of the screen.
    NextPane,
    /// Focus the previous pane.
    PrevPane,
    /// Enter: open, choose, toggle.
    Activate,
    /// Esc: close what is open.
    Back,
    /// Show or hide the keys overlay.
    ToggleHelp,
    /// Start typing a search (Documents, Help's lexicon).
    Search,
    /// Hide or show again the selected document (F3.3).
    ToggleHidden,
    /// Flag the selected access history entry as suspicious (F8.3).
    FlagAccess,
    /// Add a document from a file path.
    AddDocument,
    /// Save the selected document to a path.
    SaveDocument,
    /// Reply in the selected thread.
    Reply,
    /// Open the activation form for the selected profile (F1.3).
    EnrolActivate,
    /// Open the opposition form for the selected profile (F1.4).
    EnrolOppose,
    /// Open the form to follow a profile's enrolment (F1.10).
    EnrolFollow,
    /// Open the form allowing the selected service (F6.2).
    AllowService,
    /// Revoke what the selected service was allowed (F6.2).
    RevokeService,
    /// Switch between the agenda's month and list views.
    ToggleAgendaView,
    /// Previous month or measurement kind.
    Previous,
    /// Next month or measurement kind.
    Next,
    /// A character typed into the open input.
    Input(char),
    /// Delete the character before the cursor.
    Backspace,
    /// Reload everything.
    Refresh,
    /// The terminal's size changed.
    Resize(u16, u16),
    /// A second passed.
    Tick,
    /// A request's answer (an error as text).
    Answer(Slot, Result<ApiReply, String>),
    /// The daemon pushed an event.
    Event(ApiEvent),
    /// The connection to the daemon was lost.
    Disconnected(String),
}
