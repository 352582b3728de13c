//! HAM convergence: the same set of writes, merged in different orders (and
//! with duplicates), must give the same graph on every replica.
//!
//! Souls, keys, states and values come from small sets so that equal states
//! (the lexical tie-break), deletions (null) and links collide often.
#![no_main]

use arbitrary::Arbitrary;
use gun_graph::{Graph, Soul, Value};
use gun_ham::State;
use libfuzzer_sys::fuzz_target;

/// At most this many writes per input: convergence bugs need few writes, and
/// short inputs keep the fuzzer fast.
const MAX_WRITES: usize = 24;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SoulName {
    Alice,
    Bob,
    Carol,
}

impl SoulName {
    fn soul(self) -> Soul {
        let s = match self {
            SoulName::Alice => "alice",
            SoulName::Bob => "bob",
            SoulName::Carol => "carol",
        };
        Soul::new(s).expect("non-empty soul")
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeyName {
    Name,
    Age,
    Friend,
    Empty,
}

impl KeyName {
    fn key(self) -> &'static str {
        match self {
            KeyName::Name => "name",
            KeyName::Age => "age",
            KeyName::Friend => "friend",
            KeyName::Empty => "",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum StateChoice {
    Zero,
    One,
    Two,
    Three,
    Recent,
}

impl StateChoice {
    fn state(self) -> State {
        let ms = match self {
            StateChoice::Zero => 0.0,
            StateChoice::One => 1.0,
            StateChoice::Two => 2.0,
            StateChoice::Three => 3.0,
            StateChoice::Recent => 1_700_000_000_000.0,
        };
        State::new(ms).expect("finite state")
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ValueChoice {
    Null,
    False,
    True,
    Zero,
    MinusOne,
    OneAndHalf,
    One,
    EmptyString,
    StrA,
    StrB,
    /// The text `1`: JSON `"1"`, not the number `1`.
    StrOne,
    /// The text `null`: JSON `"null"`, not `null`.
    StrNull,
    Link(SoulName),
}

impl ValueChoice {
    fn value(self) -> Value {
        match self {
            ValueChoice::Null => Value::Null,
            ValueChoice::False => Value::Bool(false),
            ValueChoice::True => Value::Bool(true),
            ValueChoice::Zero => Value::Number(0.0),
            ValueChoice::MinusOne => Value::Number(-1.0),
            ValueChoice::OneAndHalf => Value::Number(1.5),
            ValueChoice::One => Value::Number(1.0),
            ValueChoice::EmptyString => Value::string(""),
            ValueChoice::StrA => Value::string("a"),
            ValueChoice::StrB => Value::string("b"),
            ValueChoice::StrOne => Value::string("1"),
            ValueChoice::StrNull => Value::string("null"),
            ValueChoice::Link(s) => Value::Link(s.soul()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Write {
    soul: SoulName,
    key: KeyName,
    state: StateChoice,
    value: ValueChoice,
}

impl Write {
    /// A one-key graph, built raw (no HAM), as a put would carry it.
    fn graph(self) -> Graph {
        let mut g = Graph::new();
        g.put(
            self.soul.soul(),
            self.key.key(),
            self.state.state(),
            self.value.value(),
        )
        .expect("key is not `_`");
        g
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    writes: Vec<Write>,
    rotate: u8,
}

/// Far beyond every state above, so that no write is deferred.
fn machine() -> State {
    State::new(4_000_000_000_000.0).expect("finite state")
}

fn apply<'a>(order: impl IntoIterator<Item = &'a Graph>) -> Graph {
    let mut replica = Graph::new();
    for put in order {
        let m = replica.merge(put, machine());
        assert!(m.deferred.is_empty(), "nothing may be deferred: {m:?}");
    }
    replica
}

fuzz_target!(|input: Input| {
    let mut writes = input.writes;
    writes.truncate(MAX_WRITES);
    let puts: Vec<Graph> = writes.iter().map(|w| w.graph()).collect();

    // Replica 1: in reverse order.
    let reversed = apply(puts.iter().rev());

    // Replica 2: rotated by an arbitrary amount.
    let k = if puts.is_empty() {
        0
    } else {
        usize::from(input.rotate) % puts.len()
    };
    let rotated = apply(puts[k..].iter().chain(&puts[..k]));

    // Replica 3: in order, every put delivered twice, then the whole stream
    // replayed (duplicates must change nothing).
    let duplicated = apply(puts.iter().flat_map(|p| [p, p]).chain(puts.iter()));

    assert_eq!(
        reversed, rotated,
        "reversed vs rotated (k = {k}): {writes:?}"
    );
    assert_eq!(reversed, duplicated, "reversed vs duplicated: {writes:?}");
});
