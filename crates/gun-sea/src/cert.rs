//! Certificates: `SEA.certify`, and checking a certified write.

use serde_json::Value as J;

use crate::error::{Error, Result};
use crate::js;
use crate::pair::Pair;
use crate::sign::{sign, verify_json};

/// Who a certificate is for (Gun's `certificants`, normalized as `SEA.certify`
/// does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certificants<'a> {
    /// Anyone: `"c":"*"`.
    Anyone,
    /// One pub: `"c":"<pub>"`.
    One(&'a str),
    /// Several pubs: `"c":["<pub>",…]`. Gun.js 0.2020.1241 silently ignores
    /// writes under such certificates (a bug fixed later on GitHub); this crate
    /// honours them.
    Many(&'a [&'a str]),
}

/// Options of [`certify`] (Gun's `opt.expiry`, `opt.block`, `policy.read`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CertifyOptions {
    /// `e`: milliseconds since the epoch after which writes are refused
    /// (compared with the write's state).
    pub expiry: Option<f64>,
    /// `r`: a read policy (recorded; nothing enforces reads).
    pub read: Option<J>,
    /// `rb`: a read block list (recorded only).
    pub read_block: Option<J>,
    /// `wb`: a write block list: a key under the authority's `~pub` (text not
    /// starting with `~`), a soul (text starting with `~`), or `{"#": soul}`;
    /// writers whose pub holds `1` or `true` there are refused.
    pub write_block: Option<J>,
}

impl CertifyOptions {
    /// Options with an expiry.
    pub fn expiring(at_ms: f64) -> CertifyOptions {
        CertifyOptions {
            expiry: Some(at_ms),
            ..CertifyOptions::default()
        }
    }
}

/// `SEA.certify(certificants, policy, authority, null, opt)`: a certificate
/// allowing `certificants` to write where the lex rules of `write` allow,
/// inside the authority's user space.
///
/// The result is `SEA{"m":{"c":…,"e"?:…,"r"?:…,"w":…,"rb"?:…,"wb"?:…},"s":…}`
/// (keys in that order), signed by `authority` like any [`sign`] of that object.
/// `write` is a string, a lex object (`{"*":"inbox","+":"*"}`,
/// `{"#":{"*":"a"},".":{">":"k"}}`) or an array of them.
pub fn certify(
    certificants: Certificants<'_>,
    write: &J,
    authority: &Pair,
    opts: &CertifyOptions,
) -> Result<String> {
    let c = match certificants {
        Certificants::Anyone => J::String("*".into()),
        Certificants::One(p) if p.contains('*') => J::String("*".into()),
        Certificants::One(p) => J::String(p.to_owned()),
        Certificants::Many(list) if list.contains(&"*") => J::String("*".into()),
        Certificants::Many([one]) => J::String((*one).to_owned()),
        Certificants::Many(list) => {
            J::Array(list.iter().map(|p| J::String((*p).to_owned())).collect())
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("c".into(), c);
    if let Some(e) = opts.expiry.filter(|e| *e != 0.0 && e.is_finite()) {
        m.insert("e".into(), crate::number(e));
    }
    if let Some(r) = &opts.read {
        m.insert("r".into(), r.clone());
    }
    m.insert("w".into(), write.clone());
    if let Some(rb) = &opts.read_block {
        m.insert("rb".into(), rb.clone());
    }
    if let Some(wb) = &opts.write_block {
        m.insert("wb".into(), wb.clone());
    }
    sign(&J::Object(m), authority)
}

/// Where a certificate's block list says to look, resolved by the validator.
pub(crate) enum BlockRef {
    /// Key `certificant` of this soul.
    Soul(String),
    /// Follow key `name` of `~owner` (a link) to the soul of the list.
    OwnerKey(String),
}

/// What a certificate check concluded.
pub(crate) enum Verdict {
    /// The write is allowed.
    Allowed,
    /// Allowed unless the block list marks the writer.
    AllowedUnlessBlocked(BlockRef),
}

/// Checks a certificate `cert` (`{"m","s"}`) for a write by `certificant` into
/// `soul`/`key` at `state`, in the space of `owner`, exactly as sea.js does,
/// except that an array `c` works.
pub(crate) fn check(
    cert: &J,
    certificant: &str,
    owner: &str,
    soul: &str,
    key: &str,
    state: f64,
) -> Result<Verdict> {
    let data = verify_json(cert, owner).map_err(|_| Error::CertificateNotByOwner)?;
    // `data.e` on null throws in Gun.js.
    if data.is_null() {
        return Err(Error::CertificateMalformed);
    }
    if let Some(e) = js::prop(&data, "e")
        && state != 0.0
        && state > js::parse_float(e)
    {
        return Err(Error::CertificateExpired);
    }
    let (Some(c), Some(w)) = (js::prop(&data, "c"), js::prop(&data, "w")) else {
        return Err(Error::CertificantNotListed);
    };
    if !js::truthy(c) || !js::truthy(w) {
        return Err(Error::CertificantNotListed);
    }
    let listed = c.as_str() == Some(certificant)
        || match c {
            J::String(s) => s.contains('*'),
            J::Array(a) => a
                .iter()
                .any(|e| e.as_str() == Some("*") || e.as_str() == Some(certificant)),
            _ => return Err(Error::CertificateMalformed),
        };
    if !listed {
        return Err(Error::CertificantNotListed);
    }
    let path = soul.split_once('/').map_or("", |(_, p)| p);
    let rules: Vec<&J> = match w {
        J::Array(a) => a.iter().collect(),
        J::Object(_) | J::String(_) => vec![w],
        _ => Vec::new(),
    };
    for lex in rules {
        if lex.is_null() {
            // `lex['#']` on null throws.
            return Err(Error::CertificateMalformed);
        }
        if !rule_matches(lex, path, key) {
            continue;
        }
        if let Some(plus) = js::prop(lex, "+").filter(|p| js::truthy(p)) {
            let star = js::has_star(plus).ok_or(Error::CertificateMalformed)?;
            if star && !path.is_empty() && !path.contains(certificant) && !key.contains(certificant)
            {
                return Err(Error::CertificantNotInPath {
                    path: path.to_owned(),
                    key: key.to_owned(),
                    certificant: certificant.to_owned(),
                });
            }
        }
        return Ok(match js::prop(&data, "wb") {
            Some(J::String(s)) if s.starts_with('~') => {
                Verdict::AllowedUnlessBlocked(BlockRef::Soul(s.clone()))
            }
            Some(J::String(s)) if !s.is_empty() => {
                Verdict::AllowedUnlessBlocked(BlockRef::OwnerKey(s.clone()))
            }
            Some(wb @ J::Object(_)) if js::truthy_opt(js::prop(wb, "#")) => match js::prop(wb, "#")
            {
                Some(J::String(s)) => Verdict::AllowedUnlessBlocked(BlockRef::Soul(s.clone())),
                // `root.get({'#': non-string})` is no soul Gun can read.
                _ => return Err(Error::CertificateMalformed),
            },
            _ => Verdict::Allowed,
        });
    }
    Err(Error::CertificateFail)
}

/// One write rule of a certificate against the soul's path and the key:
/// `(path ~ #  and  key ~ .)  or  (no . and path ~ #)  or  (no # and key ~ .)
///  or  (path/key ~ (# or the rule itself))`.
fn rule_matches(lex: &J, path: &str, key: &str) -> bool {
    let h = js::prop(lex, "#");
    let d = js::prop(lex, ".");
    if js::text_match(path, h) && js::text_match(key, d) {
        return true;
    }
    if !js::truthy_opt(d) && js::text_match(path, h) {
        return true;
    }
    if !js::truthy_opt(h) && js::text_match(key, d) {
        return true;
    }
    let full = if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    };
    let o = if js::truthy_opt(h) { h } else { Some(lex) };
    js::text_match(&full, o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules() {
        let r = json!({"*": "inbox"});
        assert!(rule_matches(&r, "inbox", "msg"));
        assert!(!rule_matches(&r, "private", "x"));
        assert!(rule_matches(&json!("inbox"), "", "inbox"));
        assert!(!rule_matches(&json!("inbox"), "inbox", "x"));
        let split = json!({"#": "posts/1", ".": {">": "2020", "<": "2021"}});
        assert!(rule_matches(&split, "posts/1", "2020-05"));
        assert!(!rule_matches(&split, "posts/1", "2022"));
        assert!(!rule_matches(&split, "other", "2020-05"));
        // As in Gun.js, the last clause matches `path/key` against `#` alone, so a
        // prefix `#` makes the `.` part moot.
        let prefix = json!({"#": {"*": "posts"}, ".": {">": "2020", "<": "2021"}});
        assert!(rule_matches(&prefix, "posts/1", "2022"));
        let only_key = json!({".": {"*": "k"}});
        assert!(rule_matches(&only_key, "anything", "key"));
    }

    #[test]
    fn certify_layout() {
        let a = Pair::generate().unwrap();
        let c = certify(
            Certificants::One("B"),
            &json!({"*": "inbox", "+": "*"}),
            &a,
            &CertifyOptions::expiring(1.9e12),
        )
        .unwrap();
        assert!(
            c.starts_with(r#"SEA{"m":{"c":"B","e":1900000000000,"w":{"*":"inbox","+":"*"}},"s":""#),
            "{c}"
        );
        let many = certify(
            Certificants::Many(&["B", "C"]),
            &json!("inbox"),
            &a,
            &CertifyOptions::default(),
        )
        .unwrap();
        assert!(
            many.starts_with(r#"SEA{"m":{"c":["B","C"],"w":"inbox"},"#),
            "{many}"
        );
        let star = certify(
            Certificants::Many(&["B", "*"]),
            &json!("inbox"),
            &a,
            &CertifyOptions::default(),
        )
        .unwrap();
        assert!(
            star.starts_with(r#"SEA{"m":{"c":"*","w":"inbox"},"#),
            "{star}"
        );
    }
}
