//! Recovery when every device is lost (F12.4). A recovery kit holds the person's
//! principal keys and a recovery identity, sealed with age under a passphrase (scrypt);
//! every admin device also wraps each epoch key to the recovery identity, addressed to a
//! pseudo-device of the owner ([`recovery_device`]), so a fresh device restored from the
//! kit opens everything without any old device. The kit's passphrase can instead be a
//! random secret split among trusted persons, `k` of `n` shares needed (Shamir over
//! GF(256), the `blahaj` crate: the maintained fork of `sharks`, whose coefficients were
//! drawn with a bias (a RustSec advisory); the share format is the same, so kits split
//! before still open).

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

use crate::crypto::keys::ExportedKeyPair;
use crate::ids::{DeviceId, PrincipalId};
use crate::time::UnixMillis;

/// A recovery kit's word for a restored device (issue 22, finding 3): the relay admits
/// only devices on their person's list, and a device joins the list either through a
/// listed device (pairing) or through this, signed by the kit's admission key, whose
/// public half a listed device registered when the kit was made. The admission secret
/// lives in the kit only, never on a device, so a stolen device cannot re-admit itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionVouch {
    /// The kit's admission public key.
    pub key: PrincipalId,
    /// Its signature over the restored device's certificate.
    pub signature: crate::crypto::keys::Signature,
}

const ADMISSION_CONTEXT: &[u8] = b"mes/recovery-admission/v1";

impl AdmissionVouch {
    /// The kit vouches for a restored device's certificate.
    pub fn sign(
        kit: &crate::crypto::keys::SigningSecret,
        cert: &crate::crypto::keys::DeviceCert,
    ) -> Self {
        AdmissionVouch {
            key: PrincipalId(kit.public()),
            signature: kit.sign(ADMISSION_CONTEXT, &crate::wire::codec::to_bytes(cert)),
        }
    }

    /// Checks the signature over `cert` (the relay then checks the key is the one
    /// registered for the certificate's principal).
    pub fn verify(
        &self,
        cert: &crate::crypto::keys::DeviceCert,
    ) -> Result<(), crate::crypto::keys::SignatureError> {
        crate::crypto::keys::verify(
            &self.key.0,
            ADMISSION_CONTEXT,
            &crate::wire::codec::to_bytes(cert),
            &self.signature,
            "recovery admission",
        )
    }
}

/// The pseudo-device recovery envelopes of an owner's spaces are addressed to.
pub fn recovery_device(owner: PrincipalId) -> DeviceId {
    let mut h = blake3::Hasher::new();
    h.update(b"mes/recovery/v1");
    h.update(&owner.0);
    DeviceId(*h.finalize().as_bytes())
}

/// What a kit holds.
#[derive(Serialize, Deserialize)]
pub struct RecoveryKit {
    /// The person's principal keys.
    pub principal: ExportedKeyPair,
    /// The recovery identity (`AGE-SECRET-KEY-1…`), zeroized on drop.
    pub recovery: String,
    /// The relay to reach, and its pinned fingerprint.
    pub relay_address: String,
    /// SHA-256 fingerprint of the relay's certificate.
    pub relay_fingerprint: String,
    /// When the kit was made.
    pub created_at: UnixMillis,
    /// The admission secret (hex) a restored device signs its certificate with
    /// ([`AdmissionVouch`]); absent from kits made before device lists.
    pub admission: Option<String>,
}

/// A kit as made before device lists (protocol 7): still opened, it restores the keys,
/// and its device is admitted only once a listed device of the person lists it.
#[derive(Serialize, Deserialize)]
struct RecoveryKitV1 {
    principal: ExportedKeyPair,
    recovery: String,
    relay_address: String,
    relay_fingerprint: String,
    created_at: UnixMillis,
}

impl Drop for RecoveryKit {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.recovery);
        if let Some(a) = &mut self.admission {
            zeroize::Zeroize::zeroize(a);
        }
    }
}

impl fmt::Debug for RecoveryKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecoveryKit(relay {}, secrets redacted)",
            self.relay_address
        )
    }
}

/// Why a kit or its shares could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryError {
    /// Wrong passphrase, or not a kit.
    #[error("the recovery kit does not open: wrong passphrase or not a kit ({0})")]
    Open(String),
    /// Shares that do not combine.
    #[error("the shares do not rebuild the kit's secret: {0}")]
    Shares(String),
    /// Bad split parameters.
    #[error("a split needs 1 <= k <= n <= 255, got {k} of {n}")]
    Split {
        /// Needed.
        k: u8,
        /// Made.
        n: u8,
    },
}

/// Seals a kit under a passphrase.
pub fn seal(kit: &RecoveryKit, passphrase: &str) -> Vec<u8> {
    let plain = Zeroizing::new(crate::wire::codec::to_bytes(kit));
    age::encrypt(
        &age::scrypt::Recipient::new(passphrase.to_string().into()),
        &plain,
    )
    .expect("age encryption to a passphrase does not fail")
}

/// Opens a sealed kit.
pub fn open(sealed: &[u8], passphrase: &str) -> Result<RecoveryKit, RecoveryError> {
    let plain = Zeroizing::new(
        age::decrypt(
            &age::scrypt::Identity::new(passphrase.to_string().into()),
            sealed,
        )
        .map_err(|e| RecoveryError::Open(e.to_string()))?,
    );
    match crate::wire::codec::from_bytes::<RecoveryKit>(&plain) {
        Ok(kit) => Ok(kit),
        Err(e) => match crate::wire::codec::from_bytes::<RecoveryKitV1>(&plain) {
            Ok(old) => Ok(RecoveryKit {
                principal: old.principal,
                recovery: old.recovery,
                relay_address: old.relay_address,
                relay_fingerprint: old.relay_fingerprint,
                created_at: old.created_at,
                admission: None,
            }),
            Err(_) => Err(RecoveryError::Open(e.to_string())),
        },
    }
}

/// Splits a 32-byte secret into `n` shares (hex lines), any `k` of which rebuild it.
pub fn split(secret: &[u8; 32], k: u8, n: u8) -> Result<Vec<String>, RecoveryError> {
    if k == 0 || k > n {
        return Err(RecoveryError::Split { k, n });
    }
    let dealer = blahaj::Sharks(k).dealer(secret);
    Ok(dealer
        .take(n as usize)
        .map(|s| format!("mes-share-{k}:{}", hex::encode(Vec::from(&s))))
        .collect())
}

/// Rebuilds a secret from shares made by [`split`].
pub fn combine(shares: &[String]) -> Result<Zeroizing<[u8; 32]>, RecoveryError> {
    let mut k = None;
    let mut parsed = Vec::new();
    for s in shares {
        let (head, body) = s.trim().split_once(':').ok_or_else(|| {
            RecoveryError::Shares("a share does not start with mes-share-K:".into())
        })?;
        let need: u8 = head
            .strip_prefix("mes-share-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| RecoveryError::Shares(format!("bad share header {head:?}")))?;
        if k.is_some_and(|k| k != need) {
            return Err(RecoveryError::Shares("shares of different splits".into()));
        }
        k = Some(need);
        let bytes = hex::decode(body).map_err(|e| RecoveryError::Shares(e.to_string()))?;
        parsed.push(
            blahaj::Share::try_from(bytes.as_slice())
                .map_err(|e| RecoveryError::Shares(e.to_string()))?,
        );
    }
    let k = k.ok_or_else(|| RecoveryError::Shares("no share given".into()))?;
    if parsed.len() < k as usize {
        return Err(RecoveryError::Shares(format!(
            "{} share(s) given, {k} needed",
            parsed.len()
        )));
    }
    let secret = blahaj::Sharks(k)
        .recover(parsed.iter())
        .map_err(|e| RecoveryError::Shares(e.to_string()))?;
    let bytes: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| RecoveryError::Shares("the rebuilt secret is not 32 bytes".into()))?;
    Ok(Zeroizing::new(bytes))
}

/// The passphrase a split kit is sealed with: the hex of its random secret.
pub fn split_passphrase(secret: &[u8; 32]) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_of_n_shares_rebuild_the_secret_and_fewer_do_not() {
        let secret = [7u8; 32];
        let shares = split(&secret, 2, 3).unwrap();
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let got = combine(&[shares[pair[0]].clone(), shares[pair[1]].clone()]).unwrap();
            assert_eq!(*got, secret);
        }
        let e = combine(&shares[..1]).unwrap_err();
        assert_eq!(
            e,
            RecoveryError::Shares("1 share(s) given, 2 needed".into())
        );
        assert!(split(&secret, 3, 2).is_err());
        let mut bad = shares[0].clone();
        bad.push('z');
        assert!(combine(&[bad, shares[1].clone()]).is_err());
    }

    #[test]
    fn a_kit_opens_with_its_passphrase_only() {
        let kp = crate::crypto::keys::KeyPair::generate(&mut rand::thread_rng());
        let kit = RecoveryKit {
            principal: kp.export(),
            recovery: crate::crypto::keys::AgeSecret::generate()
                .to_secret_string()
                .to_string(),
            relay_address: "127.0.0.1:4433".into(),
            relay_fingerprint: "ab".into(),
            created_at: UnixMillis(1),
            admission: Some("11".repeat(32)),
        };
        let sealed = seal(&kit, "cheval batterie agrafe");
        let back = open(&sealed, "cheval batterie agrafe").unwrap();
        assert_eq!(
            back.principal.import().unwrap().principal_id(),
            kp.principal_id()
        );
        assert!(matches!(
            open(&sealed, "wrong"),
            Err(RecoveryError::Open(_))
        ));
        assert!(!String::from_utf8_lossy(&sealed).contains("127.0.0.1"));
        assert_eq!(back.admission.as_deref(), Some("11".repeat(32).as_str()));
    }

    /// Shares made by `sharks` 0.5 (before the move to `blahaj`, issue 22 finding 10)
    /// still rebuild their secret.
    #[test]
    fn shares_split_before_the_move_still_combine() {
        let old = [
            "mes-share-2:0185318cc2495fefb4cde335fa49500e7d6bc4d00f3ccff139808e423dfc04b1e4",
            "mes-share-2:03c607dd0f8fb578951e6c0b478fa446d3e905394510185a1fc9db92134d589a65",
        ];
        let secret = combine(&old.map(String::from)).unwrap();
        assert_eq!(*secret, [42u8; 32]);
        assert!(combine(&[old[0].to_string()]).is_err());
    }

    /// A kit made before device lists still opens (it has no admission key).
    #[test]
    fn a_kit_made_before_device_lists_still_opens() {
        let kp = crate::crypto::keys::KeyPair::generate(&mut rand::thread_rng());
        let old = RecoveryKitV1 {
            principal: kp.export(),
            recovery: "AGE-SECRET-KEY-1".into(),
            relay_address: "127.0.0.1:4433".into(),
            relay_fingerprint: "ab".into(),
            created_at: UnixMillis(1),
        };
        let plain = crate::wire::codec::to_bytes(&old);
        let sealed = age::encrypt(
            &age::scrypt::Recipient::new("cheval batterie agrafe".to_string().into()),
            &plain,
        )
        .unwrap();
        let back = open(&sealed, "cheval batterie agrafe").unwrap();
        assert_eq!(back.relay_address, "127.0.0.1:4433");
        assert!(back.admission.is_none());
    }

    /// The vouch binds the certificate: another certificate does not verify under it.
    #[test]
    fn an_admission_vouch_covers_one_certificate() {
        let mut rng = rand::thread_rng();
        let p = crate::crypto::keys::KeyPair::generate(&mut rng);
        let kit = crate::crypto::keys::SigningSecret::generate(&mut rand::rngs::OsRng);
        let cert = |name: &str| {
            crate::crypto::keys::DeviceCert::for_device(
                &p,
                &crate::crypto::keys::KeyPair::generate(&mut rand::thread_rng()),
                name,
                UnixMillis(1),
            )
        };
        let (a, b) = (cert("a"), cert("b"));
        let vouch = AdmissionVouch::sign(&kit, &a);
        assert!(vouch.verify(&a).is_ok());
        assert!(vouch.verify(&b).is_err());
    }
}
