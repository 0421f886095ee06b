//! Fixed delay and jitter on a node's links. This kernel has no netem, so they are made by a
//! delaying TCP proxy: in the host's namespace, iptables' `REDIRECT` sends the connections that
//! the chosen peers open to lognode's port to the proxy, which holds every chunk of bytes, in both
//! directions, for the delay plus a jitter before passing it on to lognode. The order of the bytes
//! is kept (a chunk is never released before the one ahead of it), as TCP would deliver them.
//!
//! The proxy runs on a thread of the harness inside that namespace ([`crate::netns`]); dropping it
//! closes every connection through it, and the peers connect again directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Largest chunk read and held at once.
pub const CHUNK_MAX: usize = 64 << 10;
/// Bytes held per direction of one connection; the reader waits while they are all held. A
/// limit in bytes, not chunks: Raft's connections carry many small frames (an HTTP/2 PING every
/// 2 ms behind an open call), and a few dozen chunks would fill within the delay, holding bytes
/// back longer than the delay asked for.
pub const HELD_BYTES_MAX: usize = 8 << 20;
/// Chunks held per direction of one connection (each at least a byte; far above what
/// [`HELD_BYTES_MAX`] lets through in small frames within the longest delay).
pub const QUEUE_CHUNKS: usize = 1 << 16;
/// Connections through one proxy at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 64;
/// Deadline of the proxy's own connection to lognode.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the proxy to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long bytes are held: `base` plus a jitter drawn evenly from `-jitter..=jitter` per chunk
/// (`jitter` is at most `base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    /// The fixed part.
    pub base: Duration,
    /// The spread around it.
    pub jitter: Duration,
}

impl Delay {
    /// One chunk's hold, from a draw `u` in `0.0..=1.0`.
    pub fn hold(self, u: f64) -> Duration {
        let jitter = self.jitter.min(self.base);
        let low = self.base - jitter;
        low + (jitter * 2).mul_f64(u.clamp(0.0, 1.0))
    }

    /// When a chunk read at `now` is released, given the release of the chunk before it: never
    /// before that one (the stream's order is kept).
    pub fn release(self, now: Instant, previous: Option<Instant>, u: f64) -> Instant {
        let at = now + self.hold(u);
        previous.map_or(at, |p| at.max(p))
    }
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Proxy {
    /// Starts a proxy in namespace `ns` (else in the harness's own) listening on `listen`,
    /// passing on to `to` with `delay` (jitter drawn from `seed`). Returns once it listens.
    pub fn start(
        ns: Option<&str>,
        listen: SocketAddr,
        to: SocketAddr,
        delay: Delay,
        seed: u64,
    ) -> anyhow::Result<Proxy> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&accepted);
        let run = move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
            rt.block_on(async move {
                let listener = match TcpListener::bind(listen).await {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    () = serve(listener, to, delay, seed, counter) => {}
                    _ = stop_rx => {}
                }
            });
            Ok(())
        };
        let thread = match ns {
            None => std::thread::Builder::new()
                .name("delay".to_owned())
                .spawn(run)
                .context("start the delaying proxy's thread")?,
            Some(ns) => crate::netns::spawn_in(ns, &format!("delay-{ns}"), run)?,
        };
        let ns = ns.unwrap_or("the harness's namespace");
        let mut proxy = Proxy { accepted, stop: Some(stop_tx), thread: Some(thread) };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => Ok(proxy),
            Ok(Err(e)) => Err(e).with_context(|| format!("delaying proxy in {ns}: listen on {listen}")),
            Err(_) => {
                let why = proxy.thread.take().map(JoinHandle::join);
                anyhow::bail!("delaying proxy in {ns} did not start: {why:?}")
            }
        }
    }

    /// The connections it accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("chaos: delaying proxy: {e:#}"),
                Err(_) => eprintln!("chaos: delaying proxy panicked"),
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    to: SocketAddr,
    delay: Delay,
    seed: u64,
    accepted: Arc<std::sync::atomic::AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut n = 0u64;
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
        let Ok((inbound, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n += 1;
        let seed = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(outbound)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            // When either direction ends, the connection ends (both halves are dropped).
            tokio::select! {
                () = pump(ri, wo, delay, seed) => {}
                () = pump(ro, wi, delay, seed.rotate_left(1)) => {}
            }
        });
    }
}

/// Copies `from` to `to`, each chunk held for its delay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Delay,
    seed: u64,
) {
    type Held = (Instant, Vec<u8>, tokio::sync::OwnedSemaphorePermit);
    let (tx, mut rx) = mpsc::channel::<Held>(QUEUE_CHUNKS);
    let budget = Arc::new(Semaphore::new(HELD_BYTES_MAX));
    let read = async move {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut previous = None;
        let mut buf = vec![0u8; CHUNK_MAX];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // `n` is at most CHUNK_MAX, far below both u32::MAX and HELD_BYTES_MAX.
            let Ok(permit) = Arc::clone(&budget).acquire_many_owned(n as u32).await else { return };
            let at = delay.release(Instant::now(), previous, rng.f64());
            previous = Some(at);
            if tx.send((at, buf[..n].to_vec(), permit)).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        // Each chunk's bytes return to the budget once written (its permit is dropped).
        while let Some((at, buf, _permit)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
        }
        // The reader saw the end: pass it on, once every held chunk is out.
        let _ = to.shutdown().await;
    };
    // The writer runs until the reader's end is passed on, or the far side fails.
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_held_for_the_delay_and_jitter_and_never_overtakes_the_one_before() {
        let d = Delay { base: Duration::from_millis(100), jitter: Duration::from_millis(40) };
        assert_eq!(d.hold(0.0), Duration::from_millis(60));
        assert_eq!(d.hold(1.0), Duration::from_millis(140));
        assert_eq!(d.hold(0.5), Duration::from_millis(100));
        let t0 = Instant::now();
        let first = d.release(t0, None, 1.0);
        assert_eq!(first, t0 + Duration::from_millis(140));
        // Read 10 ms later with the least jitter: due at 70 ms, yet held until the first is out.
        let second = d.release(t0 + Duration::from_millis(10), Some(first), 0.0);
        assert_eq!(second, first);
        let third = d.release(t0 + Duration::from_millis(200), Some(second), 0.0);
        assert_eq!(third, t0 + Duration::from_millis(260));
        // A jitter larger than the delay is cut to it: a hold is never negative.
        let wide = Delay { base: Duration::from_millis(10), jitter: Duration::from_millis(50) };
        assert_eq!(wide.hold(0.0), Duration::ZERO);
        assert_eq!(wide.hold(1.0), Duration::from_millis(20));
    }

    /// Through the proxy, an echo's round trip takes at least both directions' delay, and every
    /// byte comes back in order.
    #[test]
    fn the_proxy_delays_both_directions_and_keeps_the_bytes() -> anyhow::Result<()> {
        let echo = std::net::TcpListener::bind("127.0.0.1:0")?;
        let to = echo.local_addr()?;
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            use std::io::{Read as _, Write as _};
            let (mut s, _) = echo.accept()?;
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                s.write_all(&buf[..n])?;
            }
        });
        let free = std::net::TcpListener::bind("127.0.0.1:0")?;
        let listen = free.local_addr()?;
        drop(free);
        let delay = Delay { base: Duration::from_millis(80), jitter: Duration::from_millis(20) };
        let proxy = Proxy::start(None, listen, to, delay, 7)?;
        let mut c = std::net::TcpStream::connect(listen)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        {
            use std::io::{Read as _, Write as _};
            let mut writer = c.try_clone()?;
            let data = sent.clone();
            let w = std::thread::spawn(move || writer.write_all(&data));
            let mut buf = [0u8; 8192];
            while got.len() < sent.len() {
                let n = c.read(&mut buf)?;
                anyhow::ensure!(n > 0, "the proxy closed after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        let took = started.elapsed();
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(got, sent, "bytes changed or reordered");
        assert!(took >= Duration::from_millis(120), "round trip {took:?}, less than both directions' least delay");
        drop(c);
        drop(proxy);
        // The echo ends with the connection (closed or reset: either is fine here).
        let _ = server.join();
        Ok(())
    }
}
