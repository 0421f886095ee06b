//! `/v1/webhooks`: webhook subscriptions (docs/WEBHOOKS.md). A subscription lives in the
//! replicated log; the deliverer (`projector webhooks`) reads the subscriptions with their secrets
//! from `/v1/webhook-subscriptions`, delivers the `ledger` topic's events and reports each
//! finished delivery to `POST /v1/webhooks/{id}/deliveries`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{read_json, write_json};
use crate::auth::{self, Caller};
use crate::backend::{Delivery, ReadConsistency, Webhook};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::{
    WEBHOOK_ERROR_BYTES_MAX, WEBHOOK_EVENTS_MAX, WEBHOOK_ID_BYTES_MAX, WEBHOOK_RECORD_BATCH_MAX,
    WEBHOOK_SECRET_BYTES_MAX, WEBHOOK_SECRET_BYTES_MIN, WEBHOOK_URL_BYTES_MAX,
};
use crate::openapi::{CreateWebhookErrors, ReadErrors, RecordDeliveriesErrors, WebhookErrors, WebhookReadErrors};
use crate::server::AppState;

/// The event types a webhook may subscribe to (`*`: all of them). The same list as lognode's.
pub const EVENT_TYPES: &[&str] =
    &["*", "account.created", "transfer.created", "transfer.posted", "transfer.voided", "transfer.expired"];

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/ledger-hook", "events": ["transfer.created", "transfer.posted"]}))]
pub struct CreateWebhookRequest {
    /// The subscription's id, 1-64 characters of `[A-Za-z0-9._-]` (absent: `wh-` and 16 hex
    /// digits).
    #[schema(example = "payments-hook", max_length = 64)]
    pub id: Option<String>,
    /// Where deliveries are POSTed: an `http://` or `https://` URL of at most 2048 characters.
    #[schema(example = "https://example.com/ledger-hook", max_length = 2048)]
    pub url: String,
    /// 1-8 event types: `*` (all), `account.created`, `transfer.created`, `transfer.posted`,
    /// `transfer.voided`, `transfer.expired`.
    #[schema(min_items = 1, max_items = 8)]
    pub events: Vec<String>,
    /// The HMAC-SHA256 signing secret, 16-128 visible ASCII characters (absent: `whsec_` and 64
    /// hex digits, answered once).
    #[schema(min_length = 16, max_length = 128)]
    pub secret: Option<String>,
}

/// A subscription, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookBody {
    /// Its id.
    #[schema(example = "payments-hook")]
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered.
    pub events: Vec<String>,
    /// Log time of its creation (ms since the epoch).
    pub created_ms: u64,
    /// Id of the API key that created it.
    pub created_by: String,
    /// Log index of its creation: the events of later entries are delivered.
    pub created_index: u64,
    /// Deliveries ever recorded as delivered.
    pub delivered_total: u64,
    /// Deliveries ever recorded as dead (every attempt failed).
    pub dead_total: u64,
}

impl From<Webhook> for WebhookBody {
    fn from(w: Webhook) -> Self {
        WebhookBody {
            id: w.id,
            url: w.url,
            events: w.events,
            created_ms: w.created_ms,
            created_by: w.created_by,
            created_index: w.created_index,
            delivered_total: w.delivered_total,
            dead_total: w.dead_total,
        }
    }
}

/// A new subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: WebhookBody,
    /// The signing secret, when the gateway made it: shown this once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Log index of the creation.
    pub index: u64,
}

/// Response of `GET /v1/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Every subscription, by id.
    pub webhooks: Vec<WebhookBody>,
}

/// A subscription with its secret (for the deliverer).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookSubscription {
    /// Its id.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
    /// Log index of its creation: the events of later entries are delivered.
    pub created_index: u64,
}

/// Response of `GET /v1/webhook-subscriptions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// Every subscription, by id.
    pub webhooks: Vec<WebhookSubscription>,
}

/// Response of `DELETE /v1/webhooks/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeleted {
    /// The deleted subscription.
    pub deleted: String,
    /// Log index of the deletion.
    pub index: u64,
}

/// Whether a delivery reached its subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// A 2xx answer.
    Delivered,
    /// Every attempt failed: a dead letter.
    Dead,
}

/// One finished delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryBody {
    /// Partition of the `ledger` topic the event is at.
    pub partition: u32,
    /// Its offset there (with the partition, the delivery's id: `Ledger-Delivery-Id` is
    /// `<webhook>:<partition>:<offset>`).
    pub offset: u64,
    /// Log index of the entry that produced the event.
    pub event_index: u64,
    /// Event type.
    #[schema(example = "transfer.created", max_length = 32)]
    pub event_type: String,
    /// Delivered or dead.
    pub status: DeliveryStatus,
    /// Attempts made (at least 1).
    #[schema(minimum = 1)]
    pub attempts: u32,
    /// HTTP status of the last answer (0: none, e.g. a timeout or a refused connection).
    #[schema(maximum = 999)]
    pub http_status: u16,
    /// Why the last attempt failed (empty when delivered).
    #[schema(max_length = 256)]
    pub error: String,
    /// The deliverer's clock at the first attempt (ms since the epoch).
    pub first_attempt_ms: u64,
    /// At the last attempt.
    pub last_attempt_ms: u64,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        DeliveryBody {
            partition: d.partition,
            offset: d.offset,
            event_index: d.event_index,
            event_type: d.event_type,
            status: if d.delivered { DeliveryStatus::Delivered } else { DeliveryStatus::Dead },
            attempts: d.attempts,
            http_status: d.http_status,
            error: d.error,
            first_attempt_ms: d.first_attempt_ms,
            last_attempt_ms: d.last_attempt_ms,
        }
    }
}

/// Response of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first (by the last attempt).
    pub deliveries: Vec<DeliveryBody>,
}

/// Query of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only the dead letters, or only the delivered ones (absent: both). The cluster keeps the
    /// newest 1000 dead and 100 delivered per subscription.
    pub status: Option<DeliveryStatus>,
}

/// Body of `POST /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"deliveries": [{"partition": 3, "offset": 1207, "event_index": 5120,
    "event_type": "transfer.created", "status": "dead", "attempts": 8, "http_status": 503,
    "error": "HTTP 503", "first_attempt_ms": 1764150000123u64, "last_attempt_ms": 1764150127456u64}]}))]
pub struct RecordDeliveriesRequest {
    /// 1-1000 finished deliveries, oldest first.
    #[schema(min_items = 1, max_items = 1000)]
    pub deliveries: Vec<DeliveryBody>,
}

/// Response of `POST /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesRecorded {
    /// Deliveries recorded.
    pub recorded: usize,
    /// Log index of the record.
    pub index: u64,
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= WEBHOOK_ID_BYTES_MAX
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn check_path_id(id: &str) -> Result<(), ApiError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(ErrorCode::InvalidPath, "a webhook id is 1-64 characters of [A-Za-z0-9._-]"))
    }
}

fn invalid(code: ErrorCode, detail: String) -> ApiError {
    ApiError::unprocessable(code, detail)
}

/// Why `url` is not a URL deliveries may go to.
fn check_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!("url: {why}; expected an http:// or https:// URL of at most {WEBHOOK_URL_BYTES_MAX} characters")
    };
    if url.len() > WEBHOOK_URL_BYTES_MAX || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("too long, or not visible ASCII"));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(&format!("scheme {:?}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(())
}

/// Create a webhook subscription.
///
/// From the next event on, every `ledger` event of the subscribed types is POSTed to `url`,
/// signed (docs/WEBHOOKS.md). The deliverer picks it up within its refresh interval.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; `secret` is answered only if the gateway made it.",
            body = CreatedWebhook, headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        CreateWebhookErrors,
    ))]
pub async fn create_webhook(
    State(st): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let random = |e: getrandom::Error| ApiError::internal(format!("no randomness from the operating system: {e}"));
    let id = match req.id {
        Some(id) if is_id(&id) => id,
        Some(_) => {
            return Err(invalid(ErrorCode::InvalidId, "id: 1-64 characters of [A-Za-z0-9._-]".to_owned()));
        }
        None => format!("wh-{}", auth::hex(&auth::random::<8>().map_err(random)?)),
    };
    check_url(&req.url).map_err(|e| invalid(ErrorCode::InvalidBody, e))?;
    if req.events.is_empty() || req.events.len() > WEBHOOK_EVENTS_MAX {
        let n = req.events.len();
        return Err(invalid(ErrorCode::InvalidBody, format!("events: 1..={WEBHOOK_EVENTS_MAX} event types, not {n}")));
    }
    if let Some(e) = req.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        let e: String = e.chars().take(64).collect();
        return Err(invalid(
            ErrorCode::InvalidBody,
            format!("events: unknown event type {e:?}; expected one of {}", EVENT_TYPES.join(", ")),
        ));
    }
    let generated = req.secret.is_none();
    let secret = match req.secret {
        Some(s)
            if (WEBHOOK_SECRET_BYTES_MIN..=WEBHOOK_SECRET_BYTES_MAX).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            s
        }
        Some(_) => {
            return Err(invalid(
                ErrorCode::InvalidBody,
                format!("secret: {WEBHOOK_SECRET_BYTES_MIN}..={WEBHOOK_SECRET_BYTES_MAX} visible ASCII characters"),
            ));
        }
        None => format!("whsec_{}", auth::hex(&auth::random::<32>().map_err(random)?)),
    };
    let hook = Webhook {
        id: id.clone(),
        url: req.url,
        events: req.events,
        secret: secret.clone(),
        created_ms: 0,
        created_by: auth::actor(&caller),
        created_index: 0,
        delivered_total: 0,
        dead_total: 0,
    };
    // The backend's `AlreadyExists` maps to `topic_exists`; here it is the webhook's id.
    let applied = st.call(st.backend().create_webhook(hook.clone())).await.map_err(|e| match e.code {
        ErrorCode::TopicExists => ApiError::new(StatusCode::CONFLICT, ErrorCode::WebhookExists, e.detail),
        _ => e,
    })?;
    let body = CreatedWebhook {
        webhook: WebhookBody { created_ms: applied.value, created_index: applied.index, ..hook.into() },
        secret: generated.then_some(secret),
        index: applied.index,
    };
    Ok(write_json(StatusCode::CREATED, &body, applied.index, false))
}

/// List webhook subscriptions, without their secrets.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every subscription.", body = WebhookList), ReadErrors))]
pub async fn list_webhooks(State(st): State<AppState>) -> Result<Response, ApiError> {
    let read = st.call(st.backend().list_webhooks(ReadConsistency::Strong)).await?;
    let webhooks = read.value.into_iter().map(WebhookBody::from).collect();
    Ok(read_json(&WebhookList { webhooks }, read.applied_index))
}

/// Get one webhook subscription, without its secret, with its delivery counts.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id.", example = "payments-hook")),
    responses((status = 200, description = "The subscription.", body = WebhookBody), WebhookReadErrors))]
pub async fn get_webhook(State(st): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    check_path_id(&id)?;
    let read = st.call(st.backend().list_webhooks(ReadConsistency::Strong)).await?;
    let hook = read.value.into_iter().find(|w| w.id == id).ok_or_else(|| not_found(&id))?;
    Ok(read_json(&WebhookBody::from(hook), read.applied_index))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::WebhookNotFound, format!("no webhook {id:?}"))
}

/// Delete a webhook subscription, with its delivery records.
///
/// Deliveries stop within the deliverer's refresh interval. Not retried after a lost answer: a
/// second delete answers 404 `webhook_not_found`.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id.", example = "payments-hook")),
    responses(
        (status = 200, description = "Deleted.", body = WebhookDeleted,
            headers(("Ledger-Index" = u64, description = "Log index of the deletion."))),
        WebhookErrors,
    ))]
pub async fn delete_webhook(State(st): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    check_path_id(&id)?;
    let applied = st.call(st.backend().delete_webhook(&id)).await?;
    Ok(write_json(StatusCode::OK, &WebhookDeleted { deleted: id, index: applied.index }, applied.index, false))
}

/// A subscription's finished deliveries: the dead letters and the newest delivered ones.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id.", example = "payments-hook"), DeliveriesQuery),
    responses((status = 200, description = "Newest first.", body = DeliveryList), WebhookReadErrors))]
pub async fn list_deliveries(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    check_path_id(&id)?;
    let mut out = Vec::new();
    let mut applied_index = 0;
    for (status, dead) in [(DeliveryStatus::Dead, true), (DeliveryStatus::Delivered, false)] {
        if q.status.is_some_and(|s| s != status) {
            continue;
        }
        let read = st.call(st.backend().webhook_deliveries(&id, dead, ReadConsistency::Strong)).await?;
        applied_index = applied_index.max(read.applied_index);
        out.extend(read.value.into_iter().map(DeliveryBody::from));
    }
    out.sort_by(|a, b| b.last_attempt_ms.cmp(&a.last_attempt_ms).then(b.offset.cmp(&a.offset)));
    Ok(read_json(&DeliveryList { deliveries: out }, applied_index))
}

/// Record finished deliveries (the deliverer's report; scope `webhooks:deliver`).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", request_body = RecordDeliveriesRequest,
    params(("id" = String, Path, description = "Webhook id.", example = "payments-hook")),
    responses(
        (status = 200, description = "Recorded.", body = DeliveriesRecorded,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        RecordDeliveriesErrors,
    ))]
pub async fn record_deliveries(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RecordDeliveriesRequest>,
) -> Result<Response, ApiError> {
    check_path_id(&id)?;
    let n = req.deliveries.len();
    if n == 0 || n > WEBHOOK_RECORD_BATCH_MAX {
        return Err(invalid(ErrorCode::InvalidBody, format!("deliveries: 1..={WEBHOOK_RECORD_BATCH_MAX}, not {n}")));
    }
    let mut deliveries = Vec::with_capacity(n);
    for (i, d) in req.deliveries.into_iter().enumerate() {
        let delivered = d.status == DeliveryStatus::Delivered;
        let bad = if d.error.len() > WEBHOOK_ERROR_BYTES_MAX {
            Some(format!("at most {WEBHOOK_ERROR_BYTES_MAX} bytes of error"))
        } else if d.attempts == 0 {
            Some("attempts is at least 1".to_owned())
        } else if delivered != d.error.is_empty() {
            Some("a delivered delivery has no error; a dead one says why".to_owned())
        } else if d.event_type.is_empty()
            || d.event_type.len() > 32
            || !d.event_type.bytes().all(|b| b.is_ascii_graphic())
        {
            Some("event_type: 1-32 visible ASCII characters".to_owned())
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(invalid(ErrorCode::InvalidBody, format!("deliveries[{i}]: {why}")));
        }
        deliveries.push(Delivery {
            partition: d.partition,
            offset: d.offset,
            event_index: d.event_index,
            event_type: d.event_type,
            delivered,
            attempts: d.attempts,
            http_status: d.http_status,
            error: d.error,
            first_attempt_ms: d.first_attempt_ms,
            last_attempt_ms: d.last_attempt_ms,
        });
    }
    let applied = st.call(st.backend().record_deliveries(&id, deliveries)).await?;
    Ok(write_json(StatusCode::OK, &DeliveriesRecorded { recorded: n, index: applied.index }, applied.index, false))
}

/// The subscriptions with their signing secrets (for the deliverer; scope `webhooks:deliver`).
#[utoipa::path(get, path = "/v1/webhook-subscriptions", tag = "webhooks",
    responses((status = 200, description = "Every subscription, with its secret.", body = SubscriptionList), ReadErrors))]
pub async fn list_subscriptions(State(st): State<AppState>) -> Result<Response, ApiError> {
    let read = st.call(st.backend().list_webhooks(ReadConsistency::Strong)).await?;
    let webhooks = read
        .value
        .into_iter()
        .map(|w| WebhookSubscription {
            id: w.id,
            url: w.url,
            events: w.events,
            secret: w.secret,
            created_index: w.created_index,
        })
        .collect();
    Ok(read_json(&SubscriptionList { webhooks }, read.applied_index))
}
