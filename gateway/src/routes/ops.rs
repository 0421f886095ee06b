//! Cluster and operations endpoints.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{json, write_json};
use crate::dto::{Cluster, Health, NodeRemoved};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiPath;
use crate::limits::ADMIN_TOKEN_BYTES_MAX;
use crate::openapi::{AdminErrors, ClusterErrors, ReadyErrors};
use crate::server::AppState;

/// Cluster membership and health, as the backend sees it.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, description = "The cluster.", body = Cluster), ClusterErrors))]
pub async fn cluster(State(st): State<AppState>) -> Result<Response, ApiError> {
    crate::status_cache::ensure_started(&st);
    let c = match st.status_cache().cluster() {
        Some(c) => c,
        None => st.call(st.status_cache().refresh_cluster(|| st.backend().cluster_status())).await?,
    };
    Ok(json(StatusCode::OK, &Cluster::from(c)))
}

/// Constant-time comparison (no early exit on the first differing byte).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// With `--auth none`, the admin token; with keys, nothing more: the middleware already asked
/// for the `admin` scope.
pub(crate) fn check_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if st.config().auth == crate::auth::AuthMode::Keys {
        return Ok(());
    }
    let Some(token) = st.config().admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "admin endpoints are disabled: start the gateway with --admin-token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|v| v.len() <= ADMIN_TOKEN_BYTES_MAX);
    match given {
        Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "admin endpoints need `Authorization: Bearer <admin token>`",
        )),
    }
}

/// Remove a node from the cluster (admin).
///
/// Needs `Authorization: Bearer <admin token>`; disabled (403) when the
/// gateway has no admin token.
#[utoipa::path(post, path = "/v1/cluster/nodes/{id}/remove", tag = "cluster",
    params(("id" = u64, Path, description = "Node id.", example = 3)),
    responses(
        (status = 200, description = "Removed.", body = NodeRemoved,
            headers(("Ledger-Index" = u64, description = "Log index of the membership change."))),
        AdminErrors,
    ))]
pub async fn remove_node(
    State(st): State<AppState>,
    headers: HeaderMap,
    caller: crate::auth::MaybeCaller,
    ApiPath(id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    check_admin(&st, &headers)?;
    let applied = st.call(st.backend().remove_node(id, &crate::auth::actor(&caller))).await?;
    st.status_cache().invalidate_cluster();
    Ok(write_json(StatusCode::OK, &NodeRemoved { removed: id, index: applied.index }, applied.index, false))
}

/// Liveness: the gateway process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive.", body = Health)))]
pub async fn healthz() -> Response {
    json(StatusCode::OK, &Health { status: "ok".to_owned() })
}

/// Readiness: 200 only when a leader is reachable.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "A leader is reachable.", body = Health), ReadyErrors))]
pub async fn readyz(State(st): State<AppState>) -> Result<Response, ApiError> {
    st.call(st.backend().ready()).await?;
    Ok(json(StatusCode::OK, &Health { status: "ready".to_owned() }))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format.", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    crate::status_cache::ensure_started(&st);
    let mut text = st.render_metrics();
    // Refreshed in the background (`status_cache`): a scrape makes no backend call, except the
    // first one (single-flight, bounded by `METRICS_GROUPS_TIMEOUT`).
    text.push_str(&st.status_cache().groups_or_refresh(&st).await);
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI document (Swagger UI at `/docs`).", body = Object)))]
pub async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, st.spec_json().to_owned()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Consumer-group lines of `/metrics`: lag per group and partition, members, and rebalances
/// (a group's generation counts its rebalances: each join, leave, expiry or metadata change
/// starts exactly one). Read from the leader, bounded in groups, lines and time.
pub(crate) async fn group_metrics(st: &AppState) -> String {
    use std::fmt::Write as _;

    use crate::limits::{METRICS_GROUP_PARTITIONS_MAX, METRICS_GROUPS_MAX, METRICS_GROUPS_TIMEOUT};

    let collect = async {
        let groups = st.backend().list_groups().await?.value;
        let mut out = Vec::new();
        for g in groups.into_iter().take(METRICS_GROUPS_MAX) {
            out.push(st.backend().describe_group(&g.group).await?.value);
        }
        Ok::<_, crate::backend::BackendError>(out)
    };
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut o = String::new();
    let _ = writeln!(o, "# HELP gateway_group_metrics_up 1 if the consumer-group lines below could be read.");
    let _ = writeln!(o, "# TYPE gateway_group_metrics_up gauge");
    let groups = match tokio::time::timeout(METRICS_GROUPS_TIMEOUT, collect).await {
        Ok(Ok(g)) => g,
        _ => {
            let _ = writeln!(o, "gateway_group_metrics_up 0");
            return o;
        }
    };
    let _ = writeln!(o, "gateway_group_metrics_up 1");
    let _ = writeln!(o, "# HELP ledger_group_rebalances_total Rebalances of a consumer group (its generation).");
    let _ = writeln!(o, "# TYPE ledger_group_rebalances_total counter");
    for g in &groups {
        let _ = writeln!(o, "ledger_group_rebalances_total{{group=\"{}\"}} {}", esc(&g.group), g.generation);
    }
    let _ = writeln!(o, "# HELP ledger_group_members Members of a consumer group.");
    let _ = writeln!(o, "# TYPE ledger_group_members gauge");
    for g in &groups {
        let _ = writeln!(o, "ledger_group_members{{group=\"{}\"}} {}", esc(&g.group), g.members.len());
    }
    let _ = writeln!(o, "# HELP ledger_group_lag Records not yet committed by a group: end_offset - committed_offset.");
    let _ = writeln!(o, "# TYPE ledger_group_lag gauge");
    let lines = groups.iter().flat_map(|g| g.partitions.iter().map(move |p| (g, p))).take(METRICS_GROUP_PARTITIONS_MAX);
    for (g, p) in lines {
        let _ = writeln!(
            o,
            "ledger_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
            esc(&g.group),
            esc(&p.topic),
            p.partition,
            p.lag
        );
    }
    o
}
