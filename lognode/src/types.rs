//! The openraft type configuration and the replicated commands (only lognode knows openraft).

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Ledger's Raft types: node ids are `u64`, nodes carry their gRPC address.
    pub TypeConfig:
        D = Request,
        R = Response,
        SnapshotData = crate::store::state_machine::SnapshotFile,
);

/// A Raft log entry as stored in logstore (one entry = one logstore record).
pub type Entry = openraft::Entry<TypeConfig>;
/// Raft log id.
pub type LogId = openraft::LogId<u64>;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft node: its gRPC address.
pub type Node = openraft::BasicNode;
/// Raft metrics of this type config.
pub type RaftMetrics = openraft::RaftMetrics<u64, Node>;
/// Storage error.
pub type StorageError = openraft::StorageError<u64>;

/// One record as replicated: what the client sent plus nothing else (the timestamp is per entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordData {
    /// Record key (may be empty). `serde_bytes`: written in one block, the same bytes as the
    /// element-by-element sequence written before (in both codecs; old logs read back unchanged).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Record value (`serde_bytes`, as the key).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A command replicated through Raft and applied by the state machine.
///
/// Deterministic: everything the state machine needs (the timestamp, the partition) is decided by
/// the leader before `client_write`. New commands (the money ledger, consumer groups) are added as
/// new variants at the end, e.g. `Ledger(LedgerCommand)` and `Group(GroupCommand)`; the codec encodes
/// the variant index, so existing variants must never be reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Appends records to one partition; they get contiguous offsets.
    Produce {
        /// Topic name.
        topic: String,
        /// Partition, chosen by the leader.
        partition: u32,
        /// Set by the leader (ms since the Unix epoch).
        timestamp_ms: i64,
        /// The records.
        records: Vec<RecordData>,
    },
    /// Creates a topic.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Number of partitions.
        partitions: u32,
    },
    /// Records that an admin removed a node: discovery never adds it back to the membership.
    /// Replicated before the membership change, so every future leader knows it.
    RemoveNode {
        /// The node.
        node_id: u64,
    },
    /// A money-ledger command, applied by `ledger_core::Ledger::apply` with this entry's log index
    /// and `timestamp_ms`.
    Ledger {
        /// Set by the leader before `client_write` (ms since the Unix epoch): the ledger's log time
        /// comes from here, never from the applying node's clock.
        timestamp_ms: u64,
        /// The command.
        command: ledger_core::Command,
    },
    /// Several produce requests gathered by the leader into one entry, so concurrent producers
    /// share one Raft round (and one fsync per node). Applied in order, each like `Produce`.
    ProduceMany {
        /// Set by the leader (ms since the Unix epoch), for every item.
        timestamp_ms: i64,
        /// The gathered requests.
        items: Vec<ProduceItem>,
    },
    /// A consumer-group command, applied by `group_core::Groups::apply` with this entry's log index
    /// and `timestamp_ms` (docs/CONSUMER_GROUPS.md).
    Group {
        /// Set by the leader before `client_write` (ms since the Unix epoch): the groups' log clock
        /// (heartbeat deadlines, expiry) comes from here, never from the applying node's clock.
        timestamp_ms: u64,
        /// The command.
        command: group_core::GroupCommand,
    },
    /// Deletes a topic (not [`crate::store::state_machine::TOPIC_LEDGER`]): its offset maps go,
    /// every consumer group forgets it (group-core rule 14); its records become unreadable and
    /// leave the log with retention. The name can be created again, from offset 0.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Creates or revokes an API key (docs/SECURITY.md). The log holds the SHA-256 of a key's
    /// secret, never the secret.
    Keys {
        /// Set by the leader before `client_write` (ms since the Unix epoch): a key's creation
        /// time comes from here.
        timestamp_ms: u64,
        /// The command.
        command: KeyCommand,
    },
    /// (Appended last: a variant's position is its tag in the log's codec.)
    /// An admin action (node removal, topic or group deletion, offset reset) with the id of the
    /// API key that asked: applied as `request`, then recorded in the audit trail
    /// (`state_machine::audit`, docs/SECURITY.md). Key changes are recorded from their own
    /// entries. Any other request inside is refused.
    Audited {
        /// Set by the leader before `client_write` (ms since the Unix epoch): the record's time.
        timestamp_ms: u64,
        /// Id of the API key that asked (`unauthenticated` from a gateway without keys).
        by: String,
        /// The action.
        request: Box<Request>,
    },
    /// (Appended last: a variant's position is its tag in the log's codec.)
    /// Creates or deletes a webhook subscription, or records the outcomes of its deliveries
    /// (`state_machine::webhooks`, docs/WEBHOOKS.md).
    Webhooks {
        /// Set by the leader before `client_write` (ms since the Unix epoch): a subscription's
        /// creation time comes from here.
        timestamp_ms: u64,
        /// The command.
        command: WebhookCommand,
    },
}

/// A change of the API keys ([`Request::Keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCommand {
    /// A new key (`created_ms` is set from the entry's timestamp when applied).
    Create(ApiKeyRecord),
    /// Revokes a key.
    Revoke {
        /// The key's id.
        id: String,
        /// Id of the key that asked.
        by: String,
    },
    /// The bootstrap admin key (`--admin-key-file`): applied like [`KeyCommand::Create`], but
    /// only while no key was ever created. The check runs in the state machine, in log order, so
    /// a leader whose applied state lags cannot bring back a bootstrap key that was revoked.
    Bootstrap(ApiKeyRecord),
}

/// An API key as the state machine keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// 1..=`KEY_ID_BYTES_MAX` characters of `[A-Za-z0-9._-]`.
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// Scopes (the gateway's grammar; lognode only bounds them).
    pub scopes: Vec<String>,
    /// Empty: every account; else only accounts whose id starts with it.
    pub account_prefix: String,
    /// Log time of the entry that created it.
    pub created_ms: u64,
    /// Id of the key that created it (`bootstrap` for the cluster's first admin key).
    pub created_by: String,
    /// The gateways' quotas for the key (0: none; lognode only bounds them).
    pub quota: KeyQuota,
}

/// Quotas each gateway enforces for one API key (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyQuota {
    /// Requests a second (a token bucket's refill).
    pub rate_per_sec: u32,
    /// Tokens the bucket holds at most (0: `rate_per_sec`).
    pub burst: u32,
    /// Requests at once.
    pub max_in_flight: u32,
}

/// A change of the webhook subscriptions ([`Request::Webhooks`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookCommand {
    /// A new subscription (`created_ms` is set from the entry's timestamp when applied).
    Create(WebhookRecord),
    /// Deletes a subscription with its delivery records.
    Delete {
        /// The subscription's id.
        id: String,
    },
    /// Outcomes of finished deliveries (delivered, or dead after the last attempt), reported by
    /// the deliverer; the state keeps the newest of each kind.
    Record {
        /// The subscription's id.
        id: String,
        /// The outcomes, oldest first.
        deliveries: Vec<DeliveryRecord>,
    },
}

/// A webhook subscription as the state machine keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// 1..=`WEBHOOK_ID_BYTES_MAX` characters of `[A-Za-z0-9._-]`.
    pub id: String,
    /// Where deliveries are POSTed: `http://` or `https://`, at most `WEBHOOK_URL_BYTES_MAX`.
    pub url: String,
    /// Event types delivered (`*`: all), 1..=`WEBHOOK_EVENTS_MAX`.
    pub events: Vec<String>,
    /// The signing secret (HMAC-SHA256 key): the deliverer needs the secret itself.
    pub secret: String,
    /// Log time of the entry that created it.
    pub created_ms: u64,
    /// Log index of the entry that created it: events of later entries are delivered.
    pub created_index: u64,
    /// Id of the API key that created it.
    pub created_by: String,
}

/// The outcome of one finished delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Partition of the `ledger` topic the event is at.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// Log index of the entry that produced the event.
    pub event_index: u64,
    /// Event type (`transfer.created`, `account_created`, ...).
    pub event_type: String,
    /// Delivered (a 2xx answer), or dead (every attempt failed).
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer (0: none, e.g. a timeout or a refused connection).
    pub http_status: u16,
    /// Why the last attempt failed (empty when delivered), at most `WEBHOOK_ERROR_BYTES_MAX`.
    pub error: String,
    /// Deliverer's clock at the first attempt (ms since the epoch).
    pub first_attempt_ms: u64,
    /// Deliverer's clock at the last attempt.
    pub last_attempt_ms: u64,
}

/// One produce request inside [`Request::ProduceMany`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceItem {
    /// Topic name.
    pub topic: String,
    /// Partition, chosen by the leader.
    pub partition: u32,
    /// The records.
    pub records: Vec<RecordData>,
}

/// Why the state machine refused a command (deterministically, on every node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// No such topic.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// No such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Partition asked for.
        partition: u32,
        /// Partitions the topic has.
        partitions: u32,
    },
    /// CreateTopic of an existing topic.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// Malformed command.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A named capacity limit is reached (e.g. `TOPICS_MAX`); the message names it.
    #[error("{0}")]
    LimitExceeded(String),
    /// CreateKey with an id that a live key has.
    #[error("API key {0:?} already exists")]
    KeyExists(String),
    /// RevokeKey of an id no live key has.
    #[error("no live API key {0:?}")]
    UnknownKey(String),
    /// A webhook command for an id no subscription has.
    #[error("no webhook {0:?}")]
    UnknownWebhook(String),
    /// CreateWebhook with an id that a subscription has.
    #[error("webhook {0:?} already exists")]
    WebhookExists(String),
}

/// What applying a command returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries.
    None,
    /// Records appended.
    Produced {
        /// Offset of the first record.
        base_offset: u64,
        /// Records appended.
        count: u32,
    },
    /// Topic created.
    TopicCreated,
    /// Node recorded as removed.
    NodeRemoved,
    /// Refused.
    Rejected(Rejection),
    /// What the ledger decided for a [`Request::Ledger`] command.
    Ledger(ledger_core::Outcome),
    /// One response per item of a `ProduceMany`, in order (`Produced` or `Rejected`).
    ProducedMany(Vec<Response>),
    /// What the group coordinator decided for a [`Request::Group`] command.
    Group(group_core::GroupOutcome),
    /// Topic deleted.
    TopicDeleted,
    /// API key created.
    KeyCreated,
    /// API key revoked.
    KeyRevoked,
    /// Webhook created, deleted, or its deliveries recorded.
    WebhookDone,
}

/// lognode's binary codec (format byte, then postcard; see [`crate::codec`]).
pub use crate::codec::{decode, encode};

#[cfg(test)]
mod tests {
    use super::*;

    /// `RecordData` as it was encoded before `serde_bytes`: plain vectors.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PlainRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    }

    /// Logs and snapshots written before keys and values were `serde_bytes` read back the same,
    /// and new ones are byte-identical to what the old code wrote.
    #[test]
    fn byte_fields_encode_as_before() {
        let r = RecordData { key: b"k\x00\xff".to_vec(), value: vec![7; 300], headers: vec![("h".into(), vec![1, 2])] };
        let old = PlainRecord { key: r.key.clone(), value: r.value.clone(), headers: r.headers.clone() };
        assert_eq!(encode(&r), encode(&old));
        assert_eq!(decode::<RecordData>(&encode(&old)).expect("decode"), r);
        let empty = RecordData { key: vec![], value: vec![], headers: vec![] };
        assert_eq!(encode(&empty), encode(&PlainRecord { key: vec![], value: vec![], headers: vec![] }));
        // The same holds in format 1 (bincode), which old logs are in.
        let legacy = crate::codec::encode_legacy(&old);
        assert_eq!(crate::codec::encode_legacy(&r), legacy);
        assert_eq!(crate::codec::decode_legacy::<RecordData>(&legacy).expect("format 1"), r);
    }
}
