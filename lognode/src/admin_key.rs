//! The cluster's bootstrap admin key (`--admin-key-file`, docs/SECURITY.md): the secret lives in
//! a file only its owner may read; the log gets its SHA-256, once, from the first leader.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ledger_shutdown::Shutdown;
use openraft::ServerState;
use sha2::{Digest as _, Sha256};
use tracing::{debug, info};

use crate::limits::{ADMIN_KEY_MIN_CHARS, ADMIN_KEY_RETRY_PAUSE, WRITE_TIMEOUT};
use crate::store::StateMachineStore;
use crate::store::state_machine::keys::{BOOTSTRAP_CREATOR, BOOTSTRAP_KEY_ID};
use crate::types::{ApiKeyRecord, KeyCommand, Raft, Request, Response};

/// A new secret: `lk_` and 64 hex digits (32 random bytes from the operating system).
fn new_secret() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    Ok(b.iter().fold(String::from("lk_"), |mut s, x| {
        s.push_str(&format!("{x:02x}"));
        s
    }))
}

/// The SHA-256 of the secret in `path`. A missing file is created (mode 0600) with a new secret;
/// an existing one must be readable by its owner only and hold at least
/// [`ADMIN_KEY_MIN_CHARS`] characters (surrounding whitespace ignored). The error names the file.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], String> {
    let shown = path.display();
    if let Err(e) = std::fs::metadata(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(format!("--admin-key-file {shown}: {e}"));
        }
        // Durable before its hash can reach the log: a key whose secret a crash lost would lock
        // the admins out. logstore creates it (0600, synced) and never replaces a file that is
        // there: nodes sharing one file, started together, all end up reading the one secret.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("--admin-key-file {shown}: not a file name"))?;
        let made = logstore::write_new(&logstore::OsSyncer, dir, name, format!("{}\n", new_secret()?).as_bytes())
            .map_err(|e| format!("--admin-key-file {shown}: cannot create it: {e}"))?;
        if made {
            info!(file = %shown, "wrote a new bootstrap admin key");
        }
    }
    let mode = std::fs::metadata(path).map_err(|e| format!("--admin-key-file {shown}: {e}"))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "--admin-key-file {shown}: readable by others (mode {:o}); it holds a secret: chmod 600 it",
            mode & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--admin-key-file {shown}: {e}"))?;
    let secret = text.trim();
    if secret.chars().count() < ADMIN_KEY_MIN_CHARS {
        return Err(format!(
            "--admin-key-file {shown}: the secret has {} characters, at least {ADMIN_KEY_MIN_CHARS} are needed",
            secret.chars().count()
        ));
    }
    Ok(Sha256::digest(secret.as_bytes()).into())
}

/// While no API key was ever created, the leader enters the bootstrap admin key (id `admin`,
/// scope `admin`) with `secret_hash`, retrying every [`ADMIN_KEY_RETRY_PAUSE`]; ends once the
/// state has a key, or on shutdown. Any node may run it: only the leader proposes, as
/// [`KeyCommand::Bootstrap`], which the state machine applies only while no key was ever created
/// (the check here reads this node's applied state, which may lag the log).
pub async fn enter_bootstrap_key(raft: Raft, sm: StateMachineStore, secret_hash: [u8; 32], shutdown: Shutdown) {
    loop {
        if sm.with_state(|s| s.keys.created) > 0 {
            debug!("API keys exist: the bootstrap admin key is not entered");
            return;
        }
        if raft.metrics().borrow().state == ServerState::Leader {
            let key = ApiKeyRecord {
                id: BOOTSTRAP_KEY_ID.to_owned(),
                secret_hash,
                scopes: vec!["admin".to_owned()],
                account_prefix: String::new(),
                created_ms: 0,
                created_by: BOOTSTRAP_CREATOR.to_owned(),
                quota: crate::types::KeyQuota::default(),
            };
            let timestamp_ms = crate::clock::now_ms_u64();
            let req = Request::Keys { timestamp_ms, command: KeyCommand::Bootstrap(key) };
            match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(req)).await {
                Ok(Ok(r)) if r.data == Response::KeyCreated => {
                    info!(index = r.log_id.index, "entered the bootstrap admin key");
                    return;
                }
                Ok(Ok(r)) => {
                    // Refused in log order: a key was created meanwhile (by another leader's
                    // bootstrap, or an admin), so this cluster needs no bootstrap key.
                    info!(response = ?r.data, "the bootstrap admin key was not entered");
                    return;
                }
                Ok(Err(e)) => debug!(error = %e, "bootstrap admin key not entered yet; will retry"),
                Err(_) => debug!("bootstrap admin key not committed in time; will retry"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ADMIN_KEY_RETRY_PAUSE) => {}
            () = shutdown.stopping() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file gets a new private secret; a public or short one is refused, naming why.
    #[test]
    fn the_key_file_is_private_and_long_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.key");
        let made = load_or_create(&path).expect("created");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).expect("read back"), made, "the same secret, the same hash");
        let secret = std::fs::read_to_string(&path).expect("read");
        assert_eq!(made, <[u8; 32]>::from(Sha256::digest(secret.trim().as_bytes())));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_or_create(&path).expect_err("world-readable");
        assert!(e.contains("readable by others"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, "short\n").expect("write");
        let e = load_or_create(&path).expect_err("short");
        assert!(e.contains("at least 32"), "{e}");
    }

    /// Several nodes given one missing file at once all read the one secret that was written:
    /// the file is never replaced.
    #[test]
    fn racing_nodes_share_one_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.key");
        let hashes: Vec<[u8; 32]> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4).map(|_| s.spawn(|| load_or_create(&path).expect("load"))).collect();
            runs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let secret = std::fs::read_to_string(&path).expect("read");
        let on_disk: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
        assert!(hashes.iter().all(|h| *h == on_disk), "every caller reads the secret on disk");
    }
}
