//! Sealing a volume's local changes into the bundles an upload carries, sans IO: chained
//! by their links, under the volume's current epoch key (or, for an inbox, sealed to the
//! space's inbox recipient, unchained). The daemon's upload and the simulator's devices
//! run this same code.

use mes_protocol::crypto::keys::{AgeRecipient, SigningSecret};
use mes_protocol::crypto::seal::{
    BundleHeader, BundleLink, CipherSuite, SealedBundle, SymmetricKey,
};
use mes_protocol::ids::{DeviceId, Epoch, Generation, SpaceId, VolumeId};

/// What a volume's bundles are sealed with.
pub enum SealWith<'a> {
    /// The volume's current epoch key.
    Epoch(Epoch, &'a SymmetricKey),
    /// An inbox's drops, to the space's inbox recipient (F7.6).
    Inbox(&'a AgeRecipient),
}

/// Who seals what: one volume's generation, one author device.
pub struct Sealing<'a> {
    /// The cipher suite of epoch-key bundles.
    pub suite: CipherSuite,
    /// The space.
    pub space: SpaceId,
    /// The volume.
    pub volume: VolumeId,
    /// Its current generation.
    pub generation: Generation,
    /// The author device.
    pub author: DeviceId,
    /// The author's signing key.
    pub signing: &'a SigningSecret,
    /// The key or recipient.
    pub with: SealWith<'a>,
}

impl Sealing<'_> {
    /// Seals each encoded change in order after `prev` (the last uploaded bundle's link);
    /// the bundles and the new last link.
    pub fn seal(
        &self,
        mut prev: Option<BundleLink>,
        changes: impl IntoIterator<Item = Vec<u8>>,
        rng: &mut impl rand::RngCore,
    ) -> Result<(Vec<SealedBundle>, Option<BundleLink>), String> {
        let header = |epoch, prev| BundleHeader {
            suite: self.suite,
            space: self.space,
            volume: self.volume,
            generation: self.generation,
            epoch,
            author: self.author,
            nonce: [0; 24],
            prev,
        };
        let mut bundles = Vec::new();
        for plain in changes {
            let b = match &self.with {
                SealWith::Inbox(to) => {
                    SealedBundle::seal_drop(to, header(Epoch(0), None), self.signing, &plain)
                        .map_err(|e| e.to_string())?
                }
                SealWith::Epoch(epoch, key) => {
                    SealedBundle::seal(key, header(*epoch, prev), self.signing, rng, &plain)
                }
            };
            prev = Some(b.link());
            bundles.push(b);
        }
        Ok((bundles, prev))
    }
}
