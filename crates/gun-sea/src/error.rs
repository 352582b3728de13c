/// Everything that can go wrong in gun-sea.
///
/// Two families share this enum:
///
/// * **crypto and format errors** from the SEA functions ([`sign`](crate::sign),
///   [`verify`](crate::verify), [`encrypt`](crate::encrypt), …);
/// * **rejections** by [`SeaValidator`](crate::SeaValidator). Their `Display`
///   text is what a peer puts in the `err` of its ack. Where Gun.js has a text
///   for the case, it is Gun.js's text to the character (`"Unverified data."`);
///   the cases where Gun.js drops data silently or accepts it (see the crate's
///   compatibility notes) have texts of our own, listed with their variants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- crypto and format errors -------------------------------------------------
    /// A key (`pub`, `priv`, `epub` or `epriv`) is not base64url of a P-256 key
    /// (32-byte coordinates of a point on the curve, or a 32-byte scalar in range).
    #[error("invalid {which} key")]
    InvalidKey {
        /// Which key: `"pub"`, `"priv"`, `"epub"` or `"epriv"`.
        which: &'static str,
    },
    /// A key pair in JSON is not an object with the four string fields
    /// `pub`, `priv`, `epub`, `epriv`.
    #[error("a key pair needs the string field {field:?}")]
    InvalidPair {
        /// The missing or non-string field.
        field: &'static str,
    },
    /// The input is not a SEA message of the expected kind: `SEA{…}` text or
    /// its JSON object with the needed fields (`m`/`s` signed, `ct`/`iv`/`s`
    /// encrypted, `:`/`~` for a signed user-space value).
    #[error("not a SEA {expected}")]
    NotSea {
        /// What was expected: `"signature"`, `"encryption"` or `"signed value"`.
        expected: &'static str,
    },
    /// A field that should hold base64 does not.
    #[error("field {field:?} is not valid base64")]
    Base64 {
        /// The field (`"s"`, `"ct"`, `"iv"`).
        field: &'static str,
    },
    /// The signature does not match the data and public key.
    #[error("signature does not match")]
    SignatureMismatch,
    /// AES-GCM refused the ciphertext: wrong key or passphrase, or tampered data.
    #[error("could not decrypt")]
    DecryptFailed,
    /// The IV length is one this crate does not decrypt (SEA always uses 15 bytes;
    /// 12 to 16 are accepted).
    #[error("unsupported AES-GCM IV length {0} (12 to 16 bytes are supported)")]
    UnsupportedIv(usize),
    /// The operating system's random generator failed.
    #[error("the random generator failed")]
    Random,
    /// A [`work`](crate::work) option that makes SEA's `work` fail (return
    /// `undefined`): an unknown name, hash or encoding, iterations that are not
    /// a positive integer, a length that is not a positive multiple of 8.
    #[error("unsupported work option: {0}")]
    UnsupportedWork(&'static str),
    /// A verified user-space value is not a Gun value (an array, or an object
    /// other than a link).
    #[error("signed value is not a Gun value: {0}")]
    InvalidValue(gun_graph::InvalidValue),

    // ---- rejections with Gun.js's own texts ---------------------------------------
    /// `Unverified data.`: a user-space value is not signed, or its signature does
    /// not verify against the soul's public key (or the writer named in `*`).
    #[error("Unverified data.")]
    Unverified,
    /// `Account not same!`: key `pub` of `~<pub>` does not hold that pub.
    #[error("Account not same!")]
    AccountNotSame,
    /// `Alias not same!`: an alias list entry does not link to its own key.
    #[error("Alias not same!")]
    AliasNotSame,
    /// `Alias must exist!`: an entry of `~@alias` is empty or null.
    #[error("Alias must exist!")]
    AliasMustExist,
    /// `Data must exist!`: an entry of the alias index `~@` is empty or null.
    #[error("Data must exist!")]
    DataMustExist,
    /// `Data hash not same as hash!`: in a `#` soul, the key is not the SHA-256
    /// (base64 or hex) of the value's text.
    #[error("Data hash not same as hash!")]
    HashNotSame,
    /// `Certificate verification fail.`: no write rule of the certificate allows
    /// this path and key.
    #[error("Certificate verification fail.")]
    CertificateFail,
    /// `Certificate expired.`: the write's state is after the certificate's `e`.
    #[error("Certificate expired.")]
    CertificateExpired,
    /// `Path "…" or key "…" must contain string "…".`: a rule with `"+": "*"` and a
    /// path and key that do not contain the writer's pub.
    #[error("Path \"{path}\" or key \"{key}\" must contain string \"{certificant}\".")]
    CertificantNotInPath {
        /// The soul's path (the text after its first `/`).
        path: String,
        /// The key written.
        key: String,
        /// The writer's pub.
        certificant: String,
    },
    /// `Certificant <pub> blocked.`: the certificate's write block list marks the
    /// writer.
    #[error("Certificant {certificant} blocked.")]
    CertificantBlocked {
        /// The writer's pub.
        certificant: String,
    },
    /// `Soul missing public key at '<key>'.`: with [`SeaValidator::secure`](crate::SeaValidator::secure),
    /// a write outside user space, alias lists and `#` souls.
    #[error("Soul missing public key at '{key}'.")]
    SoulMissingPublicKey {
        /// The key written.
        key: String,
    },

    // ---- rejections where Gun.js has no text --------------------------------------
    /// `Certificate required.`: a user-space value names in `*` a writer other than
    /// the owner and carries no certificate. Gun.js 0.2020.1241 accepts such a
    /// value after checking only the writer's own signature (a hole); we refuse it.
    #[error("Certificate required.")]
    CertificateRequired,
    /// `Certificate not signed by owner.`: the certificate's signature does not
    /// verify against the soul owner's pub. Gun.js drops the write silently.
    #[error("Certificate not signed by owner.")]
    CertificateNotByOwner,
    /// `Certificant not in certificate.`: the writer is not among the
    /// certificate's `c`. Gun.js drops the write silently.
    #[error("Certificant not in certificate.")]
    CertificantNotListed,
    /// `Certificate malformed.`: the certificate's content makes Gun.js throw (a
    /// `null` body or rule, a `c` or `+` that is neither text nor array); Gun.js
    /// drops the write silently.
    #[error("Certificate malformed.")]
    CertificateMalformed,
    /// `Certificate block list unavailable.`: the certificate names a write block
    /// list (`wb`) and the validator has no [`BlockList`](crate::BlockList) to read it.
    #[error("Certificate block list unavailable.")]
    BlockListUnavailable,
    /// `Data older than <?N allows.`: a write into a `<?N` soul whose state is
    /// older than N seconds. Gun.js drops it silently (a validator can only
    /// refuse the whole put).
    #[error("Data older than <?{seconds} allows.")]
    Forgotten {
        /// The N of `<?N`, as written in the soul.
        seconds: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
