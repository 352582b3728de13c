//! SEA user accounts with the `gun` facade: create an account, log in with the
//! password, write signed data, read it back (verified), change the password,
//! log out.
//!
//! ```text
//! cargo run -p gun --example sea_user
//! ```
//!
//! The same calls work with peers (`GunOptions::peers`): a Gun.js client can then
//! `gun.user().auth("alice", "…")` into this account and read what it wrote.

use gun::{Gun, GunOptions, UserError};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gun = Gun::new(GunOptions::default());
    let user = gun.user();

    // Gun.js refuses passwords shorter than 8 characters; so do we.
    match user.create("alice", "pw").await {
        Err(UserError::PasswordTooShort) => println!("create with \"pw\": Password too short!"),
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    let pub_ = user.create("alice", "correct horse battery").await?;
    println!("created ~@alice -> ~{pub_}");
    user.leave();

    match user.auth("alice", "wrong password").await {
        Err(e) => println!("auth with a wrong password: {e}"),
        Ok(_) => return Err("a wrong password logged in".into()),
    }
    user.auth("alice", "correct horse battery").await?;
    let me = user.is().ok_or("not logged in")?;
    println!("logged in as {:?} ({})", me.alias, me.pub_);

    // Every value is signed: {":":value,"~":signature} on the wire.
    user.get("profile")
        .put(json!({"name": "Alice", "address": {"city": "Oslo"}}))
        .await?;
    let raw = gun
        .get(format!("~{pub_}/profile"))
        .get("name")
        .then()
        .await?;
    println!("stored: {}", raw.unwrap_or_default());

    // Anybody reads it back through the user's space, verified and unwrapped.
    let profile = gun.user_of(&pub_).get("profile").then().await?;
    println!("profile: {}", profile.clone().unwrap_or_default());
    let city = gun
        .user_of(&pub_)
        .get("profile")
        .get("address")
        .get("city")
        .then()
        .await?;
    assert_eq!(city, Some(json!("Oslo")));

    // A new password seals the same keys: the account and its data stay.
    user.change_password("alice", "correct horse battery", "a brand new passphrase")
        .await?;
    user.leave();
    match user.auth("alice", "correct horse battery").await {
        Err(UserError::WrongPassword { .. }) => println!("the old password no longer opens it"),
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    assert_eq!(user.auth("alice", "a brand new passphrase").await?, pub_);
    println!("the new password opens ~{pub_}");

    user.leave();
    match user.get("profile").put(json!({"name": "Mallory"})).await {
        Err(UserError::NotLoggedIn) => println!("after leave(): writes refused (not logged in)"),
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    gun.shutdown().await?;
    Ok(())
}
