//! Keys and certificates of principals and devices.
//!
//! Each principal and each device has an Ed25519 signing key ([`SigningSecret`]) and an
//! X25519 age identity ([`AgeSecret`]). A device is vouched for by a [`DeviceCert`] signed
//! by its principal. Secret types derive nothing: no `Clone`, no `Serialize`, a redacted
//! `Debug`, and their bytes are zeroized on drop; exporting them is an explicit call.

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

use crate::ids::{DeviceId, PrincipalId};
use crate::time::UnixMillis;
use crate::wire::codec;

/// A signature could not be checked or did not match.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key bytes are not a valid Ed25519 point.
    #[error("invalid public key for {what}")]
    BadKey {
        /// What was being verified.
        what: &'static str,
    },
    /// The signature does not verify.
    #[error("bad signature on {what}")]
    Mismatch {
        /// What was being verified.
        what: &'static str,
    },
}

/// An Ed25519 signature, serialised as 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes_64")] pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..4]))
    }
}

mod serde_bytes_64 {
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: &[u8] = serde_bytes::Deserialize::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 bytes"))
    }
}

/// An Ed25519 signing key. Not `Clone`, not `Serialize`; zeroized on drop.
pub struct SigningSecret(ed25519_dalek::SigningKey);

impl SigningSecret {
    /// A fresh key from the given random source.
    pub fn generate(rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Self {
        SigningSecret(ed25519_dalek::SigningKey::generate(rng))
    }
    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningSecret(ed25519_dalek::SigningKey::from_bytes(bytes))
    }
    /// The 32 secret bytes, for sealed storage only.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
    /// Signs `message` under a domain-separation `context`.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> Signature {
        Signature(self.0.sign(&domain(context, message)).to_bytes())
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningSecret(public {}, secret redacted)",
            hex::encode(&self.public()[..4])
        )
    }
}

fn domain(context: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 1 + message.len());
    m.extend_from_slice(context);
    m.push(0);
    m.extend_from_slice(message);
    m
}

/// Decompressed public keys, by their bytes: decompressing costs a field square root
/// (about a fifth of a verification) and the same few devices sign most bundles.
/// Decompression is a pure function, so a cached key is the key; the cache is bounded.
fn verifying_key(
    public: &[u8; 32],
    what: &'static str,
) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    const MAX_CACHED: usize = 1 << 16;
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(k) = cache.lock().expect("key cache").get(public) {
        return Ok(*k);
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(public)
        .map_err(|_| SignatureError::BadKey { what })?;
    let mut c = cache.lock().expect("key cache");
    if c.len() >= MAX_CACHED {
        c.clear();
    }
    c.insert(*public, key);
    Ok(key)
}

/// Verifies a signature made by [`SigningSecret::sign`] with the same context.
pub fn verify(
    public: &[u8; 32],
    context: &[u8],
    message: &[u8],
    signature: &Signature,
    what: &'static str,
) -> Result<(), SignatureError> {
    let key = verifying_key(public, what)?;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify(&domain(context, message), &sig)
        .map_err(|_| SignatureError::Mismatch { what })
}

/// One signature to check: (public key, context, message, signature).
pub type SignedItem<'a> = (&'a [u8; 32], &'a [u8], &'a [u8], &'a Signature);

/// Verifies many signatures at once (Ed25519 batch verification, about twice as fast);
/// when the batch fails, checks one by one to name the first bad one by index.
pub fn verify_batch(
    items: &[SignedItem<'_>],
    what: &'static str,
) -> Result<(), (usize, SignatureError)> {
    // One signature: a plain verification costs less than a batch of one.
    if let [(public, context, message, signature)] = items {
        return verify(public, context, message, signature, what).map_err(|e| (0, e));
    }
    let mut keys = Vec::with_capacity(items.len());
    for (i, (public, ..)) in items.iter().enumerate() {
        keys.push(verifying_key(public, what).map_err(|e| (i, e))?);
    }
    let messages: Vec<Vec<u8>> = items.iter().map(|(_, c, m, _)| domain(c, m)).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(.., s)| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    if ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok() {
        return Ok(());
    }
    for (i, (public, context, message, signature)) in items.iter().enumerate() {
        verify(public, context, message, signature, what).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// One signature to check, owned, so that the checks of several requests can be made
/// in one batch ([`verify_checks`]).
#[derive(Clone, Debug)]
pub struct Check {
    public: [u8; 32],
    message: Vec<u8>,
    signature: Signature,
}

impl Check {
    /// The check of `signature` by `public` over `message` in `context`.
    pub fn new(public: [u8; 32], context: &[u8], message: &[u8], signature: Signature) -> Self {
        Check {
            public,
            message: domain(context, message),
            signature,
        }
    }

    fn holds(&self) -> bool {
        verifying_key(&self.public, "signature").is_ok_and(|k| {
            k.verify(
                &self.message,
                &ed25519_dalek::Signature::from_bytes(&self.signature.0),
            )
            .is_ok()
        })
    }
}

/// Whether each signature holds: all in one Ed25519 batch when they all do (about twice
/// as fast per signature), one by one to tell which when the batch fails.
pub fn verify_checks(checks: &[Check]) -> Vec<bool> {
    if let [one] = checks {
        return vec![one.holds()];
    }
    let keys: Option<Vec<ed25519_dalek::VerifyingKey>> = checks
        .iter()
        .map(|c| verifying_key(&c.public, "signature").ok())
        .collect();
    if let Some(keys) = keys {
        let messages: Vec<&[u8]> = checks.iter().map(|c| c.message.as_slice()).collect();
        let sigs: Vec<ed25519_dalek::Signature> = checks
            .iter()
            .map(|c| ed25519_dalek::Signature::from_bytes(&c.signature.0))
            .collect();
        if ed25519_dalek::verify_batch(&messages, &sigs, &keys).is_ok() {
            return vec![true; checks.len()];
        }
    }
    checks.iter().map(Check::holds).collect()
}

/// An age X25519 identity (secret). Not `Clone`, not `Serialize`.
pub struct AgeSecret(age::x25519::Identity);

impl AgeSecret {
    /// A fresh identity.
    pub fn generate() -> Self {
        AgeSecret(age::x25519::Identity::generate())
    }
    /// The public recipient.
    pub fn recipient(&self) -> AgeRecipient {
        AgeRecipient(self.0.to_public().to_string())
    }
    /// The `AGE-SECRET-KEY-1...` string, for sealed storage or an identity file.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        use age::secrecy::ExposeSecret;
        Zeroizing::new(self.0.to_string().expose_secret().to_string())
    }
    /// Parses an `AGE-SECRET-KEY-1...` string.
    pub fn parse(s: &str) -> Result<Self, KeyParseError> {
        age::x25519::Identity::from_str(s.trim())
            .map(AgeSecret)
            .map_err(|_| KeyParseError {
                what: "age identity",
            })
    }
    /// The inner age identity, to decrypt.
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.0
    }
}

impl fmt::Debug for AgeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AgeSecret(recipient {}, secret redacted)",
            self.recipient().0
        )
    }
}

/// A key string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {what}")]
pub struct KeyParseError {
    /// What was being parsed.
    pub what: &'static str,
}

/// An age X25519 recipient (`age1...`), public.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgeRecipient(pub String);

impl AgeRecipient {
    /// Parses into age's recipient type.
    pub fn parse(&self) -> Result<age::x25519::Recipient, KeyParseError> {
        age::x25519::Recipient::from_str(&self.0).map_err(|_| KeyParseError {
            what: "age recipient",
        })
    }
}

/// The key pair of a principal or a device: signing and age.
#[derive(Debug)]
pub struct KeyPair {
    /// Ed25519 signing key.
    pub signing: SigningSecret,
    /// X25519 age identity.
    pub age: AgeSecret,
}

impl KeyPair {
    /// Fresh keys.
    pub fn generate(rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Self {
        KeyPair {
            signing: SigningSecret::generate(rng),
            age: AgeSecret::generate(),
        }
    }
    /// This key pair as a principal id.
    pub fn principal_id(&self) -> PrincipalId {
        PrincipalId(self.signing.public())
    }
    /// This key pair as a device id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.signing.public())
    }
    /// The secret material, for sealed storage.
    pub fn export(&self) -> ExportedKeyPair {
        ExportedKeyPair {
            signing: *self.signing.to_bytes(),
            age: self.age.to_secret_string().to_string(),
        }
    }
}

/// Secret key material in transit to sealed storage or through a pairing channel.
/// Zeroized on drop; never logged.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct ExportedKeyPair {
    signing: [u8; 32],
    age: String,
}

impl ExportedKeyPair {
    /// Rebuilds the key pair.
    pub fn import(&self) -> Result<KeyPair, KeyParseError> {
        Ok(KeyPair {
            signing: SigningSecret::from_bytes(&self.signing),
            age: AgeSecret::parse(&self.age)?,
        })
    }
}

impl fmt::Debug for ExportedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportedKeyPair(redacted)")
    }
}

const CERT_CONTEXT: &[u8] = b"mes/device-cert/v1";

/// What a principal states about one of its devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertBody {
    /// The principal vouching for the device.
    pub principal: PrincipalId,
    /// The device's signing key.
    pub device: DeviceId,
    /// The device's age recipient, to which key envelopes are wrapped.
    pub recipient: AgeRecipient,
    /// A name the person chose ("laptop", "phone").
    pub name: String,
    /// When the certificate was issued.
    pub issued_at: UnixMillis,
}

/// A device certificate: the body signed by the principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// What is certified.
    pub body: DeviceCertBody,
    /// The principal's signature over the body.
    pub signature: Signature,
}

impl DeviceCert {
    /// Issues a certificate for a device.
    pub fn issue(principal: &SigningSecret, body: DeviceCertBody) -> Self {
        let signature = principal.sign(CERT_CONTEXT, &codec::to_bytes(&body));
        DeviceCert { body, signature }
    }
    /// A principal certifies one of its devices (the device's keys are at hand: at
    /// creation, in tests and in the simulator; pairing certifies an offer instead).
    pub fn for_device(
        principal: &KeyPair,
        device: &KeyPair,
        name: &str,
        issued_at: UnixMillis,
    ) -> Self {
        DeviceCert::issue(
            &principal.signing,
            DeviceCertBody {
                principal: principal.principal_id(),
                device: device.device_id(),
                recipient: device.age.recipient(),
                name: name.into(),
                issued_at,
            },
        )
    }
    /// Checks the principal's signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify(
            &self.body.principal.0,
            CERT_CONTEXT,
            &codec::to_bytes(&self.body),
            &self.signature,
            "device certificate",
        )
    }
}

/// Context of the signature a device makes over the relay's challenge.
pub const CHALLENGE_CONTEXT: &[u8] = b"mes/relay-challenge/v1";

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch with one forged signature names exactly that one; the same batch honest
    /// passes whole (the control).
    #[test]
    fn batched_checks_name_the_one_forgery() {
        let mut rng = rand::thread_rng();
        let keys: Vec<KeyPair> = (0..9).map(|_| KeyPair::generate(&mut rng)).collect();
        let mut checks: Vec<Check> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let m = format!("bundle {i}");
                Check::new(
                    k.signing.public(),
                    b"ctx",
                    m.as_bytes(),
                    k.signing.sign(b"ctx", m.as_bytes()),
                )
            })
            .collect();
        assert_eq!(verify_checks(&checks), vec![true; 9]);
        // Bundle 4's signature over another message.
        checks[4] = Check::new(
            keys[4].signing.public(),
            b"ctx",
            b"bundle 4",
            keys[4].signing.sign(b"ctx", b"something else"),
        );
        let held = verify_checks(&checks);
        assert_eq!(held.iter().filter(|h| !**h).count(), 1);
        assert!(!held[4]);
        assert_eq!(verify_checks(&checks[4..5]), vec![false]);
    }

    #[test]
    fn cert_verifies_and_tampering_fails() {
        let mut rng = rand::thread_rng();
        let principal = KeyPair::generate(&mut rng);
        let device = KeyPair::generate(&mut rng);
        let cert = DeviceCert::for_device(&principal, &device, "laptop", UnixMillis(1));
        cert.verify().unwrap();
        let mut forged = cert.clone();
        forged.body.name = "evil".into();
        assert_eq!(
            forged.verify(),
            Err(SignatureError::Mismatch {
                what: "device certificate"
            })
        );
        let back = principal.export().import().unwrap();
        assert_eq!(back.principal_id(), principal.principal_id());
        assert!(!format!("{principal:?}").contains(&*principal.age.to_secret_string()));
    }
}
