//! The driver: closed loop (N workers, each sends its next request when the last one is
//! answered) or open loop (requests start at a fixed rate, whatever the answers' latency), a
//! progress line on stderr, then the money check.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_shutdown::Shutdown;
use tokio::sync::mpsc::error::TrySendError;

use crate::check::{Conservation, check};
use crate::http::Conn;
use crate::limits::{OPEN_LOOP_QUEUE_MAX, OPEN_LOOP_TICK, PROGRESS_INTERVAL};
use crate::scenario::{Plan, SetupError, Worker, setup};
use crate::stats::{Recorder, percentile_ms};

/// How load is applied.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// This many workers, each with one request in flight.
    Closed {
        /// Workers.
        concurrency: usize,
    },
    /// Requests start at this rate, spread over `connections` workers.
    Open {
        /// Starts per second.
        rate_per_s: u64,
        /// Workers (connections).
        connections: usize,
    },
}

/// A finished run.
pub struct Outcome {
    /// The numbers.
    pub rec: Recorder,
    /// Measured wall time (until the last worker stopped).
    pub elapsed: Duration,
    /// The money check.
    pub conservation: Conservation,
}

fn progress_line(rec: &Recorder, total: Duration) -> String {
    let t = rec.start.elapsed();
    let secs = t.as_secs_f64().max(1e-3);
    let errors: u64 = rec.errors.values().sum();
    format!(
        "[{:>4.0}s/{:.0}s] {} requests, {:.0}/s, {} transfers ({:.0}/s), p99 {:.1} ms, errors {}",
        t.as_secs_f64(),
        total.as_secs_f64(),
        rec.requests(),
        rec.requests() as f64 / secs,
        rec.transfers,
        rec.transfers as f64 / secs,
        percentile_ms(&rec.overall, 0.99),
        errors
    )
}

/// Runs the setup, the load for `duration` (or until `stop`: Ctrl-C ends the load early, and the
/// check and the report still run), and the check.
pub async fn run(
    addr: SocketAddr,
    plan: Plan,
    load: Load,
    duration: Duration,
    stop: &Shutdown,
) -> Result<Outcome, SetupError> {
    let plan = Arc::new(plan);
    let mut setup_conn = Conn::new(addr, plan.key.clone(), plan.tls.clone());
    let mut expected = setup(&mut setup_conn, &plan).await?;

    let rec = Arc::new(Mutex::new(Recorder::new()));
    let start = Instant::now();
    let deadline = start + duration;
    let done = Arc::new(tokio::sync::Notify::new());

    let progress = {
        let rec = rec.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            loop {
                tokio::select! {
                    _ = done.notified() => break,
                    _ = tokio::time::sleep(PROGRESS_INTERVAL) => {}
                }
                let line = progress_line(&rec.lock().unwrap_or_else(|p| p.into_inner()), duration);
                let mut err = std::io::stderr().lock();
                let _ = if tty { write!(err, "\r{line}  ") } else { writeln!(err, "{line}") };
            }
            if tty {
                let _ = writeln!(std::io::stderr());
            }
        })
    };

    let workers: Vec<Worker> = match load {
        Load::Closed { concurrency } => {
            let mut tasks = Vec::with_capacity(concurrency);
            for i in 0..concurrency {
                let mut w = Worker::new(i, addr, plan.clone());
                let rec = rec.clone();
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline && !stop.is_stopping() {
                        w.step(&rec, None).await;
                    }
                    w.finish(&rec).await;
                    w
                }));
            }
            join_all(tasks).await
        }
        Load::Open { rate_per_s, connections } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(OPEN_LOOP_QUEUE_MAX);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let ticker = {
                let rec = rec.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut issued: u64 = 0;
                    loop {
                        let now = Instant::now();
                        if now >= deadline || stop.is_stopping() {
                            break;
                        }
                        let due = (now.duration_since(start).as_secs_f64() * rate_per_s as f64) as u64;
                        let mut dropped = 0;
                        while issued < due {
                            let at = start + Duration::from_secs_f64(issued as f64 / rate_per_s as f64);
                            match tx.try_send(at) {
                                Ok(()) => {}
                                Err(TrySendError::Full(_)) => dropped += 1,
                                Err(TrySendError::Closed(_)) => return,
                            }
                            issued += 1;
                        }
                        if dropped > 0 {
                            rec.lock().unwrap_or_else(|p| p.into_inner()).dropped += dropped;
                        }
                        tokio::time::sleep(OPEN_LOOP_TICK).await;
                    }
                })
            };
            let mut tasks = Vec::with_capacity(connections);
            for i in 0..connections {
                let mut w = Worker::new(i, addr, plan.clone());
                let rec = rec.clone();
                let rx = rx.clone();
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let next = tokio::select! {
                            t = async { rx.lock().await.recv().await } => t,
                            _ = tokio::time::sleep_until(deadline.into()) => None,
                            () = stop.stopping() => None,
                        };
                        match next {
                            Some(at) if Instant::now() < deadline && !stop.is_stopping() => {
                                w.step(&rec, Some(at)).await
                            }
                            _ => break,
                        }
                    }
                    w.finish(&rec).await;
                    w
                }));
            }
            let ws = join_all(tasks).await;
            let _ = ticker.await;
            // Starts still queued at the end were due but never made.
            let mut rx = rx.lock().await;
            let mut left = 0;
            while rx.try_recv().is_ok() {
                left += 1;
            }
            rec.lock().unwrap_or_else(|p| p.into_inner()).dropped += left;
            ws
        }
    };
    let elapsed = start.elapsed();
    done.notify_one();
    let _ = progress.await;

    for w in &workers {
        for (e, d) in expected.iter_mut().zip(&w.expected) {
            *e += d;
        }
    }
    let rec = match Arc::try_unwrap(rec) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        // Every task has been joined, so nobody else holds it; take a copy of the counts anyway.
        Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner())),
    };
    let exact = rec.transfers_unknown == 0;
    let conservation = check(&mut setup_conn, &plan.accounts, &expected, exact).await;
    Ok(Outcome { rec, elapsed, conservation })
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Worker>>) -> Vec<Worker> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        // A worker that panicked loses its own expectations; the check then reports mismatches
        // for its accounts rather than hiding them.
        if let Ok(w) = t.await {
            out.push(w);
        }
    }
    out
}
