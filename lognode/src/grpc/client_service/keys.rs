//! The API-key calls of the client API (docs/SECURITY.md): CreateKey and RevokeKey are leader
//! writes of [`Cmd::Keys`], ListKeys reads this node's applied state.

use ledger_proto::ledger::{
    ApiKey, CreateKeyRequest, CreateKeyResponse, ListKeysRequest, ListKeysResponse, RevokeKeyRequest, RevokeKeyResponse,
};
use tonic::{Request, Response, Status};

use super::{ClientService, now_ms_u64, rejection};
use crate::types::{ApiKeyRecord, KeyCommand, KeyQuota, Request as Cmd, Response as CmdResponse};

/// A key as the client API carries it.
pub(crate) fn to_proto(k: &ApiKeyRecord) -> ApiKey {
    ApiKey {
        id: k.id.clone(),
        secret_hash: k.secret_hash.to_vec(),
        scopes: k.scopes.clone(),
        account_prefix: k.account_prefix.clone(),
        created_ms: k.created_ms,
        created_by: k.created_by.clone(),
        rate_per_sec: k.quota.rate_per_sec,
        burst: k.quota.burst,
        max_in_flight: k.quota.max_in_flight,
    }
}

/// A key from the client API; INVALID_ARGUMENT for a hash that is not 32 bytes.
fn from_proto(k: ApiKey) -> Result<ApiKeyRecord, Status> {
    let secret_hash = <[u8; 32]>::try_from(k.secret_hash.as_slice()).map_err(|_| {
        Status::invalid_argument(format!("secret_hash is {} bytes; a SHA-256 is 32", k.secret_hash.len()))
    })?;
    Ok(ApiKeyRecord {
        id: k.id,
        secret_hash,
        scopes: k.scopes,
        account_prefix: k.account_prefix,
        created_ms: 0,
        created_by: k.created_by,
        quota: KeyQuota { rate_per_sec: k.rate_per_sec, burst: k.burst, max_in_flight: k.max_in_flight },
    })
}

impl ClientService {
    /// Writes a key command; the log index and the entry's timestamp.
    pub(crate) async fn write_key(&self, command: KeyCommand) -> Result<(u64, u64), Status> {
        self.check_leader()?;
        let timestamp_ms = now_ms_u64();
        match self.write(Cmd::Keys { timestamp_ms, command }).await? {
            (CmdResponse::KeyCreated | CmdResponse::KeyRevoked, log_index) => Ok((log_index, timestamp_ms)),
            (CmdResponse::Rejected(r), _) => Err(rejection(r)),
            (other, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    pub(crate) async fn create_key_call(
        &self,
        request: Request<CreateKeyRequest>,
    ) -> Result<Response<CreateKeyResponse>, Status> {
        let key = request.into_inner().key.ok_or_else(|| Status::invalid_argument("no key"))?;
        let key = from_proto(key)?;
        crate::store::state_machine::keys::check(&key).map_err(Status::invalid_argument)?;
        let (log_index, created_ms) = self.write_key(KeyCommand::Create(key)).await?;
        Ok(Response::new(CreateKeyResponse { log_index, created_ms }))
    }

    pub(crate) async fn revoke_key_call(
        &self,
        request: Request<RevokeKeyRequest>,
    ) -> Result<Response<RevokeKeyResponse>, Status> {
        let r = request.into_inner();
        let (log_index, _) = self.write_key(KeyCommand::Revoke { id: r.id, by: r.revoked_by }).await?;
        Ok(Response::new(RevokeKeyResponse { log_index }))
    }

    pub(crate) async fn list_keys_call(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        self.prepare_read(request.get_ref().read.as_ref()).await?;
        let (keys, applied_index) = self
            .sm
            .with_state(|s| (s.keys.live.values().map(to_proto).collect(), s.last_applied.map_or(0, |l| l.index)));
        Ok(Response::new(ListKeysResponse { keys, applied_index }))
    }
}
