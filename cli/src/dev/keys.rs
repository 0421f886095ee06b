//! The API keys of a `ledger dev` system (issue 16, docs/SECURITY.md): the cluster's bootstrap
//! admin key (made by lognode 1 on the first start) and the projector's key, each in a file of
//! the data dir readable only by its owner, reused after.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::Failure;

/// The bootstrap admin key's secret: given to every lognode (`--admin-key-file`), used by
/// `ledger dev` itself and printed for the user.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// The gossip encryption key every lognode and the gateway share (`--gossip-key-file`).
pub const GOSSIP_KEY_FILE: &str = "gossip.key";
/// The projector's key (`groups:consume:projector`, `topics:read:ledger`).
pub const PROJECTOR_KEY_FILE: &str = "projector.key";
/// The projector key's scopes.
pub const PROJECTOR_SCOPES: [&str; 2] = ["groups:consume:projector", "topics:read:ledger"];
/// The webhook deliverer's key (`projector webhooks`, docs/WEBHOOKS.md).
pub const WEBHOOKS_KEY_FILE: &str = "webhooks.key";
/// The webhook deliverer key's scopes: the subscriptions with their secrets, its reports, the
/// `ledger` topic and its groups (`webhook-<id>-<index>`).
pub const WEBHOOKS_SCOPES: [&str; 3] = ["webhooks:deliver", "topics:read:ledger", "groups:consume:*"];

/// `<data_dir>/<name>`.
pub fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(name)
}

/// The secret in `file`, if it exists (trimmed; an empty file counts as none).
pub fn read(file: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(file) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::failed(format!("cannot read {}: {e}", file.display()))),
    }
}

/// Writes `secret` to `file`, which must not exist, readable only by its owner. Not synced (only
/// logstore syncs): a crash may lose it, and the next start then makes the projector a new key.
pub fn write(file: &Path, secret: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", file.display()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file).map_err(fail)?;
    writeln!(f, "{secret}").map_err(fail)
}

/// The admin key's secret, which lognode 1 wrote (or found) in the data dir when it started
/// (`--admin-key-file`: lognode makes a missing one, durably, before it listens).
pub fn admin(data_dir: &Path) -> Result<String, Failure> {
    let file = path(data_dir, ADMIN_KEY_FILE);
    read(&file)?.ok_or_else(|| {
        Failure::failed(format!("lognode 1 did not write the admin key {} (see its log)", file.display()))
    })
}

/// The projector's key: read from the data dir, or made through the gateway with the admin key
/// and written there.
pub async fn projector(data_dir: &Path, admin: &ledger_client::Client) -> Result<String, Failure> {
    child_key(data_dir, admin, PROJECTOR_KEY_FILE, &PROJECTOR_SCOPES).await
}

/// The webhook deliverer's key, like [`projector`]'s.
pub async fn webhooks(data_dir: &Path, admin: &ledger_client::Client) -> Result<String, Failure> {
    child_key(data_dir, admin, WEBHOOKS_KEY_FILE, &WEBHOOKS_SCOPES).await
}

/// A child's key in `name`: read from the data dir, or made with `scopes` and written there.
async fn child_key(
    data_dir: &Path,
    admin: &ledger_client::Client,
    name: &str,
    scopes: &[&str],
) -> Result<String, Failure> {
    let file = path(data_dir, name);
    if let Some(s) = read(&file)? {
        return Ok(s);
    }
    let new = ledger_client::NewKey {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..ledger_client::NewKey::default()
    };
    let made = admin.create_key(&new).await?;
    write(&file, &made.body.secret)?;
    Ok(made.body.secret)
}

/// The gossip key file of the data dir, made (32 random bytes as 64 hex digits, mode 0600) on
/// the first start, before any lognode starts, and reused after.
pub fn gossip(data_dir: &Path) -> Result<PathBuf, Failure> {
    let file = path(data_dir, GOSSIP_KEY_FILE);
    if read(&file)?.is_none() {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b)
            .map_err(|e| Failure::failed(format!("no randomness from the operating system: {e}")))?;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        write(&file, &hex)?;
    }
    Ok(file)
}
