//! Threads inside a host's network namespace. A thread that moves into a namespace (`setns`)
//! creates its sockets there, and so do the threads it starts (a tokio runtime's workers): this is
//! how the harness's clients and delaying proxies live on hosts of their own without being
//! processes of their own.

use std::fs::File;
use std::path::PathBuf;
use std::thread::JoinHandle;

use anyhow::Context as _;
use nix::sched::{CloneFlags, setns};

/// Where `ip netns add` puts a namespace's handle.
const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// The handle of namespace `ns`.
fn handle(ns: &str) -> anyhow::Result<File> {
    let path = NETNS_DIRS
        .iter()
        .map(|d| PathBuf::from(d).join(ns))
        .find(|p| p.exists())
        .with_context(|| format!("no network namespace {ns} (in {})", NETNS_DIRS.join(" or ")))?;
    File::open(&path).with_context(|| format!("open {}", path.display()))
}

/// Starts a thread named `name` that moves into namespace `ns`, then runs `f`. The namespace is
/// opened before the thread starts, so a missing one is an error here; moving into it fails only
/// without the right (root), and then `f` does not run and the thread returns the error.
pub fn spawn_in<T, F>(ns: &str, name: &str, f: F) -> anyhow::Result<JoinHandle<anyhow::Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let file = handle(ns)?;
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("move into network namespace {ns}"))?;
            drop(file);
            f()
        })
        .with_context(|| format!("start thread {name}"))
}
