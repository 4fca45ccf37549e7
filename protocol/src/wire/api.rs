//! Frames between `mes` (or any local client) and the daemon, over a Unix socket (mode 0600).
//!
//! The client sends [`ApiRequest`]s, each naming the space it acts on (one daemon serves
//! many spaces); the daemon answers each with an [`ApiFrame::Response`] of the same id, and
//! to clients that subscribed also sends [`ApiFrame::Event`]s. Frames are length-prefixed
//! and at most [`crate::wire::codec::MAX_API_FRAME`] bytes.
//!
//! Over 600 lines: every local API call and reply, the one list a reader looks things up in.

use serde::{Deserialize, Serialize};

use crate::access::membership::Role;
use crate::ids::{BlobId, DeviceId, PrincipalId, Seq, SpaceId, VolumeId, VolumeKind};

/// A request from a local client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ApiRequest {
    /// Chosen by the client; echoed in the response.
    pub id: u64,
    /// The space acted on; `None` for daemon-wide calls (status, identity, spaces, pairing).
    pub space: Option<SpaceId>,
    /// What to do.
    pub call: ApiCall,
}

/// Calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ApiCall {
    /// Sync state of every space and volume.
    Status,
    /// This device and its principal.
    Identity,
    /// Creates a space owned by this device's principal.
    CreateSpace {
        /// A label for the person ("Inaya", "Mathis").
        label: String,
    },
    /// Spaces this daemon holds.
    ListSpaces,
    /// Sets a key in the space's notes volume.
    NoteSet {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Reads a key; conflicting concurrent values are all returned.
    NoteGet {
        /// Key.
        key: String,
    },
    /// Every note.
    NoteList,
    /// A record document (profile, prevention, emergency, agenda, messages, care
    /// history) and its conflicts (F2, F4, F5, F10).
    RecordGet {
        /// Which.
        kind: crate::record::RecordKind,
    },
    /// Edits a record document; answers the id of the record touched.
    RecordEdit {
        /// Which.
        kind: crate::record::RecordKind,
        /// The edit.
        edit: crate::record::RecordEdit,
    },
    /// Adds a document (F3.1): the file is encrypted into the local blob cache (uploaded
    /// when online) and its metadata written; answers the document.
    DocAdd {
        /// The document.
        doc: crate::record::documents::NewDocument,
    },
    /// Checks documents before a bulk import (F3.7) without writing anything: every
    /// problem of every one, and which are already in the space.
    DocCheck {
        /// The documents, in manifest order.
        docs: Vec<crate::record::documents::NewDocument>,
    },
    /// Searches documents (F3.5); an empty query lists them all, newest first.
    DocSearch {
        /// The query.
        query: crate::record::documents::DocQuery,
    },
    /// Writes a document's file to `out` (F3.6), from the cache or fetched from the relay.
    DocGet {
        /// Document id.
        id: String,
        /// Absolute path to write.
        out: String,
    },
    /// Hides a document from professionals or shows it again (F3.3).
    DocHide {
        /// Document id.
        id: String,
        /// Hidden or not.
        hidden: bool,
    },
    /// Records measurements (F2.5), checked against their kind's unit and range.
    MeasureAdd {
        /// The points (ids given when empty).
        points: Vec<crate::record::measurements::Measurement>,
    },
    /// Measurements in a range, oldest first.
    MeasureList {
        /// The query.
        query: crate::record::measurements::MeasureQuery,
    },
    /// Appointments and reminders from `from` for `months` (F5).
    AgendaList {
        /// First day (YYYY-MM-DD; empty: today).
        from: String,
        /// How many months.
        months: u32,
    },
    /// Posts a message (F4): a reply in a thread, or a new thread when `thread` is empty.
    MessagePost {
        /// The message (id, time and sender filled in when empty).
        message: crate::record::messages::Message,
        /// Subject of a new thread.
        subject: String,
    },
    /// Marks a message read (sends the read receipt when one was asked for).
    MessageRead {
        /// Message id.
        id: String,
    },
    /// Writes the whole space to a new directory (F2.11, F3.6, F12.2): FHIR R4 bundle,
    /// IPS summary, PDF summary, original files.
    Export {
        /// Absolute path of a directory that does not exist yet.
        out: String,
    },
    /// Imports a FHIR R4 bundle written by `Export` into this space.
    ImportFhir {
        /// Absolute path of the bundle (`bundle.json`) or the export directory.
        path: String,
    },
    /// The emergency and help numbers directory (F10).
    EmergencyNumbers,
    /// Vaccination and screening reminders due within `months` (F5.2, F10), from the
    /// profile's birth date and sex and the prevention record.
    Reminders {
        /// Horizon.
        months: u32,
    },
    /// Deletes a key.
    NoteDelete {
        /// Key.
        key: String,
    },
    /// Appends an entry to the space's chained log volume.
    LogAppend {
        /// Entry text.
        text: String,
    },
    /// Reads and verifies the chained log.
    LogRead,
    /// Drops a message into a space's inbox, sealed to its inbox recipient: the caller
    /// needs only the append role (F7.6).
    InboxDrop {
        /// Text.
        text: String,
    },
    /// Files the inbox drops the daemon can open (owner side).
    InboxRead,
    /// Stores a file as an encrypted blob; returns its id.
    BlobPut {
        /// Absolute path of the file to read.
        path: String,
    },
    /// Fetches, checks and decrypts a blob into a file.
    BlobGet {
        /// Blob.
        blob: BlobId,
        /// Absolute path to write.
        out: String,
    },
    /// Stores a snapshot of a volume at the relay and prunes the log behind it.
    Snapshot {
        /// Volume label ("notes").
        volume: String,
    },
    /// Starts a new generation of a volume: fresh document, new epoch key.
    Compact {
        /// Volume label.
        volume: String,
    },
    /// Shows a pairing code on this (existing) device and waits for the new one.
    PairStart,
    /// Joins the principal of the device that shows `code`.
    PairJoin {
        /// The code shown on the existing device.
        code: String,
        /// Name of this device.
        device_name: String,
    },
    /// Devices of this principal.
    ListDevices,
    /// Revokes a device: the relay refuses it and new epochs exclude it.
    RevokeDevice {
        /// Device.
        device: DeviceId,
    },
    /// Gives another principal a role on the space.
    Grant {
        /// Principal.
        principal: PrincipalId,
        /// Role; `None` removes.
        role: Option<Role>,
    },
    /// Consents to a professional of the relay's directory (F7.1): read access to exactly
    /// the volumes the habilitation matrix allows for their profession, minus `except`
    /// (volume labels or habilitation groups the person keeps from them), and the inbox.
    Consent {
        /// RPPS number.
        rpps: String,
        /// Labels (`documents/mental`, `profile`) or groups (`mental`) kept from them.
        except: Vec<String>,
    },
    /// Withdraws every right of a principal on the space and starts a new key epoch on
    /// every volume they could read (F7, F9.2).
    Withdraw {
        /// The principal.
        principal: PrincipalId,
    },
    /// Who holds which rights on the space.
    Consents,
    /// The space's notifications, newest first (F8.2).
    Notifications,
    /// Which notification kinds the person wants (`access`, `document`, `device`).
    NotifyPrefs {
        /// Kinds turned on; the others are off.
        kinds: Vec<String>,
    },
    /// Writes a recovery kit (F12.4): sealed with `passphrase`, or with a random secret
    /// split `k` of `n` into share files beside it.
    RecoveryKit {
        /// Absolute path of the kit file to create.
        out: String,
        /// The passphrase (at least 12 characters), or none for a split.
        passphrase: Option<String>,
        /// (k, n) for a split.
        split: Option<(u8, u8)>,
    },
    /// Restores the person on this fresh daemon from a kit.
    Restore {
        /// Absolute path of the kit.
        kit: String,
        /// Its passphrase, or none when shares are given.
        passphrase: Option<String>,
        /// Share file contents, for a split kit.
        shares: Vec<String>,
    },
    /// An enrolment request to the hub (F1.3-F1.8); for an activation, the space named
    /// (or the only one) becomes the person's.
    Enrol {
        /// What is asked.
        request: crate::enrolment::EnrolRequest,
    },
    /// An enrolment request for the profile named `profile` (F1.10): an activation uses
    /// that profile's space, created with that label when this device holds none; the
    /// hub's answer is kept with the profile.
    EnrolFor {
        /// The profile's name ("Moi", "Mathis").
        profile: String,
        /// What is asked.
        request: crate::enrolment::EnrolRequest,
    },
    /// The profiles this device enrols, with their last status.
    EnrolProfiles,
    /// The hub's catalogue of approved services (F6.1) with what this space allows each.
    Catalogue,
    /// Allows a service to exchange `data` with the space (F6.2): items it was approved
    /// for, all of them when empty; what it held beyond is withdrawn.
    AllowService {
        /// The service's id in the catalogue.
        service: String,
        /// Data items (record sections, document groups).
        data: Vec<String>,
    },
    /// Revokes everything a service was allowed (F6.2).
    RevokeService {
        /// The service's id in the catalogue.
        service: String,
    },
    /// Hands a minor's space over to the minor (F9.1; the owner only, from the handover
    /// age).
    HandOver {
        /// The minor's principal.
        to: PrincipalId,
        /// The minor's age recipient (`mes whoami` on the minor's device).
        recipient: String,
    },
    /// Keeps a document from the legal representatives (F9.1; the minor of a handed-over
    /// space).
    DocHideFromParents {
        /// Document id.
        id: String,
    },
    /// Makes a document visible to a minor's legal representatives (irreversible, F3.4).
    DocShowToRepresentatives {
        /// Document id.
        id: String,
        /// The person confirmed that this cannot be undone.
        confirmed: bool,
    },
    /// Sends a document into the space's inbox (F7.6; a professional without read rights).
    SendDocument {
        /// The document, its path absolute.
        doc: crate::record::documents::NewDocument,
    },
    /// Starts a message thread in the space through its inbox (F4.2).
    SendMessage {
        /// Subject.
        subject: String,
        /// Text.
        body: String,
    },
    /// Sends an appointment into the space's agenda through its inbox (F5).
    SendAppointment {
        /// The appointment (its id is given on filing).
        appointment: crate::record::agenda::Appointment,
    },
    /// Asks the person for consent, through the inbox.
    AskConsent {
        /// Why.
        note: String,
    },
    /// Spaces this principal reads or feeds without owning them (a professional's patients).
    Patients,
    /// Holds a document for a person whose space nobody holds keys to yet (F1.5),
    /// delivered into their inbox once they activate and let this professional feed it.
    HoldDocument {
        /// The person's NIR.
        nir: String,
        /// The document, its path absolute.
        doc: crate::record::documents::NewDocument,
    },
    /// Holds the first message of a thread for such a person (F1.5).
    HoldMessage {
        /// The person's NIR.
        nir: String,
        /// Subject.
        subject: String,
        /// Text.
        body: String,
    },
    /// What this device holds for people without a device yet.
    Held,
    /// Delivers the held items of people who activated since.
    DeliverHeld,
    /// Consent requests professionals sent to this space.
    ConsentRequests,
    /// Opts in or out of sharing anonymised data for research (F12.3).
    Research {
        /// Share.
        share: bool,
    },
    /// Writes the anonymised research export into a directory (opted in only).
    ResearchExport {
        /// Absolute directory path.
        out: String,
    },
    /// Gives a relative, trusted person, caregiver or guardian a role (F9.2, F9.3): on the
    /// named volumes (partial) or the whole space (full), until a time if given.
    Delegate {
        /// The principal.
        principal: PrincipalId,
        /// The role (`Read`, `Write`; `Admin` for a guardian).
        role: Role,
        /// Volume labels; empty for the whole space.
        volumes: Vec<String>,
        /// RFC 3339 end of the access, if any.
        until: Option<String>,
    },
    /// Consents once to an establishment's care team (F7.4).
    ConsentTeam {
        /// Structure name, as the directory lists it.
        structure: String,
        /// Volumes or groups kept from every member.
        except: Vec<String>,
    },
    /// Blocks a professional (by RPPS) or an establishment (F7.2; the person only).
    Block {
        /// RPPS number of a professional.
        rpps: Option<String>,
        /// Name of an establishment, as the directory lists it.
        structure: Option<String>,
    },
    /// Lifts a block.
    Unblock {
        /// RPPS number of a professional.
        rpps: Option<String>,
        /// Name of an establishment.
        structure: Option<String>,
    },
    /// What the person blocked, in words.
    Blocks,
    /// Designates the médecin traitant (F7.3).
    Attending {
        /// RPPS number (a physician).
        rpps: String,
        /// `law-2022` or `citizen-committee`; the deployment's when absent.
        policy: Option<String>,
        /// Volumes or groups kept from them (citizen-committee only).
        except: Vec<String>,
    },
    /// The space's access history, verified (F8.1).
    AccessHistory,
    /// Which emergency access modes the person refuses (F7.5; owner only).
    EmergencyPolicy {
        /// Refuse SAMU-Centre 15.
        refuse_centre15: bool,
        /// Refuse break-glass.
        refuse_break_glass: bool,
    },
    /// A professional's emergency access to the request's space (F7.5), logged and
    /// notified; the space need not be known to this daemon yet.
    EmergencyAccess {
        /// Mode.
        mode: crate::access::escrow::EscrowMode,
    },
    /// Flags an access history entry as suspicious (F8.3).
    FlagAccess {
        /// The entry.
        seq: u64,
    },
    /// Subscribes this connection to events.
    Subscribe,
    /// Asks the sync engine to connect now (skipping the backoff).
    SyncNow,
}

/// A frame from the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ApiFrame {
    /// The answer to a request.
    Response {
        /// The request id.
        id: u64,
        /// Result.
        result: Result<ApiReply, ApiError>,
    },
    /// An event, for subscribed clients.
    Event(ApiEvent),
}

/// Answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ApiReply {
    /// Done, durable.
    Done,
    /// Where an enrolment stands.
    Enrolment(crate::enrolment::EnrolStatus),
    /// The profiles this device enrols.
    EnrolProfiles(Vec<crate::enrolment::EnrolProfile>),
    /// The catalogue, as this space sees it.
    Catalogue(Vec<crate::enrolment::catalogue::ServiceView>),
    /// One service, as this space sees it after a change.
    Service(Box<crate::enrolment::catalogue::ServiceView>),
    /// Sync state.
    Status(StatusReport),
    /// Identity.
    Identity {
        /// Principal.
        principal: PrincipalId,
        /// Device.
        device: DeviceId,
        /// Device name.
        name: String,
        /// The principal's age recipient (the inbox recipient a handover names, F9.1).
        recipient: String,
    },
    /// A space was created.
    SpaceCreated {
        /// Its id.
        space: SpaceId,
    },
    /// Spaces.
    Spaces(Vec<SpaceSummary>),
    /// Values of one key: one when settled, several when concurrent edits conflict.
    Values(Vec<String>),
    /// Key/value pairs (first value of each key; conflicts flagged).
    Notes(Vec<NoteEntry>),
    /// A record document.
    Record {
        /// The document.
        record: crate::record::RecordBody,
        /// Fields concurrent edits left with several values.
        conflicts: Vec<crate::record::Conflict>,
    },
    /// A page of documents (keys stripped), newest first, and how many matched in all.
    Documents {
        /// How many documents matched (the page holds at most the query's limit).
        total: u32,
        /// The page.
        docs: Vec<crate::record::documents::DocumentMeta>,
    },
    /// What a bulk import check found.
    DocChecked(crate::record::documents::ImportCheck),
    /// One document (key stripped).
    Document(Box<crate::record::documents::DocumentMeta>),
    /// Measurements.
    Measurements(Vec<crate::record::measurements::Measurement>),
    /// The agenda.
    Agenda(Vec<crate::record::agenda::AgendaItem>),
    /// An export written.
    Exported {
        /// Its directory.
        path: String,
        /// Files written.
        files: u64,
        /// Bytes written.
        bytes: u64,
    },
    /// Records imported.
    Imported(u64),
    /// The id of the record an edit touched.
    Touched(String),
    /// The prevention record.
    /// Reminders, by due date.
    Reminders(Vec<crate::record::ReminderItem>),
    /// Emergency and help numbers.
    EmergencyNumbers(Vec<crate::record::emergency::EmergencyNumber>),
    /// Log entries, verified.
    Log(Vec<String>),
    /// Inbox messages filed.
    Inbox(Vec<String>),
    /// A blob stored.
    Blob {
        /// Its id.
        blob: BlobId,
        /// Plaintext size.
        size: u64,
    },
    /// A file written.
    Written {
        /// Absolute path.
        path: String,
        /// Bytes.
        size: u64,
    },
    /// A pairing code to show.
    PairingCode(String),
    /// Devices.
    Devices(Vec<DeviceSummary>),
    /// Rights on the space.
    Consents(Vec<crate::access::consent::ConsentView>),
    /// Notifications, newest first.
    Notifications(Vec<crate::access::consent::NotificationView>),
    /// Blocked professionals and establishments, in words.
    Blocks(Vec<String>),
    /// The médecin traitant's consent, with the warning a restriction carries.
    Attending {
        /// What they read.
        consent: crate::access::consent::ConsentView,
        /// Shown to the person when they kept something from them.
        warning: Option<String>,
    },
    /// The access history.
    AccessHistory(crate::access::consent::AccessHistoryView),
}

/// An error from the daemon: a code and a message naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[error("{message}")]
pub struct ApiError {
    /// Kind.
    pub code: ApiErrorCode,
    /// Message for people and logs.
    pub message: String,
}

impl From<crate::invalid::Invalid> for ApiError {
    /// Input that failed a check is a bad request, with what is wrong.
    fn from(e: crate::invalid::Invalid) -> Self {
        ApiError::new(ApiErrorCode::BadRequest, e.0)
    }
}

impl ApiError {
    /// Builds an error.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Error kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ApiErrorCode {
    /// The request is malformed or its arguments are invalid.
    BadRequest,
    /// No such space, key, blob or device.
    NotFound,
    /// Not allowed.
    Forbidden,
    /// Needs the relay and it cannot be reached.
    Offline,
    /// Writing to the local store failed; nothing was acknowledged.
    Storage,
    /// Pairing failed.
    Pairing,
    /// Anything else.
    Internal,
}

/// Pushed to subscribed clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ApiEvent {
    /// A volume changed (local edit or remote bundles applied).
    VolumeChanged {
        /// Space.
        space: SpaceId,
        /// Volume.
        volume: VolumeId,
    },
    /// Connection to the relay went up or down.
    Connection {
        /// Online.
        online: bool,
    },
    /// The access history of a space grew, or its alarm was raised (F8.1).
    AccessHistory {
        /// Space.
        space: SpaceId,
    },
    /// A notification was raised for a space (F8.2).
    Notified {
        /// Space.
        space: SpaceId,
    },
}

/// Sync state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct StatusReport {
    /// Connected and authenticated to the relay.
    pub online: bool,
    /// Relay address.
    pub relay: String,
    /// Per volume.
    pub volumes: Vec<VolumeStatus>,
    /// Replica store operations that ever ran longer than 5 s in this process (the
    /// store watchdog, issue 23): anything but 0 deserves a look at the daemon's log.
    pub slow_store_operations: u64,
}

/// Sync state of one volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct VolumeStatus {
    /// Space.
    pub space: SpaceId,
    /// Volume.
    pub volume: VolumeId,
    /// Label.
    pub label: String,
    /// Kind.
    pub kind: VolumeKind,
    /// Generation.
    pub generation: u32,
    /// Epoch.
    pub epoch: u32,
    /// Last relay seq applied.
    pub cursor: Seq,
    /// Relay head last heard of.
    pub head: Seq,
    /// Local bundles not yet acknowledged by the relay.
    pub pending_uploads: u64,
}

/// A space held by the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SpaceSummary {
    /// Id.
    pub space: SpaceId,
    /// Label.
    pub label: String,
    /// Owner.
    pub owner: PrincipalId,
}

/// One note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NoteEntry {
    /// Key.
    pub key: String,
    /// Values (several when concurrent edits conflict).
    pub values: Vec<String>,
}

/// A device of the principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeviceSummary {
    /// Id.
    pub device: DeviceId,
    /// Name.
    pub name: String,
    /// This device.
    pub this_device: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{decode, encode, MAX_API_FRAME};
    use proptest::prelude::*;

    /// The derived strategies of these large enums nest deeply: build them on a thread
    /// with room (debug builds overflow the test thread's 2 MiB stack).
    fn with_room(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(f)
            .expect("spawn")
            .join()
            .expect("the property holds");
    }

    #[test]
    fn requests_round_trip() {
        with_room(|| {
            proptest!(|(r in any::<ApiRequest>())| {
                prop_assert_eq!(decode::<ApiRequest>(&encode(&r), MAX_API_FRAME).unwrap(), r);
            });
        });
    }

    #[test]
    fn frames_round_trip() {
        with_room(|| {
            proptest!(|(f in any::<ApiFrame>())| {
                prop_assert_eq!(decode::<ApiFrame>(&encode(&f), MAX_API_FRAME).unwrap(), f);
            });
        });
    }
}
