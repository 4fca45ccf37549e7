//! Pairing rendezvous: messages forwarded between two devices, bounded per connection.

use super::{Caller, Relay};
use mes_protocol::wire::{ErrorCode, Reply, WireError};

impl Relay {
    /// Joins a pairing rendezvous.
    pub(super) async fn pair_open(
        &self,
        caller: &Caller,
        rendezvous: [u8; 16],
    ) -> Result<Reply, WireError> {
        self.pushes.join_rendezvous(rendezvous, &caller.outbox)?;
        Ok(Reply::Done)
    }

    /// Sends a pairing message to the other side of the rendezvous.
    pub(super) async fn pair_send(
        &self,
        caller: &Caller,
        rendezvous: [u8; 16],
        body: Vec<u8>,
    ) -> Result<Reply, WireError> {
        if !caller.outbox.count_pairing_message() {
            return Err(WireError::new(
                ErrorCode::Busy,
                format!(
                    "a connection sends at most {} pairing messages",
                    crate::defaults::MAX_PAIRING_MESSAGES_PER_CONNECTION
                ),
            ));
        }
        if body.len() > crate::defaults::MAX_PAIRING_MESSAGE {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!(
                    "a pairing message is at most {} bytes; this one is {}",
                    crate::defaults::MAX_PAIRING_MESSAGE,
                    body.len()
                ),
            ));
        }
        let body = self.faults.pairing_message(body);
        self.pushes
            .forward_pairing(rendezvous, &caller.outbox, body);
        Ok(Reply::Done)
    }
}
