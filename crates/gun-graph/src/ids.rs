//! Random ids and souls as Gun.js makes them (§2, §9.1).

use rand::Rng;

/// Gun's alphabet for random text: digits and letters, without `Y` (61 characters).
pub const ALPHABET: &[u8; 61] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXZabcdefghijklmnopqrstuvwxyz";

/// Random text of `len` characters from [`ALPHABET`] (Gun.js `String.random`).
/// Message ids and peer ids use 9 characters; the default elsewhere is 24.
pub fn random_text<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    // Up to ten characters from one uniform draw below 61^10 (< 2^64), read as
    // base-61 digits: the same distribution as one draw per character (each
    // character uniform and independent), with a tenth of the draws.
    const PER_DRAW: usize = 10;
    let base = ALPHABET.len() as u64;
    let mut out = String::with_capacity(len);
    let mut left = len;
    while left > 0 {
        let k = left.min(PER_DRAW);
        let mut n = rng.random_range(0..base.pow(k as u32));
        for _ in 0..k {
            out.push(char::from(ALPHABET[(n % base) as usize]));
            n /= base;
        }
        left -= k;
    }
    out
}

/// A message id (9 random characters).
pub fn message_id() -> String {
    random_text(&mut rand::rng(), 9)
}

/// The base-36 text of a state with the `.` removed, as JavaScript's
/// `state.toString(36).replace('.', '')`.
pub fn state_base36(state: f64) -> String {
    let mut s = String::new();
    if !state.is_finite() {
        return s;
    }
    let neg = state < 0.0;
    let v = state.abs();
    let mut int = v.trunc();
    let mut frac = v - int;
    let mut digits = Vec::new();
    if int == 0.0 {
        digits.push(b'0');
    }
    while int >= 1.0 {
        let d = (int % 36.0) as usize;
        digits.push(DIGITS36[d]);
        int = (int / 36.0).trunc();
    }
    digits.reverse();
    if neg {
        s.push('-');
    }
    s.push_str(std::str::from_utf8(&digits).unwrap_or(""));
    // JavaScript prints as many fraction digits as needed to round-trip; Gun only
    // uses the text for uniqueness, so 12 digits (enough for 1/999 steps) suffice.
    let mut n = 0;
    while frac > 0.0 && n < 12 {
        frac *= 36.0;
        let d = frac.trunc();
        s.push(DIGITS36[d as usize % 36] as char);
        frac -= d;
        n += 1;
    }
    s
}

const DIGITS36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A soul for a new node without a name (Gun.js `opt.uuid`): the base-36 state
/// without its `.`, then `len` random characters (12 for `put`/`set` of objects).
pub fn uuid<R: Rng + ?Sized>(rng: &mut R, state: f64, len: usize) -> String {
    let mut s = state_base36(state);
    s.push_str(&random_text(rng, len));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_has_no_capital_y() {
        assert!(!ALPHABET.contains(&b'Y'));
        assert_eq!(ALPHABET.len(), 61);
        let t = random_text(&mut rand::rng(), 1000);
        assert_eq!(t.len(), 1000);
        assert!(t.bytes().all(|b| ALPHABET.contains(&b)));
    }

    /// Every character of every position is drawn uniformly: over 61,000
    /// nine-character texts each character appears at each position about
    /// 1,000 times (a 6-sigma band), and lengths that are not a multiple of
    /// the draw's ten come out whole.
    #[test]
    fn random_text_is_uniform_at_every_position() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = [[0u32; 61]; 9];
        for _ in 0..61_000 {
            let t = random_text(&mut rng, 9);
            for (pos, b) in t.bytes().enumerate() {
                let Some(i) = ALPHABET.iter().position(|&a| a == b) else {
                    panic!("{b} is not in the alphabet");
                };
                counts[pos][i] += 1;
            }
        }
        for row in counts {
            assert!(row.iter().all(|&c| (810..=1190).contains(&c)), "{row:?}");
        }
        for len in [0, 1, 9, 10, 11, 24, 31] {
            assert_eq!(random_text(&mut rng, len).len(), len);
        }
    }

    #[test]
    fn base36_like_javascript() {
        // (1795643412520).toString(36) === "mwwnq4h4" in JavaScript.
        assert_eq!(state_base36(1795643412520.0), "mwwnq4h4");
        assert_eq!(state_base36(0.0), "0");
        // (35.5).toString(36) === "z.i"
        assert_eq!(state_base36(35.5), "zi");
        let u = uuid(&mut rand::rng(), 1795643412520.0, 12);
        assert_eq!(u.len(), 20);
        assert!(u.starts_with("mwwnq4h4"));
    }
}
