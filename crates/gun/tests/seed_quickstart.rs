//! Code written for the seed, gun-rs 1.0.4 (docs.rs/gun-rs/1.0.4, library name
//! `gun`), compiled and run against this crate with only its `use` lines changed:
//!
//! * `quick_start`: the crate documentation's "Quick Start" (src/lib.rs of
//!   1.0.4). Only its beginning could be retrieved here (up to the first `put`,
//!   lines 22-44 of that file's doc block); the test holds that part verbatim
//!   and closes the function with `Ok(())`, marked below. It makes a local
//!   database and names no peer, so no relay is needed.
//! * `basic_example`: the seed's examples/basic.rs, whole.
//!
//! The `use` lines map the seed's names: `chia_bls::{SecretKey, PublicKey}` ->
//! `gun::{BlsSecretKey, BlsPublicKey}`, `gun::{Gun, GunOptions}` ->
//! `gun::seed::{Gun, GunOptions}` (its `Gun::new(secret_key, public_key)` and
//! `Gun::with_options(secret_key, public_key, options)`).
//!
//! Then `with_options_waits_for_the_first_peer`: ours, `Gun::with_options`
//! against a relay in this process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod quick_start {
    #![allow(unused_imports)] // the retrieved part does not reach its use of these
    use gun::seed::{Gun, GunOptions};
    use gun::{BlsPublicKey as PublicKey, BlsSecretKey as SecretKey};
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
        // -- end of the retrieved text; ours from here: check and close --
        assert_eq!(gun.get("user").get("age").then().await?, Some(json!(30)));
        Ok(())
    }

    #[test]
    fn runs() {
        main().unwrap();
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
