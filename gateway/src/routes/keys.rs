//! `/v1/keys`: API keys (admin; `crate::auth`, docs/SECURITY.md).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{read_json, write_json};
use crate::auth::{self, Caller, KEY_PREFIX_BYTES_MAX, KEY_SCOPES_MAX};
use crate::backend::{ApiKey, Quota, ReadConsistency};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath};
use crate::limits::KEY_QUOTA_MAX;
use crate::openapi::{CreateKeyErrors, ReadErrors, RevokeKeyErrors, WhoamiErrors};
use crate::server::AppState;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scopes": ["accounts:read", "transfers:write"], "account_prefix": "tenant-7:"}))]
pub struct CreateKeyRequest {
    /// 1–32 scopes: `admin`, `cluster:read`, `accounts:read`, `accounts:write`, `transfers:read`,
    /// `transfers:write`, `topics:produce:<topic|*>`, `topics:read:<topic|*>`,
    /// `groups:consume:<group|*>`.
    #[schema(min_items = 1, max_items = 32)]
    pub scopes: Vec<String>,
    /// Only accounts whose id starts with this (absent or empty: every account). At most 128
    /// characters of the account-id alphabet `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(example = "tenant-7:", max_length = 128)]
    pub account_prefix: Option<String>,
    /// Requests a second this key may make at each gateway (absent or 0: no limit); past it 429
    /// `rate_limited`.
    #[serde(default)]
    #[schema(maximum = 1000000)]
    pub rate_per_sec: Option<u32>,
    /// Requests a burst may take at once (absent or 0: one second of `rate_per_sec`).
    #[serde(default)]
    #[schema(maximum = 1000000)]
    pub burst: Option<u32>,
    /// Requests this key may have in flight at each gateway (absent or 0: no limit); past it 429
    /// `in_flight_exceeded`.
    #[serde(default)]
    #[schema(maximum = 1000000)]
    pub max_in_flight: Option<u32>,
}

/// A key's quotas in a response (0: none).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaBody {
    /// Requests a second at each gateway.
    pub rate_per_sec: u32,
    /// Requests a burst may take at once.
    pub burst: u32,
    /// Requests in flight at each gateway.
    pub max_in_flight: u32,
}

impl From<Quota> for QuotaBody {
    fn from(q: Quota) -> Self {
        QuotaBody { rate_per_sec: q.rate_per_sec, burst: q.burst, max_in_flight: q.max_in_flight }
    }
}

/// A new key, with its secret: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "key-5f0c2a9d81e34b27", "secret": "lk_9b1d…", "scopes": ["accounts:read"],
    "account_prefix": "", "index": 42}))]
pub struct CreatedKey {
    /// The key's id (for listing and revoking).
    pub id: String,
    /// The secret to send as `Authorization: Bearer <secret>`. Store it now: the cluster keeps
    /// only its SHA-256.
    pub secret: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its account prefix ("" for every account).
    pub account_prefix: String,
    /// Its quotas.
    pub quota: QuotaBody,
    /// Log index of the key's creation.
    pub index: u64,
}

/// A live key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody {
    /// The key's id.
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its account prefix ("" for every account).
    pub account_prefix: String,
    /// When it was created (log time, ms since the epoch).
    pub created_ms: u64,
    /// Id of the key that created it (`bootstrap` for the cluster's first admin key).
    pub created_by: String,
    /// Its quotas.
    pub quota: QuotaBody,
}

/// Response of `GET /v1/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Every live key, by id.
    pub keys: Vec<KeyBody>,
}

/// Response of `DELETE /v1/keys/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"revoked": "key-5f0c2a9d81e34b27", "index": 57}))]
pub struct KeyRevoked {
    /// The revoked key.
    pub revoked: String,
    /// Log index of the revocation.
    pub index: u64,
}

fn invalid_scope(detail: String) -> ApiError {
    ApiError::unprocessable(ErrorCode::InvalidScope, detail)
}

/// Create an API key (admin).
///
/// Answers the key's secret, once: the log and every node keep only its SHA-256. Every gateway
/// accepts the key within about a second.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown only now.", body = CreatedKey,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        CreateKeyErrors,
    ))]
pub async fn create_key(
    State(st): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    if req.scopes.is_empty() || req.scopes.len() > KEY_SCOPES_MAX {
        return Err(invalid_scope(format!("a key has 1..={KEY_SCOPES_MAX} scopes, not {}", req.scopes.len())));
    }
    for s in &req.scopes {
        auth::check_scope(s).map_err(invalid_scope)?;
    }
    let prefix = req.account_prefix.unwrap_or_default();
    if prefix.len() > KEY_PREFIX_BYTES_MAX || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidId,
            format!("account_prefix: at most {KEY_PREFIX_BYTES_MAX} characters of [A-Za-z0-9._:-]"),
        ));
    }
    let quota = Quota {
        rate_per_sec: req.rate_per_sec.unwrap_or(0),
        burst: req.burst.unwrap_or(0),
        max_in_flight: req.max_in_flight.unwrap_or(0),
    };
    if [quota.rate_per_sec, quota.burst, quota.max_in_flight].iter().any(|n| *n > KEY_QUOTA_MAX) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidBody,
            format!("rate_per_sec, burst and max_in_flight are at most {KEY_QUOTA_MAX}"),
        ));
    }
    let random = |e: getrandom::Error| ApiError::internal(format!("no randomness from the operating system: {e}"));
    let (id, secret) = (auth::new_key_id().map_err(random)?, auth::new_secret().map_err(random)?);
    let key = ApiKey {
        id: id.clone(),
        secret_hash: auth::hash_secret(&secret),
        scopes: req.scopes.clone(),
        account_prefix: prefix.clone(),
        created_ms: 0,
        created_by: auth::actor(&caller),
        quota,
    };
    let applied = st.call(st.backend().create_key(key)).await?;
    // This gateway knows the key at once; the others within their refresh interval.
    if let Err(e) = auth::refresh(&st).await {
        tracing::debug!(error = %e, "keys not reloaded after a create");
    }
    let body = CreatedKey {
        id,
        secret,
        scopes: req.scopes,
        account_prefix: prefix,
        quota: quota.into(),
        index: applied.index,
    };
    Ok(write_json(StatusCode::CREATED, &body, applied.index, false))
}

/// List API keys (admin), without their secrets.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, description = "Every live key.", body = KeyList), ReadErrors))]
pub async fn list_keys(State(st): State<AppState>) -> Result<Response, ApiError> {
    let read = st.call(st.backend().list_keys(ReadConsistency::Strong)).await?;
    let keys = read
        .value
        .into_iter()
        .map(|k| KeyBody {
            id: k.id,
            scopes: k.scopes,
            account_prefix: k.account_prefix,
            created_ms: k.created_ms,
            created_by: k.created_by,
            quota: k.quota.into(),
        })
        .collect();
    Ok(read_json(&KeyList { keys }, read.applied_index))
}

/// Revoke an API key (admin).
///
/// Every gateway refuses the key within about a second. Not retried after a lost answer: a
/// second revoke answers 404 `key_not_found`.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id.", example = "key-5f0c2a9d81e34b27")),
    responses(
        (status = 200, description = "Revoked.", body = KeyRevoked,
            headers(("Ledger-Index" = u64, description = "Log index of the revocation."))),
        RevokeKeyErrors,
    ))]
pub async fn revoke_key(
    State(st): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::bad_request(ErrorCode::InvalidPath, "a key id is 1-64 characters of [A-Za-z0-9._-]"));
    }
    let applied = st.call(st.backend().revoke_key(&id, &auth::actor(&caller))).await?;
    if let Err(e) = auth::refresh(&st).await {
        tracing::debug!(error = %e, "keys not reloaded after a revoke");
    }
    Ok(write_json(StatusCode::OK, &KeyRevoked { revoked: id, index: applied.index }, applied.index, false))
}

/// Answer of `GET /v1/whoami`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"auth": "keys", "key_id": "key-5f0c2a9d81e34b27", "scopes": ["accounts:read"],
    "account_prefix": "tenant-7:"}))]
pub struct Whoami {
    /// `keys`: the gateway asks for API keys; `none` (`--auth none`): every operation is open to
    /// anyone, as if with `admin`.
    pub auth: String,
    /// The key's id (absent with `--auth none`).
    pub key_id: Option<String>,
    /// The key's scopes (`["admin"]` with `--auth none`).
    pub scopes: Vec<String>,
    /// Only accounts whose id starts with this ("" for every account).
    pub account_prefix: String,
}

/// Who am I: the presented key's id and scopes (any live key).
///
/// What a client, such as the console, shows and hides: an action needs the scope that the
/// OpenAPI document lists on its operation.
#[utoipa::path(get, path = "/v1/whoami", tag = "keys",
    responses((status = 200, description = "The key.", body = Whoami), WhoamiErrors))]
pub async fn whoami(caller: Option<Extension<Arc<Caller>>>) -> Response {
    let body = match caller {
        Some(Extension(c)) => Whoami {
            auth: "keys".to_owned(),
            key_id: Some(c.id.clone()),
            scopes: c.scopes.clone(),
            account_prefix: c.account_prefix.clone(),
        },
        None => Whoami {
            auth: "none".to_owned(),
            key_id: None,
            scopes: vec!["admin".to_owned()],
            account_prefix: String::new(),
        },
    };
    super::json(StatusCode::OK, &body)
}
