//! SEA's enforcement rules as a [`gun_dam::Validator`].

use std::fmt;
use std::sync::Arc;

use gun_dam::{PutContext, Validator};
use gun_graph::{Graph, Value};
use serde_json::Value as J;

use crate::cert::{self, BlockRef, Verdict};
use crate::encoding;
use crate::error::{Error, Result};
use crate::js;
use crate::sign::sha256;
use crate::user::{Wrapped, pub_of_soul};

/// Read access to stored data, for certificates with a write block list (`wb`).
///
/// The validator sees only the incoming put, so whoever installs it supplies the
/// lookup (typically the engine's graph cache). Values are given as stored; the
/// validator unwraps signed user-space values itself.
pub trait BlockList: Send + Sync + 'static {
    /// The stored value of `key` on `soul`, if known.
    fn value(&self, soul: &str, key: &str) -> Option<Value>;

    /// The stored value of `key` on `soul`, or why it could not be read (a
    /// store error, no runtime to wait on). The validator calls this one: a
    /// failed read refuses the write ([`Error::BlockListUnavailable`]) instead
    /// of letting a writer through whose block the reader could not see.
    /// By default, [`value`](BlockList::value), which cannot fail.
    fn try_value(&self, soul: &str, key: &str) -> std::result::Result<Option<Value>, String> {
        Ok(self.value(soul, key))
    }
}

impl<F> BlockList for F
where
    F: Fn(&str, &str) -> Option<Value> + Send + Sync + 'static,
{
    fn value(&self, soul: &str, key: &str) -> Option<Value> {
        self(soul, key)
    }
}

type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The rules a Gun.js peer with SEA loaded enforces on every incoming write,
/// as a [`gun_dam::Validator`] (an engine takes it with `add_validator`).
///
/// Which rule applies depends on the soul (first match wins, after the `<?N`
/// check, which applies to any soul):
///
/// | soul | rule | refusal |
/// |---|---|---|
/// | contains `<?N` | the state must not be older than N seconds | [`Error::Forgotten`] (Gun.js: silent drop) |
/// | `~@` | key `k` holds the link `{"#":"~@k"}` | `Data must exist!`, `Alias not same!` |
/// | starts with `~@` | key `~pub` holds the link `{"#":"~pub"}` | `Alias must exist!`, `Alias not same!` |
/// | [`pub_of_soul`] finds a pub | key `pub` of `~pub` equals the pub; any other key is a signed value verifying against the pub (or its certified writer) | `Account not same!`, `Unverified data.`, certificate texts |
/// | contains `#` | the key (after its last `#`) is the SHA-256 of the value's text, base64 or hex | `Data hash not same as hash!` |
/// | anything else | accepted, or refused with [`SeaValidator::secure`] | `Soul missing public key at '…'.` |
///
/// Differences from Gun.js (see the crate's compatibility notes): a put is
/// accepted or refused as a whole (Gun.js judges each key on its own and only
/// keys that won HAM); silent drops become refusals with our own texts; a
/// value whose `*` names a writer other than the owner needs a valid
/// certificate; certificates whose `c` is an array work.
#[derive(Clone)]
pub struct SeaValidator {
    secure: bool,
    clock: Clock,
    block_list: Option<Arc<dyn BlockList>>,
}

impl fmt::Debug for SeaValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaValidator")
            .field("secure", &self.secure)
            .field("block_list", &self.block_list.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SeaValidator {
    fn default() -> SeaValidator {
        SeaValidator::new()
    }
}

impl SeaValidator {
    /// The validator with Gun.js's defaults: non-user data is accepted, the
    /// clock is the system clock, no block list reader.
    pub fn new() -> SeaValidator {
        SeaValidator {
            secure: false,
            clock: Arc::new(crate::now_ms),
            block_list: None,
        }
    }

    /// Gun.js's `opt.secure`: refuse every write that no rule covers (plain
    /// souls), with `Soul missing public key at '<key>'.`
    pub fn secure(mut self, on: bool) -> SeaValidator {
        self.secure = on;
        self
    }

    /// The clock (milliseconds since the epoch) the `<?N` rule compares with.
    pub fn with_clock(mut self, clock: impl Fn() -> f64 + Send + Sync + 'static) -> SeaValidator {
        self.clock = Arc::new(clock);
        self
    }

    /// Where certificates' write block lists are read. Without one, a write
    /// under a certificate that names a block list is refused
    /// ([`Error::BlockListUnavailable`]).
    pub fn with_block_list(mut self, reader: impl BlockList) -> SeaValidator {
        self.block_list = Some(Arc::new(reader));
        self
    }

    /// Checks every key of a put; the first refusal refuses the whole put.
    pub fn check_graph(&self, graph: &Graph) -> Result<()> {
        for (soul, node) in graph.iter() {
            // A soul with no `<?` expiry, no `~` user or alias part and no `#`
            // content address has no rule to check unless unsigned data is
            // refused: every key of it passes (`check_key` would answer Ok
            // for each), so it is not walked key by key.
            if !self.secure && !soul.as_str().contains(['<', '~', '#']) {
                continue;
            }
            for (key, entry) in node.iter() {
                self.check_key(soul.as_str(), key, &entry.value, entry.state.as_f64())?;
            }
        }
        Ok(())
    }

    /// Checks one key: the value `value` written at `state` under `key` of `soul`.
    pub fn check_key(&self, soul: &str, key: &str, value: &Value, state: f64) -> Result<()> {
        if let Some(i) = soul.find("<?") {
            let limit = soul[i + 2..].split("<?").next().unwrap_or("");
            let n = js::parse_float_str(limit);
            if n != 0.0 && !n.is_nan() && state < (self.clock)() - n * 1000.0 {
                return Err(Error::Forgotten {
                    seconds: gun_graph::json::number_text(n),
                });
            }
        }
        if soul == "~@" {
            if !truthy(value) {
                return Err(Error::DataMustExist);
            }
            return match value.as_link() {
                Some(l) if l.as_str().strip_prefix("~@") == Some(key) => Ok(()),
                _ => Err(Error::AliasNotSame),
            };
        }
        if soul.starts_with("~@") {
            if !truthy(value) {
                return Err(Error::AliasMustExist);
            }
            return match value.as_link() {
                Some(l) if l.as_str() == key => Ok(()),
                _ => Err(Error::AliasNotSame),
            };
        }
        if let Some(owner) = pub_of_soul(soul) {
            return self.check_user(soul, key, value, state, &owner);
        }
        if soul.contains('#') {
            return check_hash(key, value);
        }
        if self.secure {
            return Err(Error::SoulMissingPublicKey {
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    fn check_user(
        &self,
        soul: &str,
        key: &str,
        value: &Value,
        state: f64,
        owner: &str,
    ) -> Result<()> {
        if key == "pub" && soul.strip_prefix('~') == Some(owner) {
            return if value.as_str() == Some(owner) {
                Ok(())
            } else {
                Err(Error::AccountNotSame)
            };
        }
        let wrapped = match value {
            Value::String(text) => Wrapped::parse(text).ok_or(Error::Unverified)?,
            _ => return Err(Error::Unverified),
        };
        let star = wrapped.obj.get("*");
        let writer = if js::truthy_opt(star) {
            star.and_then(J::as_str).ok_or(Error::Unverified)?
        } else {
            owner
        };
        wrapped
            .verify(soul, key, state, writer)
            .map_err(|_| Error::Unverified)?;
        let cert = wrapped.obj.get("+").filter(|c| {
            js::truthy(c) && js::truthy_opt(js::prop(c, "m")) && js::truthy_opt(js::prop(c, "s"))
        });
        match cert {
            Some(c) if js::truthy_opt(star) => {
                match cert::check(c, writer, owner, soul, key, state)? {
                    Verdict::Allowed => Ok(()),
                    Verdict::AllowedUnlessBlocked(r) => self.check_block(r, owner, writer),
                }
            }
            // Stricter than Gun.js: a foreign writer needs a certificate.
            _ if writer != owner => Err(Error::CertificateRequired),
            _ => Ok(()),
        }
    }

    fn check_block(&self, r: BlockRef, owner: &str, certificant: &str) -> Result<()> {
        let reader = self
            .block_list
            .as_ref()
            .ok_or(Error::BlockListUnavailable)?;
        let read = |soul: &str, key: &str| {
            reader
                .try_value(soul, key)
                .map(|v| v.map(unwrap))
                .map_err(|_| Error::BlockListUnavailable)
        };
        let soul = match r {
            BlockRef::Soul(s) => s,
            BlockRef::OwnerKey(k) => match read(&format!("~{owner}"), &k)? {
                Some(Value::Link(s)) => s.as_str().to_owned(),
                // No list there: nothing is blocked (Gun.js reads `undefined`).
                _ => return Ok(()),
            },
        };
        let blocked = match read(&soul, certificant)? {
            Some(Value::Bool(b)) => b,
            Some(Value::Number(n)) => n == 1.0,
            _ => false,
        };
        if blocked {
            Err(Error::CertificantBlocked {
                certificant: certificant.to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

impl Validator for SeaValidator {
    fn check(&self, ctx: &PutContext<'_>) -> std::result::Result<(), String> {
        self.check_graph(ctx.graph).map_err(|e| e.to_string())
    }
}

/// A stored user-space value `{":":v,"~":…}` as `v`; other values as they are.
fn unwrap(v: Value) -> Value {
    if let Value::String(s) = &v
        && let Some(w) = Wrapped::parse(s)
        && let Ok(inner) = Value::from_json(w.value())
    {
        return inner;
    }
    v
}

/// JavaScript truthiness of a Gun value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => *n != 0.0 && !n.is_nan(),
        Value::String(s) => !s.is_empty(),
        Value::Link(_) => true,
    }
}

/// Content addressing: the key's text after its last `#` must be the SHA-256 of
/// the value's text (the value if it is a string, else its JSON), in base64, or
/// in hex as Gun.js's `hexToBase64` reads it.
fn check_hash(key: &str, value: &Value) -> Result<()> {
    let text = match value {
        Value::String(s) => s.to_string(),
        other => other.to_json_text(),
    };
    let hash = encoding::std_encode(&sha256(&text));
    let want = key.rsplit('#').next().unwrap_or(key);
    if hash == want || hex_to_base64(want).is_some_and(|b| b == hash) {
        Ok(())
    } else {
        Err(Error::HashNotSame)
    }
}

/// Gun.js's `hexToBase64`: each pair of UTF-16 code units through
/// `parseInt(pair, 16)` to a character (NaN gives U+0000), an odd last unit
/// ignored, then `btoa`. `None` where `btoa` would throw (a character above
/// U+00FF, from a negative pair such as `-1`).
fn hex_to_base64(hex: &str) -> Option<String> {
    let units: Vec<u16> = hex.encode_utf16().collect();
    let mut bytes = Vec::with_capacity(units.len() / 2);
    for pair in units.chunks_exact(2) {
        let text = String::from_utf16_lossy(pair);
        let code = parse_int_hex(&text);
        bytes.push(u8::try_from(code).ok()?);
    }
    Some(encoding::std_encode(&bytes))
}

/// `String.fromCharCode(parseInt(text, 16))` as a code (NaN → 0, negatives wrap
/// to 16 bits as `ToUint16` does).
fn parse_int_hex(text: &str) -> u32 {
    let t = text.trim_start_matches(js::is_js_space);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().take_while(char::is_ascii_hexdigit).collect();
    let Ok(v) = u32::from_str_radix(&digits, 16) else {
        return 0;
    };
    if neg && v != 0 {
        65536 - (v % 65536)
    } else {
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{Certificants, CertifyOptions, Pair, certify, sign_value, sign_value_certified};
    use gun_graph::State;
    use serde_json::json;
    use std::collections::HashMap;

    /// Stored values for a block list reader: `(soul, key) -> value`.
    type Stored = HashMap<(String, String), Value>;

    fn reader(stored: Stored) -> impl BlockList {
        move |soul: &str, key: &str| stored.get(&(soul.to_owned(), key.to_owned())).cloned()
    }

    /// A reader whose every read fails, as a store that errs does.
    struct Failing;
    impl BlockList for Failing {
        fn value(&self, _: &str, _: &str) -> Option<Value> {
            None
        }
        fn try_value(&self, _: &str, _: &str) -> std::result::Result<Option<Value>, String> {
            Err("store closed".into())
        }
    }

    struct BlockCase {
        owner: Pair,
        blocked: Pair,
        other: Pair,
        st: f64,
    }

    impl BlockCase {
        fn new() -> BlockCase {
            BlockCase {
                owner: Pair::generate().unwrap(),
                blocked: Pair::generate().unwrap(),
                other: Pair::generate().unwrap(),
                st: crate::now_ms() - 5000.0,
            }
        }

        fn soul(&self, path: &str) -> String {
            format!("~{}{path}", self.owner.pub_)
        }

        /// A certificate for anyone to write `inbox`, naming `wb` as its block list.
        fn cert(&self, wb: serde_json::Value) -> String {
            let opts = CertifyOptions {
                write_block: Some(wb),
                ..CertifyOptions::default()
            };
            certify(
                Certificants::Anyone,
                &json!({"*": "inbox"}),
                &self.owner,
                &opts,
            )
            .unwrap()
        }

        /// What the owner's client stores: `value` signed by the owner.
        fn by_owner(&self, soul: &str, key: &str, value: Value) -> Value {
            let st = State::new(self.st).unwrap();
            Value::from(sign_value(soul, key, &value, st, &self.owner).unwrap())
        }

        /// `writer`'s certified write of `inbox`.`msg`, checked by `v`.
        fn write(&self, v: &SeaValidator, writer: &Pair, cert: &str) -> Result<()> {
            let soul = self.soul("/inbox");
            let st = State::new(self.st).unwrap();
            let text =
                sign_value_certified(&soul, "msg", &Value::from("hi"), st, writer, cert).unwrap();
            v.check_key(&soul, "msg", &Value::from(text), self.st)
        }

        /// The owner's `~owner`.`blocklist` -> `~owner/blocklist` holding `blocked: mark`.
        fn stored(&self, mark: Value) -> Stored {
            let (root, list) = (self.soul(""), self.soul("/blocklist"));
            let link = Value::link(gun_graph::Soul::new(list.as_str()).unwrap());
            let mut m = Stored::new();
            let v = self.by_owner(&root, "blocklist", link);
            m.insert((root, "blocklist".into()), v);
            let v = self.by_owner(&list, &self.blocked.pub_, mark);
            m.insert((list, self.blocked.pub_.clone()), v);
            m
        }
    }

    #[test]
    fn a_write_block_list_under_the_owner_refuses_the_writers_it_marks() {
        let case = BlockCase::new();
        let cert = case.cert(json!("blocklist"));
        let v = SeaValidator::new().with_block_list(reader(case.stored(Value::Bool(true))));
        match case.write(&v, &case.blocked, &cert) {
            Err(Error::CertificantBlocked { certificant }) => {
                assert_eq!(certificant, case.blocked.pub_)
            }
            other => panic!("a blocked writer got through: {other:?}"),
        }
        assert_eq!(
            case.write(&v, &case.blocked, &cert)
                .unwrap_err()
                .to_string(),
            format!("Certificant {} blocked.", case.blocked.pub_)
        );
        case.write(&v, &case.other, &cert)
            .expect("a writer the list does not mark is allowed");
        // `1` blocks as `true` does; `false` and other values do not (Gun.js).
        let v = SeaValidator::new().with_block_list(reader(case.stored(Value::Number(1.0))));
        assert!(matches!(
            case.write(&v, &case.blocked, &cert),
            Err(Error::CertificantBlocked { .. })
        ));
        for mark in [Value::Bool(false), Value::Number(2.0), Value::from("true")] {
            let v = SeaValidator::new().with_block_list(reader(case.stored(mark.clone())));
            assert!(case.write(&v, &case.blocked, &cert).is_ok(), "{mark:?}");
        }
        // No list under the owner: nothing is blocked.
        let v = SeaValidator::new().with_block_list(reader(Stored::new()));
        case.write(&v, &case.blocked, &cert).unwrap();
    }

    #[test]
    fn a_write_block_list_named_by_soul_is_read_there() {
        let case = BlockCase::new();
        let list = case.soul("/blocklist");
        let stored = case.stored(Value::Bool(true));
        for wb in [json!(list), json!({"#": list})] {
            let cert = case.cert(wb.clone());
            let v = SeaValidator::new().with_block_list(reader(stored.clone()));
            assert!(
                matches!(
                    case.write(&v, &case.blocked, &cert),
                    Err(Error::CertificantBlocked { .. })
                ),
                "{wb}"
            );
            case.write(&v, &case.other, &cert).unwrap();
        }
    }

    #[test]
    fn an_unreadable_block_list_refuses_rather_than_allows() {
        let case = BlockCase::new();
        let cert = case.cert(json!("blocklist"));
        for v in [
            SeaValidator::new(),
            SeaValidator::new().with_block_list(Failing),
        ] {
            for writer in [&case.blocked, &case.other] {
                assert!(matches!(
                    case.write(&v, writer, &cert),
                    Err(Error::BlockListUnavailable)
                ));
            }
        }
        // A certificate without a block list needs no reader.
        let plain = certify(
            Certificants::Anyone,
            &json!({"*": "inbox"}),
            &case.owner,
            &CertifyOptions::default(),
        )
        .unwrap();
        case.write(&SeaValidator::new(), &case.blocked, &plain)
            .unwrap();
    }

    #[test]
    fn hex_to_base64_is_gun_s() {
        let hash = sha256("x");
        let hex = encoding::hex(&hash);
        assert_eq!(hex_to_base64(&hex), Some(encoding::std_encode(&hash)));
        assert_eq!(
            hex_to_base64(&hex.to_uppercase()),
            Some(encoding::std_encode(&hash))
        );
        // an odd trailing character is ignored
        assert_eq!(
            hex_to_base64(&format!("{hex}z")),
            Some(encoding::std_encode(&hash))
        );
        assert_eq!(hex_to_base64("zz"), Some(encoding::std_encode(&[0])));
        assert_eq!(hex_to_base64("-1"), None);
        assert_eq!(hex_to_base64("1z"), Some(encoding::std_encode(&[1])));
    }
}
