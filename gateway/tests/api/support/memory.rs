//! `MemoryBackend`: an in-process `LedgerBackend` for tests only.
//!
//! One `ledger_core::Ledger` behind a mutex, an index counter and a
//! deterministic clock (`CLOCK_BASE_MS + index`), plus simple in-memory
//! topics. It is NOT a cluster and is never used by the `gateway` binary.
//! Test knobs: a delay before every call (slow backend), an "unavailable"
//! switch (no leader), and a leader-change counter.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gateway::backend::{
    ApiKey, Applied, AuditEntry, AuditPage, BackendError, BackendResult, BackendStats, ClusterStatus, FetchRequest,
    Fetched, LedgerBackend, Missing, NewRecord, NodeRole, NodeStatus, Read, ReadConsistency, RecordOffset,
    StoredRecord, TopicCreated, TopicInfo,
};
use ledger_core::{AccountView, ApplyContext, Command, HistoryFrom, HistoryPage, Ledger, Outcome, TransferView};
use tokio::sync::Notify;

/// Log time of index 0.
pub const CLOCK_BASE_MS: u64 = 1_764_150_000_000;

#[derive(Default)]
struct State {
    ledger: Ledger,
    index: u64,
    topics: BTreeMap<String, Vec<Vec<StoredRecord>>>,
    round_robin: u64,
    nodes: Vec<NodeStatus>,
    keys: BTreeMap<String, ApiKey>,
    audit: Vec<AuditEntry>,
}

impl State {
    fn next(&mut self) -> ApplyContext {
        self.index += 1;
        ApplyContext { index: self.index, timestamp_ms: CLOCK_BASE_MS + self.index }
    }

    /// The next index, for an admin action recorded in the audit trail (as lognode does).
    fn next_audited(&mut self, by: &str, action: &str, target: &str) -> ApplyContext {
        let ctx = self.next();
        self.audit.push(AuditEntry {
            index: ctx.index,
            timestamp_ms: ctx.timestamp_ms,
            by: by.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: "ok".to_owned(),
        });
        ctx
    }
}

/// The in-process backend.
pub struct MemoryBackend {
    state: Mutex<State>,
    appended: Notify,
    delay_ms: AtomicU64,
    unavailable: AtomicBool,
    leader_changes: AtomicU64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        let nodes = (1..=3)
            .map(|id| NodeStatus {
                id,
                grpc_addr: format!("memory-node-{id}"),
                role: if id == 1 { NodeRole::Leader } else { NodeRole::Follower },
                alive: true,
                last_applied: 0,
                snapshot_index: 0,
                log_first_index: 0,
                log_bytes_since_snapshot: 0,
            })
            .collect();
        MemoryBackend {
            state: Mutex::new(State { nodes, ..State::default() }),
            appended: Notify::new(),
            delay_ms: AtomicU64::new(0),
            unavailable: AtomicBool::new(false),
            leader_changes: AtomicU64::new(0),
        }
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl MemoryBackend {
    /// Records a key directly (as a cluster's bootstrap does).
    pub fn add_key(&self, id: &str, secret: &str, scopes: &[&str], account_prefix: &str) {
        self.add_key_with_quota(id, secret, scopes, account_prefix, gateway::backend::Quota::default());
    }

    /// [`MemoryBackend::add_key`] with quotas.
    pub fn add_key_with_quota(
        &self,
        id: &str,
        secret: &str,
        scopes: &[&str],
        account_prefix: &str,
        quota: gateway::backend::Quota,
    ) {
        let key = ApiKey {
            id: id.to_owned(),
            secret_hash: gateway::auth::hash_secret(secret),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            account_prefix: account_prefix.to_owned(),
            created_ms: 0,
            created_by: "bootstrap".to_owned(),
            quota,
        };
        self.lock().keys.insert(id.to_owned(), key);
    }

    /// Every call first sleeps this long.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Simulates "no leader" (every call answers `Unavailable`).
    pub fn set_unavailable(&self, v: bool) {
        if v {
            self.leader_changes.fetch_add(1, Ordering::SeqCst);
        }
        self.unavailable.store(v, Ordering::SeqCst);
    }

    /// Last log index.
    pub fn last_index(&self) -> u64 {
        self.lock().index
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn gate(&self) -> BackendResult<()> {
        let d = self.delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(BackendError::Unavailable { retry_after_ms: 2000 });
        }
        Ok(())
    }

    async fn gate_read(&self, read: ReadConsistency) -> BackendResult<()> {
        self.gate().await?;
        if let ReadConsistency::MinIndex(n) = read {
            let current = self.lock().index;
            if n > current {
                // One process: nothing is ever in flight, so an index past the last one was never written.
                return Err(BackendError::IndexNotReached { min_index: n, current });
            }
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Read<T> {
        let s = self.lock();
        Read { value: f(&s), applied_index: s.index }
    }
}

#[async_trait]
impl LedgerBackend for MemoryBackend {
    async fn submit(&self, cmd: &Command) -> BackendResult<Applied<Outcome>> {
        self.gate().await?;
        let mut s = self.lock();
        let ctx = s.next();
        let (outcome, _events) = s.ledger.apply(cmd, ctx);
        Ok(Applied { value: outcome, index: ctx.index })
    }

    async fn account(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<AccountView>>> {
        self.gate_read(read).await?;
        Ok(self.read(|s| s.ledger.account(id)))
    }

    async fn list_accounts(
        &self,
        q: gateway::backend::AccountsQuery,
        read: ReadConsistency,
    ) -> BackendResult<Read<gateway::backend::AccountsPage>> {
        self.gate_read(read).await?;
        let s = self.lock();
        let at = if q.at_index == 0 { s.index } else { q.at_index };
        if at > s.index {
            return Err(BackendError::OutOfRange(format!("at_index {at} is past the last applied {}", s.index)));
        }
        let keep = |a: &AccountView| q.metadata.as_ref().is_none_or(|(k, v)| metadata_has(&a.metadata, k, v));
        let filter = ledger_core::AccountFilter {
            id_prefix: (!q.id_prefix.is_empty()).then_some(q.id_prefix.as_str()),
            currency: (!q.currency.is_empty()).then_some(q.currency.as_str()),
            keep: Some(&keep),
        };
        let page = s.ledger.scan_accounts(q.after, at, q.limit as usize, &filter);
        let value = gateway::backend::AccountsPage { accounts: page.accounts, next: page.next, at_index: at };
        Ok(Read { value, applied_index: s.index })
    }

    async fn list_transfers(
        &self,
        q: gateway::backend::TransfersQuery,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<gateway::backend::TransfersPage>>> {
        self.gate_read(read).await?;
        let s = self.lock();
        let at = if q.at_index == 0 { s.index } else { q.at_index };
        if at > s.index {
            return Err(BackendError::OutOfRange(format!("at_index {at} is past the last applied {}", s.index)));
        }
        let keep =
            |t: &ledger_core::TransferView| q.metadata.as_ref().is_none_or(|(k, v)| metadata_has(&t.metadata, k, v));
        let filter = ledger_core::TransferFilter {
            account: (!q.account_id.is_empty()).then_some(q.account_id.as_str()),
            status: q.status,
            created_index: (q.created_index.0.unwrap_or(0), q.created_index.1.unwrap_or(u64::MAX)),
            created_ms: (q.created_ms.0.unwrap_or(0), q.created_ms.1.unwrap_or(u64::MAX)),
            keep: Some(&keep),
        };
        let value = s
            .ledger
            .scan_transfers(q.after, at, q.limit as usize, &filter)
            .map(|page| gateway::backend::TransfersPage { transfers: page.transfers, next: page.next, at_index: at });
        Ok(Read { value, applied_index: s.index })
    }

    async fn account_as_of(
        &self,
        id: &str,
        index: u64,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<AccountView>>> {
        self.gate_read(read).await?;
        let s = self.lock();
        if index > s.index {
            return Err(BackendError::OutOfRange(format!("index {index} is past the last applied {}", s.index)));
        }
        Ok(Read { value: s.ledger.account_as_of(id, index), applied_index: s.index })
    }

    async fn transfer(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<TransferView>>> {
        self.gate_read(read).await?;
        Ok(self.read(|s| s.ledger.transfer(id)))
    }

    async fn account_transfers(
        &self,
        id: &str,
        from: HistoryFrom,
        limit: u32,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<HistoryPage>>> {
        self.gate_read(read).await?;
        Ok(self.read(|s| s.ledger.account_transfers(id, from, limit as usize)))
    }

    async fn create_topic(&self, name: &str, partitions: u32) -> BackendResult<Applied<TopicCreated>> {
        self.gate().await?;
        let mut s = self.lock();
        let created = match s.topics.get(name) {
            Some(p) if p.len() == partitions as usize => false,
            Some(p) => {
                return Err(BackendError::AlreadyExists(format!("topic '{name}' exists with {} partitions", p.len())));
            }
            None => {
                s.topics.insert(name.to_owned(), vec![Vec::new(); partitions as usize]);
                true
            }
        };
        let index = s.next().index;
        Ok(Applied { value: TopicCreated { topic: TopicInfo { name: name.to_owned(), partitions }, created }, index })
    }

    async fn delete_topic(&self, name: &str, by: &str) -> BackendResult<Applied<()>> {
        self.gate().await?;
        let mut s = self.lock();
        if name == "ledger" || s.topics.remove(name).is_none() {
            return Err(BackendError::NotFound(Missing::Topic, format!("unknown topic {name:?}")));
        }
        Ok(Applied { value: (), index: s.next_audited(by, "topic.delete", name).index })
    }

    async fn list_topics(&self, read: ReadConsistency) -> BackendResult<Read<Vec<TopicInfo>>> {
        self.gate_read(read).await?;
        Ok(self.read(|s| {
            s.topics.iter().map(|(n, p)| TopicInfo { name: n.clone(), partitions: p.len() as u32 }).collect()
        }))
    }

    async fn produce(&self, topic: &str, records: Vec<NewRecord>) -> BackendResult<Applied<Vec<RecordOffset>>> {
        self.gate().await?;
        let mut guard = self.lock();
        let s = &mut *guard;
        let Some(n) = s.topics.get(topic).map(Vec::len) else {
            return Err(BackendError::NotFound(Missing::Topic, format!("no topic '{topic}'")));
        };
        let ctx = s.next();
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            let p = match &r.key {
                Some(k) => (fnv1a(k) % n as u64) as usize,
                None => {
                    s.round_robin += 1;
                    (s.round_robin % n as u64) as usize
                }
            };
            let Some(part) = s.topics.get_mut(topic).and_then(|t| t.get_mut(p)) else {
                return Err(BackendError::Internal("partition vanished".to_owned()));
            };
            let offset = part.len() as u64;
            part.push(StoredRecord {
                offset,
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: ctx.timestamp_ms,
            });
            offsets.push(RecordOffset { partition: p as u32, offset });
        }
        drop(guard);
        self.appended.notify_waiters();
        Ok(Applied { value: offsets, index: ctx.index })
    }

    async fn fetch(&self, req: FetchRequest, read: ReadConsistency) -> BackendResult<Read<Fetched>> {
        self.gate_read(read).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
        // Bounded: every turn either returns or waits until an append or the deadline.
        loop {
            let notified = self.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                let Some(t) = s.topics.get(&req.topic) else {
                    return Err(BackendError::NotFound(Missing::Topic, format!("no topic '{}'", req.topic)));
                };
                let Some(part) = t.get(req.partition as usize) else {
                    return Err(BackendError::NotFound(
                        Missing::Partition,
                        format!("topic '{}' has {} partitions", req.topic, t.len()),
                    ));
                };
                let end = part.len() as u64;
                if req.offset > end {
                    return Err(BackendError::OutOfRange(format!("offset {} is past the end {end}", req.offset)));
                }
                let records: Vec<StoredRecord> =
                    part.iter().skip(req.offset as usize).take(req.limit as usize).cloned().collect();
                if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                    let next_offset = req.offset + records.len() as u64;
                    return Ok(Read {
                        value: Fetched { records, next_offset, end_offset: end },
                        applied_index: s.index,
                    });
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    async fn cluster_status(&self) -> BackendResult<ClusterStatus> {
        self.gate().await?;
        let s = self.lock();
        let nodes = s.nodes.iter().map(|n| NodeStatus { last_applied: s.index, ..n.clone() }).collect();
        Ok(ClusterStatus { leader_id: Some(1), nodes })
    }

    async fn create_key(&self, key: ApiKey) -> BackendResult<Applied<u64>> {
        self.gate().await?;
        let mut s = self.lock();
        if s.keys.contains_key(&key.id) {
            return Err(BackendError::AlreadyExists(format!("key {} exists", key.id)));
        }
        let ctx = s.next_audited(&key.created_by, "key.create", &key.id);
        s.keys.insert(key.id.clone(), ApiKey { created_ms: ctx.timestamp_ms, ..key });
        Ok(Applied { value: ctx.timestamp_ms, index: ctx.index })
    }

    async fn revoke_key(&self, id: &str, revoked_by: &str) -> BackendResult<Applied<()>> {
        self.gate().await?;
        let mut s = self.lock();
        if s.keys.remove(id).is_none() {
            return Err(BackendError::NotFound(Missing::Key, format!("no key {id}")));
        }
        let index = s.next_audited(revoked_by, "key.revoke", id).index;
        Ok(Applied { value: (), index })
    }

    async fn list_keys(&self, _read: ReadConsistency) -> BackendResult<Read<Vec<ApiKey>>> {
        self.gate().await?;
        let s = self.lock();
        Ok(Read { value: s.keys.values().cloned().collect(), applied_index: s.index })
    }

    async fn list_audit(&self, after: u64, limit: u32, read: ReadConsistency) -> BackendResult<Read<AuditPage>> {
        self.gate_read(read).await?;
        Ok(self.read(|s| AuditPage {
            records: s.audit.iter().filter(|a| a.index > after).take(limit as usize).cloned().collect(),
            total: s.audit.len() as u64,
        }))
    }

    async fn remove_node(&self, id: u64, by: &str) -> BackendResult<Applied<()>> {
        self.gate().await?;
        let mut s = self.lock();
        let Some(pos) = s.nodes.iter().position(|n| n.id == id) else {
            return Err(BackendError::NotFound(Missing::Node, format!("no node {id}")));
        };
        if s.nodes[pos].role == NodeRole::Leader {
            return Err(BackendError::InvalidArgument("cannot remove the leader".to_owned()));
        }
        s.nodes.remove(pos);
        let index = s.next_audited(by, "node.remove", &id.to_string()).index;
        Ok(Applied { value: (), index })
    }

    async fn ready(&self) -> BackendResult<()> {
        self.gate().await
    }

    fn stats(&self) -> BackendStats {
        BackendStats { leader_changes: self.leader_changes.load(Ordering::SeqCst), ..BackendStats::default() }
    }
}

/// The same member test as lognode's: a string equal to the value, or a scalar written so.
fn metadata_has(metadata: &str, key: &str, value: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(metadata).ok().as_ref().and_then(|m| m.get(key)) {
        Some(serde_json::Value::String(s)) => s == value,
        Some(x @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null)) => {
            serde_json::from_str::<serde_json::Value>(value).is_ok_and(|parsed| parsed == *x)
        }
        _ => false,
    }
}
