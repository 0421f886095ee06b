//! `ledger tx create|show|revert` (issue 17): transactions of several postings.

use ledger_client::{Client, Consistency, NewTransaction, Transaction, Written};

use crate::Failure;
use crate::args::TxCmd;
use crate::commands::parse_metadata;
use crate::output::{Align, Out, table};

/// Runs one `ledger tx` command.
pub async fn run(client: &Client, out: &Out, cmd: &TxCmd) -> Result<(), Failure> {
    let (w, how): (Written<Transaction>, String) = match cmd {
        TxCmd::Create { id, postings, metadata } => {
            let tx = NewTransaction {
                id: id.clone(),
                postings: postings.clone(),
                metadata: parse_metadata(metadata.as_deref())?,
            };
            let w = client.create_transaction(&tx).await?;
            let how = if w.replayed { "already created (nothing moved again)" } else { "created" };
            (w, format!("transaction {id} {how}"))
        }
        TxCmd::Show { id } => {
            let body = client.transaction(id, Consistency::Strong).await?;
            let index = body.index;
            (Written { body, index, replayed: false }, format!("transaction {id}"))
        }
        TxCmd::Revert { id } => {
            let w = client.revert_transaction(id).await?;
            let how = if w.replayed { "already reverted by" } else { "reverted by" };
            (w.clone(), format!("transaction {id} {how} {}", w.body.id))
        }
    };
    if out.json {
        out.json_value(&w.body);
        return Ok(());
    }
    out.text(&format!("{how} at log index {}", w.body.index));
    let rows: Vec<Vec<String>> = w
        .body
        .postings
        .iter()
        .map(|p| {
            vec![
                p.transfer_id.clone(),
                p.debit_account_id.clone(),
                p.credit_account_id.clone(),
                p.amount.to_string(),
                p.currency.clone(),
            ]
        })
        .collect();
    let headers = [
        ("TRANSFER", Align::Left),
        ("FROM", Align::Left),
        ("TO", Align::Left),
        ("AMOUNT", Align::Right),
        ("CURRENCY", Align::Left),
    ];
    out.text(&table(&headers, &rows));
    if w.body.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        out.text(&format!("metadata: {}", w.body.metadata));
    }
    Ok(())
}
