//! Misbehaviour for the tests' controls, injected through [`Faults`]: each hook sits where
//! a rule is enforced, and a production relay runs [`Honest`], whose hooks change nothing.
//! A control shows that the test around a rule fails when the rule is skipped.

use mes_protocol::access::membership::Signed;
use mes_protocol::crypto::pairing::{PairingCode, PairingExchange};
use mes_protocol::enrolment::catalogue::CatalogueEntry;
use mes_protocol::ids::DeviceId;
use mes_protocol::wire::codec;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A rule a test's control may skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every access decision.
    Access,
    /// The habilitation matrix on grants to professionals.
    Matrix,
    /// Who may wrap a key for whom.
    EnvelopeRights,
    /// A volume id bound to one space for ever (issue 22, finding 1).
    VolumeBinding,
    /// The rules of a volume declaration (finding 2).
    Declaration,
    /// Only listed devices are admitted (finding 3).
    DeviceList,
    /// A committed file belongs to its space (finding 8).
    FileBinding,
    /// Bundles sealed with the null cipher are refused (finding 10).
    NullCipher,
}

/// Where a relay may be made to misbehave. Every method defaults to honest behaviour.
pub trait Faults: Send + Sync + 'static {
    /// Whether `rule` is skipped.
    fn skips(&self, _rule: Rule) -> bool {
        false
    }
    /// Removes bundles of an append before they are stored (acknowledged all the same).
    fn drop_appended(&self, _encoded: &mut Vec<Vec<u8>>) {}
    /// The pairing message forwarded for `body`.
    fn pairing_message(&self, body: Vec<u8>) -> Vec<u8> {
        body
    }
    /// Changes the catalogue served.
    fn alter_catalogue(&self, _entries: &mut [Signed<CatalogueEntry>]) {}
    /// Whether `device` is shown a forked access history.
    fn forks_history_for(&self, _device: DeviceId) -> bool {
        false
    }
}

/// The production relay: no hook changes anything.
pub struct Honest;

impl Faults for Honest {}

/// Switches that make a relay misbehave on purpose, for the tests' controls only.
#[derive(Clone, Debug, Default)]
pub struct Misbehaviour {
    /// Replace each side's first pairing message with the relay's own SPAKE2 message
    /// (a man in the middle): pairing must then fail.
    pub tamper_pairing: bool,
    /// Acknowledge the `n`-th appended bundle (counted from 1 across all appends) but
    /// silently never store it: the simulator's planted bug, which its checker must catch.
    pub drop_bundle: Option<u64>,
    /// Bundles appended so far while `drop_bundle` is set, shared by every relay built
    /// from clones of this value: a restarted relay goes on counting, and the simulator
    /// holds it far beyond `drop_bundle` during its setup and sets it to zero once the
    /// setup is done, so the drop falls among the edits.
    pub appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bundles dropped so far (the simulator's report says whether the bug was planted).
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Skip every access decision (the authorisation matrix test's control).
    pub skip_access_check: bool,
    /// Accept grants to professionals beyond the habilitation matrix (its control).
    pub skip_matrix_check: bool,
    /// Show this device a different (validly signed and chained) access history than the
    /// other devices: the fork the owner's devices must catch.
    pub fork_history_for: Option<DeviceId>,
    /// Store any key envelope from anyone (a hub planting keys): devices must refuse to
    /// adopt a key from someone who may not choose it.
    pub accept_any_envelope: bool,
    /// Serve the catalogue with every suspension lifted, without signing again (a hub
    /// vouching for a service it suspended): devices must refuse the list.
    pub unsuspend_catalogue: bool,
    /// Let a space declare a volume id another space holds (issue 22, finding 1's
    /// control): the stranger's fetch must then reach the victim's log.
    pub skip_volume_binding: bool,
    /// Store any admin's volume declaration as it comes, relabelled or not (finding 2's
    /// control): the owner's devices must still refuse it.
    pub accept_any_declaration: bool,
    /// Admit any device its principal certified, listed or not (finding 3's control): a
    /// revoked device holding the principal's keys then comes back under a new name.
    pub admit_any_certified_device: bool,
    /// Let any space claim a committed blob (finding 8's control).
    pub skip_blob_binding: bool,
    /// Store bundles sealed with the null cipher (the confidentiality tests' control;
    /// a production relay refuses them, finding 10).
    pub accept_null_cipher: bool,
}

impl Misbehaviour {
    /// Whether no switch is set (the relay then runs [`Honest`]).
    pub fn is_honest(&self) -> bool {
        let Misbehaviour {
            tamper_pairing,
            drop_bundle,
            appended: _,
            dropped: _,
            skip_access_check,
            skip_matrix_check,
            fork_history_for,
            accept_any_envelope,
            unsuspend_catalogue,
            skip_volume_binding,
            accept_any_declaration,
            admit_any_certified_device,
            skip_blob_binding,
            accept_null_cipher,
        } = self;
        !(*tamper_pairing
            || drop_bundle.is_some()
            || *skip_access_check
            || *skip_matrix_check
            || fork_history_for.is_some()
            || *accept_any_envelope
            || *unsuspend_catalogue
            || *skip_volume_binding
            || *accept_any_declaration
            || *admit_any_certified_device
            || *skip_blob_binding
            || *accept_null_cipher)
    }

    /// The faults a relay built with these switches runs.
    pub fn into_faults(self) -> Arc<dyn Faults> {
        if self.is_honest() {
            Arc::new(Honest)
        } else {
            Arc::new(self)
        }
    }
}

impl Faults for Misbehaviour {
    fn skips(&self, rule: Rule) -> bool {
        match rule {
            Rule::Access => self.skip_access_check,
            Rule::Matrix => self.skip_matrix_check,
            Rule::EnvelopeRights => self.accept_any_envelope,
            Rule::VolumeBinding => self.skip_volume_binding,
            Rule::Declaration => self.accept_any_declaration,
            Rule::DeviceList => self.admit_any_certified_device,
            Rule::FileBinding => self.skip_blob_binding,
            Rule::NullCipher => self.accept_null_cipher,
        }
    }

    fn drop_appended(&self, encoded: &mut Vec<Vec<u8>>) {
        let Some(n) = self.drop_bundle else {
            return;
        };
        let before = self
            .appended
            .fetch_add(encoded.len() as u64, Ordering::SeqCst);
        if (before + 1..=before + encoded.len() as u64).contains(&n) {
            encoded.remove((n - before - 1) as usize);
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The man in the middle of the tests' control: answers each side with a SPAKE2
    /// message of its own, for a code it had to guess.
    fn pairing_message(&self, body: Vec<u8>) -> Vec<u8> {
        if !self.tamper_pairing {
            return body;
        }
        let mut rng = rand::thread_rng();
        match codec::from_bytes::<mes_protocol::crypto::pairing::PairMessage>(&body) {
            Ok(mes_protocol::crypto::pairing::PairMessage::Spake(_)) => {
                let guess = PairingCode::generate(&mut rng);
                let (_, msg) = PairingExchange::start(&guess, &mut rng);
                codec::to_bytes(&mes_protocol::crypto::pairing::PairMessage::Spake(msg))
            }
            _ => body,
        }
    }

    fn alter_catalogue(&self, entries: &mut [Signed<CatalogueEntry>]) {
        if self.unsuspend_catalogue {
            for e in entries {
                e.body.suspended = None;
            }
        }
    }

    fn forks_history_for(&self, device: DeviceId) -> bool {
        self.fork_history_for == Some(device)
    }
}
