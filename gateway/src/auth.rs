//! Who may call what (issue 16, docs/SECURITY.md): API keys with scopes.
//!
//! A request carries `Authorization: Bearer <secret>`. The gateway hashes the secret (SHA-256)
//! and looks the hash up in its table of live keys, a copy of the keys the replicated log holds
//! (the log and every node keep only hashes). The table is refreshed from the cluster every
//! [`KEYS_REFRESH_INTERVAL`] with a linearizable read, so a key revoked through any gateway is
//! refused by every gateway within about that interval. Secrets that the gateway makes are 32
//! random bytes, so one SHA-256 is as strong as a slow password hash would be, and costs a
//! microsecond per request.
//!
//! Each operation needs one scope ([`need_of`]; the OpenAPI document lists it on the operation):
//! - `accounts:read`, `accounts:write`, `transfers:read`, `transfers:write`;
//! - `topics:produce:<topic>`, `topics:read:<topic>`, `groups:consume:<group>`, each also as
//!   `...:*` for any name;
//! - `cluster:read` (cluster status, topic and group lists, metrics);
//! - `admin`, which grants every other scope (keys, topic and group deletion, offset resets,
//!   node removal).
//!
//! `/healthz`, `/readyz`, `/openapi.json`, the Swagger UI (`/docs`) and the console's files
//! (`/console`) need no key. `GET /v1/whoami` takes any live key and tells its scopes.
//!
//! A key may also carry an account prefix: it then sees and debits only accounts whose id starts
//! with it (the handlers check, with [`Caller::check_account`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::backend::{ApiKey, ReadConsistency};
use crate::error::{ApiError, ErrorCode};
pub use crate::limits::{KEY_PREFIX_BYTES_MAX, KEY_SCOPES_MAX, KEYS_REFRESH_INTERVAL, SECRET_BYTES_MAX};
use crate::server::AppState;

/// Id of the admin key a cluster is bootstrapped with (`lognode --admin-key-file`).
pub const BOOTSTRAP_KEY_ID: &str = "admin";

/// Whether the gateway asks for keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every route but health, readiness and the API document needs an API key.
    #[default]
    Keys,
    /// No authentication (loopback only, for experiments).
    None,
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone may call it.
    Public,
    /// This scope.
    Scope(&'static str),
    /// `<prefix>:<the path parameter>` (or `<prefix>:*`), e.g. `topics:produce:orders`.
    Named(&'static str, &'static str),
    /// Any live key, whatever its scopes (`GET /v1/whoami`).
    AnyKey,
}

impl Need {
    /// The scopes as the OpenAPI document lists them (`topics:produce:{topic}` for a named one;
    /// none for any key); `None` for a public operation.
    pub fn doc(self) -> Option<Vec<String>> {
        match self {
            Need::Public => None,
            Need::Scope(s) => Some(vec![s.to_owned()]),
            Need::Named(prefix, param) => Some(vec![format!("{prefix}:{{{param}}}")]),
            Need::AnyKey => Some(Vec::new()),
        }
    }
}

/// The scope each operation (by operationId) needs. Every operation of the document is here (a
/// test walks the document); an unknown one needs `admin`.
pub fn need_of(operation_id: &str) -> Need {
    match operation_id {
        "getHealth" | "getReadiness" | "getOpenapi" => Need::Public,
        "whoami" => Need::AnyKey,
        "createAccount" => Need::Scope("accounts:write"),
        "getAccount" | "getAccountHistory" | "getAccountStatement" | "listAccounts" => Need::Scope("accounts:read"),
        "createTransfer"
        | "createTransfers"
        | "postPendingTransfer"
        | "voidPendingTransfer"
        | "revertTransfer"
        | "createTransaction"
        | "revertTransaction" => Need::Scope("transfers:write"),
        "getTransfer" | "listTransfers" | "getTransaction" => Need::Scope("transfers:read"),
        "createWebhook" | "deleteWebhook" => Need::Scope("webhooks:write"),
        "listWebhooks" | "getWebhook" | "listWebhookDeliveries" => Need::Scope("webhooks:read"),
        "recordWebhookDeliveries" | "listWebhookSubscriptions" => Need::Scope("webhooks:deliver"),
        "listTopics" | "listGroups" | "getCluster" | "getMetrics" => Need::Scope("cluster:read"),
        "produceRecords" => Need::Named("topics:produce", "topic"),
        "fetchRecords" => Need::Named("topics:read", "topic"),
        "describeGroup" | "joinGroup" | "heartbeat" | "fetchGroupRecords" | "commitOffsets" | "leaveGroup" => {
            Need::Named("groups:consume", "group")
        }
        _ => Need::Scope("admin"),
    }
}

/// Fixed scopes (without a name).
const PLAIN_SCOPES: &[&str] = &[
    "admin",
    "cluster:read",
    "accounts:read",
    "accounts:write",
    "transfers:read",
    "transfers:write",
    "webhooks:read",
    "webhooks:write",
    "webhooks:deliver",
];
/// Scopes that take a topic or group name (or `*`).
const NAMED_SCOPES: &[&str] = &["topics:produce", "topics:read", "groups:consume"];

/// Why a scope is not one the gateway knows, or `Ok` for a valid one.
pub fn check_scope(scope: &str) -> Result<(), String> {
    if PLAIN_SCOPES.contains(&scope) {
        return Ok(());
    }
    if let Some((prefix, name)) = scope.rsplit_once(':')
        && NAMED_SCOPES.contains(&prefix)
    {
        if name == "*" || crate::validate::topic_name(name).is_ok() {
            return Ok(());
        }
        return Err(format!("scope {scope:?}: {prefix}: takes a topic or group name of [A-Za-z0-9._-], or *"));
    }
    Err(format!(
        "unknown scope {scope:?}: expected one of {} or {}:<name|*>",
        PLAIN_SCOPES.join(", "),
        NAMED_SCOPES.join(":<name|*>, ")
    ))
}

/// SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new secret: `lk_` and 64 hex digits (32 random bytes from the operating system).
pub fn new_secret() -> Result<String, getrandom::Error> {
    Ok(format!("lk_{}", hex(&random::<32>()?)))
}

/// A new key id: `key-` and 16 hex digits.
pub fn new_key_id() -> Result<String, getrandom::Error> {
    Ok(format!("key-{}", hex(&random::<8>()?)))
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)?;
    Ok(b)
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Who made a request: the key it presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's id (never its secret).
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its account prefix ("" for every account).
    pub account_prefix: String,
}

impl Caller {
    /// Whether the key holds `scope` (or `admin`, or the `:*` form of a named scope).
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| {
            s == "admin"
                || s == scope
                || s.strip_suffix('*')
                    .is_some_and(|p| p.ends_with(':') && scope.starts_with(p) && !scope[p.len()..].contains(':'))
        })
    }

    /// 403 unless the key may touch account `id` (its prefix).
    pub fn check_account(&self, id: &str) -> Result<(), ApiError> {
        if id.starts_with(&self.account_prefix) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("key {} may only touch accounts whose id starts with {:?}", self.id, self.account_prefix),
        ))
    }

    /// 403 unless the key holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.allows(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("key {} lacks the scope {scope:?}", self.id),
        ))
    }
}

/// The caller of a request, as handlers extract it: `None` with `--auth none`.
pub type MaybeCaller = Option<axum::Extension<Arc<Caller>>>;

/// Who asked, for the audit trail: the caller's key id, or `unauthenticated` with `--auth none`.
pub fn actor(caller: &MaybeCaller) -> String {
    caller.as_ref().map_or_else(|| "unauthenticated".to_owned(), |c| c.id.clone())
}

/// 403 unless the caller (if any) may touch account `id`.
pub fn check_account(caller: &MaybeCaller, id: &str) -> Result<(), ApiError> {
    match caller {
        Some(c) => c.check_account(id),
        None => Ok(()),
    }
}

/// The caller's account prefix, when it has a non-empty one.
pub fn prefix_of(caller: &MaybeCaller) -> Option<&str> {
    caller.as_ref().map(|c| c.account_prefix.as_str()).filter(|p| !p.is_empty())
}

/// Live keys by the SHA-256 of their secret.
type ByHash = HashMap<[u8; 32], Arc<Caller>>;

/// The live keys as last loaded, by the hash of their secret (`None` before the first load),
/// and their quotas.
#[derive(Default)]
pub struct KeyTable {
    table: RwLock<Option<Arc<ByHash>>>,
    quotas: crate::quota::Quotas,
}

impl KeyTable {
    /// Replaces the table with `keys`.
    pub fn load(&self, keys: Vec<ApiKey>) {
        self.quotas.sync(keys.iter().map(|k| (k.id.as_str(), k.quota)));
        let map = keys
            .into_iter()
            .map(|k| {
                let c = Caller { id: k.id, scopes: k.scopes, account_prefix: k.account_prefix };
                (k.secret_hash, Arc::new(c))
            })
            .collect();
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(map));
    }

    /// The key whose secret is `secret`: `Err(())` before the first load.
    #[allow(clippy::result_unit_err)]
    pub fn find(&self, secret: &str) -> Result<Option<Arc<Caller>>, ()> {
        let t = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone().ok_or(())?;
        Ok(t.get(&hash_secret(secret)).cloned())
    }

    /// The keys' quotas.
    pub fn quotas(&self) -> &crate::quota::Quotas {
        &self.quotas
    }

    /// Keys loaded (0 before the first load).
    pub fn len(&self) -> usize {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map_or(0, |t| t.len())
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reloads the keys now (after this gateway changed them, and from the refresher).
pub async fn refresh(st: &AppState) -> Result<(), crate::backend::BackendError> {
    let keys = st.call_raw(st.backend().list_keys(ReadConsistency::Strong)).await?;
    st.keys().load(keys.value);
    Ok(())
}

/// Starts the task that reloads the keys every [`KEYS_REFRESH_INTERVAL`]; it ends with the
/// application. Needs a Tokio runtime (none: nothing starts, and keyed requests answer 503).
pub(crate) fn start_refresher(st: &AppState) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no Tokio runtime: API keys are never loaded");
        return;
    };
    let weak = st.downgrade();
    rt.spawn(async move {
        let mut failures = 0u32;
        loop {
            let Some(st) = AppState::upgrade(&weak) else { return };
            match refresh(&st).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    // Logged once per 40 failures in a row (10 s): an election is routine.
                    if failures % 40 == 1 {
                        tracing::warn!(error = %e, failures, "cannot reload the API keys; keeping the last ones");
                    }
                }
            }
            drop(st);
            tokio::time::sleep(KEYS_REFRESH_INTERVAL).await;
        }
    });
}

/// The operationId of a request: its method and matched route.
fn operation_id(req: &Request) -> Option<&'static str> {
    let path = req.extensions().get::<MatchedPath>()?.as_str();
    let m = req.method().as_str().to_ascii_lowercase();
    crate::openapi::OPERATION_IDS.iter().find(|(om, op, _)| *om == m && *op == path).map(|(_, _, id)| *id)
}

/// The value of path parameter `name` of `req` (raw, as matched; names have no escapes).
fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    let template = req.extensions().get::<MatchedPath>()?.as_str();
    let at = template.split('/').position(|seg| seg == format!("{{{name}}}"))?;
    req.uri().path().split('/').nth(at)
}

fn unauthorized(detail: impl Into<String>) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The middleware: with `--auth keys`, every operation but the public ones needs a known key
/// holding its scope (401 `unauthorized` without one, 403 `forbidden` without the scope); the
/// caller goes into the request's extensions for the handlers' finer checks.
pub(crate) async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if st.config().auth == AuthMode::None {
        return next.run(req).await;
    }
    let need = match operation_id(&req) {
        Some(op) => need_of(op),
        // The Swagger UI's and the console's pages and assets (the console asks for a key itself).
        None if req.uri().path().starts_with("/docs") || req.uri().path().starts_with("/console") => Need::Public,
        None => Need::Scope("admin"),
    };
    if need == Need::Public {
        return next.run(req).await;
    }
    let secret = match req.headers().get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => return unauthorized("this operation needs an API key: `Authorization: Bearer <key>`"),
        Some(Ok(v)) => match v.strip_prefix("Bearer ") {
            Some(s) if !s.is_empty() && s.len() <= SECRET_BYTES_MAX => s.trim(),
            _ => {
                return unauthorized(format!(
                    "the Authorization header must be `Bearer <key>` with a key of 1..={SECRET_BYTES_MAX} bytes"
                ));
            }
        },
        Some(Err(_)) => return unauthorized("the Authorization header is not visible ASCII"),
    };
    let caller = match st.keys().find(secret) {
        Ok(Some(c)) => c,
        Ok(None) => return unauthorized("unknown or revoked API key"),
        Err(()) => {
            return ApiError::unavailable(
                ErrorCode::Unavailable,
                "the gateway has not loaded the API keys from the cluster yet",
                st.config().retry_after_secs,
            )
            .into_response();
        }
    };
    let scope = match need {
        Need::Scope(s) => Some(s.to_owned()),
        Need::Named(prefix, param) => Some(format!("{prefix}:{}", path_param(&req, param).unwrap_or_default())),
        Need::AnyKey => None,
        Need::Public => unreachable!("returned above"),
    };
    if let Some(scope) = scope
        && let Err(e) = caller.require(&scope)
    {
        return e.into_response();
    }
    let permit = match st.keys().quotas().of(&caller.id).admit() {
        Ok(p) => p,
        Err(t) => return throttled(&caller.id, t),
    };
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    drop(permit);
    resp
}

/// 429 for a key over its quota, with `Retry-After` (whole seconds, at least 1).
fn throttled(id: &str, t: crate::quota::Throttled) -> Response {
    use crate::quota::Throttled;
    let (code, detail, secs) = match t {
        Throttled::Rate(wait) => (
            ErrorCode::RateLimited,
            format!("key {id} is over its rate of requests; the next one is allowed in {} ms", wait.as_millis()),
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ),
        Throttled::InFlight => (ErrorCode::InFlightExceeded, format!("key {id} has its most requests in flight"), 1),
    };
    ApiError { retry_after_secs: Some(secs), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, detail) }
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str]) -> Caller {
        Caller {
            id: "k".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            account_prefix: "t1-".into(),
        }
    }

    /// `admin` grants everything, `:*` any one name, nothing else leaks across.
    #[test]
    fn scopes_grant_what_they_name() {
        assert!(key(&["admin"]).allows("topics:produce:orders"));
        assert!(key(&["topics:produce:*"]).allows("topics:produce:orders"));
        assert!(!key(&["topics:produce:*"]).allows("topics:read:orders"));
        assert!(key(&["topics:read:orders"]).allows("topics:read:orders"));
        assert!(!key(&["topics:read:orders"]).allows("topics:read:orders2"));
        assert!(!key(&["accounts:read"]).allows("accounts:write"));
        assert!(!key(&["groups:consume:*"]).allows("groups:consume:a:b"));
        assert!(!key(&[]).allows("cluster:read"));
    }

    /// Scopes are checked at creation; the message names what is expected.
    #[test]
    fn unknown_scopes_are_refused() {
        for ok in ["admin", "accounts:read", "topics:produce:*", "groups:consume:projector", "topics:read:a.b-c_d"] {
            check_scope(ok).expect(ok);
        }
        for bad in ["", "root", "accounts:delete", "topics:produce:", "topics:produce:a b", "groups:consume:x:y"] {
            let e = check_scope(bad).expect_err(bad);
            assert!(e.contains("scope"), "{bad}: {e}");
        }
    }

    /// A prefix key touches only its accounts.
    #[test]
    fn account_prefix_is_enforced() {
        key(&["accounts:read"]).check_account("t1-alice").expect("own account");
        let e = key(&["accounts:read"]).check_account("t2-bob").expect_err("other tenant");
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    /// Secrets are long, random and distinct; the table finds a key by its secret only.
    #[test]
    fn secrets_are_random_and_looked_up_by_hash() {
        let (a, b) = (new_secret().expect("random"), new_secret().expect("random"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        let t = KeyTable::default();
        assert_eq!(t.find(&a), Err(()), "nothing loaded yet");
        t.load(vec![ApiKey {
            id: "k1".into(),
            secret_hash: hash_secret(&a),
            scopes: vec!["admin".into()],
            account_prefix: String::new(),
            created_ms: 0,
            created_by: "bootstrap".into(),
            quota: crate::backend::Quota::default(),
        }]);
        assert_eq!(t.find(&a).expect("loaded").map(|c| c.id.clone()).as_deref(), Some("k1"));
        assert_eq!(t.find(&b).expect("loaded"), None);
    }
}
