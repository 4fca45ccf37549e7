//! What a writer without read rights drops into a space's inbox (F7.6), sealed to the
//! space's inbox recipient so only the owner opens it; the owner's daemon files each item
//! where it belongs. A professional starts message threads this way (F4.2), sends
//! documents and appointments, and asks for consent.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

use crate::record::agenda::Appointment;
use crate::record::documents::DocumentMeta;

/// The prefix that marks a structured drop (a drop without it is plain text).
pub const ITEM_PREFIX: &str = "mes-item:";

/// One dropped item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InboxItem {
    /// A document whose file the sender uploaded (the key travels here, sealed).
    Document(Box<DocumentMeta>),
    /// The first message of a thread the professional starts.
    Message {
        /// Thread subject.
        subject: String,
        /// Text.
        body: String,
    },
    /// An appointment for the agenda.
    Appointment(Appointment),
    /// The professional asks the person for consent.
    ConsentRequest {
        /// Why, in their words.
        note: String,
    },
}

impl InboxItem {
    /// The drop text carrying this item.
    pub fn encode(&self) -> String {
        format!(
            "{ITEM_PREFIX}{}",
            hex::encode(crate::wire::codec::to_bytes(self))
        )
    }

    /// The item a drop text carries, if structured.
    pub fn decode(text: &str) -> Option<Result<InboxItem, Invalid>> {
        let body = text.strip_prefix(ITEM_PREFIX)?;
        Some(
            hex::decode(body)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::wire::codec::from_bytes(&b).map_err(|e| e.to_string()))
                .map_err(Invalid),
        )
    }
}
