//! BLS write certificates: an authority grants a writer the souls under
//! `board/`; a relay enforcing certificates accepts the writer's put and
//! refuses the same put from another key.
//!
//! The three peers run in this process, joined by gun-dam's in-memory network
//! (the same code runs over WebSockets with `GunOptions::peers`).
//!
//! ```text
//! cargo run -p gun --example bls_certificate
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use gun::{
    AuthPolicy, BlsCertValidator, BlsCertificate, BlsKeyPair, Grant, Gun, GunOptions, MeshConfig,
};
use gun_dam::Hub;
use gun_dam::mock::MockNet;
use serde_json::json;

/// Delivers frames and lets the peers' tasks run until nothing moves.
async fn settle(net: &MockNet) {
    let mut quiet = 0;
    while quiet < 4 {
        let moved = net.run_until_idle(100_000);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if moved == 0 && net.queued() == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The authority's key signs certificates; it never needs to be online.
    let authority = BlsKeyPair::from_seed(&[1; 32]);
    let writer = BlsKeyPair::generate()?;
    let mallory = BlsKeyPair::generate()?;
    let in_one_hour = gun_core::now_ms() as u64 + 3_600_000;
    let cert = BlsCertificate::issue(
        &authority,
        writer.public(),
        vec![Grant::prefix("board/")],
        in_one_hour,
    );
    println!("certificate: {}", cert.to_json());

    // The relay checks signatures when present, and certificates for board/.
    let relay = Gun::new(GunOptions {
        mesh: MeshConfig::relay(),
        auth_policy: AuthPolicy::VerifyWhenPresent,
        ..Default::default()
    });
    relay.engine().add_validator(Arc::new(BlsCertValidator::new(
        *authority.public(),
        ["board/"],
    )));

    // The writer signs its messages and attaches its certificate to its puts.
    let w = Gun::with_keys(
        writer.secret().clone(),
        *writer.public(),
        GunOptions {
            certificate: Some(cert),
            ..Default::default()
        },
    )?;
    // Another key, without a certificate.
    let m = Gun::new(GunOptions {
        keys: Some(mallory),
        ..Default::default()
    });

    let mut net = MockNet::new(1);
    let ir = net.add_hub(Arc::new(relay.engine().clone()) as Arc<dyn Hub>);
    let iw = net.add_hub(Arc::new(w.engine().clone()) as Arc<dyn Hub>);
    let im = net.add_hub(Arc::new(m.engine().clone()) as Arc<dyn Hub>);
    net.connect(iw, ir, "ws://relay/gun");
    net.connect(im, ir, "ws://relay/gun");
    settle(&net).await;

    w.get("board/1")
        .put(json!({"text": "hello from the writer"}))
        .await?;
    m.get("board/2")
        .put(json!({"text": "hello from mallory"}))
        .await?;
    settle(&net).await;

    let store = relay.engine().store();
    let accepted = store.get_node("board/1").await?;
    let refused = store.get_node("board/2").await?;
    println!(
        "relay has board/1: {:?}",
        accepted.as_ref().and_then(|n| n.value("text").cloned())
    );
    println!(
        "relay has board/2: {:?}",
        refused.as_ref().map(|n| n.to_data())
    );
    assert!(accepted.is_some(), "the certified writer's put is accepted");
    assert!(
        refused.is_none(),
        "a put by a key without a certificate is refused"
    );
    println!("ok: the certified put was stored, the other refused");
    Ok(())
}
