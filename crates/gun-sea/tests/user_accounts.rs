//! User accounts over the Chain API (`gun_sea::User`), in process on the memory
//! store: what `create` writes (Gun.js's layout, §10.4), `auth` with a password
//! and with a pair, `leave`, signed writes (§10.5) and verified reads, tampered
//! data refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gun_core::{Engine, EngineOptions, Graph, Soul, State, Value};
use gun_sea::{
    Pair, SeaValidator, User, UserError, WorkOptions, decrypt_json, sign_value, verify_value, work,
};
use serde_json::{Value as J, json};

fn gun() -> gun_core::Gun {
    let store = Arc::new(gun_store_memory::MemoryStore::new());
    gun_core::Gun::from_engine(Engine::new(EngineOptions::new(store)))
}

/// A database whose engine enforces SEA on every put, local ones included.
fn sea_gun() -> gun_core::Gun {
    let g = gun();
    g.engine().add_validator(Arc::new(SeaValidator::new()));
    g
}

fn soul(s: &str) -> Soul {
    Soul::new(s).unwrap()
}

async fn node(g: &gun_core::Gun, s: &str) -> gun_core::Node {
    g.engine()
        .read_node(&soul(s), None, None)
        .await
        .unwrap()
        .unwrap()
}

const PASS: &str = "correct horse battery";

#[tokio::test]
async fn create_writes_what_gunjs_writes() {
    let g = sea_gun();
    let user = User::new(g.clone());
    let pub_ = user.create("alice", PASS).await.unwrap();
    // Logged in as the new account, as Gun.js leaves `user.is` set.
    let is = user.is().unwrap();
    assert_eq!(is.pub_, pub_);
    assert_eq!(is.alias.as_deref(), Some("alice"));
    assert_eq!(pub_.len(), 87);

    // ~@alice lists the account with a link.
    let list = node(&g, "~@alice").await;
    let user_soul = format!("~{pub_}");
    assert_eq!(list.len(), 1);
    assert_eq!(list.value(&user_soul), Some(&Value::Link(soul(&user_soul))));

    // ~pub: pub plain, alias/epub/auth signed, all at one state.
    let acct = node(&g, &user_soul).await;
    let keys: Vec<&str> = acct.keys().collect();
    assert_eq!(keys, ["alias", "auth", "epub", "pub"]);
    assert_eq!(acct.value("pub"), Some(&Value::from(pub_.as_str())));
    let state = acct.state("pub").unwrap();
    for k in ["alias", "auth", "epub"] {
        assert_eq!(acct.state(k), Some(state), "{k}");
    }
    let open = |k: &str| {
        let wire = acct.value(k).unwrap().as_str().unwrap();
        assert!(wire.starts_with("{\":\":"), "{k}: {wire}");
        verify_value(&user_soul, k, wire, state, &pub_).unwrap()
    };
    assert_eq!(open("alias"), Value::from("alice"));
    let pair = user.pair().unwrap();
    assert_eq!(open("epub"), Value::from(pair.epub.as_str()));

    // auth = JSON text {"ek":{"ct","iv","s"},"s":salt}; ek opens with work(pass, salt).
    let auth_text = open("auth");
    let auth_text = auth_text.as_str().unwrap();
    assert!(auth_text.starts_with("{\"ek\":{\"ct\":\""), "{auth_text}");
    let auth: J = serde_json::from_str(auth_text).unwrap();
    let ek_keys: Vec<&String> = auth["ek"].as_object().unwrap().keys().collect();
    assert_eq!(ek_keys, ["ct", "iv", "s"]);
    let salt = auth["s"].as_str().unwrap();
    assert_eq!(salt.len(), 64);
    assert!(salt.bytes().all(|b| b.is_ascii_alphanumeric() && b != b'Y'));
    let proof = work(PASS, Some(salt), &WorkOptions::default()).unwrap();
    let half = decrypt_json(&auth["ek"], proof.as_str()).unwrap();
    assert_eq!(half, json!({"priv": pair.priv_, "epriv": pair.epriv}));
    assert!(decrypt_json(&auth["ek"], "wrong proof").is_err());
}

#[tokio::test]
async fn auth_with_password_and_pair_and_leave() {
    let g = sea_gun();
    let user = User::new(g.clone());
    let pub_ = user.create("bob", PASS).await.unwrap();
    let pair = user.pair().unwrap();
    user.leave();
    assert_eq!(user.is(), None);
    assert_eq!(user.pair(), None);
    assert_eq!(
        user.get("x").put(json!("y")).await.unwrap_err(),
        UserError::NotLoggedIn
    );
    assert_eq!(
        user.get("x").then().await.unwrap_err(),
        UserError::NotLoggedIn
    );

    // A second handle on the same database logs in with the password.
    let other = User::new(g.clone());
    assert_eq!(other.auth("bob", PASS).await.unwrap(), pub_);
    assert_eq!(other.pair().unwrap(), pair);
    assert_eq!(other.is().unwrap().alias.as_deref(), Some("bob"));

    assert_eq!(
        user.auth("bob", "not the password").await.unwrap_err(),
        UserError::WrongPassword {
            alias: "bob".into()
        }
    );
    assert_eq!(user.is(), None, "a failed auth does not log in");
    assert_eq!(
        user.auth("nobody", PASS).await.unwrap_err(),
        UserError::AliasNotFound {
            alias: "nobody".into()
        }
    );

    // With the pair: no reads; writes are signed by it.
    let third = User::new(g.clone());
    third.auth_pair(pair.clone());
    assert_eq!(third.is().unwrap().pub_, pub_);
    assert_eq!(third.is().unwrap().alias, None);
    third.get("status").put(json!("online")).await.unwrap();
    assert_eq!(
        User::of(g.clone(), &pub_)
            .get("status")
            .then()
            .await
            .unwrap(),
        Some(json!("online"))
    );
    third.leave();
    assert_eq!(third.is(), None);
}

#[tokio::test]
async fn change_password_reseals_the_same_keys() {
    let g = sea_gun();
    let user = User::new(g.clone());
    let pub_ = user.create("dora", PASS).await.unwrap();
    let pair = user.pair().unwrap();
    let acct_soul = format!("~{pub_}");
    let before = node(&g, &acct_soul).await;
    user.leave();
    const NEW: &str = "a brand new passphrase";

    // A short new password is refused before anything is read or written.
    assert_eq!(
        user.change_password("dora", PASS, "short")
            .await
            .unwrap_err(),
        UserError::PasswordTooShort
    );
    assert_eq!(
        user.change_password("dora", "not the password", NEW)
            .await
            .unwrap_err(),
        UserError::WrongPassword {
            alias: "dora".into()
        }
    );
    assert_eq!(user.is(), None);
    assert_eq!(node(&g, &acct_soul).await, before, "nothing written");

    assert_eq!(user.change_password("dora", PASS, NEW).await.unwrap(), pub_);
    // Logged in, with the same keys.
    assert_eq!(user.pair().unwrap(), pair);
    assert_eq!(user.is().unwrap().alias.as_deref(), Some("dora"));

    // Only `auth` changed: newer state, a new salt, signed by the account.
    let after = node(&g, &acct_soul).await;
    for key in ["pub", "alias", "epub"] {
        assert_eq!(after.get(key), before.get(key), "{key}");
    }
    let (old_auth, new_auth) = (before.get("auth").unwrap(), after.get("auth").unwrap());
    assert!(new_auth.state > old_auth.state);
    let Value::String(wire) = &new_auth.value else {
        panic!("auth is not text: {:?}", new_auth.value)
    };
    let signed = verify_value(&acct_soul, "auth", wire, new_auth.state, &pub_).unwrap();
    let sealed: J = serde_json::from_str(signed.as_str().unwrap()).unwrap();
    let Value::String(old_wire) = &old_auth.value else {
        panic!()
    };
    let old_signed = verify_value(&acct_soul, "auth", old_wire, old_auth.state, &pub_).unwrap();
    let old_sealed: J = serde_json::from_str(old_signed.as_str().unwrap()).unwrap();
    assert_eq!(sealed["s"].as_str().unwrap().len(), 64);
    assert_ne!(sealed["s"], old_sealed["s"], "a fresh salt");

    // The old password no longer opens the account; the new one does.
    let other = User::new(g.clone());
    assert_eq!(
        other.auth("dora", PASS).await.unwrap_err(),
        UserError::WrongPassword {
            alias: "dora".into()
        }
    );
    assert_eq!(other.auth("dora", NEW).await.unwrap(), pub_);
    assert_eq!(other.pair().unwrap(), pair);
    // What the account signed before still verifies (same keys).
    other
        .get("note")
        .put(json!("after the change"))
        .await
        .unwrap();
    assert_eq!(
        User::of(g.clone(), &pub_).get("note").then().await.unwrap(),
        Some(json!("after the change"))
    );
}

#[tokio::test]
async fn create_from_an_existing_pair() {
    let g = sea_gun();
    let pair = Pair::generate().unwrap();
    let user = User::new(g.clone());
    let pub_ = user.create_from_pair(pair.clone()).await.unwrap();
    assert_eq!(pub_, pair.pub_);
    // Logged in with the pair; the alias is the pub (as in Gun.js).
    assert_eq!(user.pair().unwrap(), pair);
    assert_eq!(user.is().unwrap().alias.as_deref(), Some(pub_.as_str()));

    let acct_soul = format!("~{pub_}");
    let list = node(&g, &format!("~@{pub_}")).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list.value(&acct_soul), Some(&Value::Link(soul(&acct_soul))));
    let acct = node(&g, &acct_soul).await;
    let mut keys: Vec<&str> = acct.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["alias", "auth", "epub", "pub"]);
    let account = User::of(g.clone(), &pub_);
    assert_eq!(
        account.get("epub").then().await.unwrap(),
        Some(json!(pair.epub))
    );
    assert_eq!(
        account.get("alias").then().await.unwrap(),
        Some(json!(pub_))
    );

    // Gun.js on Node seals it with the pair's JSON text, keys sorted (yson).
    let text = format!(
        r#"{{"epriv":"{}","epub":"{}","priv":"{}","pub":"{}"}}"#,
        pair.epriv, pair.epub, pair.priv_, pair.pub_
    );
    let other = User::new(g.clone());
    assert_eq!(other.auth(&pub_, &text).await.unwrap(), pub_);
    assert_eq!(other.pair().unwrap(), pair);

    // Once per pair.
    assert_eq!(
        User::new(g.clone())
            .create_from_pair(pair.clone())
            .await
            .unwrap_err(),
        UserError::AliasTaken { alias: pub_ }
    );
}

#[tokio::test]
async fn create_refusals() {
    let g = gun();
    let user = User::new(g.clone());
    assert_eq!(
        user.create("carol", "short").await.unwrap_err(),
        UserError::PasswordTooShort
    );
    assert_eq!(user.create("", PASS).await.unwrap_err(), UserError::NoAlias);
    let first = user.create("carol", PASS).await.unwrap();
    assert_eq!(
        User::new(g.clone())
            .create("carol", "another password")
            .await
            .unwrap_err(),
        UserError::AliasTaken {
            alias: "carol".into()
        }
    );
    assert_eq!(user.is().unwrap().pub_, first);
}

#[tokio::test]
async fn signed_put_and_verified_read() {
    let g = sea_gun(); // the SEA validator accepts every write below
    let alice = User::new(g.clone());
    let pub_ = alice.create("alice", PASS).await.unwrap();
    let root = format!("~{pub_}");
    alice
        .get("profile")
        .put(json!({"name": "Alice", "age": 30, "address": {"city": "Oslo"}}))
        .await
        .unwrap();
    alice
        .get("profile")
        .get("address")
        .get("zip")
        .put(json!("0150"))
        .await
        .unwrap();

    // On the wire: the link and every value signed (§10.5).
    let acct = node(&g, &root).await;
    let st = acct.state("profile").unwrap();
    let link = acct.value("profile").unwrap().as_str().unwrap();
    let profile_soul = format!("{root}/profile");
    assert_eq!(
        verify_value(&root, "profile", link, st, &pub_).unwrap(),
        Value::Link(soul(&profile_soul))
    );
    assert!(link.starts_with(&format!("{{\":\":{{\"#\":\"{profile_soul}\"}},\"~\":\"")));
    let profile = node(&g, &profile_soul).await;
    let name = profile.value("name").unwrap().as_str().unwrap();
    let st = profile.state("name").unwrap();
    assert_eq!(
        verify_value(&profile_soul, "name", name, st, &pub_).unwrap(),
        Value::from("Alice")
    );

    // Anybody reads it through User::of, verified and unwrapped.
    let bob = User::new(g.clone());
    bob.create("bob", PASS).await.unwrap();
    let alice_space = bob.of_user(&pub_);
    assert_eq!(
        alice_space.get("profile").get("name").then().await.unwrap(),
        Some(json!("Alice"))
    );
    assert_eq!(
        alice_space
            .get("profile")
            .get("address")
            .get("zip")
            .then()
            .await
            .unwrap(),
        Some(json!("0150"))
    );
    assert_eq!(
        alice_space.get("profile").then().await.unwrap(),
        Some(json!({
            "address": {"#": format!("{profile_soul}/address")},
            "age": 30,
            "name": "Alice",
        }))
    );
    let mut seen = Vec::new();
    alice_space
        .get("profile")
        .get("age")
        .once(|d, k| seen.push((d, k.to_string())))
        .await
        .unwrap();
    assert_eq!(seen, vec![(json!(30), "age".to_string())]);
    assert_eq!(alice_space.get("nothing").then().await.unwrap(), None);
    // The account node itself, unwrapped.
    let acct = User::of(g.clone(), &pub_).then().await.unwrap().unwrap();
    assert_eq!(acct["alias"], json!("alice"));
    assert_eq!(acct["pub"], json!(pub_));

    // Bob cannot write into Alice's space.
    assert_eq!(
        alice_space
            .get("profile")
            .put(json!({"name": "Eve"}))
            .await
            .unwrap_err(),
        UserError::NotOwner { soul: root.clone() }
    );
    assert_eq!(
        User::of(g.clone(), &pub_)
            .get("x")
            .put(json!(1))
            .await
            .unwrap_err(),
        UserError::NotLoggedIn
    );
    // Alice, through `of_user` of her own pub, can.
    alice
        .of_user(&pub_)
        .get("mood")
        .put(json!("happy"))
        .await
        .unwrap();
    assert_eq!(
        alice.get("mood").then().await.unwrap(),
        Some(json!("happy"))
    );
}

#[tokio::test]
async fn tampered_data_is_refused() {
    // No validator here: the store takes anything, so reads must check.
    let g = gun();
    let alice = User::new(g.clone());
    let pub_ = alice.create("alice", PASS).await.unwrap();
    alice
        .get("profile")
        .put(json!({"name": "Alice"}))
        .await
        .unwrap();
    let reader = User::of(g.clone(), &pub_);
    assert_eq!(
        reader.get("profile").get("name").then().await.unwrap(),
        Some(json!("Alice"))
    );
    let profile_soul = format!("~{pub_}/profile");

    // Keep Alice's signature but change the value (at a newer state).
    let profile = node(&g, &profile_soul).await;
    let wire = profile.value("name").unwrap().as_str().unwrap().to_owned();
    let forged = wire.replace("\"Alice\"", "\"Mallory\"");
    assert_ne!(forged, wire);
    let mut graph = Graph::new();
    graph
        .put(
            soul(&profile_soul),
            "name",
            g.engine().next_state(),
            Value::from(forged.as_str()),
        )
        .unwrap();
    g.engine()
        .put_local(graph, &Default::default())
        .await
        .unwrap();
    let err = reader.get("profile").get("name").then().await.unwrap_err();
    assert!(
        matches!(&err, UserError::Unverified { soul, key, reason: gun_sea::Error::Unverified }
            if *soul == profile_soul && key == "name"),
        "{err:?}"
    );
    // The whole node read fails too, and Alice's own read.
    assert!(matches!(
        reader.get("profile").then().await.unwrap_err(),
        UserError::Unverified { .. }
    ));

    // A value signed by somebody else, and a plain value, are refused alike.
    let mallory = Pair::generate().unwrap();
    let st = g.engine().next_state();
    let by_mallory = sign_value(&profile_soul, "name", &Value::from("M"), st, &mallory).unwrap();
    let mut graph = Graph::new();
    graph
        .put(
            soul(&profile_soul),
            "name",
            st,
            Value::from(by_mallory.as_str()),
        )
        .unwrap();
    graph
        .put(
            soul(&format!("~{pub_}")),
            "plain",
            st,
            Value::from("unsigned"),
        )
        .unwrap();
    g.engine()
        .put_local(graph, &Default::default())
        .await
        .unwrap();
    assert!(matches!(
        reader.get("profile").get("name").then().await.unwrap_err(),
        UserError::Unverified { .. }
    ));
    assert!(matches!(
        reader.get("plain").then().await.unwrap_err(),
        UserError::Unverified { .. }
    ));

    // Alice's next write at a newer state replaces the forgery, and reads pass.
    alice
        .get("profile")
        .get("name")
        .put(json!("Alice 2"))
        .await
        .unwrap();
    assert_eq!(
        reader.get("profile").get("name").then().await.unwrap(),
        Some(json!("Alice 2"))
    );
}

#[tokio::test]
async fn a_forged_account_does_not_open() {
    // An alias entry pointing at an account whose `auth` is signed by another key:
    // auth refuses it (the signature check comes first), as if absent.
    let g = gun();
    let real = User::new(g.clone());
    let pub_ = real.create("dave", PASS).await.unwrap();
    let acct_soul = format!("~{pub_}");
    let acct = node(&g, &acct_soul).await;
    let mallory = Pair::generate().unwrap();
    let st: State = g.engine().next_state();
    let auth = verify_value(
        &acct_soul,
        "auth",
        acct.value("auth").unwrap().as_str().unwrap(),
        acct.state("auth").unwrap(),
        &pub_,
    )
    .unwrap();
    let resigned = sign_value(&acct_soul, "auth", &auth, st, &mallory).unwrap();
    let mut graph = Graph::new();
    graph
        .put(soul(&acct_soul), "auth", st, Value::from(resigned.as_str()))
        .unwrap();
    g.engine()
        .put_local(graph, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        User::new(g.clone()).auth("dave", PASS).await.unwrap_err(),
        UserError::WrongPassword {
            alias: "dave".into()
        }
    );
}

/// Waits (up to 5 s) for the next value `rx` delivers.
async fn next_of(rx: &mut tokio::sync::mpsc::UnboundedReceiver<J>) -> J {
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("no callback within 5 s")
        .expect("subscription ended")
}

#[tokio::test]
async fn on_follows_verified_changes_and_relinks() {
    let g = gun(); // no validator: a forged value can be stored below
    let alice = User::new(g.clone());
    let pub_ = alice.create("alice", PASS).await.unwrap();
    alice
        .get("profile")
        .put(json!({"name": "Alice"}))
        .await
        .unwrap();

    // A node, a key, and the same data read by someone else (`User::of`).
    let (tx, mut node_rx) = tokio::sync::mpsc::unbounded_channel();
    let _s1 = alice.get("profile").on(move |d, k| {
        assert_eq!(k, "profile");
        let _ = tx.send(d);
    });
    let (tx, mut key_rx) = tokio::sync::mpsc::unbounded_channel();
    let _s2 = User::of(g.clone(), &pub_)
        .get("profile")
        .get("name")
        .on(move |d, _| {
            let _ = tx.send(d);
        });
    assert_eq!(next_of(&mut node_rx).await, json!({"name": "Alice"}));
    assert_eq!(next_of(&mut key_rx).await, json!("Alice"));
    alice
        .get("profile")
        .get("name")
        .put(json!("Alicia"))
        .await
        .unwrap();
    assert_eq!(next_of(&mut node_rx).await, json!({"name": "Alicia"}));
    assert_eq!(next_of(&mut key_rx).await, json!("Alicia"));

    // A link on the way changes: the subscription follows it.
    alice.get("pet").put(json!({"kind": "cat"})).await.unwrap();
    alice
        .get("other")
        .put(json!({"kind": "dog"}))
        .await
        .unwrap();
    let (tx, mut pet_rx) = tokio::sync::mpsc::unbounded_channel();
    let _s3 = alice.get("pet").get("kind").on(move |d, _| {
        let _ = tx.send(d);
    });
    assert_eq!(next_of(&mut pet_rx).await, json!("cat"));
    let other = alice.get("other").soul().await.unwrap().unwrap();
    alice
        .get("pet")
        .put(json!({"#": other.as_str()}))
        .await
        .unwrap();
    assert_eq!(next_of(&mut pet_rx).await, json!("dog"));

    // A forged (unsigned) value in alice's space is not delivered.
    let mut forged = Graph::new();
    forged
        .put(
            soul(&format!("~{pub_}/profile")),
            "name",
            g.engine().next_state(),
            Value::from("Mallory"),
        )
        .unwrap();
    g.engine()
        .put_local(forged, &Default::default())
        .await
        .unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), key_rx.recv()).await;
    assert!(quiet.is_err(), "a forged value was delivered: {quiet:?}");

    // Dropping the subscription stops it.
    drop(_s1);
    alice
        .get("profile")
        .get("name")
        .put(json!("Al"))
        .await
        .unwrap();
    let after = tokio::time::timeout(std::time::Duration::from_millis(300), node_rx.recv()).await;
    assert!(
        matches!(after, Ok(None) | Err(_)),
        "a dropped subscription fired: {after:?}"
    );
}

/// `gun.user(pub).get("friends").map().then()`, as anybody reads it.
async fn friends_of(g: &gun_core::Gun, pub_: &str) -> J {
    User::of(g.clone(), pub_)
        .get("friends")
        .map()
        .then()
        .await
        .unwrap()
        .expect("the set has children")
}

#[tokio::test]
async fn set_adds_signed_items_and_map_reads_them() {
    let g = sea_gun(); // every write below passes the SEA validator
    let alice = User::new(g.clone());
    let pub_ = alice.create("alice", PASS).await.unwrap();
    let friends = alice.get("friends");

    // An object: a new node in alice's space, linked under its soul.
    let bob = friends.set(json!({"name": "Bob"})).await.unwrap();
    let bob_soul = bob.soul().await.unwrap().expect("the item is a node");
    assert!(
        bob_soul.as_str().starts_with(&format!("~{pub_}/")),
        "{bob_soul}"
    );
    assert_eq!(bob.then().await.unwrap(), Some(json!({"name": "Bob"})));
    // A plain value, under a random key; a link, under the linked soul.
    let plain = friends.set(json!("carol")).await.unwrap();
    assert_eq!(plain.then().await.unwrap(), Some(json!("carol")));
    alice.get("me").put(json!({"name": "Alice"})).await.unwrap();
    let me = alice.get("me").soul().await.unwrap().unwrap();
    friends.set(json!({"#": me.as_str()})).await.unwrap();

    // On the wire, the list's values are alice's signed links.
    let list_soul = friends.soul().await.unwrap().unwrap();
    let list = node(&g, list_soul.as_str()).await;
    let wire = list.value(bob_soul.as_str()).unwrap().as_str().unwrap();
    let st = list.state(bob_soul.as_str()).unwrap();
    assert_eq!(
        verify_value(list_soul.as_str(), bob_soul.as_str(), wire, st, &pub_).unwrap(),
        Value::Link(bob_soul.clone())
    );

    // map(): each child, links followed, as anybody reads it.
    let all = friends_of(&g, &pub_).await;
    let all = all.as_object().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[bob_soul.as_str()], json!({"name": "Bob"}));
    assert_eq!(all[me.as_str()], json!({"name": "Alice"}));
    assert_eq!(
        all.values().filter(|v| **v == json!("carol")).count(),
        1,
        "{all:?}"
    );
    // A lexical filter on the children's keys.
    let nodes_only = friends
        .map_filter(gun_core::Lex::prefix(format!("~{pub_}/")))
        .then()
        .await
        .unwrap()
        .unwrap();
    let nodes_only = nodes_only.as_object().unwrap();
    assert_eq!(nodes_only.len(), 2, "{nodes_only:?}");
    assert!(nodes_only.values().all(|v| v.is_object()), "{nodes_only:?}");
    let none = friends
        .map_filter(gun_core::Lex::exact("no such key"))
        .then()
        .await
        .unwrap();
    assert_eq!(none, None);
    let mut seen = Vec::new();
    friends
        .map()
        .once(|d, k| seen.push((k.to_owned(), d)))
        .await
        .unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.contains(&(bob_soul.to_string(), json!({"name": "Bob"}))));

    // on(): every child now, then additions and changes of linked nodes.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sub = friends.map().on(move |d, k| {
        let _ = tx.send(json!({"k": k, "d": d}));
    });
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(next_of(&mut rx).await);
    }
    assert!(first.contains(&json!({"k": bob_soul.as_str(), "d": {"name": "Bob"}})));
    let dave = friends.set(json!({"name": "Dave"})).await.unwrap();
    let dave_soul = dave.soul().await.unwrap().unwrap();
    assert_eq!(
        next_of(&mut rx).await,
        json!({"k": dave_soul.as_str(), "d": {"name": "Dave"}})
    );
    bob.get("name").put(json!("Robert")).await.unwrap();
    assert_eq!(
        next_of(&mut rx).await,
        json!({"k": bob_soul.as_str(), "d": {"name": "Robert"}})
    );

    // Nobody writes into another user's set without a certificate.
    let mallory = User::new(g.clone());
    mallory.create("mallory", PASS).await.unwrap();
    assert!(matches!(
        mallory.of_user(&pub_).get("friends").set(json!("x")).await,
        Err(UserError::NotOwner { .. })
    ));
}

#[tokio::test]
async fn map_leaves_out_children_that_do_not_verify() {
    let g = gun(); // no validator: a forged value can be stored below
    let alice = User::new(g.clone());
    let pub_ = alice.create("alice", PASS).await.unwrap();
    let friends = alice.get("friends");
    let bob = friends.set(json!({"name": "Bob"})).await.unwrap();
    let bob_soul = bob.soul().await.unwrap().unwrap();
    let list = friends.soul().await.unwrap().unwrap();
    let mut forged = Graph::new();
    let st = State::new(gun_core::now_ms()).unwrap();
    forged
        .put(list.clone(), "x", st, Value::from("unsigned"))
        .unwrap();
    g.engine()
        .put_local(forged, &Default::default())
        .await
        .unwrap();
    let all = friends_of(&g, &pub_).await;
    assert_eq!(all, json!({bob_soul.as_str(): {"name": "Bob"}}));
    // A plain read of the list still fails on it, as user reads do.
    assert!(matches!(
        friends.then().await,
        Err(UserError::Unverified { .. })
    ));
}

#[tokio::test]
async fn certified_writes_into_another_users_space() {
    let g = sea_gun();
    let alice = User::new(g.clone());
    let alice_pub = alice.create("alice", PASS).await.unwrap();
    let bob = User::new(g.clone());
    let bob_pub = bob.create("bob", PASS).await.unwrap();
    let inbox_cert = gun_sea::certify(
        gun_sea::Certificants::One(&bob_pub),
        &json!({"*": "inbox"}),
        &alice.pair().unwrap(),
        &gun_sea::CertifyOptions::default(),
    )
    .unwrap();

    // Bob writes into alice's inbox under her certificate; anybody reads it,
    // verified against the certificate.
    let inbox = bob.of_user(&alice_pub).get("inbox");
    inbox
        .get("from-bob")
        .put_certified(json!("hello"), &inbox_cert, Default::default())
        .await
        .unwrap();
    let read = User::of(g.clone(), &alice_pub)
        .get("inbox")
        .get("from-bob")
        .then()
        .await
        .unwrap();
    assert_eq!(read, Some(json!("hello")));
    // The stored value names bob and carries the certificate (Gun.js's form).
    let soul = inbox.soul().await.unwrap().unwrap();
    let stored = node(&g, soul.as_str()).await;
    let text = stored
        .value("from-bob")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let wrapped: J = serde_json::from_str(&text).unwrap();
    assert_eq!(wrapped["*"], json!(bob_pub));
    assert!(wrapped["+"].is_object(), "{text}");

    // Without the certificate, or outside what it allows: refused.
    assert!(matches!(
        inbox.get("plain").put(json!("x")).await,
        Err(UserError::NotOwner { .. })
    ));
    let outside = bob
        .of_user(&alice_pub)
        .get("profile")
        .put_certified(json!({"name": "mallory"}), &inbox_cert, Default::default())
        .await;
    assert!(outside.is_err(), "{outside:?}");
    assert_eq!(
        User::of(g.clone(), &alice_pub)
            .get("profile")
            .get("name")
            .then()
            .await
            .unwrap(),
        None
    );
}
