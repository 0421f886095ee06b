//! The API keys the log holds (docs/SECURITY.md): created and revoked by [`Request::Keys`]
//! entries, applied deterministically on every node. Only the SHA-256 of a key's secret is here.
//!
//! [`Request::Keys`]: crate::types::Request::Keys

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{
    KEY_ID_BYTES_MAX, KEY_PREFIX_BYTES_MAX, KEY_QUOTA_MAX, KEY_SCOPE_BYTES_MAX, KEY_SCOPES_MAX, KEYS_MAX,
};
use crate::types::{ApiKeyRecord, KeyCommand, Rejection, Response};

/// Id of the admin key a cluster is bootstrapped with (`--admin-key-file`).
pub const BOOTSTRAP_KEY_ID: &str = "admin";
/// `created_by` of the bootstrap key.
pub const BOOTSTRAP_CREATOR: &str = "bootstrap";

/// The live keys, and how many were ever created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// Live keys by id.
    pub live: BTreeMap<String, ApiKeyRecord>,
    /// Keys ever created (never decreases): the bootstrap key is entered only while it is 0, so
    /// a revoked bootstrap key stays revoked across restarts.
    pub created: u64,
}

pub(super) fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= KEY_ID_BYTES_MAX && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why `k` is not a key the log may hold (`Ok` for a valid one). Deterministic: every node
/// decides the same.
pub fn check(k: &ApiKeyRecord) -> Result<(), String> {
    if !is_id(&k.id) {
        return Err(format!("a key id is 1..={KEY_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"));
    }
    if !is_id(&k.created_by) {
        return Err(format!("created_by: 1..={KEY_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"));
    }
    if k.scopes.is_empty() || k.scopes.len() > KEY_SCOPES_MAX {
        return Err(format!("a key has 1..={KEY_SCOPES_MAX} scopes, not {}", k.scopes.len()));
    }
    if let Some(s) = k
        .scopes
        .iter()
        .find(|s| s.is_empty() || s.len() > KEY_SCOPE_BYTES_MAX || !s.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(format!(
            "scope {:?}: 1..={KEY_SCOPE_BYTES_MAX} visible ASCII characters",
            s.chars().take(KEY_SCOPE_BYTES_MAX).collect::<String>()
        ));
    }
    if k.account_prefix.len() > KEY_PREFIX_BYTES_MAX
        || !k.account_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(format!("account_prefix: at most {KEY_PREFIX_BYTES_MAX} characters of [A-Za-z0-9._:-]"));
    }
    let q = k.quota;
    if [q.rate_per_sec, q.burst, q.max_in_flight].iter().any(|n| *n > KEY_QUOTA_MAX) {
        return Err(format!("quota: rate_per_sec, burst and max_in_flight are at most {KEY_QUOTA_MAX}"));
    }
    Ok(())
}

impl Keys {
    /// Applies one key command with the entry's timestamp.
    pub fn apply(&mut self, command: &KeyCommand, timestamp_ms: u64) -> Response {
        match command {
            KeyCommand::Bootstrap(_) if self.created > 0 => Response::Rejected(Rejection::Invalid(format!(
                "the bootstrap admin key is entered only into a cluster that never had a key ({} were created)",
                self.created
            ))),
            KeyCommand::Create(k) | KeyCommand::Bootstrap(k) => {
                if let Err(e) = check(k) {
                    return Response::Rejected(Rejection::Invalid(e));
                }
                if self.live.contains_key(&k.id) {
                    return Response::Rejected(Rejection::KeyExists(k.id.clone()));
                }
                if self.live.values().any(|o| o.secret_hash == k.secret_hash) {
                    return Response::Rejected(Rejection::Invalid("another live key has the same secret".to_owned()));
                }
                if self.live.len() >= KEYS_MAX {
                    return Response::Rejected(Rejection::LimitExceeded(format!(
                        "API key limit reached: {} live keys, at most {KEYS_MAX} (KEYS_MAX)",
                        self.live.len()
                    )));
                }
                self.live.insert(k.id.clone(), ApiKeyRecord { created_ms: timestamp_ms, ..k.clone() });
                self.created = self.created.saturating_add(1);
                Response::KeyCreated
            }
            KeyCommand::Revoke { id, by } => {
                if !is_id(by) {
                    return Response::Rejected(Rejection::Invalid(format!(
                        "revoked_by: 1..={KEY_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"
                    )));
                }
                match self.live.remove(id) {
                    Some(_) => Response::KeyRevoked,
                    None => Response::Rejected(Rejection::UnknownKey(id.clone())),
                }
            }
        }
    }
}

impl Keys {
    /// What must hold after any sequence of applies: every live key is valid and filed under its
    /// own id, no two share a secret, and `created` counts at least the live keys.
    pub fn check_invariants(&self) -> Result<(), String> {
        if (self.live.len() as u64) > self.created {
            return Err(format!("{} live keys but only {} ever created", self.live.len(), self.created));
        }
        let mut hashes = std::collections::BTreeSet::new();
        for (id, k) in &self.live {
            if *id != k.id {
                return Err(format!("key {:?} filed under id {id:?}", k.id));
            }
            check(k).map_err(|e| format!("key {id}: {e}"))?;
            if !hashes.insert(k.secret_hash) {
                return Err(format!("key {id} shares its secret with another live key"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, hash: u8) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.to_owned(),
            secret_hash: [hash; 32],
            scopes: vec!["accounts:read".to_owned()],
            account_prefix: "t1-".to_owned(),
            created_ms: 0,
            created_by: "admin".to_owned(),
            quota: crate::types::KeyQuota::default(),
        }
    }

    fn create(keys: &mut Keys, k: ApiKeyRecord) -> Response {
        keys.apply(&KeyCommand::Create(k), 42)
    }

    /// A key is created with the entry's time; its id and its secret are unique among live keys.
    #[test]
    fn keys_are_created_once_per_id_and_secret() {
        let mut keys = Keys::default();
        assert_eq!(create(&mut keys, key("k1", 1)), Response::KeyCreated);
        assert_eq!(keys.live["k1"].created_ms, 42);
        assert_eq!(create(&mut keys, key("k1", 2)), Response::Rejected(Rejection::KeyExists("k1".into())));
        let same_secret = create(&mut keys, key("k2", 1));
        assert!(
            matches!(same_secret, Response::Rejected(Rejection::Invalid(ref m)) if m.contains("same secret")),
            "{same_secret:?}"
        );
        assert_eq!((keys.live.len(), keys.created), (1, 1));
    }

    /// Malformed keys are refused, naming the field, and change nothing.
    #[test]
    fn malformed_keys_are_refused() {
        let mut keys = Keys::default();
        let cases: Vec<(ApiKeyRecord, &str)> = vec![
            (ApiKeyRecord { id: String::new(), ..key("x", 1) }, "key id"),
            (ApiKeyRecord { id: "a b".into(), ..key("x", 1) }, "key id"),
            (ApiKeyRecord { id: "x".repeat(KEY_ID_BYTES_MAX + 1), ..key("x", 1) }, "key id"),
            (ApiKeyRecord { scopes: vec![], ..key("x", 1) }, "scopes"),
            (ApiKeyRecord { scopes: vec!["a".into(); KEY_SCOPES_MAX + 1], ..key("x", 1) }, "scopes"),
            (ApiKeyRecord { scopes: vec!["has space".into()], ..key("x", 1) }, "scope"),
            (ApiKeyRecord { scopes: vec!["s".repeat(KEY_SCOPE_BYTES_MAX + 1)], ..key("x", 1) }, "scope"),
            (ApiKeyRecord { account_prefix: "a/b".into(), ..key("x", 1) }, "account_prefix"),
            (ApiKeyRecord { account_prefix: "p".repeat(KEY_PREFIX_BYTES_MAX + 1), ..key("x", 1) }, "account_prefix"),
            (ApiKeyRecord { created_by: String::new(), ..key("x", 1) }, "created_by"),
            (
                ApiKeyRecord {
                    quota: crate::types::KeyQuota { burst: KEY_QUOTA_MAX + 1, ..Default::default() },
                    ..key("x", 1)
                },
                "quota",
            ),
        ];
        for (k, field) in cases {
            match create(&mut keys, k) {
                Response::Rejected(Rejection::Invalid(m)) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(keys, Keys::default());
    }

    /// Past `KEYS_MAX` live keys a create is refused naming the limit; a revoke makes room, and
    /// `created` never goes down.
    #[test]
    fn live_keys_are_bounded_and_revocation_frees_room() {
        let mut keys = Keys::default();
        for i in 0..KEYS_MAX {
            let mut k = key(&format!("k{i}"), 0);
            k.secret_hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            assert_eq!(create(&mut keys, k), Response::KeyCreated, "{i}");
        }
        let mut extra = key("extra", 0xff);
        extra.secret_hash[0] = 0xfe;
        match create(&mut keys, extra.clone()) {
            Response::Rejected(Rejection::LimitExceeded(m)) => assert!(m.contains("KEYS_MAX"), "{m}"),
            other => panic!("{other:?}"),
        }
        let revoke = |id: &str| KeyCommand::Revoke { id: id.to_owned(), by: "admin".to_owned() };
        assert_eq!(keys.apply(&revoke("k0"), 43), Response::KeyRevoked);
        assert_eq!(keys.apply(&revoke("k0"), 44), Response::Rejected(Rejection::UnknownKey("k0".into())));
        assert_eq!(create(&mut keys, extra), Response::KeyCreated);
        assert_eq!((keys.live.len(), keys.created), (KEYS_MAX, KEYS_MAX as u64 + 1));
    }

    /// The bootstrap key enters only a cluster that never had a key: once any key was created,
    /// even if every key was revoked since, a (late, repeated) bootstrap entry is refused, so a
    /// revoked `admin` cannot come back.
    #[test]
    fn the_bootstrap_key_enters_only_a_cluster_that_never_had_one() {
        let mut keys = Keys::default();
        let boot =
            |hash: u8| KeyCommand::Bootstrap(ApiKeyRecord { scopes: vec!["admin".into()], ..key("admin", hash) });
        assert_eq!(keys.apply(&boot(7), 1), Response::KeyCreated);
        assert_eq!(create(&mut keys, key("ops", 8)), Response::KeyCreated);
        let revoke = KeyCommand::Revoke { id: "admin".to_owned(), by: "ops".to_owned() };
        assert_eq!(keys.apply(&revoke, 2), Response::KeyRevoked);
        let before = keys.clone();
        match keys.apply(&boot(7), 3) {
            Response::Rejected(Rejection::Invalid(m)) => assert!(m.contains("never had a key"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(keys, before, "a refused bootstrap changes nothing");
        keys.check_invariants().expect("invariants");
        // A fresh cluster whose first entry was an ordinary create refuses the bootstrap too.
        let mut fresh = Keys::default();
        assert_eq!(create(&mut fresh, key("first", 1)), Response::KeyCreated);
        assert!(matches!(fresh.apply(&boot(2), 4), Response::Rejected(Rejection::Invalid(_))));
    }

    /// The invariants catch a state no apply could make.
    #[test]
    fn broken_key_states_fail_the_invariants() {
        let mut keys = Keys::default();
        assert_eq!(create(&mut keys, key("a", 1)), Response::KeyCreated);
        keys.check_invariants().expect("valid");
        let mut wrong_count = keys.clone();
        wrong_count.created = 0;
        assert!(wrong_count.check_invariants().is_err());
        let mut misfiled = keys.clone();
        misfiled.live.insert("b".to_owned(), key("a", 2));
        misfiled.created = 2;
        assert!(misfiled.check_invariants().expect_err("misfiled").contains("filed under"));
        let mut shared = keys;
        shared.live.insert("b".to_owned(), key("b", 1));
        shared.created = 2;
        assert!(shared.check_invariants().expect_err("shared").contains("shares its secret"));
    }
}
