//! `ledger webhook create|list|show|delete|deliveries` (issue 17, docs/WEBHOOKS.md).

use ledger_client::{Client, NewWebhook, Webhook};

use crate::Failure;
use crate::args::WebhookCmd;
use crate::output::{Align, Out, key_values, table};

fn block(w: &Webhook) -> String {
    let mut pairs = vec![
        ("id", w.id.clone()),
        ("url", w.url.clone()),
        ("events", w.events.join(",")),
        ("created by", w.created_by.clone()),
        ("created at index", w.created_index.to_string()),
        ("delivered", w.delivered_total.to_string()),
        ("dead", w.dead_total.to_string()),
    ];
    if let Some(s) = &w.secret {
        pairs.push(("secret", s.clone()));
    }
    key_values(&pairs)
}

/// Runs one `ledger webhook` command.
pub async fn run(client: &Client, out: &Out, cmd: &WebhookCmd) -> Result<(), Failure> {
    match cmd {
        WebhookCmd::Create { url, events, id, secret } => {
            let new = NewWebhook { id: id.clone(), url: url.clone(), events: events.clone(), secret: secret.clone() };
            let w = client.create_webhook(&new).await?;
            if out.json {
                out.json_value(&w.body);
            } else {
                out.text(&block(&w.body));
                if w.body.secret.is_some() {
                    out.text("\nThe secret is shown only now: the subscriber verifies signatures with it.\n");
                }
            }
        }
        WebhookCmd::List => {
            let l = client.webhooks().await?;
            if out.json {
                out.json_value(&l);
            } else {
                let rows: Vec<Vec<String>> = l
                    .iter()
                    .map(|w| {
                        vec![
                            w.id.clone(),
                            w.url.clone(),
                            w.events.join(","),
                            w.delivered_total.to_string(),
                            w.dead_total.to_string(),
                        ]
                    })
                    .collect();
                let headers = [
                    ("ID", Align::Left),
                    ("URL", Align::Left),
                    ("EVENTS", Align::Left),
                    ("DELIVERED", Align::Right),
                    ("DEAD", Align::Right),
                ];
                out.text(&table(&headers, &rows));
            }
        }
        WebhookCmd::Show { id } => {
            let w = client.webhook(id).await?;
            if out.json { out.json_value(&w) } else { out.text(&block(&w)) }
        }
        WebhookCmd::Delete { id } => {
            let w = client.delete_webhook(id).await?;
            if out.json {
                out.json_value(&w.body)
            } else {
                out.text(&format!("deleted webhook {id} (log index {})\n", w.index))
            }
        }
        WebhookCmd::Deliveries { id, status } => {
            let l = client.webhook_deliveries(id, status.as_deref()).await?;
            if out.json {
                out.json_value(&l);
            } else {
                let rows: Vec<Vec<String>> = l
                    .deliveries
                    .iter()
                    .map(|d| {
                        vec![
                            format!("{}:{}", d.partition, d.offset),
                            d.event_type.clone(),
                            d.status.clone(),
                            d.attempts.to_string(),
                            if d.http_status == 0 { "-".to_owned() } else { d.http_status.to_string() },
                            d.error.clone(),
                        ]
                    })
                    .collect();
                let headers = [
                    ("EVENT", Align::Left),
                    ("TYPE", Align::Left),
                    ("STATUS", Align::Left),
                    ("ATTEMPTS", Align::Right),
                    ("HTTP", Align::Right),
                    ("ERROR", Align::Left),
                ];
                out.text(&table(&headers, &rows));
            }
        }
    }
    Ok(())
}
