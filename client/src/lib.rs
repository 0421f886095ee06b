//! `ledger-client`: a typed async client for the Ledger gateway's HTTP/JSON
//! API (`openapi/ledger.v1.json`).
//!
//! One [`Client`] keeps a pool of keep-alive connections to one gateway; clone
//! it freely (clones share the pool). Every call has a deadline
//! ([`DEFAULT_TIMEOUT`] unless [`Client::with_timeout`]); long polls add their
//! `wait_ms` to it.
//!
//! Errors keep the gateway's problem+json intact: [`Error::Problem`] carries
//! the HTTP status, the stable `code` and `Retry-After`, so callers branch on
//! codes (`unknown_member`, `stale_generation`, `insufficient_funds`, ...)
//! rather than on message text.
//!
//! The wire types mirror the gateway's JSON; they deserialize leniently
//! (unknown fields are ignored) so a newer gateway does not break an older
//! client.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod queries;
mod transactions;
mod types;
mod webhooks;

pub use transactions::{NewPosting, NewTransaction, Posting, Transaction};
pub use types::*;
pub use webhooks::{Delivery, DeliveryList, NewWebhook, Subscription, Webhook};

/// Deadline of one request when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body this client reads (the gateway's own responses are
/// bounded well below this).
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Idle keep-alive connections kept per gateway.
pub const POOL_IDLE_MAX: usize = 64;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with an error (problem+json, or a bare status).
    #[error("{0}")]
    Problem(Problem),
    /// The gateway could not be reached, or the connection broke, or the
    /// deadline passed.
    #[error("cannot reach the gateway at {url}: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What the HTTP stack said.
        message: String,
    },
    /// The gateway answered 2xx with a body this client cannot read.
    #[error("unexpected response from {url}: {message}")]
    Decode {
        /// The URL requested.
        url: String,
        /// What is wrong with the body.
        message: String,
    },
    /// The base URL is not a usable `http://` or `https://` URL.
    #[error("invalid gateway URL {0:?}: expected something like http://127.0.0.1:8080")]
    InvalidUrl(String),
}

impl Error {
    /// The problem `code` when the gateway answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Problem(p) => Some(p.code.as_str()),
            _ => None,
        }
    }

    /// The HTTP status when the gateway answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Problem(p) => Some(p.status),
            _ => None,
        }
    }

    /// True when retrying later may succeed: transport failures and 503s.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Problem(p) => p.status == 503,
            Error::Decode { .. } | Error::InvalidUrl(_) => false,
        }
    }
}

/// An error body (`application/problem+json`, RFC 9457) plus `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:ledger:problem:<code>`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(default)]
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// `Retry-After` seconds, when the gateway sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)?;
        if let Some(s) = self.retry_after_s {
            write!(f, " (retry after {s} s)")?;
        }
        Ok(())
    }
}

/// A write's answer: the body, its log index and whether it was an
/// idempotent replay of an earlier identical write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    /// The created (or existing) resource.
    pub body: T,
    /// `Ledger-Index` of the write.
    pub index: u64,
    /// `true` when the gateway answered an identical replay (200 instead of 201).
    pub replayed: bool,
}

/// Read consistency of a query (see the gateway's README).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Any follower (the default).
    #[default]
    Follower,
    /// Linearizable (served through the leader).
    Strong,
    /// Read-your-writes: a replica that has applied at least this log index.
    MinIndex(u64),
}

impl Consistency {
    fn query(self) -> Vec<(&'static str, String)> {
        match self {
            Consistency::Follower => Vec::new(),
            Consistency::Strong => vec![("consistency", "strong".to_owned())],
            Consistency::MinIndex(i) => vec![("min_index", i.to_string())],
        }
    }
}

/// A client of one gateway.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    /// The API key's secret sent as `Authorization: Bearer` (none with a gateway in `--auth none`).
    key: Option<String>,
}

impl Client {
    /// A client of the gateway at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// Like [`Client::new`] with a per-request deadline.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<Self, Error> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let rest = base.strip_prefix("http://").or_else(|| base.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {}
            _ => return Err(Error::InvalidUrl(base_url.to_owned())),
        }
        let http = Self::http_builder().build().map_err(|e| Error::InvalidUrl(format!("{base_url}: {e}")))?;
        Ok(Client { http, base, timeout, key: None })
    }

    fn http_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_MAX)
            .tcp_nodelay(true)
    }

    /// This client, trusting the CA certificates in `pem` for an `https://` gateway
    /// (`gateway --tls-cert`); no other roots are trusted. An error names what is wrong.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::InvalidUrl(format!("{}: the CA certificate is not PEM: {e}", self.base)))?;
        if certs.is_empty() {
            return Err(Error::InvalidUrl(format!("{}: no CA certificate in the PEM given", self.base)));
        }
        let builder = certs.into_iter().fold(Self::http_builder(), reqwest::ClientBuilder::add_root_certificate);
        self.http = builder.build().map_err(|e| Error::InvalidUrl(format!("{}: {e}", self.base)))?;
        Ok(self)
    }

    /// This client, sending the API key `secret` with every request (`Authorization: Bearer`).
    /// An empty secret sends none.
    #[must_use]
    pub fn with_key(mut self, secret: &str) -> Self {
        let secret = secret.trim();
        self.key = (!secret.is_empty()).then(|| secret.to_owned());
        self
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ---------------------------------------------------------------- accounts

    /// `POST /v1/accounts`.
    pub async fn create_account(&self, account: &NewAccount) -> Result<Written<Account>, Error> {
        self.write(Method::POST, &["v1", "accounts"], Some(account)).await
    }

    /// `GET /v1/accounts/{id}`.
    pub async fn account(&self, id: &str, consistency: Consistency) -> Result<Account, Error> {
        self.get(&["v1", "accounts", id], &consistency.query()).await
    }

    /// `GET /v1/accounts/{id}` and the `Ledger-Index` of the answer: the log index the serving
    /// replica had applied, so the balances are as of that index.
    pub async fn account_indexed(&self, id: &str, consistency: Consistency) -> Result<(Account, u64), Error> {
        self.get_indexed(&["v1", "accounts", id], &consistency.query()).await
    }

    /// `GET /v1/accounts/{id}?as_of_index=`: the balances as they were once
    /// log index `index` was applied.
    pub async fn account_as_of(&self, id: &str, index: u64, consistency: Consistency) -> Result<Account, Error> {
        let mut q = consistency.query();
        q.push(("as_of_index", index.to_string()));
        self.get(&["v1", "accounts", id], &q).await
    }

    /// `GET /v1/accounts/{id}/transfers?after=&limit=`: one page of history.
    pub async fn history(
        &self,
        id: &str,
        after: Option<u64>,
        limit: Option<u32>,
        consistency: Consistency,
    ) -> Result<HistoryPage, Error> {
        let mut q = consistency.query();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get(&["v1", "accounts", id, "transfers"], &q).await
    }

    // --------------------------------------------------------------- transfers

    /// `POST /v1/transfers`.
    pub async fn create_transfer(&self, transfer: &NewTransfer) -> Result<Written<Transfer>, Error> {
        self.write(Method::POST, &["v1", "transfers"], Some(transfer)).await
    }

    /// `POST /v1/transfers/batch`: one result per item, in order.
    pub async fn create_transfers(&self, transfers: &[NewTransfer], atomic: bool) -> Result<BatchResponse, Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            transfers: &'a [NewTransfer],
            atomic: bool,
        }
        let w: Written<BatchResponse> =
            self.write(Method::POST, &["v1", "transfers", "batch"], Some(&Body { transfers, atomic })).await?;
        Ok(w.body)
    }

    /// `GET /v1/transfers/{id}`.
    pub async fn transfer(&self, id: &str, consistency: Consistency) -> Result<Transfer, Error> {
        self.get(&["v1", "transfers", id], &consistency.query()).await
    }

    /// `POST /v1/transfers/{id}/post`, optionally for less than the pending amount. The answer
    /// is the decision (`Resolution`, as in the OpenAPI document), not the transfer.
    pub async fn post_pending(&self, id: &str, amount: Option<u64>) -> Result<Written<Resolution>, Error> {
        #[derive(Serialize)]
        struct Body {
            #[serde(skip_serializing_if = "Option::is_none")]
            amount: Option<u64>,
        }
        self.write(Method::POST, &["v1", "transfers", id, "post"], Some(&Body { amount })).await
    }

    /// `POST /v1/transfers/{id}/void`. The answer is the decision (`Resolution`).
    pub async fn void_pending(&self, id: &str) -> Result<Written<Resolution>, Error> {
        self.write::<(), _>(Method::POST, &["v1", "transfers", id, "void"], None).await
    }

    // ------------------------------------------------------------------ topics

    /// `POST /v1/topics`.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicCreated, Error> {
        let body = Topic { name: name.to_owned(), partitions };
        let w: Written<TopicCreated> = self.write(Method::POST, &["v1", "topics"], Some(&body)).await?;
        Ok(w.body)
    }

    /// `GET /v1/topics`.
    pub async fn topics(&self) -> Result<Vec<Topic>, Error> {
        #[derive(Deserialize)]
        struct List {
            topics: Vec<Topic>,
        }
        let l: List = self.get(&["v1", "topics"], &[]).await?;
        Ok(l.topics)
    }

    /// `POST /v1/topics/{topic}/records`.
    pub async fn produce(&self, topic: &str, records: &[NewRecord]) -> Result<Produced, Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            records: &'a [NewRecord],
        }
        let w: Written<Produced> =
            self.write(Method::POST, &["v1", "topics", topic, "records"], Some(&Body { records })).await?;
        Ok(w.body)
    }

    /// `GET /v1/topics/{topic}/partitions/{partition}/records`: long-polls up
    /// to `wait_ms` when nothing is new.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        limit: Option<u32>,
        wait_ms: Option<u64>,
    ) -> Result<FetchedRecords, Error> {
        let mut q = vec![("offset", offset.to_string())];
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(w) = wait_ms {
            q.push(("wait_ms", w.to_string()));
        }
        let p = partition.to_string();
        self.get_waiting(&["v1", "topics", topic, "partitions", &p, "records"], &q, wait_ms).await
    }

    /// Like [`Client::fetch`], but each record's `value` is kept as the JSON
    /// text the gateway sent, for consumers that decode values themselves.
    pub async fn fetch_raw(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        limit: Option<u32>,
        consistency: Consistency,
    ) -> Result<FetchedRecordsRaw, Error> {
        let mut q = consistency.query();
        q.push(("offset", offset.to_string()));
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        let p = partition.to_string();
        self.get(&["v1", "topics", topic, "partitions", &p, "records"], &q).await
    }

    // -------------------------------------------------------------------- keys

    /// `POST /v1/keys` (admin): a new key; its secret is in the answer, only there.
    pub async fn create_key(&self, key: &NewKey) -> Result<Written<CreatedKey>, Error> {
        self.write(Method::POST, &["v1", "keys"], Some(key)).await
    }

    /// `GET /v1/keys` (admin): every live key, without secrets.
    pub async fn keys(&self) -> Result<KeyList, Error> {
        self.get(&["v1", "keys"], &[]).await
    }

    /// `GET /v1/audit` (admin): admin actions after log index `after`, oldest first.
    pub async fn audit(&self, after: Option<u64>, limit: Option<u32>) -> Result<AuditPage, Error> {
        let mut q = Vec::new();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get(&["v1", "audit"], &q).await
    }

    /// `DELETE /v1/keys/{id}` (admin).
    pub async fn revoke_key(&self, id: &str) -> Result<Written<Value>, Error> {
        self.write::<(), _>(Method::DELETE, &["v1", "keys", id], None).await
    }

    // ----------------------------------------------------------------- cluster

    /// `GET /v1/cluster`.
    pub async fn cluster(&self) -> Result<Cluster, Error> {
        self.get(&["v1", "cluster"], &[]).await
    }

    /// `POST /v1/cluster/nodes/{id}/remove` (admin).
    pub async fn remove_node(&self, id: u64) -> Result<Value, Error> {
        let id = id.to_string();
        let w: Written<Value> =
            self.write::<(), _>(Method::POST, &["v1", "cluster", "nodes", &id, "remove"], None).await?;
        Ok(w.body)
    }

    /// `GET /readyz`: `Ok(true)` when the gateway reaches a leader, `Ok(false)`
    /// when it answers but is not ready, `Err` when it cannot be reached.
    pub async fn ready(&self) -> Result<bool, Error> {
        match self.get::<Value>(&["readyz"], &[]).await {
            Ok(_) => Ok(true),
            Err(Error::Problem(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------------ groups

    /// `POST /v1/groups/{group}/members`: join (always as a new member).
    pub async fn join_group(&self, group: &str, join: &JoinGroup) -> Result<Membership, Error> {
        let w: Written<Membership> = self.write(Method::POST, &["v1", "groups", group, "members"], Some(join)).await?;
        Ok(w.body)
    }

    /// `POST /v1/groups/{group}/members/{member}/heartbeat`.
    pub async fn heartbeat(&self, group: &str, member: &str) -> Result<Heartbeat, Error> {
        let w: Written<Heartbeat> =
            self.write::<(), _>(Method::POST, &["v1", "groups", group, "members", member, "heartbeat"], None).await?;
        Ok(w.body)
    }

    /// `GET /v1/groups/{group}/members/{member}/records`: long-polls up to `wait_ms`.
    pub async fn group_records(
        &self,
        group: &str,
        member: &str,
        max_records: Option<u32>,
        wait_ms: Option<u64>,
    ) -> Result<GroupRecords, Error> {
        let q = group_fetch_query(max_records, wait_ms, &[]);
        self.get_waiting(&["v1", "groups", group, "members", member, "records"], &q, wait_ms).await
    }

    /// Like [`Client::group_records`], but each record's `value` is kept as
    /// the JSON text the gateway sent, for consumers that decode values
    /// themselves (no intermediate `Value`).
    pub async fn group_records_raw(
        &self,
        group: &str,
        member: &str,
        max_records: Option<u32>,
        wait_ms: Option<u64>,
    ) -> Result<GroupRecordsRaw, Error> {
        let q = group_fetch_query(max_records, wait_ms, &[]);
        self.get_waiting(&["v1", "groups", group, "members", member, "records"], &q, wait_ms).await
    }

    /// `POST /v1/groups/{group}/members/{member}/offsets`: commit "next offset
    /// to read" per partition, fenced by `generation`.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        offsets: &[PartitionOffset],
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            generation: u64,
            offsets: &'a [PartitionOffset],
        }
        let _: Written<Value> = self
            .write(
                Method::POST,
                &["v1", "groups", group, "members", member, "offsets"],
                Some(&Body { generation, offsets }),
            )
            .await?;
        Ok(())
    }

    /// `DELETE /v1/groups/{group}/members/{member}`: leave (starts a rebalance).
    pub async fn leave_group(&self, group: &str, member: &str) -> Result<(), Error> {
        let _: Written<Value> =
            self.write::<(), _>(Method::DELETE, &["v1", "groups", group, "members", member], None).await?;
        Ok(())
    }

    /// `DELETE /v1/groups/{group}` (admin): deletes a group without members, with its committed
    /// offsets (409 `group_not_empty` while it has members). Returns the deletion's log index.
    pub async fn delete_group(&self, group: &str) -> Result<u64, Error> {
        let w: Written<Value> = self.write::<(), _>(Method::DELETE, &["v1", "groups", group], None).await?;
        Ok(w.index)
    }

    /// `GET /v1/groups`.
    pub async fn groups(&self) -> Result<Value, Error> {
        self.get(&["v1", "groups"], &[]).await
    }

    /// `GET /v1/groups/{group}`.
    pub async fn group(&self, group: &str) -> Result<GroupDescription, Error> {
        self.get(&["v1", "groups", group], &[]).await
    }

    /// `POST /v1/groups/{group}/offsets/reset` (admin). `to` is `"earliest"`,
    /// `"latest"`, `{"offset": n}` or `{"timestamp": ms}`.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: Value,
    ) -> Result<Value, Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            topic: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            partition: Option<u32>,
            to: Value,
        }
        let w: Written<Value> = self
            .write(Method::POST, &["v1", "groups", group, "offsets", "reset"], Some(&Body { topic, partition, to }))
            .await?;
        Ok(w.body)
    }

    /// Like [`Client::group_records`], starting each listed partition exactly at the client's
    /// own position (`from=topic:partition:offset,...`: the next offset it expects). Keep
    /// positions client-side and pass them on every fetch, and an answer lost on its way back
    /// (timeout, a gateway restart) is harmless: the same records come again.
    pub async fn group_records_from(
        &self,
        group: &str,
        member: &str,
        max_records: Option<u32>,
        wait_ms: Option<u64>,
        from: &[PartitionOffset],
    ) -> Result<GroupRecords, Error> {
        let q = group_fetch_query(max_records, wait_ms, from);
        self.get_waiting(&["v1", "groups", group, "members", member, "records"], &q, wait_ms).await
    }

    // -------------------------------------------------------------- machinery

    /// `base/seg/seg...` with every segment percent-encoded.
    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        for s in segments {
            url.push('/');
            encode_segment(s, &mut url);
        }
        url
    }

    async fn get<T: DeserializeOwned>(&self, path: &[&str], query: &[(&'static str, String)]) -> Result<T, Error> {
        self.get_waiting(path, query, None).await
    }

    async fn get_waiting<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&'static str, String)],
        wait_ms: Option<u64>,
    ) -> Result<T, Error> {
        let url = self.url(path);
        let timeout = self.timeout + Duration::from_millis(wait_ms.unwrap_or(0));
        let req = self.http.get(&url).query(query).timeout(timeout);
        let (body, _, _) = self.send(url, req).await?;
        body
    }

    /// A GET and the answer's `Ledger-Index` (the serving replica's applied index).
    async fn get_indexed<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&'static str, String)],
    ) -> Result<(T, u64), Error> {
        let url = self.url(path);
        let req = self.http.get(&url).query(query).timeout(self.timeout);
        let (body, index, _) = self.send(url, req).await?;
        Ok((body?, index))
    }

    async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<Written<T>, Error> {
        let url = self.url(path);
        // The gateway refuses a write without a JSON content type, also when it has no body
        // (cross-site request protection): always send the header.
        let mut req = self
            .http
            .request(method, &url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(b) = body {
            let bytes =
                serde_json::to_vec(b).map_err(|e| Error::Decode { url: url.clone(), message: e.to_string() })?;
            req = req.body(bytes);
        }
        let (body, index, replayed) = self.send(url, req).await?;
        Ok(Written { body: body?, index, replayed })
    }

    /// Sends, reads the body (bounded), maps errors. Returns the decoded body
    /// (204 decodes as JSON `null`), the `Ledger-Index` header and whether
    /// `Idempotent-Replayed: true` was set.
    async fn send<T: DeserializeOwned>(
        &self,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<(Result<T, Error>, u64, bool), Error> {
        let req = match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.map_err(|e| transport(&url, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let index = header_u64(&headers, "ledger-index").unwrap_or(0);
        let replayed = headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let bytes = read_bounded(resp).await.map_err(|e| transport(&url, &e))?;
        if !status.is_success() {
            return Err(Error::Problem(problem(status, &headers, &bytes)));
        }
        let body = if bytes.is_empty() { serde_json::from_slice(b"null") } else { serde_json::from_slice(&bytes) };
        let body = body.map_err(|e| Error::Decode { url, message: e.to_string() });
        Ok((body, index, replayed))
    }
}

/// Query of a group member fetch: `max_records`, `wait_ms` and client-side positions
/// (`from=topic:partition:offset,...`), each only when given.
fn group_fetch_query(
    max_records: Option<u32>,
    wait_ms: Option<u64>,
    from: &[PartitionOffset],
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(m) = max_records {
        q.push(("max_records", m.to_string()));
    }
    if let Some(w) = wait_ms {
        q.push(("wait_ms", w.to_string()));
    }
    if !from.is_empty() {
        let list: Vec<String> = from.iter().map(|p| format!("{}:{}:{}", p.topic, p.partition, p.offset)).collect();
        q.push(("from", list.join(",")));
    }
    q
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > RESPONSE_BYTES_MAX {
            // Truncate: the decode then fails with a clear message.
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn transport(url: &str, e: &reqwest::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    // reqwest's top-level message is terse ("error sending request"): add the cause chain.
    let mut depth = 0;
    while let Some(s) = source {
        if depth >= 4 {
            break;
        }
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    if e.is_timeout() {
        message = format!("timed out ({message})");
    }
    Error::Transport { url: url.to_owned(), message }
}

fn header_u64(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn problem(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Problem {
    let retry_after_s = header_u64(headers, "retry-after");
    match serde_json::from_slice::<Problem>(body) {
        Ok(mut p) => {
            p.retry_after_s = retry_after_s;
            p
        }
        Err(_) => Problem {
            type_: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_owned(),
            code: format!("http_{}", status.as_u16()),
            retry_after_s,
        },
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
fn encode_segment(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Headers of a produced record.
pub type Headers = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_urls() {
        for bad in ["", "127.0.0.1:8080", "ftp://x", "http://", "http://a b"] {
            assert!(matches!(Client::new(bad), Err(Error::InvalidUrl(_))), "{bad:?} accepted");
        }
        let c = Client::new("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn group_fetch_query_lists_only_what_is_given() {
        assert!(group_fetch_query(None, None, &[]).is_empty());
        let from = [
            PartitionOffset { topic: "ledger".into(), partition: 0, offset: 12 },
            PartitionOffset { topic: "ledger".into(), partition: 5, offset: 881 },
        ];
        assert_eq!(
            group_fetch_query(Some(1000), Some(5000), &from),
            vec![
                ("max_records", "1000".to_owned()),
                ("wait_ms", "5000".to_owned()),
                ("from", "ledger:0:12,ledger:5:881".to_owned())
            ]
        );
    }

    #[test]
    fn encodes_path_segments() {
        let c = Client::new("http://h:1").expect("valid");
        assert_eq!(c.url(&["v1", "accounts", "a/b c?"]), "http://h:1/v1/accounts/a%2Fb%20c%3F");
        assert_eq!(c.url(&["v1", "accounts", "Al-1_x.y~"]), "http://h:1/v1/accounts/Al-1_x.y~");
    }

    #[test]
    fn problem_from_body_or_bare_status() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("header"));
        let p = problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &h,
            br#"{"type":"urn:ledger:problem:no_leader","title":"No leader","status":503,"detail":"election","code":"no_leader"}"#,
        );
        assert_eq!((p.status, p.code.as_str(), p.retry_after_s), (503, "no_leader", Some(2)));
        let p = problem(StatusCode::BAD_GATEWAY, &reqwest::header::HeaderMap::new(), b"<html>oops</html>");
        assert_eq!((p.status, p.code.as_str(), p.detail.as_str()), (502, "http_502", "<html>oops</html>"));
        assert!(!Error::Problem(p).is_retryable());
    }
}
