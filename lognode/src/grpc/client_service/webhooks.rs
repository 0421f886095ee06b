//! The webhook calls of the client API (docs/WEBHOOKS.md): CreateWebhook, DeleteWebhook and
//! RecordDeliveries are leader writes of [`Cmd::Webhooks`]; ListWebhooks and WebhookDeliveries
//! read this node's applied state.

use ledger_proto::ledger::{
    CreateWebhookRequest, DeleteWebhookRequest, Delivery, ListWebhooksRequest, ListWebhooksResponse,
    RecordDeliveriesRequest, Webhook, WebhookDeliveriesRequest, WebhookDeliveriesResponse, WebhookWriteResponse,
};
use tonic::{Request, Response, Status};

use super::{ClientService, now_ms_u64, rejection};
use crate::limits::WEBHOOK_RECORD_BATCH_MAX;
use crate::store::state_machine::webhooks;
use crate::types::{DeliveryRecord, Request as Cmd, Response as CmdResponse, WebhookCommand, WebhookRecord};

fn to_proto(w: &webhooks::Webhook) -> Webhook {
    let r = &w.record;
    Webhook {
        id: r.id.clone(),
        url: r.url.clone(),
        events: r.events.clone(),
        secret: r.secret.clone(),
        created_ms: r.created_ms,
        created_by: r.created_by.clone(),
        created_index: r.created_index,
        delivered_total: w.delivered_total,
        dead_total: w.dead_total,
    }
}

fn delivery_to_proto(d: &DeliveryRecord) -> Delivery {
    Delivery {
        partition: d.partition,
        offset: d.offset,
        event_index: d.event_index,
        event_type: d.event_type.clone(),
        delivered: d.delivered,
        attempts: d.attempts,
        http_status: u32::from(d.http_status),
        error: d.error.clone(),
        first_attempt_ms: d.first_attempt_ms,
        last_attempt_ms: d.last_attempt_ms,
    }
}

fn delivery_from_proto(d: Delivery) -> Result<DeliveryRecord, Status> {
    let http_status = u16::try_from(d.http_status)
        .map_err(|_| Status::invalid_argument(format!("http_status {} is not an HTTP status", d.http_status)))?;
    let r = DeliveryRecord {
        partition: d.partition,
        offset: d.offset,
        event_index: d.event_index,
        event_type: d.event_type,
        delivered: d.delivered,
        attempts: d.attempts,
        http_status,
        error: d.error,
        first_attempt_ms: d.first_attempt_ms,
        last_attempt_ms: d.last_attempt_ms,
    };
    webhooks::check_delivery(&r).map_err(Status::invalid_argument)?;
    Ok(r)
}

impl ClientService {
    /// Writes a webhook command; the log index and the entry's timestamp.
    async fn write_webhook(&self, command: WebhookCommand) -> Result<WebhookWriteResponse, Status> {
        self.check_leader()?;
        let timestamp_ms = now_ms_u64();
        match self.write(Cmd::Webhooks { timestamp_ms, command }).await? {
            (CmdResponse::WebhookDone, log_index) => Ok(WebhookWriteResponse { log_index, timestamp_ms }),
            (CmdResponse::Rejected(r), _) => Err(rejection(r)),
            (other, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    pub(crate) async fn create_webhook_call(
        &self,
        request: Request<CreateWebhookRequest>,
    ) -> Result<Response<WebhookWriteResponse>, Status> {
        let w = request.into_inner().webhook.ok_or_else(|| Status::invalid_argument("no webhook"))?;
        let record = WebhookRecord {
            id: w.id,
            url: w.url,
            events: w.events,
            secret: w.secret,
            created_ms: 0,
            created_index: 0,
            created_by: w.created_by,
        };
        webhooks::check(&record).map_err(Status::invalid_argument)?;
        Ok(Response::new(self.write_webhook(WebhookCommand::Create(record)).await?))
    }

    pub(crate) async fn delete_webhook_call(
        &self,
        request: Request<DeleteWebhookRequest>,
    ) -> Result<Response<WebhookWriteResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(self.write_webhook(WebhookCommand::Delete { id }).await?))
    }

    pub(crate) async fn record_deliveries_call(
        &self,
        request: Request<RecordDeliveriesRequest>,
    ) -> Result<Response<WebhookWriteResponse>, Status> {
        let r = request.into_inner();
        if r.deliveries.len() > WEBHOOK_RECORD_BATCH_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {WEBHOOK_RECORD_BATCH_MAX} deliveries per call (WEBHOOK_RECORD_BATCH_MAX), not {}",
                r.deliveries.len()
            )));
        }
        let deliveries = r.deliveries.into_iter().map(delivery_from_proto).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(self.write_webhook(WebhookCommand::Record { id: r.id, deliveries }).await?))
    }

    pub(crate) async fn list_webhooks_call(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        self.prepare_read(request.get_ref().read.as_ref()).await?;
        let (webhooks, applied_index) = self
            .sm
            .with_state(|s| (s.webhooks.live.values().map(to_proto).collect(), s.last_applied.map_or(0, |l| l.index)));
        Ok(Response::new(ListWebhooksResponse { webhooks, applied_index }))
    }

    pub(crate) async fn webhook_deliveries_call(
        &self,
        request: Request<WebhookDeliveriesRequest>,
    ) -> Result<Response<WebhookDeliveriesResponse>, Status> {
        self.prepare_read(request.get_ref().read.as_ref()).await?;
        let r = request.into_inner();
        let (found, applied_index) = self.sm.with_state(|s| {
            let list = s.webhooks.live.get(&r.id).map(|w| {
                let q = if r.dead { &w.dead } else { &w.delivered };
                q.iter().rev().map(delivery_to_proto).collect::<Vec<_>>()
            });
            (list, s.last_applied.map_or(0, |l| l.index))
        });
        let deliveries = found.ok_or_else(|| Status::not_found(format!("no webhook {:?}", r.id)))?;
        Ok(Response::new(WebhookDeliveriesResponse { deliveries, applied_index }))
    }
}
