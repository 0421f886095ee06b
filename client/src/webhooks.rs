//! Webhook subscriptions (docs/WEBHOOKS.md): the management calls, and the deliverer's
//! (`projector webhooks`) reads of the subscriptions and reports of finished deliveries.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error, Written};

/// Body of `POST /v1/webhooks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhook {
    /// Id (absent: the gateway makes one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types (`*`, `account.created`, `transfer.created`, `transfer.posted`,
    /// `transfer.voided`, `transfer.expired`).
    pub events: Vec<String>,
    /// Signing secret (absent: the gateway makes one and answers it once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A subscription as `GET /v1/webhooks` shows it (no secret), or as `POST` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Id.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
    /// Log time of its creation.
    #[serde(default)]
    pub created_ms: u64,
    /// Id of the key that created it.
    #[serde(default)]
    pub created_by: String,
    /// Log index of its creation.
    #[serde(default)]
    pub created_index: u64,
    /// Deliveries recorded as delivered.
    #[serde(default)]
    pub delivered_total: u64,
    /// Deliveries recorded as dead.
    #[serde(default)]
    pub dead_total: u64,
    /// The secret, only in the answer to a create that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A subscription with its secret (`GET /v1/webhook-subscriptions`, scope `webhooks:deliver`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Id.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
    /// Log index of its creation: the events of later entries are delivered.
    pub created_index: u64,
}

/// One finished delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Partition of the `ledger` topic.
    pub partition: u32,
    /// Offset there.
    pub offset: u64,
    /// Log index of the event's entry.
    pub event_index: u64,
    /// Event type.
    pub event_type: String,
    /// `delivered` or `dead`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer (0: none).
    pub http_status: u16,
    /// Why the last attempt failed (empty when delivered).
    pub error: String,
    /// The deliverer's clock at the first attempt (ms since the epoch).
    pub first_attempt_ms: u64,
    /// At the last attempt.
    pub last_attempt_ms: u64,
}

/// Answer of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

#[derive(Deserialize)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

#[derive(Deserialize)]
struct SubscriptionList {
    webhooks: Vec<Subscription>,
}

#[derive(Serialize)]
struct Record<'a> {
    deliveries: &'a [Delivery],
}

impl Client {
    /// `POST /v1/webhooks`.
    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<Written<Webhook>, Error> {
        self.write(Method::POST, &["v1", "webhooks"], Some(w)).await
    }

    /// `GET /v1/webhooks`.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        Ok(self.get::<WebhookList>(&["v1", "webhooks"], &[]).await?.webhooks)
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn webhook(&self, id: &str) -> Result<Webhook, Error> {
        self.get(&["v1", "webhooks", id], &[]).await
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<Written<Value>, Error> {
        self.write::<(), _>(Method::DELETE, &["v1", "webhooks", id], None).await
    }

    /// `GET /v1/webhooks/{id}/deliveries[?status=]`.
    pub async fn webhook_deliveries(&self, id: &str, status: Option<&str>) -> Result<DeliveryList, Error> {
        let q: Vec<(&'static str, String)> = status.map(|s| vec![("status", s.to_owned())]).unwrap_or_default();
        self.get(&["v1", "webhooks", id, "deliveries"], &q).await
    }

    /// `POST /v1/webhooks/{id}/deliveries` (the deliverer's report).
    pub async fn record_deliveries(&self, id: &str, deliveries: &[Delivery]) -> Result<Written<Value>, Error> {
        self.write(Method::POST, &["v1", "webhooks", id, "deliveries"], Some(&Record { deliveries })).await
    }

    /// `GET /v1/webhook-subscriptions` (a linearizable read): every subscription with its secret,
    /// and the serving replica's applied index, which every event of an entry at or below it is
    /// readable after.
    pub async fn webhook_subscriptions(&self) -> Result<(Vec<Subscription>, u64), Error> {
        let (list, index) = self.get_indexed::<SubscriptionList>(&["v1", "webhook-subscriptions"], &[]).await?;
        Ok((list.webhooks, index))
    }
}
