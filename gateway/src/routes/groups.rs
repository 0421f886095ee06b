//! `/v1/groups`: Kafka-style consumer groups (docs/CONSUMER_GROUPS.md).
//!
//! The gateway keeps no group state: membership, assignments and committed offsets are in the
//! replicated log, heartbeats and fetch positions on the Raft leader. Any gateway can serve any
//! member, and a member may send each request to a different gateway.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{no_content, read_json, write_json};
use crate::backend::GroupRecord;
use crate::dto::{
    CommitOffsetsRequest, GroupDescriptionBody, GroupFetchQuery, GroupFetchResponse, GroupList, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, ResetOffsetsRequest, ResetOffsetsResponse,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::{
    GROUP_FETCH_POSITIONS_MAX, GROUP_FETCH_RECORDS_DEFAULT, GROUP_FETCH_RECORDS_MAX, GROUP_FETCH_WAIT_MS_MAX,
    GROUP_ID_BYTES_MAX, MEMBER_ID_BYTES_MAX, OFFSETS_PER_COMMIT_MAX, TOPICS_PER_SUBSCRIPTION_MAX,
};
use crate::openapi::{
    CommitErrors, DeleteGroupErrors, DescribeGroupErrors, GroupFetchErrors, JoinGroupErrors, MemberErrors, ReadErrors,
    ResetOffsetsErrors,
};
use crate::routes::ops::check_admin;
use crate::server::AppState;
use crate::validate;

/// A group id: `[A-Za-z0-9._-]{1,249}`.
fn group_id(g: &str) -> Result<(), ApiError> {
    if group_core::is_valid_group_id(g) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidGroupId,
            format!("a group id is 1–{GROUP_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"),
        ))
    }
}

/// A member id as the server hands them out (`{group}-{n}`); anything else cannot be a member.
fn member_id(group: &str, m: &str) -> Result<(), ApiError> {
    let ok = (1..=MEMBER_ID_BYTES_MAX).contains(&m.len())
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found(ErrorCode::UnknownMember, format!("group '{group}' has no member {m:?}")))
    }
}

/// Join a consumer group.
///
/// Every call creates a new member (and starts a new generation: the group's partitions are
/// reassigned, sticky and balanced). Heartbeat every `heartbeat_interval_ms`; a member silent
/// for `session_timeout_ms` is expired and must join again.
#[utoipa::path(post, path = "/v1/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "Group id.", example = "billing")),
    request_body = JoinGroupRequest,
    responses(
        (status = 201, description = "Joined.", body = JoinGroupResponse,
            headers(("Ledger-Index" = u64, description = "Log index of the join."))),
        JoinGroupErrors,
    ))]
pub async fn join(
    State(st): State<AppState>,
    caller: crate::auth::MaybeCaller,
    ApiPath(group): ApiPath<String>,
    ApiJson(req): ApiJson<JoinGroupRequest>,
) -> Result<Response, ApiError> {
    group_id(&group)?;
    if req.topics.is_empty() || req.topics.len() > TOPICS_PER_SUBSCRIPTION_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("`topics` names 1..={TOPICS_PER_SUBSCRIPTION_MAX} topics, got {}", req.topics.len()),
        ));
    }
    for t in &req.topics {
        validate::topic_name(t)?;
        // A member reads its topics: the key must be allowed to (as Kafka asks for READ on the
        // group and on each topic).
        if let Some(c) = &caller {
            c.require(&format!("topics:read:{t}"))?;
        }
    }
    let reset = req.auto_offset_reset.map(group_core::OffsetReset::from);
    let applied = st.call(st.backend().join_group(&group, req.topics, req.session_timeout_ms, reset)).await?;
    let body = JoinGroupResponse::from(applied.value);
    Ok(write_json(StatusCode::CREATED, &body, applied.index, false))
}

/// Heartbeat: keeps the member's session alive and tells it the current generation and its
/// partitions. `404 unknown_member` means it was expired (or left): join again.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member_id}/heartbeat", tag = "groups",
    params(
        ("group" = String, Path, description = "Group id.", example = "billing"),
        ("member_id" = String, Path, description = "Member id from the join.", example = "billing-1"),
    ),
    responses(
        (status = 200, description = "Alive.", body = HeartbeatResponse,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the leader."))),
        MemberErrors,
    ))]
pub async fn heartbeat(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    group_id(&group)?;
    member_id(&group, &member)?;
    let r = st.call(st.backend().group_heartbeat(&group, &member)).await?;
    Ok(read_json(&HeartbeatResponse::from(r.value), r.applied_index))
}

/// Fetch records of the member's partitions, long-polling up to `wait_ms`.
///
/// Starts after the member's position (the last record sent to it), else at the group's
/// committed offset, else at `auto_offset_reset`. Delivery is at least once: after a rebalance
/// or a leader change, a partition restarts at its committed offset. A fetch also counts as a
/// heartbeat.
#[utoipa::path(get, path = "/v1/groups/{group}/members/{member_id}/records", tag = "groups",
    params(
        ("group" = String, Path, description = "Group id.", example = "billing"),
        ("member_id" = String, Path, description = "Member id from the join.", example = "billing-1"),
        GroupFetchQuery,
    ),
    responses(
        (status = 200, description = "Records (possibly none).", body = GroupFetchResponse),
        GroupFetchErrors,
    ))]
pub async fn fetch(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<GroupFetchQuery>,
) -> Result<Response, ApiError> {
    group_id(&group)?;
    member_id(&group, &member)?;
    let max = q.max_records.unwrap_or(GROUP_FETCH_RECORDS_DEFAULT);
    if !(1..=GROUP_FETCH_RECORDS_MAX).contains(&max) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("max_records must be in 1..={GROUP_FETCH_RECORDS_MAX}"),
        ));
    }
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > GROUP_FETCH_WAIT_MS_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("wait_ms must be at most {GROUP_FETCH_WAIT_MS_MAX}"),
        ));
    }
    let from = match q.from.as_deref() {
        Some(s) => parse_positions(s)?,
        None => Vec::new(),
    };
    let extra = Duration::from_millis(wait_ms);
    let f = st.call_with_extra_time(extra, st.backend().group_fetch(&group, &member, max, wait_ms, &from)).await?;
    let mut r = (StatusCode::OK, fetch_body(f.generation, &f.records)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// Parses `from=topic:partition:offset[,...]` (client-side positions of a group fetch).
pub fn parse_positions(s: &str) -> Result<Vec<(String, u32, u64)>, ApiError> {
    let bad = |detail: String| ApiError::bad_request(ErrorCode::InvalidQuery, detail);
    let mut out: Vec<(String, u32, u64)> = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        if out.len() == GROUP_FETCH_POSITIONS_MAX {
            return Err(bad(format!("from: at most {GROUP_FETCH_POSITIONS_MAX} positions")));
        }
        // Topic names have no ':' (they are [A-Za-z0-9._-]), so split from the right.
        let mut parts = item.rsplitn(3, ':');
        let (offset, partition, topic) = (parts.next(), parts.next(), parts.next());
        let (Some(offset), Some(partition), Some(topic)) = (offset, partition, topic) else {
            return Err(bad(format!("from: {item:?} is not topic:partition:offset")));
        };
        if crate::validate::topic_name(topic).is_err() {
            return Err(bad(format!("from: {topic:?} is not a topic name ([A-Za-z0-9._-])")));
        }
        let partition: u32 =
            partition.parse().map_err(|_| bad(format!("from: partition {partition:?} is not a whole number")))?;
        let offset: u64 = offset.parse().map_err(|_| bad(format!("from: offset {offset:?} is not a whole number")))?;
        if out.iter().any(|(t, p, _)| t == topic && *p == partition) {
            return Err(bad(format!("from: {topic}:{partition} appears twice")));
        }
        out.push((topic.to_owned(), partition, offset));
    }
    Ok(out)
}

/// The JSON of a [`GroupFetchResponse`], written directly: a record value that is valid JSON is
/// copied as it is (validated, not parsed into a tree and printed again: this is the hot path of
/// consumption), any other value becomes a JSON string, exactly like [`crate::dto::GroupRecordBody::from`].
pub fn fetch_body(generation: u64, records: &[GroupRecord]) -> Vec<u8> {
    use std::io::Write as _;
    let size: usize = records.iter().map(|g| g.record.value.len() + g.topic.len() + 128).sum();
    let mut out = Vec::with_capacity(size + 64);
    // Writing to a Vec cannot fail; serde_json only fails on non-string map keys (none here).
    let _ = write!(out, "{{\"generation\":{generation},\"records\":[");
    for (i, g) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"topic\":");
        let _ = serde_json::to_writer(&mut out, &g.topic);
        let _ = write!(out, ",\"partition\":{},", g.partition);
        super::write_record_fields(&mut out, &g.record);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::StoredRecord;
    use crate::dto::GroupRecordBody;

    fn rec(topic: &str, key: Option<&str>, value: &[u8], headers: &[(&str, &str)]) -> GroupRecord {
        GroupRecord {
            topic: topic.to_owned(),
            partition: 3,
            record: StoredRecord {
                offset: 17,
                key: key.map(str::to_owned),
                value: value.to_vec(),
                headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                timestamp_ms: 1_764_150_020_000,
            },
        }
    }

    /// The hand-written fetch body is the JSON the DTOs would give, for every kind of value.
    #[test]
    fn fetch_body_equals_the_dto_serialization() {
        let records = vec![
            rec("orders", Some("k\"1"), br#" {"a": [1, 2.5, "x"], "b": null} "#, &[("z", "1"), ("a", "q\"")]),
            rec("t.x", None, b"not json {", &[]),
            rec("ledger", Some("acct"), b"1234567", &[]),
            rec("t", None, &[0xff, 0xfe], &[]),
            rec("t", None, b"\"s\"", &[]),
        ];
        let bytes = fetch_body(4, &records);
        let got: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let dto =
            GroupFetchResponse { generation: 4, records: records.into_iter().map(GroupRecordBody::from).collect() };
        let want = serde_json::to_value(&dto).expect("serializes");
        assert_eq!(got, want);
        let empty: serde_json::Value = serde_json::from_slice(&fetch_body(1, &[])).expect("valid JSON");
        assert_eq!(empty, serde_json::json!({"generation": 1, "records": []}));
    }
}

/// Commit offsets ("the next offset to read") of partitions the member owns, all or nothing.
///
/// `409 stale_generation` when `generation` is not the group's current one (heartbeat to learn
/// it), `409 not_owner` for a partition the member does not own now; neither changes anything.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member_id}/offsets", tag = "groups",
    params(
        ("group" = String, Path, description = "Group id.", example = "billing"),
        ("member_id" = String, Path, description = "Member id from the join.", example = "billing-1"),
    ),
    request_body = CommitOffsetsRequest,
    responses(
        (status = 204, description = "Committed.",
            headers(("Ledger-Index" = u64, description = "Log index of the commit."))),
        CommitErrors,
    ))]
pub async fn commit(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CommitOffsetsRequest>,
) -> Result<Response, ApiError> {
    group_id(&group)?;
    member_id(&group, &member)?;
    if req.offsets.len() > OFFSETS_PER_COMMIT_MAX {
        return Err(ApiError::unprocessable(
            ErrorCode::LimitExceeded,
            format!("{} offsets in one commit; at most {OFFSETS_PER_COMMIT_MAX}", req.offsets.len()),
        ));
    }
    let mut offsets = Vec::with_capacity(req.offsets.len());
    for o in req.offsets {
        let o = o.0;
        validate::topic_name(&o.topic)?;
        offsets.push((o.topic, o.partition, o.offset));
    }
    let applied = st.call(st.backend().commit_offsets(&group, &member, req.generation, offsets)).await?;
    Ok(no_content(applied.index))
}

/// Leave the group: its partitions go to the other members (a new generation).
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{member_id}", tag = "groups",
    params(
        ("group" = String, Path, description = "Group id.", example = "billing"),
        ("member_id" = String, Path, description = "Member id from the join.", example = "billing-1"),
    ),
    responses(
        (status = 204, description = "Left.",
            headers(("Ledger-Index" = u64, description = "Log index of the leave."))),
        MemberErrors,
    ))]
pub async fn leave(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    group_id(&group)?;
    member_id(&group, &member)?;
    let applied = st.call(st.backend().leave_group(&group, &member)).await?;
    Ok(no_content(applied.index))
}

/// List every consumer group.
///
/// A group outlives its members, with its committed offsets, until an admin deletes it or it has
/// been empty for the cluster's retention (`lognode --group-retention-ms`, 7 days by default).
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses(
        (status = 200, description = "Every group, sorted by id.", body = GroupList,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the leader."))),
        ReadErrors,
    ))]
pub async fn list(State(st): State<AppState>) -> Result<Response, ApiError> {
    let r = st.call(st.backend().list_groups()).await?;
    let groups = r.value.into_iter().map(Into::into).collect();
    Ok(read_json(&GroupList { groups }, r.applied_index))
}

/// Describe a group: members, partitions, committed offsets and lag.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id.", example = "billing")),
    responses(
        (status = 200, description = "The group.", body = GroupDescriptionBody,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the leader."))),
        DescribeGroupErrors,
    ))]
pub async fn describe(State(st): State<AppState>, ApiPath(group): ApiPath<String>) -> Result<Response, ApiError> {
    group_id(&group)?;
    let r = st.call(st.backend().describe_group(&group)).await?;
    let body = GroupDescriptionBody::from(r.value);
    Ok(read_json(&body, r.applied_index))
}

/// Delete a consumer group (admin).
///
/// Only while the group has no members (`409 group_not_empty`); its committed offsets go with it.
/// A group created again under the same name starts at generation 1 without offsets, and its
/// member ids never repeat one of the deleted group's. Empty groups are also deleted by the
/// cluster after `lognode --group-retention-ms` (7 days by default). Not retried after a lost
/// answer: a second delete answers 404. Needs `Authorization: Bearer <admin token>`.
#[utoipa::path(delete, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id.", example = "billing")),
    responses(
        (status = 204, description = "Deleted.",
            headers(("Ledger-Index" = u64, description = "Log index of the deletion."))),
        DeleteGroupErrors,
    ))]
pub async fn delete_group(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: crate::auth::MaybeCaller,
    ApiPath(group): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_admin(&st, &headers)?;
    group_id(&group)?;
    let applied = st.call(st.backend().delete_group(&group, &crate::auth::actor(&caller))).await?;
    Ok(no_content(applied.index))
}

/// Reset a group's committed offsets (admin).
///
/// Only while the group has no members (`409 group_not_empty`). May move offsets backwards.
/// Needs `Authorization: Bearer <admin token>`.
#[utoipa::path(post, path = "/v1/groups/{group}/offsets/reset", tag = "groups",
    params(("group" = String, Path, description = "Group id.", example = "billing")),
    request_body = ResetOffsetsRequest,
    responses(
        (status = 200, description = "The new committed offsets.", body = ResetOffsetsResponse,
            headers(("Ledger-Index" = u64, description = "Log index of the reset."))),
        ResetOffsetsErrors,
    ))]
pub async fn reset(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: crate::auth::MaybeCaller,
    ApiPath(group): ApiPath<String>,
    ApiJson(req): ApiJson<ResetOffsetsRequest>,
) -> Result<Response, ApiError> {
    check_admin(&st, &headers)?;
    group_id(&group)?;
    validate::topic_name(&req.topic)?;
    let to = group_core::ResetTarget::from(req.to);
    let by = crate::auth::actor(&caller);
    let applied = st.call(st.backend().reset_offsets(&group, &req.topic, req.partition, to, &by)).await?;
    let offsets = applied.value.into_iter().map(Into::into).collect();
    Ok(write_json(StatusCode::OK, &ResetOffsetsResponse { offsets, index: applied.index }, applied.index, false))
}
