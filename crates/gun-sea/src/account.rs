//! User accounts over the Chain API: Gun.js's `gun.user()` (`create`, `auth`,
//! `leave`) and signed reads and writes in user space (`user.get(..).put(..)`).
//!
//! What goes on the wire is what `sea.js` of npm `gun@0.2020.1241` writes
//! (protocol notes §10.4–§10.5):
//!
//! * `create(alias, pass)` reads `~@alias` (refusing a taken alias), draws a
//!   64-character salt, `proof = work(pass, salt)` (PBKDF2, 100 000 rounds), a new
//!   [`Pair`], and writes soul `~<pub>` with `pub` (plain), `alias`, `epub` and
//!   `auth` (signed, §10.5) where `auth` is the JSON text
//!   `{"ek":{"ct","iv","s"},"s":salt}` and `ek` encrypts `{"priv","epriv"}` with
//!   the proof as passphrase; then soul `~@alias` with key `~<pub>` linking to it.
//! * `auth(alias, pass)` reads `~@alias`, each `~<pub>` it lists, and opens the
//!   first `auth` the password decrypts. Nothing is sent to prove it.
//! * While logged in, every value put through a [`UserChain`] into the user's
//!   own souls (`~pub`, `~pub/…`) is the JSON string `{":":value,"~":sig}`
//!   signed over `{"#":soul,".":key,":":value,">":state}`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use gun_core::{Graph, Node, PutAck, PutOptions, Soul, SoulWatch, State, Subscription, Value};
use gun_graph::json::write_json;
use rand::Rng as _;
use serde_json::{Map, Value as J};

use crate::cipher::{decrypt_json, encrypt};
use crate::error::Error;
use crate::pair::Pair;
use crate::sign::{sign, verify};
use crate::user::{Wrapped, pub_of_soul, sign_value, sign_value_certified};
use crate::validator::SeaValidator;
use crate::work::{WorkOptions, work};

/// The characters of Gun's `String.random` (there is no `Y`, as in Gun).
const SALT_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXZabcdefghijklmnopqrstuvwxyz";

/// What can go wrong with user accounts and user-space reads and writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// `create` with an empty alias (Gun.js: `No user.`).
    #[error("No user.")]
    NoAlias,
    /// `create` with a password shorter than 8 characters (UTF-16 units, as
    /// JavaScript counts), refused as Gun.js does.
    #[error("Password too short!")]
    PasswordTooShort,
    /// `create` found `~@alias` already listing an account (Gun.js: `User
    /// already created!`). The check is a read, not a lock: two peers creating the
    /// same alias at once both succeed, and the alias then lists both accounts.
    #[error("User already created!")]
    AliasTaken {
        /// The alias.
        alias: String,
    },
    /// `auth` found no account under `~@alias` (locally or from peers within the
    /// engine's wait time).
    #[error("alias {alias:?} not found")]
    AliasNotFound {
        /// The alias.
        alias: String,
    },
    /// `auth` found accounts under the alias but the password opens none of them.
    #[error("wrong password for alias {alias:?}")]
    WrongPassword {
        /// The alias.
        alias: String,
    },
    /// A write (or a read of one's own space) needs a logged-in user.
    #[error("not logged in")]
    NotLoggedIn,
    /// A write into user space that is not the logged-in user's.
    #[error("cannot write into {soul:?}: it is not in the logged-in user's space")]
    NotOwner {
        /// The soul written to.
        soul: String,
    },
    /// A value read from user space is not signed by the space's owner (or is
    /// otherwise refused by SEA's rules): the read fails as a whole.
    #[error("unverified data at {soul:?} key {key:?}: {reason}")]
    Unverified {
        /// The soul read.
        soul: String,
        /// The key read.
        key: String,
        /// Why ([`Error::Unverified`] for a bad or missing signature).
        reason: Error,
    },
    /// The data cannot be written (an array, a non-finite number, an empty key).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A SEA operation failed.
    #[error(transparent)]
    Sea(#[from] Error),
    /// The engine failed (storage, acks, shut down).
    #[error(transparent)]
    Core(#[from] gun_core::Error),
}

/// The logged-in user's keys.
#[derive(Clone)]
struct Session {
    pair: Pair,
    alias: Option<String>,
}

/// Who is logged in: see [`User::is`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The public signing key (the account's soul is `~` + this).
    pub pub_: String,
    /// The public encryption key.
    pub epub: String,
    /// The alias, when logged in with one (`None` after [`User::auth_pair`]).
    pub alias: Option<String>,
}

/// Gun.js's `gun.user()`: create an account, log in with an alias and password
/// or a [`Pair`], read and write signed data in the user's space, log out.
///
/// Clones share the login. The `gun` facade keeps one per database
/// (`gun.user()`), as Gun.js does.
///
/// ```
/// # use std::sync::Arc;
/// # use gun_core::{Engine, EngineOptions};
/// use gun_sea::User;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let gun = gun_core::Gun::from_engine(Engine::new(EngineOptions::new(Arc::new(gun_store_memory::MemoryStore::new()))));
/// let user = User::new(gun.clone());
/// let pub_ = user.create("alice", "correct horse").await?; // logged in as the new account
/// user.leave();
/// assert_eq!(user.auth("alice", "correct horse").await?, pub_);
/// user.get("profile").put(json!({"name": "Alice"})).await?;
///
/// // Anybody reads it, verified against Alice's key.
/// let name = User::of(gun, &pub_).get("profile").get("name").then().await?;
/// assert_eq!(name, Some(json!("Alice")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct User {
    gun: gun_core::Gun,
    session: Arc<RwLock<Option<Session>>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User").field("is", &self.is()).finish()
    }
}

impl User {
    /// A user handle over a database, logged out.
    pub fn new(gun: gun_core::Gun) -> User {
        User {
            gun,
            session: Arc::new(RwLock::new(None)),
        }
    }

    /// The space of the user with public key `pub_`, to read (values verified
    /// against `pub_`). It has no login, so writes through it fail with
    /// [`UserError::NotLoggedIn`]; see [`User::of_user`] for a chain that can
    /// write when logged in as `pub_`.
    pub fn of(gun: gun_core::Gun, pub_: &str) -> UserChain {
        UserChain {
            gun,
            owner: Some(pub_.to_owned()),
            signer: None,
            keys: Vec::new(),
        }
    }

    /// The space of `pub_` (Gun.js `gun.user(pub)`): readable by anybody,
    /// writable (signed) while this user is logged in as `pub_`.
    pub fn of_user(&self, pub_: &str) -> UserChain {
        UserChain {
            gun: self.gun.clone(),
            owner: Some(pub_.to_owned()),
            signer: Some(self.clone()),
            keys: Vec::new(),
        }
    }

    /// The database this user lives in.
    pub fn gun(&self) -> &gun_core::Gun {
        &self.gun
    }

    fn session(&self) -> Option<Session> {
        self.session
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_session(&self, s: Option<Session>) {
        *self.session.write().unwrap_or_else(PoisonError::into_inner) = s;
    }

    /// Who is logged in (Gun.js `user.is`), if anybody.
    pub fn is(&self) -> Option<UserInfo> {
        self.session().map(|s| UserInfo {
            pub_: s.pair.pub_,
            epub: s.pair.epub,
            alias: s.alias,
        })
    }

    /// The logged-in user's key pair (Gun.js `user._.sea`).
    pub fn pair(&self) -> Option<Pair> {
        self.session().map(|s| s.pair)
    }

    /// The logged-in user's space (Gun.js `user.get(key)` starts here). Reads and
    /// writes fail with [`UserError::NotLoggedIn`] while nobody is logged in;
    /// the user is looked up when the chain is used, not when it is made.
    pub fn root(&self) -> UserChain {
        UserChain {
            gun: self.gun.clone(),
            owner: None,
            signer: Some(self.clone()),
            keys: Vec::new(),
        }
    }

    /// `user.get(key)`: the chain for `key` in the logged-in user's space.
    pub fn get(&self, key: impl Into<String>) -> UserChain {
        self.root().get(key)
    }

    /// `user.create(alias, pass)`: creates an account and logs in as it (Gun.js
    /// sets `user.is` while creating too); returns its pub. Does not wait for
    /// peer acks (Gun.js's `{ok: 0}`); see [`User::create_with`].
    ///
    /// Refuses an empty alias ([`UserError::NoAlias`]), a password shorter than 8
    /// characters ([`UserError::PasswordTooShort`]) and an alias that already
    /// lists an account ([`UserError::AliasTaken`]), as Gun.js does.
    pub async fn create(&self, alias: &str, pass: &str) -> Result<String, UserError> {
        self.create_with(alias, pass, PutOptions::default()).await
    }

    /// [`User::create`], each of its two puts waiting for `opts.acks` peer acks.
    pub async fn create_with(
        &self,
        alias: &str,
        pass: &str,
        opts: PutOptions,
    ) -> Result<String, UserError> {
        if alias.is_empty() {
            return Err(UserError::NoAlias);
        }
        if pass.encode_utf16().count() < 8 {
            return Err(UserError::PasswordTooShort);
        }
        self.refuse_taken(alias).await?;
        let pair = blocking(Pair::generate).await??;
        let auth_text = seal(&pair, pass).await?;
        self.publish_account(pair, alias, &auth_text, opts).await
    }

    /// `user.create(pair)`: publishes an account for a key pair made earlier
    /// (Gun.js: the alias is the pub, `~<pub>` gets `pub`, `alias`, `epub` and
    /// an `auth` sealed with the pair's JSON text, keys sorted, as the password, and
    /// `~@<pub>` links to it), then logs in with the pair; returns its pub.
    /// Others can then find its `epub` (for [`crate::secret`]) and its alias
    /// as they do for any account. [`UserError::AliasTaken`] when `~@<pub>`
    /// already lists an account.
    pub async fn create_from_pair(&self, pair: Pair) -> Result<String, UserError> {
        self.create_from_pair_with(pair, PutOptions::default())
            .await
    }

    /// [`User::create_from_pair`], each of its two puts waiting for
    /// `opts.acks` peer acks.
    pub async fn create_from_pair_with(
        &self,
        pair: Pair,
        opts: PutOptions,
    ) -> Result<String, UserError> {
        let alias = pair.pub_.clone();
        self.refuse_taken(&alias).await?;
        // Gun.js's `SEA.work(pair, salt)` works on the pair's JSON text as
        // `JSON.stringifyAsync` writes it; on Node that is gun/lib/yson.js,
        // which sorts the keys (a browser without yson.js keeps the pair's
        // own order, `pub, priv, epub, epriv`).
        let sorted: std::collections::BTreeMap<&str, &str> = [
            ("pub", pair.pub_.as_str()),
            ("priv", pair.priv_.as_str()),
            ("epub", pair.epub.as_str()),
            ("epriv", pair.epriv.as_str()),
        ]
        .into_iter()
        .collect();
        let pass = serde_json::to_string(&sorted).map_err(|_| Error::NotSea {
            expected: "a key pair",
        })?;
        let auth_text = seal(&pair, &pass).await?;
        self.publish_account(pair, &alias, &auth_text, opts).await
    }

    /// `user.auth(alias, old, cb, {change: new})`: logs in with the old
    /// password, then seals the keys with the new one (a fresh salt) and
    /// writes the account's `auth` again, signed; returns the pub. Only `auth`
    /// changes: the keys, and so the pub and everything signed, stay.
    ///
    /// Errors as [`User::auth`] for the old password; a new password shorter
    /// than 8 characters is refused ([`UserError::PasswordTooShort`]) before
    /// anything is read (Gun.js takes any).
    pub async fn change_password(
        &self,
        alias: &str,
        old: &str,
        new: &str,
    ) -> Result<String, UserError> {
        self.change_password_with(alias, old, new, PutOptions::default())
            .await
    }

    /// [`User::change_password`], its put waiting for `opts.acks` peer acks.
    pub async fn change_password_with(
        &self,
        alias: &str,
        old: &str,
        new: &str,
        opts: PutOptions,
    ) -> Result<String, UserError> {
        if new.encode_utf16().count() < 8 {
            return Err(UserError::PasswordTooShort);
        }
        let pub_ = self.auth(alias, old).await?;
        let pair = self.pair().ok_or(UserError::NotLoggedIn)?;
        let auth_text = seal(&pair, new).await?;
        let engine = self.gun.engine();
        let user_soul = Soul::new(format!("~{pub_}")).map_err(gun_core::Error::from)?;
        let state = engine.next_state();
        let wire = sign_value(
            user_soul.as_str(),
            "auth",
            &Value::from(auth_text.as_str()),
            state,
            &pair,
        )?;
        let mut graph = Graph::new();
        graph
            .put(user_soul, "auth", state, Value::from(wire.as_str()))
            .map_err(gun_core::Error::from)?;
        engine.put_local(graph, &opts).await?;
        Ok(pub_)
    }

    /// [`UserError::AliasTaken`] when `~@alias` already lists an account
    /// (read here or from peers; a read, not a lock).
    async fn refuse_taken(&self, alias: &str) -> Result<(), UserError> {
        let alias_soul = Soul::new(format!("~@{alias}")).map_err(gun_core::Error::from)?;
        if self
            .gun
            .engine()
            .fetch(&alias_soul, None)
            .await?
            .is_some_and(|n| !n.is_empty())
        {
            return Err(UserError::AliasTaken {
                alias: alias.to_owned(),
            });
        }
        Ok(())
    }

    /// Writes the account `~<pub>` (`pub`, and `alias`, `epub`, `auth`
    /// signed) and its link from `~@alias`, then logs in as it.
    async fn publish_account(
        &self,
        pair: Pair,
        alias: &str,
        auth_text: &str,
        opts: PutOptions,
    ) -> Result<String, UserError> {
        let engine = self.gun.engine().clone();
        let alias_soul = Soul::new(format!("~@{alias}")).map_err(gun_core::Error::from)?;
        let user_soul = Soul::new(format!("~{}", pair.pub_)).map_err(gun_core::Error::from)?;
        let state = engine.next_state();
        let mut graph = Graph::new();
        graph
            .put(
                user_soul.clone(),
                "pub",
                state,
                Value::from(pair.pub_.as_str()),
            )
            .map_err(gun_core::Error::from)?;
        for (key, value) in [
            ("alias", alias),
            ("epub", pair.epub.as_str()),
            ("auth", auth_text),
        ] {
            let wire = sign_value(user_soul.as_str(), key, &Value::from(value), state, &pair)?;
            graph
                .put(user_soul.clone(), key, state, Value::from(wire.as_str()))
                .map_err(gun_core::Error::from)?;
        }
        engine.put_local(graph, &opts).await?;

        let mut graph = Graph::new();
        graph
            .put(
                alias_soul,
                user_soul.as_str(),
                engine.next_state(),
                Value::Link(user_soul.clone()),
            )
            .map_err(gun_core::Error::from)?;
        engine.put_local(graph, &opts).await?;

        let pub_ = pair.pub_.clone();
        self.set_session(Some(Session {
            pair,
            alias: Some(alias.to_owned()),
        }));
        Ok(pub_)
    }

    /// `user.auth(alias, pass)`: reads `~@alias` and the accounts it lists (here
    /// or from peers) and logs in with the first one the password opens; returns
    /// its pub. [`UserError::AliasNotFound`] when the alias lists no account,
    /// [`UserError::WrongPassword`] when the password opens none.
    pub async fn auth(&self, alias: &str, pass: &str) -> Result<String, UserError> {
        let engine = self.gun.engine().clone();
        let alias_soul = Soul::new(format!("~@{alias}")).map_err(gun_core::Error::from)?;
        let listed: Vec<Soul> = match engine.fetch(&alias_soul, None).await? {
            Some(n) => n
                .iter()
                .filter_map(|(_, e)| e.value.as_link().cloned())
                .collect(),
            None => Vec::new(),
        };
        let mut found = false;
        for soul in listed {
            let Some(pub_) = soul.as_str().strip_prefix('~').map(str::to_owned) else {
                continue;
            };
            let Some(node) = engine.fetch(&soul, None).await? else {
                continue;
            };
            found = true;
            if let Some(pair) = open_account(&node, &pub_, pass).await {
                self.set_session(Some(Session {
                    pair,
                    alias: Some(alias.to_owned()),
                }));
                return Ok(pub_);
            }
        }
        let alias = alias.to_owned();
        Err(if found {
            UserError::WrongPassword { alias }
        } else {
            UserError::AliasNotFound { alias }
        })
    }

    /// `user.auth(pair)`: logs in with a key pair, without reading anything.
    pub fn auth_pair(&self, pair: Pair) {
        self.set_session(Some(Session { pair, alias: None }));
    }

    /// `user.leave()`: forgets the keys (nothing is sent).
    pub fn leave(&self) {
        self.set_session(None);
    }
}

/// An account's `auth` text: `{"ek": <{priv, epriv} encrypted with
/// work(pass, salt)>, "s": salt}`, with a fresh 64-character salt (Gun.js's
/// `SEA.encrypt(.., proof, cb, {raw: 1})` gives `ek` as the `{ct, iv, s}`
/// object). PBKDF2 runs on a blocking thread.
async fn seal(pair: &Pair, pass: &str) -> Result<String, UserError> {
    let salt: String = {
        let mut rng = rand::rng();
        (0..64)
            .map(|_| char::from(SALT_CHARS[rng.random_range(0..SALT_CHARS.len())]))
            .collect()
    };
    let proof = {
        let (pass, salt) = (pass.to_owned(), salt.clone());
        blocking(move || work(&pass, Some(&salt), &WorkOptions::default())).await??
    };
    let mut halves = Map::new();
    halves.insert("priv".into(), J::String(pair.priv_.clone()));
    halves.insert("epriv".into(), J::String(pair.epriv.clone()));
    let sealed = encrypt(&J::Object(halves), proof.as_str())?;
    let ek: J = sealed
        .strip_prefix("SEA")
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or(Error::NotSea {
            expected: "encryption",
        })?;
    let mut auth = Map::new();
    auth.insert("ek".into(), ek);
    auth.insert("s".into(), J::String(salt));
    let mut auth_text = String::new();
    write_json(&mut auth_text, &J::Object(auth));
    Ok(auth_text)
}

/// Runs CPU-heavy work (PBKDF2) on tokio's blocking threads when there is a
/// runtime, so that it does not stall the engine's tasks.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UserError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(f());
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => Err(gun_core::Error::Closed.into()),
    }
}

/// Opens an account node `~pub` with a password: verifies `epub` and `auth`,
/// `work(pass, auth.s)`, decrypts `auth.ek`; checks the keys belong together.
async fn open_account(node: &Node, pub_: &str, pass: &str) -> Option<Pair> {
    let soul = node.soul().as_str();
    let epub = read_key(node, "epub").ok()??;
    let auth = read_key(node, "auth").ok()??;
    // `auth` is JSON text (Gun.js also accepts the object, for old accounts).
    let auth: J = match auth {
        Value::String(s) => serde_json::from_str(&s).ok()?,
        _ => return None,
    };
    let salt = auth.get("s")?.as_str()?.to_owned();
    let ek = auth.get("ek")?.clone();
    let pass = pass.to_owned();
    let proof = blocking(move || work(&pass, Some(&salt), &WorkOptions::default()))
        .await
        .ok()?
        .ok()?;
    let half = decrypt_json(&ek, proof.as_str()).ok()?;
    let mut full = Map::new();
    full.insert("pub".into(), J::String(pub_.to_owned()));
    full.insert("priv".into(), half.get("priv")?.clone());
    full.insert("epub".into(), J::String(epub.as_str()?.to_owned()));
    full.insert("epriv".into(), half.get("epriv")?.clone());
    let pair = Pair::from_json(&J::Object(full)).ok()?;
    // The private key must be the one of `pub`.
    let probe = sign(&J::String(soul.to_owned()), &pair).ok()?;
    verify(&probe, pub_).ok()?;
    Some(pair)
}

/// Reads `key` of `node`, verified as [`UserChain`] reads do.
fn read_key(node: &Node, key: &str) -> Result<Option<Value>, UserError> {
    match node.get(key) {
        Some(e) => decode(node.soul().as_str(), key, &e.value, e.state).map(Some),
        None => Ok(None),
    }
}

/// A value as stored → the value for the API: outside user space as is; in
/// user space checked by SEA's rules (signature by the owner, or a certified
/// writer) and unwrapped from `{":":value,"~":sig}`.
fn decode(soul: &str, key: &str, value: &Value, state: State) -> Result<Value, UserError> {
    let Some(owner) = pub_of_soul(soul) else {
        return Ok(value.clone());
    };
    let unverified = |reason: Error| UserError::Unverified {
        soul: soul.to_owned(),
        key: key.to_owned(),
        reason,
    };
    SeaValidator::new()
        .check_key(soul, key, value, state.as_f64())
        .map_err(unverified)?;
    if key == "pub" && soul.strip_prefix('~') == Some(owner.as_str()) {
        return Ok(value.clone());
    }
    let wrapped = value
        .as_str()
        .and_then(Wrapped::parse)
        .ok_or_else(|| unverified(Error::Unverified))?;
    Value::from_json(wrapped.value()).map_err(|e| unverified(Error::InvalidValue(e)))
}

/// What a user chain points at now.
enum Target {
    Node(Soul),
    Leaf(Option<Value>),
    Nothing,
}

/// A place in a user's space: Gun.js's `user.get(..)` / `gun.user(pub).get(..)`.
///
/// Reads verify every value of user-space souls against the soul's owner and
/// unwrap it; **a value that does not verify makes the read fail** with
/// [`UserError::Unverified`] (nothing is silently dropped). Values of souls
/// outside user space (a user may link to public nodes) are returned as stored.
///
/// Writes sign every value for the logged-in user, with one state per put.
/// Nested objects become linked nodes `soul/key` in the user's space (or the
/// node already linked there), as the Chain API does.
#[derive(Clone)]
pub struct UserChain {
    gun: gun_core::Gun,
    /// The space's pub; `None`: the logged-in user's, looked up on use.
    owner: Option<String>,
    /// The login that may sign writes here.
    signer: Option<User>,
    keys: Vec<String>,
}

impl fmt::Debug for UserChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.owner.as_deref().unwrap_or("<logged-in user>");
        write!(f, "UserChain(~{owner}")?;
        for k in &self.keys {
            write!(f, ".{k}")?;
        }
        f.write_str(")")
    }
}

impl UserChain {
    /// The chain for `key` below this one.
    pub fn get(&self, key: impl Into<String>) -> UserChain {
        let mut c = self.clone();
        c.keys.push(key.into());
        c
    }

    /// The last key of this chain (`None` at the user's root): for the chain
    /// [`set`](UserChain::set) returns, the key the item was added under.
    pub fn key(&self) -> Option<&str> {
        self.keys.last().map(String::as_str)
    }

    /// The chain `n` levels up (at most to the user's root).
    pub fn back(&self, n: usize) -> UserChain {
        let mut c = self.clone();
        let keep = c.keys.len().saturating_sub(n);
        c.keys.truncate(keep);
        c
    }

    /// The pub of this space (the logged-in user's for `user.get(..)`).
    pub fn owner(&self) -> Result<String, UserError> {
        match &self.owner {
            Some(p) => Ok(p.clone()),
            None => self
                .signer
                .as_ref()
                .and_then(User::pair)
                .map(|p| p.pub_)
                .ok_or(UserError::NotLoggedIn),
        }
    }

    fn engine(&self) -> &gun_core::Engine {
        self.gun.engine()
    }

    fn root_soul(&self) -> Result<Soul, UserError> {
        Ok(Soul::new(format!("~{}", self.owner()?)).map_err(gun_core::Error::from)?)
    }

    /// The value of `key` of `soul` (fetched here or from peers), verified.
    async fn value_at(&self, soul: &Soul, key: &str) -> Result<Option<Value>, UserError> {
        match self.engine().fetch(soul, Some(key)).await? {
            Some(n) => read_key(&n, key),
            None => Ok(None),
        }
    }

    async fn resolve(&self) -> Result<Target, UserError> {
        let mut at = Target::Node(self.root_soul()?);
        for key in &self.keys {
            if key.is_empty() {
                return Err(gun_core::Error::EmptyKey.into());
            }
            at = match at {
                Target::Node(s) => match self.value_at(&s, key).await? {
                    Some(Value::Link(l)) => Target::Node(l),
                    v => Target::Leaf(v),
                },
                _ => Target::Nothing,
            };
        }
        Ok(at)
    }

    /// The soul of the node this chain points at, if it points at one now.
    pub async fn soul(&self) -> Result<Option<Soul>, UserError> {
        Ok(match self.resolve().await? {
            Target::Node(s) => Some(s),
            _ => None,
        })
    }

    /// The verified data here, asking peers if it is not known locally: a node
    /// as an object of its keys (links as `{"#": soul}`), a key as its value;
    /// `None` when nobody has it. Fails with [`UserError::Unverified`] if any
    /// value read does not verify.
    pub async fn then(&self) -> Result<Option<J>, UserError> {
        match self.resolve().await? {
            Target::Node(s) => match self.engine().fetch(&s, None).await? {
                Some(node) => node_json(&node).map(Some),
                None => Ok(None),
            },
            Target::Leaf(v) => Ok(v.map(|v| v.to_json())),
            Target::Nothing => Ok(None),
        }
    }

    /// Calls `cb(data, key)` once with the data here (see [`UserChain::then`]);
    /// not called when there is none.
    pub async fn once<F: FnOnce(J, &str)>(&self, cb: F) -> Result<(), UserError> {
        if let Some(d) = self.then().await? {
            cb(d, self.keys.last().map_or("", String::as_str));
        }
        Ok(())
    }

    /// Calls `cb(data, key)` with the verified data here now (if any) and again
    /// whenever it changes: a write to this node or key, or a link on the way
    /// here pointing elsewhere. Values that do not verify are not delivered
    /// (debug event). Stops when the returned [`Subscription`] is dropped.
    pub fn on<F>(&self, cb: F) -> Subscription
    where
        F: FnMut(J, &str) + Send + 'static,
    {
        let chain = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = chain.watch_loop(cb).await {
                tracing::debug!(%e, chain = ?chain, "user subscription ended");
            }
        });
        Subscription::from_task(task.abort_handle())
    }

    /// The souls this chain reads through now: the user's root, every node on
    /// the way, and the node it points at.
    async fn path_souls(&self) -> Result<Vec<Soul>, UserError> {
        let mut souls = vec![self.root_soul()?];
        let mut at = Some(self.root_soul()?);
        for key in &self.keys {
            let Some(s) = at.take() else { break };
            if let Ok(Some(Value::Link(l))) = self.value_at(&s, key).await {
                souls.push(l.clone());
                at = Some(l);
            }
        }
        Ok(souls)
    }

    async fn watch_loop<F>(&self, mut cb: F) -> Result<(), UserError>
    where
        F: FnMut(J, &str) + Send + 'static,
    {
        let key = self.keys.last().cloned().unwrap_or_default();
        let mut watch = SoulWatch::new(self.engine());
        let mut last: Option<J> = None;
        loop {
            watch.set(&self.path_souls().await?);
            match self.then().await {
                Ok(Some(d)) if last.as_ref() != Some(&d) => {
                    last = Some(d.clone());
                    cb(d, &key);
                }
                Ok(_) => {}
                Err(e @ UserError::Unverified { .. }) => {
                    tracing::debug!(%e, chain = ?self, "unverified data not delivered");
                }
                Err(e) => return Err(e),
            }
            if !watch.changed().await {
                return Ok(());
            }
        }
    }

    /// Writes `data` here, signed: an object becomes (or updates) a node, nested
    /// objects linked nodes; a plain value sets this key. Resolves once durable
    /// locally.
    pub async fn put(&self, data: J) -> Result<PutAck, UserError> {
        self.put_with(data, PutOptions::default()).await
    }

    /// [`UserChain::put`], then waits for `opts.acks` peer acks.
    pub async fn put_with(&self, data: J, opts: PutOptions) -> Result<PutAck, UserError> {
        let pair = self.own_signer()?;
        let graph = self.write_graph(data).await?;
        let graph = sign_graph(graph, &pair, None)?;
        Ok(self.engine().put_local(graph, &opts).await?)
    }

    /// Gun.js `gun.get('~'+owner).get(..).put(data, cb, {opt: {cert}})`: writes
    /// into **another** user's space as the logged-in user, under a
    /// certificate that user made for us ([`certify`](crate::certify)). Each
    /// value is signed by us and carries the certificate and our pub
    /// (`{":":v,"~":sig,"+":cert,"*":pub}`); peers with SEA check the
    /// certificate's write rules, expiry and block list. Use it on a chain of
    /// [`User::of_user`]; objects become linked nodes as with [`put`](UserChain::put).
    pub async fn put_certified(
        &self,
        data: J,
        cert: &str,
        opts: PutOptions,
    ) -> Result<PutAck, UserError> {
        let pair = self
            .signer
            .as_ref()
            .and_then(User::pair)
            .ok_or(UserError::NotLoggedIn)?;
        let graph = self.write_graph(data).await?;
        let owner = self.owner()?;
        let graph = sign_graph(graph, &pair, Some((&owner, cert)))?;
        Ok(self.engine().put_local(graph, &opts).await?)
    }

    /// Gun.js `user.get(..).set(item)`: adds `item` to the set here, signed.
    /// An object becomes a new node in the owner's space, `~pub/<id>` (the soul
    /// sea.js gives it), or the node its `_.#` names, and is linked under a key
    /// equal to its soul; a link `{"#": soul}` is added under its soul; a plain
    /// value goes under a random key. Returns the chain of the item: this
    /// chain's `get(key)`. Resolves once durable locally.
    pub async fn set(&self, item: J) -> Result<UserChain, UserError> {
        self.set_with(item, PutOptions::default())
            .await
            .map(|(c, _)| c)
    }

    /// [`UserChain::set`], then waits for `opts.acks` peer acks.
    pub async fn set_with(
        &self,
        item: J,
        opts: PutOptions,
    ) -> Result<(UserChain, PutAck), UserError> {
        let pair = self.own_signer()?;
        let state = self.engine().next_state();
        let mut graph = Graph::new();
        let list = self
            .soul_for_write(&mut graph, self.root_soul()?, &self.keys, state)
            .await?;
        let here = format!("{self:?}");
        let key = match (leaf(&item, &here)?, &item) {
            (Some(Value::Link(l)), _) => {
                put(&mut graph, &list, l.as_str(), state, Value::Link(l.clone()))?;
                l.to_string()
            }
            (None, J::Object(m)) => {
                let named = m.get("_").and_then(|u| u.get("#")).and_then(J::as_str);
                let soul = match named {
                    Some(s) => s.to_owned(),
                    None => format!(
                        "~{}/{}",
                        pair.pub_,
                        gun_graph::ids::uuid(&mut rand::rng(), state.as_f64(), 12)
                    ),
                };
                let soul = Soul::new(soul).map_err(gun_core::Error::from)?;
                self.build(&mut graph, soul.clone(), m, state).await?;
                put(
                    &mut graph,
                    &list,
                    soul.as_str(),
                    state,
                    Value::Link(soul.clone()),
                )?;
                soul.to_string()
            }
            (Some(v), _) => {
                let key = gun_graph::ids::uuid(&mut rand::rng(), state.as_f64(), 7);
                put(&mut graph, &list, &key, state, v)?;
                key
            }
            (None, _) => return Err(UserError::InvalidData(format!("at {here}"))),
        };
        let graph = sign_graph(graph, &pair, None)?;
        let ack = self.engine().put_local(graph, &opts).await?;
        Ok((self.get(key), ack))
    }

    /// Gun.js `user.get(..).map()`: each child of the node here (see [`UserMap`]).
    pub fn map(&self) -> UserMap {
        UserMap {
            chain: self.clone(),
            filter: None,
        }
    }

    /// Gun.js `user.get(..).map({'.': lex})`: the children whose keys match
    /// the lexical query (`*` prefix, `>`/`<` range, `=` exact).
    pub fn map_filter(&self, filter: gun_graph::Lex) -> UserMap {
        UserMap {
            chain: self.clone(),
            filter: Some(filter),
        }
    }

    /// The logged-in user's pair, if this is that user's space.
    fn own_signer(&self) -> Result<Pair, UserError> {
        let pair = self
            .signer
            .as_ref()
            .and_then(User::pair)
            .ok_or(UserError::NotLoggedIn)?;
        let owner = self.owner()?;
        if owner != pair.pub_ {
            return Err(UserError::NotOwner {
                soul: format!("~{owner}"),
            });
        }
        Ok(pair)
    }

    /// The unsigned graph of a put of `data` here: one state for every key,
    /// nested objects as linked nodes.
    async fn write_graph(&self, data: J) -> Result<Graph, UserError> {
        let state = self.engine().next_state();
        let mut graph = Graph::new();
        let root = self.root_soul()?;
        let here = format!("{self:?}");
        match self.keys.split_last() {
            None => {
                let J::Object(m) = &data else {
                    return Err(UserError::InvalidData(format!(
                        "a node needs an object, at {here}"
                    )));
                };
                self.build(&mut graph, root, m, state).await?;
            }
            Some((key, parents)) => {
                let ps = self
                    .soul_for_write(&mut graph, root, parents, state)
                    .await?;
                match leaf(&data, &here)? {
                    Some(v) => put(&mut graph, &ps, key, state, v)?,
                    None => {
                        let J::Object(m) = &data else {
                            return Err(UserError::InvalidData(format!("at {here}")));
                        };
                        let soul = self
                            .soul_for_write(&mut graph, ps, std::slice::from_ref(key), state)
                            .await?;
                        self.build(&mut graph, soul, m, state).await?;
                    }
                }
            }
        }
        Ok(graph)
    }

    /// The node to write into below `soul` along `keys`, linking missing nodes
    /// (`soul/key`) on the way.
    async fn soul_for_write(
        &self,
        graph: &mut Graph,
        mut soul: Soul,
        keys: &[String],
        state: State,
    ) -> Result<Soul, UserError> {
        for key in keys {
            soul = self.child_soul(graph, &soul, key, state).await?;
        }
        Ok(soul)
    }

    /// The node linked at `key` of `soul`, or a new `soul/key` linked there now.
    /// A value there that does not verify counts as absent (it is overwritten).
    fn child_soul<'a>(
        &'a self,
        graph: &'a mut Graph,
        soul: &'a Soul,
        key: &'a str,
        state: State,
    ) -> Pin<Box<dyn Future<Output = Result<Soul, UserError>> + Send + 'a>> {
        Box::pin(async move {
            if key.is_empty() {
                return Err(gun_core::Error::EmptyKey.into());
            }
            if let Ok(Some(Value::Link(l))) = self.value_at(soul, key).await {
                return Ok(l);
            }
            let child = Soul::new(format!("{soul}/{key}")).map_err(gun_core::Error::from)?;
            put(graph, soul, key, state, Value::Link(child.clone()))?;
            Ok(child)
        })
    }

    /// Adds the keys of `data` under `soul`, nested objects becoming linked nodes.
    async fn build(
        &self,
        graph: &mut Graph,
        soul: Soul,
        data: &Map<String, J>,
        state: State,
    ) -> Result<(), UserError> {
        let mut stack = vec![(soul, data)];
        while let Some((soul, obj)) = stack.pop() {
            graph.node_mut(&soul);
            for (k, v) in obj {
                if k == "_" {
                    continue;
                }
                if k.is_empty() {
                    return Err(gun_core::Error::EmptyKey.into());
                }
                match (leaf(v, k)?, v) {
                    (Some(value), _) => put(graph, &soul, k, state, value)?,
                    (None, J::Object(m)) => {
                        let child = self.child_soul(graph, &soul, k, state).await?;
                        stack.push((child, m));
                    }
                    (None, _) => return Err(UserError::InvalidData(format!("at {k}"))),
                }
            }
        }
        Ok(())
    }
}

/// Each child of a node in a user's space: Gun.js `user.get(..).map()`.
///
/// A child is a key of the node here: a link is followed and gives the linked
/// node's verified keys as an object, any other value is given as it is
/// (`null` for a removed item). Unlike [`UserChain`] reads, a child whose
/// values do not verify is left out (debug event), as Gun.js drops it, so
/// that one bad entry in a set that many write into (under certificates)
/// does not hide the others.
#[derive(Clone)]
pub struct UserMap {
    chain: UserChain,
    filter: Option<gun_graph::Lex>,
}

impl fmt::Debug for UserMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}.map()", self.chain)
    }
}

/// One child of a [`UserMap`]: its key, its data, the soul it links to.
type Child = (String, J, Option<Soul>);

impl UserMap {
    /// The children now, asking peers for what is not known locally, as an
    /// object by key; `None` when the node here is unknown or has no keys.
    pub async fn then(&self) -> Result<Option<J>, UserError> {
        let kids = self.children().await?;
        if kids.is_empty() {
            return Ok(None);
        }
        Ok(Some(J::Object(
            kids.into_iter().map(|(k, d, _)| (k, d)).collect(),
        )))
    }

    /// Calls `cb(data, key)` once for each child now, in key order.
    pub async fn once<F: FnMut(J, &str)>(&self, mut cb: F) -> Result<(), UserError> {
        for (k, d, _) in self.children().await? {
            cb(d, &k);
        }
        Ok(())
    }

    /// Calls `cb(data, key)` for each child now, and again for a child that
    /// is added or changes (its value, or a key of the node it links to).
    /// Stops when the returned [`Subscription`] is dropped.
    pub fn on<F>(&self, cb: F) -> Subscription
    where
        F: FnMut(J, &str) + Send + 'static,
    {
        let map = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = map.watch_loop(cb).await {
                tracing::debug!(%e, map = ?map, "user map subscription ended");
            }
        });
        Subscription::from_task(task.abort_handle())
    }

    async fn watch_loop<F>(&self, mut cb: F) -> Result<(), UserError>
    where
        F: FnMut(J, &str) + Send + 'static,
    {
        let mut watch = SoulWatch::new(self.chain.engine());
        let mut last: HashMap<String, J> = HashMap::new();
        loop {
            let mut souls = self.chain.path_souls().await?;
            let kids = self.children().await?;
            souls.extend(kids.iter().filter_map(|(_, _, s)| s.clone()));
            watch.set(&souls);
            for (k, d, _) in kids {
                if last.get(&k) != Some(&d) {
                    cb(d.clone(), &k);
                    last.insert(k, d);
                }
            }
            if !watch.changed().await {
                return Ok(());
            }
        }
    }

    /// The verified children, in key order.
    async fn children(&self) -> Result<Vec<Child>, UserError> {
        let Target::Node(soul) = self.chain.resolve().await? else {
            return Ok(Vec::new());
        };
        let engine = self.chain.engine();
        let Some(node) = engine.fetch(&soul, None).await? else {
            return Ok(Vec::new());
        };
        let mut kids = Vec::new();
        for (k, e) in node.iter() {
            if self.filter.as_ref().is_some_and(|f| !f.matches(k)) {
                continue;
            }
            let child = match decode(soul.as_str(), k, &e.value, e.state) {
                Ok(Value::Link(l)) => match engine.fetch(&l, None).await? {
                    Some(n) => node_json(&n).map(|d| (d, Some(l))),
                    None => continue,
                },
                Ok(v) => Ok((v.to_json(), None)),
                Err(e) => Err(e),
            };
            match child {
                Ok((d, link)) => kids.push((k.to_string(), d, link)),
                Err(e @ UserError::Unverified { .. }) => {
                    tracing::debug!(%e, "unverified child left out of a user map");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(kids)
    }
}

/// A node's verified keys as an object.
fn node_json(node: &Node) -> Result<J, UserError> {
    let mut out = Map::new();
    for (k, e) in node.iter() {
        let v = decode(node.soul().as_str(), k, &e.value, e.state)?;
        out.insert(k.to_string(), v.to_json());
    }
    Ok(J::Object(out))
}

fn put(graph: &mut Graph, soul: &Soul, key: &str, state: State, v: Value) -> Result<(), UserError> {
    graph
        .put(soul.clone(), key, state, v)
        .map_err(gun_core::Error::from)?;
    Ok(())
}

/// A JSON leaf as a Gun value; `None` for objects other than links.
fn leaf(v: &J, path: &str) -> Result<Option<Value>, UserError> {
    match v {
        J::Object(m) if !(m.len() == 1 && m.get("#").is_some_and(J::is_string)) => Ok(None),
        J::Array(_) => Err(UserError::InvalidData(format!("Array at {path}"))),
        J::Number(n) if !n.as_f64().is_some_and(f64::is_finite) => {
            Err(UserError::InvalidData(format!("Number at {path}")))
        }
        other => Value::from_json(other)
            .map(Some)
            .map_err(|e| UserError::InvalidData(format!("{e} at {path}"))),
    }
}

/// Signs every value of the graph for `pair`: souls in its space get
/// `{":":value,"~":sig}` (key `pub` of `~pub` stays plain); souls outside user
/// space are written as they are; another user's space is refused, except
/// the space of `certified.0`, whose values are signed with the certificate
/// `certified.1`.
fn sign_graph(
    graph: Graph,
    pair: &Pair,
    certified: Option<(&str, &str)>,
) -> Result<Graph, UserError> {
    let mut out = Graph::new();
    for (soul, node) in graph.iter() {
        out.node_mut(soul);
        let owner = pub_of_soul(soul.as_str());
        match owner.as_deref() {
            None => {
                for (k, e) in node.iter() {
                    put(&mut out, soul, k, e.state, e.value.clone())?;
                }
            }
            Some(o) if o == pair.pub_ => {
                let is_root = soul.as_str().strip_prefix('~') == Some(o);
                for (k, e) in node.iter() {
                    let v = if is_root && &**k == "pub" {
                        e.value.clone()
                    } else {
                        Value::from(sign_value(soul.as_str(), k, &e.value, e.state, pair)?.as_str())
                    };
                    put(&mut out, soul, k, e.state, v)?;
                }
            }
            Some(o) if certified.is_some_and(|(owner, _)| owner == o) => {
                let cert = certified.map_or("", |(_, c)| c);
                for (k, e) in node.iter() {
                    let text =
                        sign_value_certified(soul.as_str(), k, &e.value, e.state, pair, cert)?;
                    put(&mut out, soul, k, e.state, Value::from(text.as_str()))?;
                }
            }
            Some(_) => {
                return Err(UserError::NotOwner {
                    soul: soul.to_string(),
                });
            }
        }
    }
    Ok(out)
}
