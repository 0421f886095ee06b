//! `/v1/topics`: the generic replicated log.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{no_content, read_json, write_json};
use crate::backend::FetchRequest;
use crate::dto::{
    CreateTopicRequest, FetchQuery, FetchResponse, OffsetBody, ProduceRequest, ProduceResponse, ReadQuery, Topic,
    TopicCreatedBody, TopicList, read_consistency,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::{FETCH_RECORDS_DEFAULT, FETCH_RECORDS_MAX, FETCH_WAIT_MS_MAX, RECORDS_PER_PRODUCE_MAX};
use crate::openapi::{CreateTopicErrors, DeleteTopicErrors, FetchErrors, ProduceErrors, ReadErrors};
use crate::server::AppState;
use crate::validate;

/// Create a topic.
///
/// Idempotent: the same name and partition count again answers 200 with
/// `Idempotent-Replayed: true`; another partition count answers 409
/// `topic_exists`.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopicRequest,
    responses(
        (status = 201, description = "Created.", body = TopicCreatedBody,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Identical replay.", body = TopicCreatedBody,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        CreateTopicErrors,
    ))]
pub async fn create_topic(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateTopicRequest>,
) -> Result<Response, ApiError> {
    validate::topic_name(&req.name)?;
    validate::partitions(req.partitions)?;
    let applied = st.call(st.backend().create_topic(&req.name, req.partitions)).await?;
    let t = applied.value;
    let body = TopicCreatedBody { name: t.topic.name, partitions: t.topic.partitions, index: applied.index };
    let status = if t.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(write_json(status, &body, applied.index, !t.created))
}

/// Delete a topic (admin).
///
/// Its records become unreadable at once, consumer groups forget its committed offsets and
/// their members lose its partitions; the name can be created again, from offset 0. The built-in
/// `ledger` topic cannot be deleted. Not retried after a lost answer: a second delete answers
/// 404. Needs `Authorization: Bearer <admin token>`.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name.", example = "orders")),
    responses(
        (status = 204, description = "Deleted.",
            headers(("Ledger-Index" = u64, description = "Log index of the deletion."))),
        DeleteTopicErrors,
    ))]
pub async fn delete_topic(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: crate::auth::MaybeCaller,
    ApiPath(topic): ApiPath<String>,
) -> Result<Response, ApiError> {
    super::ops::check_admin(&st, &headers)?;
    validate::topic_name(&topic)?;
    if topic == "ledger" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TopicProtected,
            "the built-in topic 'ledger' holds the ledger's events and cannot be deleted",
        ));
    }
    let applied = st.call(st.backend().delete_topic(&topic, &crate::auth::actor(&caller))).await?;
    Ok(no_content(applied.index))
}

/// List every topic.
#[utoipa::path(get, path = "/v1/topics", tag = "topics", params(ReadQuery),
    responses(
        (status = 200, description = "Every topic, sorted by name.", body = TopicList,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        ReadErrors,
    ))]
pub async fn list_topics(State(st): State<AppState>, ApiQuery(q): ApiQuery<ReadQuery>) -> Result<Response, ApiError> {
    let read = st.call(st.backend().list_topics(read_consistency(q.consistency, q.min_index))).await?;
    let topics = read.value.into_iter().map(|t| Topic { name: t.name, partitions: t.partitions }).collect();
    Ok(read_json(&TopicList { topics }, read.applied_index))
}

/// Append records to a topic, in one log entry.
///
/// A record's partition is chosen from its key (same key → same
/// partition); keyless records are spread by the log.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "topics",
    params(("topic" = String, Path, description = "Topic name.", example = "orders")),
    request_body = ProduceRequest,
    responses(
        (status = 200, description = "Appended.", body = ProduceResponse,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        ProduceErrors,
    ))]
pub async fn produce(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
    ApiJson(req): ApiJson<ProduceRequest>,
) -> Result<Response, ApiError> {
    validate::topic_name(&topic)?;
    let n = req.records.len();
    if n == 0 || n > RECORDS_PER_PRODUCE_MAX {
        return Err(ApiError::new(
            if n == 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::PAYLOAD_TOO_LARGE },
            ErrorCode::TooManyRecords,
            format!("a produce request has 1..={RECORDS_PER_PRODUCE_MAX} records, got {n}"),
        ));
    }
    let records =
        req.records.into_iter().enumerate().map(|(i, r)| validate::record(r.0, i)).collect::<Result<Vec<_>, _>>()?;
    let applied = st.call(st.backend().produce(&topic, records)).await?;
    if applied.value.len() != n {
        return Err(ApiError::internal("the log did not return one offset per record"));
    }
    let offsets = applied.value.iter().map(|o| OffsetBody { partition: o.partition, offset: o.offset }).collect();
    Ok(write_json(StatusCode::OK, &ProduceResponse { offsets, index: applied.index }, applied.index, false))
}

/// Read records of one partition, long-polling up to `wait_ms`.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "topics",
    params(
        ("topic" = String, Path, description = "Topic name.", example = "orders"),
        ("partition" = u32, Path, description = "Partition number.", example = 0),
        FetchQuery,
    ),
    responses(
        (status = 200, description = "Records (possibly none).", body = FetchResponse,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        FetchErrors,
    ))]
pub async fn fetch(
    State(st): State<AppState>,
    ApiPath((topic, partition)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<FetchQuery>,
) -> Result<Response, ApiError> {
    validate::topic_name(&topic)?;
    let limit = q.limit.unwrap_or(FETCH_RECORDS_DEFAULT);
    if !(1..=FETCH_RECORDS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("limit must be in 1..={FETCH_RECORDS_MAX}"),
        ));
    }
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > FETCH_WAIT_MS_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("wait_ms must be at most {FETCH_WAIT_MS_MAX}"),
        ));
    }
    let req = FetchRequest { topic, partition, offset: q.offset.unwrap_or(0), limit, wait_ms };
    let rc = read_consistency(q.consistency, q.min_index);
    let extra = std::time::Duration::from_millis(wait_ms);
    let read = st.call_with_extra_time(extra, st.backend().fetch(req, rc)).await?;
    let f = read.value;
    Ok(super::read_json_bytes(super::partition_fetch_body(&f.records, f.next_offset, f.end_offset), read.applied_index))
}
