//! Webhook subscriptions (docs/WEBHOOKS.md) between the gateway's and the client API's forms, and
//! their calls: writes go to the leader, reads to any replica.

use std::time::Duration;

use ledger_proto::ledger as pb;

use super::nodes::{Nodes, Retry, WRITE_RETRY_BUDGET};
use crate::backend::{Applied, BackendError, BackendResult, Delivery, Missing, Read, ReadConsistency, Webhook};

fn to_proto(w: Webhook) -> pb::Webhook {
    pb::Webhook {
        id: w.id,
        url: w.url,
        events: w.events,
        secret: w.secret,
        created_ms: w.created_ms,
        created_by: w.created_by,
        created_index: w.created_index,
        delivered_total: w.delivered_total,
        dead_total: w.dead_total,
    }
}

fn from_proto(w: pb::Webhook) -> Webhook {
    Webhook {
        id: w.id,
        url: w.url,
        events: w.events,
        secret: w.secret,
        created_ms: w.created_ms,
        created_by: w.created_by,
        created_index: w.created_index,
        delivered_total: w.delivered_total,
        dead_total: w.dead_total,
    }
}

fn delivery_to_proto(d: Delivery) -> pb::Delivery {
    pb::Delivery {
        partition: d.partition,
        offset: d.offset,
        event_index: d.event_index,
        event_type: d.event_type,
        delivered: d.delivered,
        attempts: d.attempts,
        http_status: u32::from(d.http_status),
        error: d.error,
        first_attempt_ms: d.first_attempt_ms,
        last_attempt_ms: d.last_attempt_ms,
    }
}

fn delivery_from_proto(d: pb::Delivery) -> Delivery {
    Delivery {
        partition: d.partition,
        offset: d.offset,
        event_index: d.event_index,
        event_type: d.event_type,
        delivered: d.delivered,
        attempts: d.attempts,
        http_status: u16::try_from(d.http_status).unwrap_or(0),
        error: d.error,
        first_attempt_ms: d.first_attempt_ms,
        last_attempt_ms: d.last_attempt_ms,
    }
}

fn not_found(e: BackendError) -> BackendError {
    match e {
        BackendError::NotFound(_, m) => BackendError::NotFound(Missing::Webhook, m),
        e => e,
    }
}

/// Not retried once delivered: a lost answer to a create that was applied would answer
/// `AlreadyExists` to the retry.
pub(super) async fn create(nodes: &Nodes, w: Webhook) -> BackendResult<Applied<u64>> {
    let req = pb::CreateWebhookRequest { webhook: Some(to_proto(w)) };
    let r = nodes
        .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
            let req = req.clone();
            async move { Ok(c.create_webhook(req).await?.into_inner()) }
        })
        .await?;
    Ok(Applied { value: r.timestamp_ms, index: r.log_index })
}

pub(super) async fn delete(nodes: &Nodes, id: &str) -> BackendResult<Applied<()>> {
    let req = pb::DeleteWebhookRequest { id: id.to_owned() };
    let r = nodes
        .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
            let req = req.clone();
            async move { Ok(c.delete_webhook(req).await?.into_inner()) }
        })
        .await
        .map_err(not_found)?;
    Ok(Applied { value: (), index: r.log_index })
}

/// Retried: recording an outcome twice only shows it twice (the deliverer is at least once).
pub(super) async fn record(nodes: &Nodes, id: &str, deliveries: Vec<Delivery>) -> BackendResult<Applied<()>> {
    let req = pb::RecordDeliveriesRequest {
        id: id.to_owned(),
        deliveries: deliveries.into_iter().map(delivery_to_proto).collect(),
    };
    let r = nodes
        .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
            let req = req.clone();
            async move { Ok(c.record_deliveries(req).await?.into_inner()) }
        })
        .await
        .map_err(not_found)?;
    Ok(Applied { value: (), index: r.log_index })
}

pub(super) async fn list(nodes: &Nodes, read: ReadConsistency) -> BackendResult<Read<Vec<Webhook>>> {
    let r = nodes
        .read_call(read, Duration::ZERO, |mut c, opts| async move {
            Ok(c.list_webhooks(pb::ListWebhooksRequest { read: Some(opts) }).await?.into_inner())
        })
        .await?;
    Ok(Read { value: r.webhooks.into_iter().map(from_proto).collect(), applied_index: r.applied_index })
}

pub(super) async fn deliveries(
    nodes: &Nodes,
    id: &str,
    dead: bool,
    read: ReadConsistency,
) -> BackendResult<Read<Vec<Delivery>>> {
    let r = nodes
        .read_call(read, Duration::ZERO, |mut c, opts| {
            let id = id.to_owned();
            async move {
                Ok(c.webhook_deliveries(pb::WebhookDeliveriesRequest { read: Some(opts), id, dead })
                    .await?
                    .into_inner())
            }
        })
        .await
        .map_err(not_found)?;
    Ok(Read { value: r.deliveries.into_iter().map(delivery_from_proto).collect(), applied_index: r.applied_index })
}
