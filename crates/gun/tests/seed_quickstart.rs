//! Code written for the seed, gun-rs 1.0.4 (docs.rs/gun-rs/1.0.4, library name
//! `gun`), compiled and run against this crate with only its `use` lines changed:
//!
//! * `quick_start`: the crate documentation's "Quick Start" (the doc block of
//!   src/lib.rs of 1.0.4), whole and verbatim between the `use` lines and the
//!   end of `main`. It makes a local database, reads it once, subscribes, then
//!   dials a peer at an address that does not resolve (`relay.example.com`):
//!   `with_options` resolves when `GunOptions::wait` elapsed, as documented.
//!   After `main` the test reads the data back, so the run asserts something.
//! * `basic_example`: the seed's examples/basic.rs, whole.
//!
//! The `use` lines map the seed's names: `chia_bls::{SecretKey, PublicKey}` ->
//! `gun::seed::{SecretKey, PublicKey}` (the quick start passes its secret key
//! by value twice, so the seed's key must be `Copy`; new code uses
//! `gun::BlsSecretKey`, which is not and is wiped on drop), `gun::{Gun,
//! GunOptions}` -> `gun::seed::{Gun, GunOptions}` (its `Gun::new(secret_key,
//! public_key)` and `Gun::with_options(secret_key, public_key, options)`).
//!
//! Then `with_options_waits_for_the_first_peer`: ours, `Gun::with_options`
//! against a relay in this process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod quick_start {
    // The seed's text drops `on`'s subscription and never uses the peered
    // database; those are its choices, kept as written.
    #![allow(unused_imports, unused_variables, unused_must_use)]
    use gun::seed::{Gun, GunOptions};
    use gun::seed::{PublicKey, SecretKey};
    use serde_json::json;

    #[rustfmt::skip] // the seed's text as written
    #[tokio::main]
    async fn main() -> Result<(), Box<dyn std::error::Error>> {
        // Generate BLS key pair
        let secret_key = SecretKey::from_seed(&[0u8; 32]);
        let public_key = secret_key.public_key();

        // Create a local Gun instance
        let gun = Gun::new(secret_key, public_key);

        // Store data
        gun.get("user").put(json!({
            "name": "Alice",
            "age": 30
        })).await?;

        // Read data once
        gun.get("user").once(|data, _key| {
            println!("User: {:?}", data);
        }).await?;

        // Subscribe to updates
        gun.get("user").on(|data, _key| {
            println!("User updated: {:?}", data);
        });

        // Connect to peers (optional)
        let options = GunOptions {
            peers: vec!["ws://relay.example.com/gun".to_string()],
            ..Default::default()
        };
        let gun_with_peers = Gun::with_options(secret_key, public_key, options).await?;

        Ok(())
    }

    #[test]
    fn runs() {
        main().unwrap();
    }

    /// What the quick start wrote reads back, and its key is the seed's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_back() {
        let secret_key = SecretKey::from_seed(&[0u8; 32]);
        assert_eq!(
            secret_key.public_key(),
            gun::BlsSecretKey::from_seed(&[0u8; 32]).public_key(),
            "the same seed gives the same key as gun::BlsSecretKey"
        );
        let gun = Gun::new(secret_key, secret_key.public_key());
        gun.get("user")
            .put(json!({"name": "Alice", "age": 30}))
            .await
            .unwrap();
        let mut seen = Vec::new();
        gun.get("user")
            .once(|data, _key| seen.push(data))
            .await
            .unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["name"], json!("Alice"));
        assert_eq!(seen[0]["age"], json!(30));
        assert_eq!(format!("{secret_key:?}"), "SecretKey(<redacted>)");
    }
}

mod basic_example {
    use gun::BlsSecretKey as SecretKey;
    use gun::seed::Gun;
    use serde_json::json;
    use std::sync::Arc;

    /// Basic example matching the JavaScript Gun.js quickstart
    #[rustfmt::skip] // the seed's text as written
    #[tokio::main]
    async fn main() -> Result<(), Box<dyn std::error::Error>> {
        // Generate BLS key pair
        let secret_key = SecretKey::from_seed(&[0u8; 32]);
        let public_key = secret_key.public_key();
        // Create a Gun instance
        let gun = Arc::new(Gun::new(secret_key, public_key));

        // Save data - equivalent to:
        // gun.get('mark').put({name: "Mark", email: "mark@gun.eco"})
        let mark_chain = gun.get("mark");
        mark_chain
            .put(json!({
                "name": "Mark",
                "email": "mark@gun.eco"
            }))
            .await?;

        // Read data - equivalent to:
        // gun.get('mark').on((data, key) => { console.log("realtime updates:", data) })
        let mark_chain = gun.get("mark");
        mark_chain.on(|data, _key| {
            println!("realtime updates: {:?}", data);
        });

        // Live updates - equivalent to:
        // setInterval(() => { gun.get('mark').get('live').put(Math.random()) }, 9)
        for i in 0..10 {
            tokio::time::sleep(tokio::time::Duration::from_millis(9)).await;
            gun.get("mark").get("live").put(json!(i as f64)).await?;
        }

        Ok(())
    }

    #[test]
    fn runs() {
        main().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_options_waits_for_the_first_peer() {
    use gun::server::{Relay, RelayOptions, StoreKind};
    use gun::{BlsSecretKey, GunOptions};
    use std::time::Duration;

    let relay = Relay::start(RelayOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreKind::Memory,
        ..RelayOptions::default()
    })
    .unwrap();
    let sk = BlsSecretKey::from_seed(&[3; 32]);
    let pk = sk.public_key();
    let gun = gun::Gun::with_options(
        sk,
        pk,
        GunOptions {
            peers: vec![relay.url()],
            wait: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(gun.engine().peer_count(), 1, "resolved once connected");
    assert!(
        gun.engine().options().mesh.signer.is_some(),
        "signs with the keys"
    );

    // A key pair that does not match is an error, not a panic.
    let other = BlsSecretKey::from_seed(&[4; 32]).public_key();
    let res = gun::Gun::with_options(
        BlsSecretKey::from_seed(&[3; 32]),
        other,
        GunOptions::default(),
    )
    .await;
    assert!(
        matches!(res, Err(gun::WithOptionsError::Keys(_))),
        "a mismatched key pair is refused"
    );

    // Without a reachable peer it resolves when the wait elapsed.
    let start = std::time::Instant::now();
    let lonely = gun::Gun::with_options(
        BlsSecretKey::from_seed(&[5; 32]),
        BlsSecretKey::from_seed(&[5; 32]).public_key(),
        GunOptions {
            peers: vec!["http://127.0.0.1:9/gun".into()],
            wait: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(lonely.engine().peer_count(), 0);
    assert!(start.elapsed() >= Duration::from_millis(300));
    gun.shutdown().await.unwrap();
    lonely.shutdown_within(Duration::ZERO).await.unwrap();
    relay.shutdown().await.unwrap();
}
