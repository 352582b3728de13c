//! Which peers subscribed to each soul: the peers a write may be pushed to.
//!
//! Each peer's own [`Subs`](super::subs::Subs) says exactly what it subscribed
//! to (and is bounded, oldest soul evicted first); this index only narrows
//! down who to ask, so that publishing a write costs O(its subscribers), not
//! O(connections): on a relay with 100,000 clients each writing its own soul,
//! a write is checked against the one or two peers that asked for that soul.
//!
//! The index may hold stale entries (a peer that left, or whose subscription
//! was evicted since): a write checks each candidate's `Subs` anyway, and
//! drops the stale ones it meets; [`SubIndex::sweep`], run from the mesh's
//! tick, drops the rest periodically, so stale entries cannot pile up for souls
//! nobody writes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::peer::PeerId;

use super::subs::SubTarget;

/// How often [`SubIndex::sweep`] walks the whole index, in milliseconds.
pub(super) const SWEEP_EVERY_MS: u64 = 30_000;

/// A soul's subscribers. Most souls have one (a client's own soul): held
/// inline, no allocation.
#[derive(Debug)]
enum Peers {
    One(PeerId),
    Many(HashSet<PeerId>),
}

impl Peers {
    fn insert(&mut self, p: PeerId) -> bool {
        match self {
            Peers::One(q) if *q == p => false,
            Peers::One(q) => {
                *self = Peers::Many(HashSet::from([*q, p]));
                true
            }
            Peers::Many(set) => set.insert(p),
        }
    }

    /// Removes `p`; answers whether it was there and whether none is left.
    fn remove(&mut self, p: PeerId) -> (bool, bool) {
        match self {
            Peers::One(q) => (*q == p, *q == p),
            Peers::Many(set) => {
                let removed = set.remove(&p);
                (removed, set.is_empty())
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = PeerId> + '_ {
        let (one, many) = match self {
            Peers::One(p) => (Some(*p), None),
            Peers::Many(set) => (None, Some(set.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

#[derive(Debug, Default)]
pub(super) struct SubIndex {
    /// Keyed by the interned soul (one copy shared with the subscriptions).
    souls: HashMap<Arc<str>, Peers>,
    /// Peers with a lexical subscription (souls by prefix or range): asked
    /// about every write.
    lex: BTreeSet<PeerId>,
    /// (soul, peer) pairs held.
    entries: usize,
    last_sweep: u64,
}

impl SubIndex {
    /// `peer` subscribed to `t`.
    pub(super) fn add(&mut self, t: &SubTarget, peer: PeerId) {
        match t {
            SubTarget::Soul { soul, .. } => match self.souls.get_mut(&**soul) {
                Some(peers) => {
                    if peers.insert(peer) {
                        self.entries += 1;
                    }
                }
                None => {
                    self.souls.insert(Arc::clone(soul), Peers::One(peer));
                    self.entries += 1;
                }
            },
            SubTarget::Souls(_) => {
                self.lex.insert(peer);
            }
        }
    }

    /// The peers that may have subscribed to any soul of `souls`, each once,
    /// in id order (lexical subscribers included).
    pub(super) fn candidates<'a>(&self, souls: impl Iterator<Item = &'a str>) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = self.lex.iter().copied().collect();
        for soul in souls {
            if let Some(peers) = self.souls.get(soul) {
                out.extend(peers.iter());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `peer` no longer subscribes to `soul` (or is gone).
    pub(super) fn forget(&mut self, soul: &str, peer: PeerId) {
        if let Some(peers) = self.souls.get_mut(soul) {
            let (removed, empty) = peers.remove(peer);
            if removed {
                self.entries -= 1;
            }
            if empty {
                self.souls.remove(soul);
            }
        }
    }

    /// `peer` has no lexical subscription any more (or is gone).
    pub(super) fn forget_lex(&mut self, peer: PeerId) {
        self.lex.remove(&peer);
    }

    /// Every [`SWEEP_EVERY_MS`]: drops the entries `still` denies (peers
    /// gone, subscriptions evicted) for souls nobody wrote since.
    pub(super) fn sweep(
        &mut self,
        now: u64,
        still: impl Fn(&str, PeerId) -> bool,
        lex_still: impl Fn(PeerId) -> bool,
    ) {
        if now.saturating_sub(self.last_sweep) < SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep = now;
        let mut entries = 0;
        self.souls.retain(|soul, peers| {
            match peers {
                Peers::One(p) => {
                    if !still(soul, *p) {
                        return false;
                    }
                }
                Peers::Many(set) => {
                    set.retain(|p| still(soul, *p));
                    match set.len() {
                        0 => return false,
                        1 => {
                            if let Some(&p) = set.iter().next() {
                                *peers = Peers::One(p);
                            }
                        }
                        n => {
                            if set.capacity() > 2 * n + 8 {
                                set.shrink_to_fit();
                            }
                        }
                    }
                }
            }
            entries += match peers {
                Peers::One(_) => 1,
                Peers::Many(set) => set.len(),
            };
            true
        });
        self.entries = entries;
        self.lex.retain(|p| lex_still(*p));
    }

    /// (soul, peer) pairs held (stale ones included until swept).
    pub(super) fn len(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::subs::intern;

    fn soul(s: &str) -> SubTarget {
        SubTarget::Soul {
            soul: intern(s),
            key: None,
        }
    }

    #[test]
    fn candidates_are_the_subscribers_of_the_written_souls_once_each() {
        let mut ix = SubIndex::default();
        ix.add(&soul("a"), PeerId(1));
        ix.add(&soul("a"), PeerId(2));
        ix.add(&soul("a"), PeerId(2));
        ix.add(&soul("b"), PeerId(2));
        ix.add(&soul("c"), PeerId(3));
        assert_eq!(ix.len(), 4);
        assert_eq!(
            ix.candidates(["a", "b"].into_iter()),
            [PeerId(1), PeerId(2)]
        );
        assert_eq!(ix.candidates(["c"].into_iter()), [PeerId(3)]);
        assert!(ix.candidates(["zzz"].into_iter()).is_empty());
        // Lexical subscribers are asked about every write.
        ix.add(
            &SubTarget::Souls(Box::new(gun_graph::Lex::prefix("x"))),
            PeerId(9),
        );
        assert_eq!(ix.candidates(["c"].into_iter()), [PeerId(3), PeerId(9)]);
        ix.forget_lex(PeerId(9));
        ix.forget("a", PeerId(1));
        ix.forget("a", PeerId(2));
        assert!(ix.candidates(["a"].into_iter()).is_empty());
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn a_sweep_drops_what_the_peers_no_longer_hold() {
        let mut ix = SubIndex::default();
        for p in 0..10 {
            ix.add(&soul("shared"), PeerId(p));
            ix.add(&soul(&format!("own{p}")), PeerId(p));
        }
        assert_eq!(ix.len(), 20);
        // Too early: nothing happens.
        ix.sweep(1, |_, _| false, |_| false);
        assert_eq!(ix.len(), 20);
        // Peers 0..5 left.
        ix.sweep(SWEEP_EVERY_MS + 1, |_, p| p.0 >= 5, |_| true);
        assert_eq!(ix.len(), 10);
        assert!(ix.candidates(["own1"].into_iter()).is_empty());
        assert_eq!(ix.candidates(["own7"].into_iter()), [PeerId(7)]);
        assert_eq!(
            ix.candidates(["shared"].into_iter()),
            (5..10).map(PeerId).collect::<Vec<_>>()
        );
    }
}
