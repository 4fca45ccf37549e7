//! A body signed by a principal, under a signature context per kind of body: every
//! record of membership, choices, authority, the directory and the access history.

use crate::crypto::keys::{verify, Signature, SignatureError, SigningSecret};
use crate::ids::PrincipalId;
use crate::wire::codec;
use serde::{Deserialize, Serialize};

/// A body with a fixed signature context.
pub trait SignedBody: Serialize {
    /// Domain separation for the signature.
    const CONTEXT: &'static [u8];
}

/// A body signed by a principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is stated.
    pub body: T,
    /// Who states it.
    pub signer: PrincipalId,
    /// Signature over the encoded body.
    pub signature: Signature,
}

impl<T: SignedBody> Signed<T> {
    /// Signs a body.
    pub fn sign(body: T, key: &SigningSecret) -> Self {
        let signature = key.sign(T::CONTEXT, &codec::to_bytes(&body));
        Signed {
            body,
            signer: PrincipalId(key.public()),
            signature,
        }
    }
    /// Checks the signature (not whether the signer had the right to sign).
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify(
            &self.signer.0,
            T::CONTEXT,
            &codec::to_bytes(&self.body),
            &self.signature,
            "membership record",
        )
    }
}
