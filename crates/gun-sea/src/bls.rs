//! BLS signatures (BLS12-381, feature `bls`): keys, signing and verifying, and
//! the [`gun_dam`] message signer and verifier built on them.
//!
//! * **Scheme:** `min_pk` (public keys in G1, 48 bytes compressed; signatures
//!   in G2, 96 bytes compressed), the **augmented** scheme of the IETF BLS
//!   draft (the signer's compressed public key is prepended to the message,
//!   so no proof of possession is needed), with the ciphersuite
//!   [`DST`] = `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_AUG_`. Implemented by
//!   the `blst` crate, which never appears in this API.
//! * **Key generation:** [`BlsSecretKey::from_seed`] runs blst's `key_gen`,
//!   the `KeyGen` of draft-irtf-cfrg-bls-signature (HKDF-SHA-256 with salt
//!   `BLS-SIG-KEYGEN-SALT-`, re-hashed until the scalar is non-zero) on the
//!   32-byte seed as IKM, with an empty `key_info`. The same seed always gives
//!   the same key, in any IETF-conformant implementation.
//! * **Text forms:** keys and signatures travel as base64url without padding
//!   of their compressed bytes (64 and 128 characters); hex is available too.
//! * **Secret keys** are zeroized when dropped (blst's secret key type zeroizes
//!   itself on drop; seeds drawn here are wiped with `zeroize`), and their
//!   `Debug` text never shows them.
//!
//! ```
//! use gun_sea::bls::{BlsKeyPair, BlsSecretKey};
//!
//! let pair = BlsKeyPair::from_seed(&[7u8; 32]);
//! let sig = pair.secret().sign(b"hello");
//! assert!(pair.public().verify(b"hello", &sig));
//! assert!(!pair.public().verify(b"hullo", &sig));
//! // Text forms round-trip.
//! let pk = gun_sea::bls::BlsPublicKey::from_base64url(&pair.public().to_base64url())?;
//! assert_eq!(&pk, pair.public());
//! # Ok::<(), gun_sea::bls::BlsError>(())
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blst::BLST_ERROR;
use blst::min_pk;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use zeroize::Zeroize as _;

use gun_dam::{Message, MessageSigner, MessageVerifier};

/// The ciphersuite of the augmented scheme, min_pk (signatures in G2).
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_AUG_";

/// Bytes of a compressed public key.
pub const PUBLIC_KEY_BYTES: usize = 48;
/// Bytes of a compressed signature.
pub const SIGNATURE_BYTES: usize = 96;

/// What can go wrong reading BLS keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlsError {
    /// Not base64url / hex, or the wrong length.
    #[error("bad BLS encoding: {0}")]
    Encoding(&'static str),
    /// The bytes are not a valid point or scalar (or the identity).
    #[error("invalid BLS {0}")]
    Invalid(&'static str),
    /// The operating system's random generator failed.
    #[error("no randomness for a BLS key")]
    Random,
}

/// A BLS secret key (a scalar). Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct BlsSecretKey(min_pk::SecretKey);

/// A BLS public key (a G1 point, validated: on the curve, in the subgroup,
/// not the identity).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlsPublicKey(min_pk::PublicKey);

/// A BLS signature (a G2 point).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlsSignature(min_pk::Signature);

/// A secret key and its public key.
#[derive(Clone)]
pub struct BlsKeyPair {
    secret: BlsSecretKey,
    public: BlsPublicKey,
}

fn decode_b64(text: &str, len: usize) -> Result<Vec<u8>, BlsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| BlsError::Encoding("not base64url without padding"))?;
    if bytes.len() != len {
        return Err(BlsError::Encoding("wrong length"));
    }
    Ok(bytes)
}

fn decode_hex(text: &str, len: usize) -> Result<Vec<u8>, BlsError> {
    if text.len() != 2 * len || !text.is_ascii() {
        return Err(BlsError::Encoding("wrong length"));
    }
    (0..len)
        .map(|i| {
            u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| BlsError::Encoding("not hex"))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl BlsSecretKey {
    /// The key for a 32-byte seed, by blst's `key_gen` (IETF `KeyGen`, empty
    /// `key_info`): deterministic. Keep the seed as secret as the key.
    pub fn from_seed(seed: &[u8; 32]) -> BlsSecretKey {
        match min_pk::SecretKey::key_gen(seed, &[]) {
            Ok(sk) => BlsSecretKey(sk),
            // key_gen fails only for IKM shorter than 32 bytes.
            Err(e) => unreachable!("key_gen refused a 32-byte seed: {e:?}"),
        }
    }

    /// A new key from a seed drawn from the operating system's generator.
    pub fn generate() -> Result<BlsSecretKey, BlsError> {
        let mut seed = [0u8; 32];
        let filled = OsRng.try_fill_bytes(&mut seed);
        let sk = filled.map(|()| BlsSecretKey::from_seed(&seed));
        seed.zeroize();
        sk.map_err(|_| BlsError::Random)
    }

    /// The 32 big-endian bytes of the scalar (wrapped so they are wiped when dropped).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// From the 32 bytes of [`BlsSecretKey::to_bytes`] (a non-zero scalar
    /// below the group order).
    pub fn from_bytes(bytes: &[u8]) -> Result<BlsSecretKey, BlsError> {
        min_pk::SecretKey::from_bytes(bytes)
            .map(BlsSecretKey)
            .map_err(|_| BlsError::Invalid("secret key"))
    }

    /// The public key.
    pub fn public_key(&self) -> BlsPublicKey {
        BlsPublicKey(self.0.sk_to_pk())
    }

    /// Signs `msg` (augmented scheme: our public key is prepended).
    pub fn sign(&self, msg: &[u8]) -> BlsSignature {
        let pk = self.0.sk_to_pk().to_bytes();
        BlsSignature(self.0.sign(msg, DST, &pk))
    }
}

impl fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlsSecretKey(..)")
    }
}

impl BlsPublicKey {
    /// The 48 bytes of the compressed point.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// From compressed (48) or uncompressed (96) bytes; the point is validated.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlsPublicKey, BlsError> {
        min_pk::PublicKey::key_validate(bytes)
            .map(BlsPublicKey)
            .map_err(|_| BlsError::Invalid("public key"))
    }

    /// base64url (no padding) of the compressed bytes: the wire form.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// From [`BlsPublicKey::to_base64url`].
    pub fn from_base64url(text: &str) -> Result<BlsPublicKey, BlsError> {
        BlsPublicKey::from_bytes(&decode_b64(text, PUBLIC_KEY_BYTES)?)
    }

    /// Lower-case hex of the compressed bytes.
    pub fn to_hex(&self) -> String {
        hex(&self.to_bytes())
    }

    /// From [`BlsPublicKey::to_hex`].
    pub fn from_hex(text: &str) -> Result<BlsPublicKey, BlsError> {
        BlsPublicKey::from_bytes(&decode_hex(text, PUBLIC_KEY_BYTES)?)
    }

    /// Whether `sig` is this key's signature of `msg` (augmented scheme; the
    /// signature is checked to be in the subgroup).
    pub fn verify(&self, msg: &[u8], sig: &BlsSignature) -> bool {
        sig.0
            .verify(true, msg, DST, &self.to_bytes(), &self.0, false)
            == BLST_ERROR::BLST_SUCCESS
    }
}

impl Hash for BlsPublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

impl fmt::Debug for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsPublicKey({})", self.to_base64url())
    }
}

impl fmt::Display for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl BlsSignature {
    /// The 96 bytes of the compressed point.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.to_bytes()
    }

    /// From compressed (96) or uncompressed (192) bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlsSignature, BlsError> {
        min_pk::Signature::from_bytes(bytes)
            .map(BlsSignature)
            .map_err(|_| BlsError::Invalid("signature"))
    }

    /// base64url (no padding) of the compressed bytes: the wire form.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// From [`BlsSignature::to_base64url`].
    pub fn from_base64url(text: &str) -> Result<BlsSignature, BlsError> {
        BlsSignature::from_bytes(&decode_b64(text, SIGNATURE_BYTES)?)
    }

    /// Lower-case hex of the compressed bytes.
    pub fn to_hex(&self) -> String {
        hex(&self.to_bytes())
    }
}

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({})", self.to_base64url())
    }
}

impl BlsKeyPair {
    /// The pair of [`BlsSecretKey::from_seed`].
    pub fn from_seed(seed: &[u8; 32]) -> BlsKeyPair {
        BlsKeyPair::from_secret(BlsSecretKey::from_seed(seed))
    }

    /// A new random pair.
    pub fn generate() -> Result<BlsKeyPair, BlsError> {
        BlsSecretKey::generate().map(BlsKeyPair::from_secret)
    }

    /// The pair of a secret key.
    pub fn from_secret(secret: BlsSecretKey) -> BlsKeyPair {
        let public = secret.public_key();
        BlsKeyPair { secret, public }
    }

    /// A pair from both keys, checked to match (the facade's
    /// `Gun::with_keys(secret, public, ..)`).
    pub fn new(secret: BlsSecretKey, public: BlsPublicKey) -> Result<BlsKeyPair, BlsError> {
        if secret.public_key() != public {
            return Err(BlsError::Invalid(
                "key pair: the public key is not the secret key's",
            ));
        }
        Ok(BlsKeyPair { secret, public })
    }

    /// The secret key.
    pub fn secret(&self) -> &BlsSecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public(&self) -> &BlsPublicKey {
        &self.public
    }
}

impl fmt::Debug for BlsKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlsKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------ mesh signing

/// The value of a message's [`gun_dam::SIG_FIELD`]: `{"pk": base64url, "s": base64url}`.
pub fn sig_field(pk: &BlsPublicKey, sig: &BlsSignature) -> Value {
    json!({"pk": pk.to_base64url(), "s": sig.to_base64url()})
}

/// Reads a [`gun_dam::SIG_FIELD`] value back.
pub fn parse_sig_field(field: &Value) -> Result<(BlsPublicKey, BlsSignature), BlsError> {
    let pk = field
        .get("pk")
        .and_then(Value::as_str)
        .ok_or(BlsError::Encoding("signature field without a pk"))?;
    let s = field
        .get("s")
        .and_then(Value::as_str)
        .ok_or(BlsError::Encoding("signature field without an s"))?;
    Ok((
        BlsPublicKey::from_base64url(pk)?,
        BlsSignature::from_base64url(s)?,
    ))
}

/// Verifies a message's signature field against its canonical text
/// ([`gun_dam::auth::canonical`]); returns the signer's key.
pub fn verify_message(msg: &Message) -> Option<BlsPublicKey> {
    let field = msg.extra.get(gun_dam::SIG_FIELD)?;
    let text = gun_dam::auth::canonical(msg)?;
    let (pk, sig) = parse_sig_field(field).ok()?;
    pk.verify(text.as_bytes(), &sig).then_some(pk)
}

/// Signs the messages a mesh originates with a BLS key (a
/// [`gun_dam::MessageSigner`]), optionally attaching a write certificate
/// ([`crate::bls_cert::BlsCertificate`]) under [`gun_dam::CERT_FIELD`] to every
/// message carrying a `put`.
#[derive(Debug, Clone)]
pub struct BlsSigner {
    pair: BlsKeyPair,
    cert: Option<Value>,
}

impl BlsSigner {
    /// A signer with this key pair.
    pub fn new(pair: BlsKeyPair) -> BlsSigner {
        BlsSigner { pair, cert: None }
    }

    /// Attaches a certificate's JSON to the puts it signs. The public form,
    /// `with_certificate`, lives with the certificates (`bls_cert`), which
    /// build on this module, not the other way round.
    pub(crate) fn with_certificate_json(mut self, cert: Value) -> BlsSigner {
        self.cert = Some(cert);
        self
    }

    /// The signing key's public key.
    pub fn public(&self) -> &BlsPublicKey {
        self.pair.public()
    }
}

impl MessageSigner for BlsSigner {
    fn sign(&self, canonical: &[u8]) -> Value {
        sig_field(self.pair.public(), &self.pair.secret().sign(canonical))
    }

    fn extensions(&self, msg: &Message) -> Vec<(String, Value)> {
        match (&self.cert, &msg.put) {
            (Some(c), Some(_)) => vec![(gun_dam::CERT_FIELD.to_owned(), c.clone())],
            _ => Vec::new(),
        }
    }
}

/// Checks the BLS signatures of incoming messages (a [`gun_dam::MessageVerifier`]):
/// either any valid signature (who signed is then for validators such as
/// [`crate::bls_cert::BlsCertValidator`] to judge), or only signatures by
/// listed keys.
#[derive(Debug, Clone, Default)]
pub struct BlsVerifier {
    trusted: Option<Arc<[BlsPublicKey]>>,
}

impl BlsVerifier {
    /// Accepts a valid signature by any key.
    pub fn any_key() -> BlsVerifier {
        BlsVerifier { trusted: None }
    }

    /// Accepts only valid signatures by these keys.
    pub fn trusting(keys: impl IntoIterator<Item = BlsPublicKey>) -> BlsVerifier {
        BlsVerifier {
            trusted: Some(keys.into_iter().collect()),
        }
    }
}

impl MessageVerifier for BlsVerifier {
    fn verify(&self, canonical: &[u8], field: &Value) -> bool {
        let Ok((pk, sig)) = parse_sig_field(field) else {
            return false;
        };
        if let Some(t) = &self.trusted
            && !t.contains(&pk)
        {
            return false;
        }
        pk.verify(canonical, &sig)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Fixed vectors: seed → public key, and the signature of a fixed message.
    /// (BLS signatures are deterministic, so the signature is fixed too.)
    #[test]
    fn seed_test_vector() {
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let pair = BlsKeyPair::from_seed(&seed);
        assert_eq!(pair.public().to_hex(), PK_HEX);
        let sig = pair.secret().sign(b"gun-rs BLS test vector");
        assert_eq!(sig.to_hex(), SIG_HEX);
        assert!(pair.public().verify(b"gun-rs BLS test vector", &sig));
        // Round trips.
        assert_eq!(&BlsPublicKey::from_hex(PK_HEX).unwrap(), pair.public());
        let sk2 = BlsSecretKey::from_bytes(&pair.secret().to_bytes()[..]).unwrap();
        assert_eq!(sk2.public_key(), *pair.public());
        assert_eq!(
            BlsSignature::from_base64url(&sig.to_base64url()).unwrap(),
            sig
        );
    }

    // Pinned from blst 0.3.17 (seed 00 01 .. 1f, key_gen with empty key_info;
    // the message signed under the AUG ciphersuite): a regression vector, so
    // any change of scheme, DST or key derivation is caught.
    const PK_HEX: &str = "9112a0386a2340714ba0c6d2df235377a8679c3899d03e6ef04dba7a50ef49e5a1dc93105e9374e93ed301b63487e17c";
    const SIG_HEX: &str = "8e77bf4540285711f5de95aeaa686182fe62edfe9cd1a343eaa98f497814fb2847e4f65d81c4b05df549312e9232715b155977280488fadcdc48dab719eee98c14a54269645656f88def70bc5542e55c786315bdcec1eed9eb73bfee524d5e2b";

    #[test]
    fn sign_verify_tamper() {
        let a = BlsKeyPair::from_seed(&[1; 32]);
        let b = BlsKeyPair::from_seed(&[2; 32]);
        let sig = a.secret().sign(b"message");
        assert!(a.public().verify(b"message", &sig));
        assert!(!a.public().verify(b"messagE", &sig));
        assert!(!b.public().verify(b"message", &sig));
        // A flipped bit in the signature: not a point, or a different one.
        let mut bytes = sig.to_bytes();
        bytes[40] ^= 1;
        if let Ok(bad) = BlsSignature::from_bytes(&bytes) {
            assert!(!a.public().verify(b"message", &bad));
        }
        // The augmented scheme binds the key: b cannot claim a's signature.
        let field = sig_field(b.public(), &sig);
        assert!(!BlsVerifier::any_key().verify(b"message", &field));
        let field = sig_field(a.public(), &sig);
        assert!(BlsVerifier::any_key().verify(b"message", &field));
        assert!(BlsVerifier::trusting([*a.public()]).verify(b"message", &field));
        assert!(!BlsVerifier::trusting([*b.public()]).verify(b"message", &field));
        assert!(!BlsVerifier::any_key().verify(b"message", &json!({"pk": 1, "s": "x"})));
    }

    #[test]
    fn keys_refuse_bad_encodings() {
        assert!(BlsPublicKey::from_base64url("abc").is_err());
        assert!(BlsPublicKey::from_bytes(&[0u8; 48]).is_err());
        assert!(BlsPublicKey::from_hex(&"zz".repeat(48)).is_err());
        assert!(BlsSecretKey::from_bytes(&[0u8; 32]).is_err());
        assert!(BlsSignature::from_base64url("").is_err());
        let a = BlsKeyPair::from_seed(&[1; 32]);
        let b = BlsKeyPair::from_seed(&[2; 32]);
        assert!(BlsKeyPair::new(a.secret().clone(), *b.public()).is_err());
        assert!(BlsKeyPair::new(a.secret().clone(), *a.public()).is_ok());
        assert_eq!(format!("{:?}", a.secret()), "BlsSecretKey(..)");
    }
}
