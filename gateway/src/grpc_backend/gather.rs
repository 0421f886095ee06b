//! Writes to the leader ([`submit_command`]), and single transfers gathered into one `Submit`
//! (issue 14).
//!
//! Every `POST /v1/transfers` used to be its own gRPC call to the leader: its own HTTP/2 stream,
//! protobuf encoding and decoding on both sides, and its own turn through the leader's gatherer
//! (`lognode/src/grpc/batcher.rs`), which then put it in one Raft entry with the others anyway,
//! as a non-atomic `CreateTransfers`. The gateway now does that first step itself: concurrent
//! single transfers queue here, and a task sends everything queued (at most
//! [`GATHER_TRANSFERS_MAX`] transfers, [`GATHER_BYTES_MAX`] bytes) as one non-atomic
//! `CreateTransfers`, at most [`GATHER_INFLIGHT_MAX`] calls at a time; requests queue while those
//! are out, so the batches grow with the load and a lone request goes at once. A non-atomic batch
//! decides each transfer on its own, in order, exactly as separate commands would, and each
//! request gets its own result with the entry's log index.
//!
//! A failure of the call is every request's failure (each is retried within the write budget by
//! the call, ids being idempotency keys), except a refusal of the request itself (invalid
//! argument, out of range): then nothing was applied, and each transfer is sent again on its own,
//! so that one bad request never fails the others.

use std::sync::Arc;

use ledger_core::{Command, NewTransfer, Outcome};
use ledger_proto::convert;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::bad_answer;
use super::nodes::{Nodes, Retry, WRITE_RETRY_BUDGET};
use crate::backend::{Applied, BackendError, BackendResult};
use crate::limits::{GATHER_BYTES_MAX, GATHER_INFLIGHT_MAX, GATHER_QUEUE_MAX, GATHER_TRANSFERS_MAX};

struct Pending {
    transfer: NewTransfer,
    reply: oneshot::Sender<BackendResult<Applied<Outcome>>>,
}

/// The bytes of a transfer that [`GATHER_BYTES_MAX`] counts.
fn transfer_bytes(t: &NewTransfer) -> usize {
    t.id.len() + t.debit_account_id.len() + t.credit_account_id.len() + t.currency.len() + t.metadata.len()
}

/// Handle to the gathering task; the task ends when the handle is dropped.
pub(super) struct TransferGatherer {
    tx: mpsc::Sender<Pending>,
}

impl TransferGatherer {
    /// Starts the gathering task, calling the leader through `nodes`.
    pub(super) fn start(nodes: Arc<Nodes>) -> TransferGatherer {
        let (tx, rx) = mpsc::channel(GATHER_QUEUE_MAX);
        tokio::spawn(run(nodes, rx));
        TransferGatherer { tx }
    }

    /// Submits one transfer (`CreateTransfer`) and waits for its outcome.
    pub(super) async fn submit(&self, transfer: NewTransfer) -> BackendResult<Applied<Outcome>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { transfer, reply })
            .await
            .map_err(|_| BackendError::Internal("the transfer gatherer stopped".to_owned()))?;
        rx.await.map_err(|_| BackendError::Internal("the transfer gatherer dropped a request".to_owned()))?
    }
}

async fn run(nodes: Arc<Nodes>, mut rx: mpsc::Receiver<Pending>) {
    let calls = Arc::new(Semaphore::new(GATHER_INFLIGHT_MAX));
    let mut held: Option<Pending> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait for a free call first: what arrives meanwhile joins this one.
        let Ok(permit) = Arc::clone(&calls).acquire_owned().await else { return };
        let mut bytes = transfer_bytes(&first.transfer);
        let mut batch = vec![first];
        while batch.len() < GATHER_TRANSFERS_MAX {
            let Ok(p) = rx.try_recv() else { break };
            let b = transfer_bytes(&p.transfer);
            if bytes + b > GATHER_BYTES_MAX {
                held = Some(p);
                break;
            }
            bytes += b;
            batch.push(p);
        }
        let nodes = Arc::clone(&nodes);
        tokio::spawn(async move {
            call(nodes, batch).await;
            drop(permit);
        });
    }
}

/// Sends `batch` as one command and answers each request.
async fn call(nodes: Arc<Nodes>, batch: Vec<Pending>) {
    let (mut transfers, replies): (Vec<NewTransfer>, Vec<_>) = batch.into_iter().map(|p| (p.transfer, p.reply)).unzip();
    if transfers.len() == 1 {
        let t = transfers.pop().expect("one transfer");
        let result = submit_command(&nodes, &Command::CreateTransfer(t)).await;
        for r in replies {
            let _ = r.send(result.clone());
        }
        return;
    }
    let n = transfers.len();
    let cmd = Command::CreateTransfers { transfers, atomic: false };
    match submit_command(&nodes, &cmd).await {
        Ok(Applied { value: Outcome::Batch(b), index }) if b.results.len() == n => {
            for (reply, result) in replies.into_iter().zip(b.results) {
                let _ = reply.send(Ok(Applied { value: Outcome::Transfer(result), index }));
            }
        }
        Ok(Applied { value, .. }) => {
            let e = BackendError::Internal(format!(
                "a batch of {n} gathered transfers was answered with something else: {value:?}"
            ));
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
        }
        Err(BackendError::InvalidArgument(_) | BackendError::OutOfRange(_)) => {
            // The command itself was refused, so nothing of it was applied: each on its own (at
            // most GATHER_TRANSFERS_MAX calls, each within the write budget).
            let Command::CreateTransfers { transfers, .. } = cmd else { unreachable!("built above") };
            for (t, reply) in transfers.into_iter().zip(replies) {
                let nodes = Arc::clone(&nodes);
                tokio::spawn(async move {
                    let _ = reply.send(submit_command(&nodes, &Command::CreateTransfer(t)).await);
                });
            }
        }
        Err(e) => {
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
        }
    }
}

/// Submits `cmd` to the leader (retried: see [`GrpcBackend`]'s `submit`).
pub(super) async fn submit_command(nodes: &Nodes, cmd: &Command) -> BackendResult<Applied<Outcome>> {
    // The first attempt takes the request; a retry (rare) converts the command again rather
    // than every request paying for a copy of a whole batch up front.
    let mut first = Some(convert::command_to_proto(cmd));
    let resp = nodes
        .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
            let req = first.take().unwrap_or_else(|| convert::command_to_proto(cmd));
            async move { Ok(c.submit(req).await?.into_inner()) }
        })
        .await?;
    let outcome = resp.outcome.ok_or_else(|| BackendError::Internal("Submit answered no outcome".to_owned()))?;
    let value = convert::outcome_from_proto(outcome).map_err(bad_answer)?;
    Ok(Applied { value, index: resp.log_index })
}
