//! API keys between the gateway's and the client API's forms.

pub(super) fn key_to_proto(k: crate::backend::ApiKey) -> ledger_proto::ledger::ApiKey {
    ledger_proto::ledger::ApiKey {
        id: k.id,
        secret_hash: k.secret_hash.to_vec(),
        scopes: k.scopes,
        account_prefix: k.account_prefix,
        created_ms: k.created_ms,
        created_by: k.created_by,
        rate_per_sec: k.quota.rate_per_sec,
        burst: k.quota.burst,
        max_in_flight: k.quota.max_in_flight,
    }
}

pub(super) fn key_from_proto(k: ledger_proto::ledger::ApiKey) -> Result<crate::backend::ApiKey, String> {
    let secret_hash = <[u8; 32]>::try_from(k.secret_hash.as_slice())
        .map_err(|_| format!("key {}: a secret hash of {} bytes, not 32", k.id, k.secret_hash.len()))?;
    Ok(crate::backend::ApiKey {
        id: k.id,
        secret_hash,
        scopes: k.scopes,
        account_prefix: k.account_prefix,
        created_ms: k.created_ms,
        created_by: k.created_by,
        quota: crate::backend::Quota { rate_per_sec: k.rate_per_sec, burst: k.burst, max_in_flight: k.max_in_flight },
    })
}
