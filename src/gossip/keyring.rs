//! GOSSIP KEYRING: this agent's gossip encryption keys, applied live to memberlist's ring and
//! persisted to Consul's keyring file.
//!
//! Input: a key operation (install, use, remove, list) with a base64 key. Output: the ring
//! after it (every key, the primary first) or Consul's error text; the file
//! `<data_dir>/serf/local.keyring` rewritten after each change.
//!
//! Invariants:
//! - The ring is memberlist's own (`Memberlist::keyring`), so a change takes effect on the next
//!   message sent or received; the primary key encrypts, every key decrypts.
//! - The file is a JSON array of base64 keys, primary first (`codec::Format::KeyringFile`),
//!   written to a temporary file, synced and renamed over the old one (then the directory is
//!   synced), so a crash leaves the old or the new keyring, never a torn one. At start a file
//!   overrides `encrypt` (Consul's rule: the keyring may have been rotated since the config was
//!   written). `disable_keyring_file` keeps the ring in memory only.
//! - Keys are base64 (standard alphabet, padded) of 16, 24 or 32 bytes; the error texts are
//!   Consul's (Go's `illegal base64 data at input byte N`, memberlist's `key size must be 16,
//!   24 or 32 bytes`, `Requested key is not in the keyring`, `Removing the primary key is not
//!   allowed`), because clients match them.
//! - Without encryption there is no ring, and every operation fails with `Keyring is empty
//!   (encryption not enabled)`: a ring cannot be started on a live pool that does not encrypt.
//!
//! A server's WAN pool has a keyring of its own, kept in `<data_dir>/serf/remote.keyring`
//! (Consul's), started from the same `encrypt` key; a keyring operation changes both rings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use base64::Engine as _;
use memberlist::keyring::Keyring;
use memberlist::proto::SecretKey;
use serde::{Deserialize, Serialize};

use crate::codec;

/// The keyring file's name inside `<data_dir>/serf/` (Consul's LAN keyring).
pub(crate) const LAN_KEYRING_FILE: &str = "local.keyring";
/// The WAN keyring file's name inside `<data_dir>/serf/` (Consul's, servers only).
pub(crate) const WAN_KEYRING_FILE: &str = "remote.keyring";

/// A keyring operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyOp {
    /// Add a key (it then decrypts; the primary still encrypts).
    Install,
    /// Make an installed key the primary (the one that encrypts).
    Use,
    /// Drop a key that is not the primary.
    Remove,
    /// Report the keys.
    List,
}

impl KeyOp {
    /// Whether the operation carries a key.
    pub(crate) fn takes_key(self) -> bool {
        self != Self::List
    }
}

/// One agent's keys after an operation: every key (base64, primary first) and the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeKeys {
    /// Every installed key, primary first.
    pub keys: Vec<String>,
    /// The primary key.
    pub primary: String,
}

/// Why a keyring operation or the keyring file failed (Consul's texts where it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyringError {
    /// Gossip is not encrypted: there is no ring.
    #[error("Keyring is empty (encryption not enabled)")]
    Disabled,
    /// The key is not base64 (Go's text, with the offset of the first bad byte).
    #[error("illegal base64 data at input byte {0}")]
    Base64(usize),
    /// The key decodes to a length AES does not take.
    #[error("key size must be 16, 24 or 32 bytes")]
    KeySize,
    /// `use` of a key that is not installed.
    #[error("Requested key is not in the keyring")]
    NotInstalled,
    /// `remove` of the primary key.
    #[error("Removing the primary key is not allowed")]
    RemovePrimary,
    /// The keyring file could not be read, decoded or written.
    #[error("keyring file {path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
}

/// Decodes a base64 key (Go's `base64.StdEncoding` errors) without checking its length.
pub(crate) fn decode_base64(key: &str) -> Result<Vec<u8>, KeyringError> {
    use base64::DecodeError;
    base64::engine::general_purpose::STANDARD.decode(key).map_err(|e| {
        KeyringError::Base64(match e {
            DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol { offset: at, .. } => at,
            // Go reports the start of the incomplete last quantum.
            DecodeError::InvalidLength(len) => len - len % 4,
            _ => key.find('=').unwrap_or(0),
        })
    })
}

/// A 16, 24 or 32-byte key as memberlist's AES key.
pub(crate) fn secret_key(key: &[u8]) -> Result<SecretKey, KeyringError> {
    Ok(match key.len() {
        16 => SecretKey::Aes128(key.try_into().map_err(|_| KeyringError::KeySize)?),
        24 => SecretKey::Aes192(key.try_into().map_err(|_| KeyringError::KeySize)?),
        32 => SecretKey::Aes256(key.try_into().map_err(|_| KeyringError::KeySize)?),
        _ => return Err(KeyringError::KeySize),
    })
}

fn encode_key(key: &SecretKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_ref())
}

/// Reads a keyring file: `None` when there is none; the keys (raw bytes, primary first) else.
/// An empty, undecodable or badly keyed file is an error (start-up stops on it, as Consul's).
pub(crate) fn load_file(path: &Path) -> Result<Option<Vec<Vec<u8>>>, KeyringError> {
    let err = |msg: String| KeyringError::File { path: path.to_owned(), msg };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let encoded: Vec<String> = codec::Format::KeyringFile.decode(&bytes).map_err(|e| err(e.to_string()))?;
    if encoded.is_empty() {
        return Err(err("no keys".into()));
    }
    let keys = encoded
        .iter()
        .map(|k| {
            let raw = decode_base64(k)?;
            secret_key(&raw)?;
            Ok(raw)
        })
        .collect::<Result<Vec<_>, KeyringError>>()
        .map_err(|e| err(e.to_string()))?;
    Ok(Some(keys))
}

/// Writes `keys` (base64, primary first) to `path` atomically: a temporary file beside it
/// (mode 0600), synced, renamed over it, and the directory synced.
fn write_file(path: &Path, keys: &[String]) -> Result<(), KeyringError> {
    let err = |e: &dyn std::fmt::Display| KeyringError::File { path: path.to_owned(), msg: e.to_string() };
    let bytes = codec::Format::KeyringFile.encode(keys).map_err(|e| err(&e))?;
    crate::store::write_secret_file(path, &bytes).map_err(|e| err(&e))
}

/// The keyring's current keys (raw bytes, primary first), readable before gossip starts (the
/// keys it will start with) and after (every change is written into it): what a part that
/// starts before gossip, or sits in a lower layer behind a closure, keys itself with.
#[derive(Clone, Default)]
pub(crate) struct KeysView(Arc<ArcSwap<Vec<Vec<u8>>>>);

impl std::fmt::Debug for KeysView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeysView").field(&self.0.load().len()).finish()
    }
}

impl KeysView {
    fn new(keys: Vec<Vec<u8>>) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(keys)))
    }

    /// The keys now, primary first (empty: gossip is not encrypted).
    pub(crate) fn keys(&self) -> Vec<Vec<u8>> {
        self.0.load().as_ref().clone()
    }

    fn update(&self, ring: &Keyring) {
        self.0.store(Arc::new(ring.keys().map(|k| k.as_ref().to_vec()).collect()));
    }
}

/// The server RPC's admission challenge proves a key of the gossip keyring, so a key
/// installed, made primary or removed here is what the next RPC connection proves.
impl crate::rpc::auth::ClusterKeys for KeysView {
    fn keys(&self) -> Vec<Vec<u8>> {
        Self::keys(self)
    }
}

/// The gossip encryption an agent starts with.
#[derive(Clone, Default)]
pub(crate) struct GossipKeys {
    /// Every key (raw bytes), the primary first; empty: gossip is not encrypted.
    pub keys: Vec<Vec<u8>>,
    /// Where keyring changes are persisted (`None`: `disable_keyring_file`).
    pub file: Option<PathBuf>,
    /// The same keys, then every change the keyring makes (shared: clone it before start).
    pub view: KeysView,
    /// What encryption demands of peers and of this agent (relaxed only during a rollout).
    pub verify: Verify,
}

/// Consul's `encrypt_verify_incoming` / `encrypt_verify_outgoing`: both true (the default)
/// once encryption is on everywhere; Consul's rolling enable sets both false on every agent,
/// then outgoing true on every agent, then incoming true. With keys, an agent always reads
/// encrypted gossip and key proofs; `incoming = false` also admits plain ones, `outgoing =
/// false` sends plain gossip and proves no key when it dials the server RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verify {
    pub incoming: bool,
    pub outgoing: bool,
}

impl Default for Verify {
    fn default() -> Self {
        Self { incoming: true, outgoing: true }
    }
}

impl std::fmt::Debug for GossipKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipKeys").field("keys", &self.keys.len()).field("file", &self.file).finish()
    }
}

impl GossipKeys {
    /// The keys at start: `<data_dir>/serf/local.keyring` when it exists (it overrides
    /// `encrypt`, with Consul's warning), else `encrypt`; with `disable_file` only `encrypt`,
    /// and nothing is persisted.
    pub(crate) fn load(
        encrypt: Option<&[u8]>,
        data_dir: &Path,
        disable_file: bool,
    ) -> Result<Self, KeyringError> {
        Self::load_pool(encrypt, data_dir, disable_file, LAN_KEYRING_FILE)
    }

    /// As `load`, for the pool whose keyring file is `<data_dir>/serf/<file_name>`
    /// (`LAN_KEYRING_FILE` or `WAN_KEYRING_FILE`).
    pub(crate) fn load_pool(
        encrypt: Option<&[u8]>,
        data_dir: &Path,
        disable_file: bool,
        file_name: &str,
    ) -> Result<Self, KeyringError> {
        let given = encrypt.map(|k| vec![k.to_vec()]).unwrap_or_default();
        if disable_file {
            let view = KeysView::new(given.clone());
            return Ok(Self { view, keys: given, file: None, verify: Verify::default() });
        }
        let file = data_dir.join("serf").join(file_name);
        let keys = match load_file(&file)? {
            Some(keys) => {
                if encrypt.is_some() {
                    let pool = if file_name == WAN_KEYRING_FILE { "WAN" } else { "LAN" };
                    tracing::warn!("{pool} keyring exists but -encrypt given, using keyring");
                }
                keys
            }
            None => given,
        };
        Ok(Self { view: KeysView::new(keys.clone()), keys, file: Some(file), verify: Verify::default() })
    }
}

/// This agent's LAN keyring: memberlist's ring (when gossip is encrypted) and its file.
pub(crate) struct LanKeyring {
    ring: Option<Keyring>,
    file: Option<PathBuf>,
    view: KeysView,
    /// Serialises operations, so the file is written in the order the ring changed.
    write: Mutex<()>,
}

impl std::fmt::Debug for LanKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("LanKeyring")
            .field("enabled", &self.ring.is_some())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl LanKeyring {
    /// Wraps memberlist's ring (`None` when gossip is not encrypted); `file` is where changes
    /// are persisted (`None` with `disable_keyring_file`). Writes the file once, so it exists
    /// from the first start with `encrypt`, as Consul's does. `view` gets every change.
    pub(crate) fn new(
        ring: Option<Keyring>,
        file: Option<PathBuf>,
        view: KeysView,
    ) -> Result<Self, KeyringError> {
        let this = Self { ring, file, view, write: Mutex::new(()) };
        if let Some(ring) = &this.ring {
            this.view.update(ring);
            this.persist(ring)?;
        }
        Ok(this)
    }

    /// Whether gossip is encrypted (a ring exists).
    pub(crate) fn enabled(&self) -> bool {
        self.ring.is_some()
    }

    /// Every key's raw bytes, primary first (empty when gossip is not encrypted).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the RPC handshake keyed by the keyring (issue 19) reads it once merged")
    )]
    pub(crate) fn keys(&self) -> Vec<Vec<u8>> {
        self.ring.as_ref().map(|r| r.keys().map(|k| k.as_ref().to_vec()).collect()).unwrap_or_default()
    }

    /// Applies `op` with the base64 `key` (ignored for `List`) to this agent's ring and
    /// persists the result; returns the keys after it.
    pub(crate) fn apply(&self, op: KeyOp, key: &str) -> Result<NodeKeys, KeyringError> {
        let ring = self.ring.as_ref().ok_or(KeyringError::Disabled)?;
        let _order = self.write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if op.takes_key() {
            let raw = decode_base64(key)?;
            let secret = secret_key(&raw)?;
            match op {
                KeyOp::Install => ring.insert(secret),
                KeyOp::Use => ring.use_key(&raw).map_err(|_| KeyringError::NotInstalled)?,
                KeyOp::Remove => ring.remove(&raw).map_err(|_| KeyringError::RemovePrimary)?,
                KeyOp::List => {}
            }
            self.view.update(ring);
            self.persist(ring)?;
        }
        let keys: Vec<String> = ring.keys().map(|k| encode_key(&k)).collect();
        Ok(NodeKeys { primary: encode_key(&ring.primary_key()), keys })
    }

    fn persist(&self, ring: &Keyring) -> Result<(), KeyringError> {
        let Some(path) = &self.file else { return Ok(()) };
        let keys: Vec<String> = ring.keys().map(|k| encode_key(&k)).collect();
        write_file(path, &keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    const K2: &str = "kMJLFu4dSOElZ5etqgBpOXDiC/+02qLzrdlazErkuS8=";

    fn ring(dir: &Path) -> LanKeyring {
        let raw = decode_base64(K1).expect("base64");
        let key = secret_key(&raw).expect("32 bytes");
        let file = Some(dir.join("serf").join(LAN_KEYRING_FILE));
        LanKeyring::new(Some(Keyring::new(key)), file, KeysView::default()).expect("new")
    }

    fn file(dir: &Path) -> Vec<String> {
        let bytes = std::fs::read(dir.join("serf").join(LAN_KEYRING_FILE)).expect("file");
        codec::Format::KeyringFile.decode(&bytes).expect("json array")
    }

    #[test]
    fn rotation_changes_the_ring_and_the_file_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ring(dir.path());
        assert_eq!(file(dir.path()), vec![K1]);
        let mode =
            std::fs::metadata(dir.path().join("serf").join(LAN_KEYRING_FILE)).expect("stat").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600, "the keys are secrets");
        assert_eq!(r.apply(KeyOp::Use, K2), Err(KeyringError::NotInstalled));
        r.apply(KeyOp::Install, K2).expect("install");
        assert_eq!(file(dir.path()), vec![K1, K2]);
        let after = r.apply(KeyOp::Use, K2).expect("use");
        assert_eq!(after.primary, K2);
        assert_eq!(file(dir.path()), vec![K2, K1]);
        assert_eq!(r.apply(KeyOp::Remove, K2), Err(KeyringError::RemovePrimary));
        let after = r.apply(KeyOp::Remove, K1).expect("remove");
        assert_eq!(after.keys, vec![K2]);
        assert_eq!(file(dir.path()), vec![K2]);
        assert_eq!(r.keys(), vec![decode_base64(K2).expect("base64")]);
        assert_eq!(r.view.keys(), r.keys(), "the view follows the ring");
        let loaded = load_file(&dir.path().join("serf").join(LAN_KEYRING_FILE)).expect("load");
        assert_eq!(loaded, Some(vec![decode_base64(K2).expect("base64")]));
    }

    #[test]
    fn bad_keys_get_consuls_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ring(dir.path());
        assert_eq!(
            r.apply(KeyOp::Install, "#bad").unwrap_err().to_string(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            r.apply(KeyOp::Install, "YWJjZ").unwrap_err().to_string(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            r.apply(KeyOp::Install, "YWJj").unwrap_err().to_string(),
            "key size must be 16, 24 or 32 bytes"
        );
        assert_eq!(
            r.apply(KeyOp::Install, "").unwrap_err().to_string(),
            "key size must be 16, 24 or 32 bytes"
        );
        assert_eq!(file(dir.path()), vec![K1], "a refused key changes nothing");
    }

    #[test]
    fn without_encryption_every_operation_is_refused() {
        let r = LanKeyring::new(None, None, KeysView::default()).expect("new");
        assert_eq!(r.apply(KeyOp::List, ""), Err(KeyringError::Disabled));
        assert!(r.keys().is_empty());
    }

    #[test]
    fn the_file_overrides_encrypt_and_the_view_starts_with_the_keys_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k1, k2) = (decode_base64(K1).expect("base64"), decode_base64(K2).expect("base64"));
        let keys = GossipKeys::load(Some(&k1), dir.path(), false).expect("load");
        assert_eq!((keys.keys.clone(), keys.view.keys()), (vec![k1.clone()], vec![k1.clone()]));
        std::fs::create_dir_all(dir.path().join("serf")).expect("mkdir");
        std::fs::write(dir.path().join("serf").join(LAN_KEYRING_FILE), format!("[\"{K2}\", \"{K1}\"]"))
            .expect("write");
        let keys = GossipKeys::load(Some(&k1), dir.path(), false).expect("load");
        assert_eq!(keys.keys, vec![k2.clone(), k1.clone()]);
        let keys = GossipKeys::load(Some(&k1), dir.path(), true).expect("load");
        assert_eq!((keys.keys, keys.file), (vec![k1.clone()], None), "disable_keyring_file ignores the file");
        // The WAN ring has a file of its own: the LAN file does not override its `encrypt`.
        let wan = GossipKeys::load_pool(Some(&k1), dir.path(), false, WAN_KEYRING_FILE).expect("load");
        assert_eq!((wan.keys, wan.file), (vec![k1], Some(dir.path().join("serf").join(WAN_KEYRING_FILE))));
    }

    #[test]
    fn a_missing_file_is_none_and_a_broken_one_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LAN_KEYRING_FILE);
        assert_eq!(load_file(&path), Ok(None));
        std::fs::write(&path, "[]").expect("write");
        assert!(load_file(&path).is_err());
        std::fs::write(&path, r#"["YWJj"]"#).expect("write");
        assert!(load_file(&path).unwrap_err().to_string().contains("key size must be 16, 24 or 32 bytes"));
    }
}
