//! Issue 17's routes: the queries (`GET /v1/accounts`, `GET /v1/transfers`), statements and
//! reversals.

use reqwest::Method;

use crate::{AccountList, AccountsQuery, Client, Error, Statement, Transfer, TransferList, TransfersQuery, Written};

/// The query pairs of the options that are set.
fn pairs<const N: usize>(options: [(&'static str, Option<String>); N]) -> Vec<(&'static str, String)> {
    options.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

fn metadata(query: &mut Vec<(&'static str, String)>, m: Option<&(String, String)>) {
    if let Some((k, v)) = m {
        query.push(("metadata_key", k.clone()));
        query.push(("metadata_value", v.clone()));
    }
}

impl Client {
    /// `GET /v1/accounts`: a page of accounts in creation order, filtered.
    pub async fn list_accounts(&self, q: &AccountsQuery) -> Result<AccountList, Error> {
        let mut query = pairs([
            ("prefix", q.prefix.clone()),
            ("currency", q.currency.clone()),
            ("after", q.after.map(|a| a.to_string())),
            ("at_index", q.at_index.map(|a| a.to_string())),
            ("limit", q.limit.map(|l| l.to_string())),
        ]);
        metadata(&mut query, q.metadata.as_ref());
        self.get(&["v1", "accounts"], &query).await
    }

    /// `GET /v1/transfers`: a page of transfers in creation order, filtered.
    pub async fn list_transfers(&self, q: &TransfersQuery) -> Result<TransferList, Error> {
        let n = |v: Option<u64>| v.map(|v| v.to_string());
        let mut query = pairs([
            ("account_id", q.account_id.clone()),
            ("status", q.status.clone()),
            ("from_index", n(q.from_index)),
            ("to_index", n(q.to_index)),
            ("from_ms", n(q.from_ms)),
            ("to_ms", n(q.to_ms)),
            ("after", n(q.after)),
            ("at_index", n(q.at_index)),
            ("limit", q.limit.map(|l| l.to_string())),
        ]);
        metadata(&mut query, q.metadata.as_ref());
        self.get(&["v1", "transfers"], &query).await
    }

    /// `GET /v1/accounts/{id}/balances`: a page of the account's statement over log indexes
    /// `from_index..=to_index` (defaults: from its creation, to the serving replica's applied
    /// index; give the first page's `to_index` with `after`).
    pub async fn statement(
        &self,
        id: &str,
        from_index: Option<u64>,
        to_index: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Statement, Error> {
        let n = |v: Option<u64>| v.map(|v| v.to_string());
        let query = pairs([
            ("from_index", n(from_index)),
            ("to_index", n(to_index)),
            ("after", n(after)),
            ("limit", limit.map(|l| l.to_string())),
        ]);
        self.get(&["v1", "accounts", id, "balances"], &query).await
    }

    /// `POST /v1/transfers/{id}/revert`: the reversal of a posted transfer (created, or replayed
    /// when it was already reverted).
    pub async fn revert_transfer(&self, id: &str) -> Result<Written<Transfer>, Error> {
        self.write::<(), _>(Method::POST, &["v1", "transfers", id, "revert"], None).await
    }
}
