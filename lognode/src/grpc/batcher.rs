//! Gathers concurrent requests on the leader into one Raft entry.
//!
//! Every single-record Produce and every single CreateTransfer used to be its own entry: its own
//! trip through openraft's core, its own AppendEntries and its own fsyncs on every node.
//! Concurrent requests now queue here; a task takes everything queued (up to the limits below)
//! and proposes it as one entry — [`Request::ProduceMany`] for records, a non-atomic
//! `CreateTransfers` for transfers (single transfers and whole non-atomic batches alike), which
//! decides each transfer on its own, in order, exactly as separate entries would. Each request
//! still gets its own result. Atomic batches are never gathered: all-or-nothing is per request.

use std::sync::Arc;

use ledger_core::{BatchResult, Command, NewTransfer, Outcome};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Status;

use crate::election::Liveness;
use crate::grpc::client_service::forward;
use crate::limits::{GATHER_BYTES_MAX, GATHER_INFLIGHT_MAX, GATHER_QUEUE_MAX, GATHER_REQUESTS_MAX, WRITE_TIMEOUT};
use crate::types::{ProduceItem, Raft, Request, Response};

/// A kind of request that can share an entry with others of its kind.
pub trait Gather: Send + Sync + 'static {
    /// One request.
    type Item: Send + 'static;
    /// Its result.
    type Out: Send + 'static;
    /// What [`Gather::split`] needs to know of a request once it is consumed.
    type Shape: Send + 'static;
    /// Most [`Gather::units`] in one entry.
    const UNITS_MAX: usize;
    /// Payload bytes of a request, for [`GATHER_BYTES_MAX`].
    fn bytes(item: &Self::Item) -> usize;
    /// Units of a request (e.g. transfers), for [`Gather::UNITS_MAX`].
    fn units(item: &Self::Item) -> usize;
    /// The shape of a request.
    fn shape(item: &Self::Item) -> Self::Shape;
    /// The entry for `items` (one or more), stamped with the leader's `timestamp_ms`.
    fn request(items: Vec<Self::Item>, timestamp_ms: i64) -> Request;
    /// Splits the entry's response into one result per request (`shapes`, in order), or `None`
    /// if it does not fit.
    fn split(response: Response, shapes: &[Self::Shape]) -> Option<Vec<Self::Out>>;
}

/// What a request gets back: its result, the entry's log index and its timestamp.
pub type Gathered<O> = Result<(O, u64, i64), Status>;

struct Pending<G: Gather> {
    item: G::Item,
    bytes: usize,
    units: usize,
    reply: oneshot::Sender<Gathered<G::Out>>,
}

/// Handle to a gathering task; cheap to clone.
pub struct Gatherer<G: Gather> {
    tx: mpsc::Sender<Pending<G>>,
}

impl<G: Gather> Clone for Gatherer<G> {
    fn clone(&self) -> Self {
        Gatherer { tx: self.tx.clone() }
    }
}

impl<G: Gather> Gatherer<G> {
    /// Starts the gathering task for `raft`. It ends when every handle is dropped.
    pub fn start(raft: Raft, liveness: Arc<Liveness>, now_ms: fn() -> i64) -> Gatherer<G> {
        let (tx, rx) = mpsc::channel(GATHER_QUEUE_MAX);
        tokio::spawn(gather::<G>(raft, liveness, rx, now_ms));
        Gatherer { tx }
    }

    /// Proposes one request and waits for its result.
    pub async fn submit(&self, item: G::Item) -> Gathered<G::Out> {
        let bytes = G::bytes(&item);
        let units = G::units(&item);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { item, bytes, units, reply })
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        rx.await.map_err(|_| Status::unavailable("the node is shutting down"))?
    }
}

async fn gather<G: Gather>(
    raft: Raft,
    liveness: Arc<Liveness>,
    mut rx: mpsc::Receiver<Pending<G>>,
    now_ms: fn() -> i64,
) {
    let permits = Arc::new(Semaphore::new(GATHER_INFLIGHT_MAX));
    // A request that did not fit into the previous entry starts the next one.
    let mut carry: Option<Pending<G>> = None;
    loop {
        // Wait for a free proposal slot first: requests keep queueing meanwhile, so the next
        // entry gathers everything that arrived while the pipeline was full.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut units = first.units;
        let mut batch = vec![first];
        while batch.len() < GATHER_REQUESTS_MAX {
            match rx.try_recv() {
                Ok(p) if bytes + p.bytes <= GATHER_BYTES_MAX && units + p.units <= G::UNITS_MAX => {
                    bytes += p.bytes;
                    units += p.units;
                    batch.push(p);
                }
                Ok(p) => {
                    carry = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let liveness = Arc::clone(&liveness);
        tokio::spawn(async move {
            propose::<G>(&raft, &liveness, batch, now_ms).await;
            drop(permit);
        });
    }
}

async fn propose<G: Gather>(raft: &Raft, liveness: &Liveness, batch: Vec<Pending<G>>, now_ms: fn() -> i64) {
    let timestamp_ms = now_ms();
    let shapes: Vec<G::Shape> = batch.iter().map(|p| G::shape(&p.item)).collect();
    let (items, replies): (Vec<G::Item>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let request = G::request(items, timestamp_ms);
    if let Err(status) = crate::grpc::check_proposal(&request).and_then(|()| liveness.check()) {
        for r in replies {
            let _ = r.send(Err(status.clone()));
        }
        return;
    }
    let write = liveness.unless_quorum_lost(tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(request))).await;
    let result = match write {
        Err(status) => Err(status),
        Ok(Err(_)) => Err(Status::deadline_exceeded(format!("write not committed within {WRITE_TIMEOUT:?}"))),
        Ok(Ok(Ok(resp))) => match G::split(resp.data, &shapes) {
            Some(outs) => Ok((outs, resp.log_id.index)),
            None => Err(Status::internal("the state machine answered a gathered entry with the wrong shape")),
        },
        Ok(Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))))) => Err(forward(&f)),
        Ok(Ok(Err(RaftError::APIError(e)))) => Err(Status::failed_precondition(e.to_string())),
        Ok(Ok(Err(RaftError::Fatal(e)))) => Err(Status::unavailable(format!("raft stopped: {e}"))),
    };
    match result {
        Ok((outs, index)) => {
            for (r, out) in replies.into_iter().zip(outs) {
                let _ = r.send(Ok((out, index, timestamp_ms)));
            }
        }
        Err(status) => {
            for r in replies {
                let _ = r.send(Err(status.clone()));
            }
        }
    }
}

/// Produce requests: one partition's records each.
pub struct Produce;

impl Gather for Produce {
    type Item = ProduceItem;
    type Out = Response;
    type Shape = ();
    const UNITS_MAX: usize = GATHER_REQUESTS_MAX;

    fn units(_: &ProduceItem) -> usize {
        1
    }

    fn shape(_: &ProduceItem) {}

    fn bytes(item: &ProduceItem) -> usize {
        item.records
            .iter()
            .map(|r| r.key.len() + r.value.len() + r.headers.iter().map(|h| h.0.len() + h.1.len()).sum::<usize>())
            .sum()
    }

    fn request(mut items: Vec<ProduceItem>, timestamp_ms: i64) -> Request {
        if items.len() == 1
            && let Some(ProduceItem { topic, partition, records }) = items.pop()
        {
            return Request::Produce { topic, partition, timestamp_ms, records };
        }
        Request::ProduceMany { timestamp_ms, items }
    }

    fn split(response: Response, shapes: &[()]) -> Option<Vec<Response>> {
        let items = shapes.len();
        match response {
            Response::ProducedMany(v) if v.len() == items => Some(v),
            r @ (Response::Produced { .. } | Response::Rejected(_)) if items == 1 => Some(vec![r]),
            _ => None,
        }
    }
}

/// A transfer request that may share an entry with others.
#[derive(Clone, Debug)]
pub enum TransferItem {
    /// A single `CreateTransfer`: answered with its own `Outcome::Transfer`.
    One(NewTransfer),
    /// A non-atomic `CreateTransfers`: answered with an `Outcome::Batch` of its own items.
    Batch(Vec<NewTransfer>),
}

/// Single CreateTransfer commands and non-atomic CreateTransfers batches, gathered into one
/// non-atomic `CreateTransfers` (at most `BATCH_TRANSFERS_MAX` transfers).
pub struct Transfers;

fn transfer_bytes(t: &NewTransfer) -> usize {
    t.id.len() + t.debit_account_id.len() + t.credit_account_id.len() + t.currency.len() + t.metadata.len() + 32
}

impl Gather for Transfers {
    type Item = TransferItem;
    type Out = Outcome;
    /// `None` for a single transfer, `Some(n)` for a batch of `n`.
    type Shape = Option<usize>;
    const UNITS_MAX: usize = ledger_core::limits::BATCH_TRANSFERS_MAX;

    fn bytes(item: &TransferItem) -> usize {
        match item {
            TransferItem::One(t) => transfer_bytes(t),
            TransferItem::Batch(ts) => ts.iter().map(transfer_bytes).sum(),
        }
    }

    fn units(item: &TransferItem) -> usize {
        match item {
            TransferItem::One(_) => 1,
            TransferItem::Batch(ts) => ts.len(),
        }
    }

    fn shape(item: &TransferItem) -> Option<usize> {
        match item {
            TransferItem::One(_) => None,
            TransferItem::Batch(ts) => Some(ts.len()),
        }
    }

    fn request(mut items: Vec<TransferItem>, timestamp_ms: i64) -> Request {
        let timestamp_ms = u64::try_from(timestamp_ms).unwrap_or(0);
        let command = match (items.len(), items.pop()) {
            (1, Some(TransferItem::One(t))) => Command::CreateTransfer(t),
            (1, Some(TransferItem::Batch(transfers))) => Command::CreateTransfers { transfers, atomic: false },
            (_, last) => {
                let mut transfers = Vec::with_capacity(items.iter().map(Self::units).sum::<usize>() + 1);
                for item in items.into_iter().chain(last) {
                    match item {
                        TransferItem::One(t) => transfers.push(t),
                        TransferItem::Batch(ts) => transfers.extend(ts),
                    }
                }
                Command::CreateTransfers { transfers, atomic: false }
            }
        };
        Request::Ledger { timestamp_ms, command }
    }

    fn split(response: Response, shapes: &[Option<usize>]) -> Option<Vec<Outcome>> {
        match (response, shapes) {
            (Response::Ledger(o @ Outcome::Transfer(_)), [None]) => Some(vec![o]),
            // A lone batch keeps its whole answer (including `batch_too_large`).
            (Response::Ledger(o @ Outcome::Batch(_)), [Some(_)]) => Some(vec![o]),
            (Response::Ledger(Outcome::Batch(b)), _) if shapes.len() > 1 => {
                let total: usize = shapes.iter().map(|s| s.unwrap_or(1)).sum();
                if b.results.len() != total {
                    return None;
                }
                let mut results = b.results.into_iter();
                let outs = shapes
                    .iter()
                    .map(|shape| match shape {
                        None => results.next().map(Outcome::Transfer),
                        Some(n) => Some(Outcome::Batch(BatchResult {
                            code: b.code,
                            results: results.by_ref().take(*n).collect(),
                            failed: None,
                        })),
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(outs)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{ApplyContext, Ledger, NewAccount};

    fn transfer(id: &str, amount: u64) -> NewTransfer {
        NewTransfer {
            flags: Default::default(),
            id: id.into(),
            debit_account_id: "eq".into(),
            credit_account_id: "a".into(),
            amount,
            currency: "USD".into(),
            metadata: String::new(),
            pending: false,
            timeout_ms: None,
        }
    }

    #[test]
    fn gathered_transfers_get_the_results_they_would_get_as_separate_entries() {
        let account = |id: &str, overdraft| {
            Command::CreateAccount(NewAccount {
                credits_must_not_exceed_debits: false,
                id: id.into(),
                currency: "USD".into(),
                allow_overdraft: overdraft,
                metadata: String::new(),
            })
        };
        let setup = [account("eq", true), account("a", false)];
        let items = [transfer("t1", 5), transfer("t1", 5), transfer("t1", 6), transfer("t2", 0)];
        // Separately: one entry each.
        let mut one = Ledger::default();
        let mut index = 0;
        for c in &setup {
            index += 1;
            one.apply(c, ApplyContext { index, timestamp_ms: 1 });
        }
        let separate: Vec<_> = items
            .iter()
            .map(|t| {
                index += 1;
                one.apply(&Command::CreateTransfer(t.clone()), ApplyContext { index, timestamp_ms: 1 }).0
            })
            .collect();
        // Gathered: one entry.
        let gathered_items: Vec<TransferItem> = items.iter().cloned().map(TransferItem::One).collect();
        let shapes: Vec<_> = gathered_items.iter().map(Transfers::shape).collect();
        let Request::Ledger { command, .. } = Transfers::request(gathered_items, 1) else {
            panic!("not a ledger entry")
        };
        assert!(matches!(command, Command::CreateTransfers { atomic: false, .. }));
        let mut many = Ledger::default();
        for (i, c) in setup.iter().enumerate() {
            many.apply(c, ApplyContext { index: i as u64 + 1, timestamp_ms: 1 });
        }
        let (outcome, _) = many.apply(&command, ApplyContext { index: 3, timestamp_ms: 1 });
        let gathered = Transfers::split(Response::Ledger(outcome), &shapes).expect("one result per item");
        let codes = |v: &[Outcome]| {
            v.iter()
                .map(|o| match o {
                    Outcome::Transfer(r) => r.code,
                    other => panic!("not a transfer outcome: {other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&gathered), codes(&separate), "created, exists, id_conflict, invalid_amount");
        assert_eq!(many.account("a").map(|a| a.balance), one.account("a").map(|a| a.balance));
        assert!(Transfers::split(Response::None, &[None, None]).is_none(), "a wrong shape is refused");
    }

    fn account(id: &str, overdraft: bool) -> Command {
        Command::CreateAccount(NewAccount {
            credits_must_not_exceed_debits: false,
            id: id.into(),
            currency: "USD".into(),
            allow_overdraft: overdraft,
            metadata: String::new(),
        })
    }

    fn codes(o: &Outcome) -> Vec<ledger_core::ResultCode> {
        match o {
            Outcome::Transfer(r) => vec![r.code],
            Outcome::Batch(b) => b.results.iter().map(|r| r.code).collect(),
            other => panic!("not a transfer outcome: {other:?}"),
        }
    }

    #[test]
    fn gathered_batches_and_singles_get_the_results_of_separate_entries() {
        // Requests in arrival order: a batch, a single, a batch that repeats/conflicts, a single
        // that would overdraw `a` only after the batches moved money away.
        let requests = vec![
            TransferItem::Batch(vec![transfer("b1", 5), transfer("b2", 7)]),
            TransferItem::One(transfer("s1", 1)),
            TransferItem::Batch(vec![transfer("b1", 5), transfer("b2", 8), transfer("b3", 0)]),
            TransferItem::One(NewTransfer {
                debit_account_id: "a".into(),
                credit_account_id: "eq".into(),
                ..transfer("s2", 14)
            }),
        ];
        let setup = [account("eq", true), account("a", false)];
        // Separately: one entry per request.
        let mut one = Ledger::default();
        let mut index = 0;
        for c in &setup {
            index += 1;
            one.apply(c, ApplyContext { index, timestamp_ms: 1 });
        }
        let separate: Vec<_> = requests
            .iter()
            .map(|r| {
                index += 1;
                let command = match Transfers::request(vec![r.clone()], 1) {
                    Request::Ledger { command, .. } => command,
                    other => panic!("not a ledger entry: {other:?}"),
                };
                one.apply(&command, ApplyContext { index, timestamp_ms: 1 }).0
            })
            .collect();
        // Gathered: one entry.
        let shapes: Vec<_> = requests.iter().map(Transfers::shape).collect();
        assert_eq!(requests.iter().map(Transfers::units).sum::<usize>(), 7);
        let Request::Ledger { command, .. } = Transfers::request(requests, 1) else { panic!("not a ledger entry") };
        assert!(matches!(&command, Command::CreateTransfers { atomic: false, transfers } if transfers.len() == 7));
        let mut many = Ledger::default();
        for (i, c) in setup.iter().enumerate() {
            many.apply(c, ApplyContext { index: i as u64 + 1, timestamp_ms: 1 });
        }
        let (outcome, _) = many.apply(&command, ApplyContext { index: 3, timestamp_ms: 1 });
        let gathered = Transfers::split(Response::Ledger(outcome), &shapes).expect("one result per request");
        assert_eq!(gathered.len(), 4);
        assert!(matches!(gathered[0], Outcome::Batch(_)) && matches!(gathered[1], Outcome::Transfer(_)));
        let g: Vec<_> = gathered.iter().map(codes).collect();
        let s: Vec<_> = separate.iter().map(codes).collect();
        assert_eq!(g, s, "same per-transfer codes, same shapes");
        assert_eq!(
            g[3],
            vec![ledger_core::ResultCode::InsufficientFunds],
            "s2 sees the 13 moved by b1, b2 and s1 (balance 13 < 14)"
        );
        assert_eq!(many.account("a").map(|a| a.balance), one.account("a").map(|a| a.balance));
        // A result count that does not add up is refused, never misattributed.
        let short =
            Outcome::Batch(BatchResult { code: ledger_core::ResultCode::Created, results: Vec::new(), failed: None });
        assert!(Transfers::split(Response::Ledger(short), &shapes).is_none());
    }
}
