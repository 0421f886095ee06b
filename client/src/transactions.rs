//! Issue 17's transactions: several postings under one id, applied atomically, and their reversal.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Consistency, Error, Written};

/// One posting of a new transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPosting {
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Integer minor units.
    pub amount: u64,
    /// Currency of both accounts.
    pub currency: String,
}

/// Body of `POST /v1/transactions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTransaction {
    /// The idempotency key forever; posting `n` becomes the transfer `<id>:<n>`.
    pub id: String,
    /// 1..=100 postings, applied in order, all or none.
    pub postings: Vec<NewPosting>,
    /// A JSON object, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// One posting of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// The posting's transfer (`<transaction id>:<n>`).
    pub transfer_id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount moved.
    pub amount: u64,
    /// Currency.
    pub currency: String,
}

/// A transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Transaction id.
    pub id: String,
    /// The postings, in the order they were applied.
    pub postings: Vec<Posting>,
    /// Metadata object (a reversal's is `{"reverses": "<id>"}`).
    #[serde(default)]
    pub metadata: Value,
    /// Log index of the entry that applied it.
    pub index: u64,
    /// Log time (ms) of that entry.
    pub timestamp_ms: u64,
}

impl Client {
    /// `POST /v1/transactions`: created, or replayed when the same transaction was made before.
    pub async fn create_transaction(&self, tx: &NewTransaction) -> Result<Written<Transaction>, Error> {
        self.write(Method::POST, &["v1", "transactions"], Some(tx)).await
    }

    /// `GET /v1/transactions/{id}`.
    pub async fn transaction(&self, id: &str, consistency: Consistency) -> Result<Transaction, Error> {
        self.get(&["v1", "transactions", id], &consistency.query()).await
    }

    /// `POST /v1/transactions/{id}/revert`: the reversal (created, or replayed when the
    /// transaction was already reverted).
    pub async fn revert_transaction(&self, id: &str) -> Result<Written<Transaction>, Error> {
        self.write::<(), _>(Method::POST, &["v1", "transactions", id, "revert"], None).await
    }
}
