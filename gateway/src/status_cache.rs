//! `/v1/cluster` and the consumer-group lines of `/metrics`, served from state a background task
//! refreshes (issue 21): a scrape or a status poll never fans out to the leader itself, however
//! often it comes, and at most one refresh of each runs at a time.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, ClusterStatus};

/// How often the background task refreshes the cluster status (one ClusterStatus call).
pub const CLUSTER_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the background task refreshes the consumer-group lines of `/metrics` (up to
/// `METRICS_GROUPS_MAX + 1` calls to the leader, bounded by `METRICS_GROUPS_TIMEOUT`).
pub const GROUP_METRICS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// A cached cluster status older than this is not served: `/v1/cluster` asks once itself
/// (single-flight) and answers what that gives, errors included.
pub const CLUSTER_STALE_AFTER: Duration = Duration::from_secs(5);

/// Group lines older than this are left out of `/metrics` (`gateway_group_metrics_up 0`).
pub const GROUP_METRICS_STALE_AFTER: Duration = Duration::from_secs(60);

const _: () = assert!(CLUSTER_STALE_AFTER.as_millis() > 2 * CLUSTER_REFRESH_INTERVAL.as_millis());
const _: () = assert!(GROUP_METRICS_STALE_AFTER.as_millis() > 2 * GROUP_METRICS_REFRESH_INTERVAL.as_millis());

/// The cached state.
#[derive(Default)]
pub struct StatusCache {
    cluster: Mutex<Option<(Instant, ClusterStatus)>>,
    groups: Mutex<Option<(Instant, String)>>,
    /// Held by whoever refreshes the cluster status (the task or a request with a stale cache).
    cluster_refresh: tokio::sync::Mutex<()>,
    /// Held by whoever refreshes the group lines.
    groups_refresh: tokio::sync::Mutex<()>,
    started: OnceLock<()>,
}

impl StatusCache {
    /// The cluster status if it is fresh enough to serve.
    pub fn cluster(&self) -> Option<ClusterStatus> {
        let c = self.cluster.lock().unwrap_or_else(PoisonError::into_inner);
        c.as_ref().filter(|(at, _)| at.elapsed() < CLUSTER_STALE_AFTER).map(|(_, s)| s.clone())
    }

    /// Stores a fresh cluster status.
    pub fn set_cluster(&self, s: ClusterStatus) {
        *self.cluster.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), s));
    }

    /// The group lines of `/metrics` if fresh enough.
    pub fn groups(&self) -> Option<String> {
        let g = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        g.as_ref().filter(|(at, _)| at.elapsed() < GROUP_METRICS_STALE_AFTER).map(|(_, t)| t.clone())
    }

    fn set_groups(&self, text: String) {
        *self.groups.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), text));
    }

    /// Forgets the cluster status (after a membership change made through this gateway).
    pub fn invalidate_cluster(&self) {
        *self.cluster.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The group lines: cached, or (when none are fresh, e.g. the first scrape) refreshed once
    /// by the first caller while the others wait for it (single-flight).
    pub async fn groups_or_refresh(&self, st: &crate::server::AppState) -> String {
        if let Some(g) = self.groups() {
            return g;
        }
        let _one = self.groups_refresh.lock().await;
        if let Some(g) = self.groups() {
            return g;
        }
        let text = crate::routes::ops::group_metrics(st).await;
        self.set_groups(text.clone());
        text
    }

    /// Refreshes the cluster status with `fetch` unless another refresh just did (single-flight).
    pub async fn refresh_cluster<F, Fut>(&self, fetch: F) -> Result<ClusterStatus, BackendError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<ClusterStatus, BackendError>>,
    {
        let _one = self.cluster_refresh.lock().await;
        if let Some(s) = self.cluster() {
            let fresh = self
                .cluster
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < CLUSTER_REFRESH_INTERVAL);
            if fresh {
                return Ok(s);
            }
        }
        let s = fetch().await?;
        self.set_cluster(s.clone());
        Ok(s)
    }
}

/// Starts the background refresh of `state`'s cache once (on the first request that needs it);
/// the task ends when the application is dropped.
pub fn ensure_started(state: &crate::server::AppState) {
    let cache = state.status_cache();
    if cache.started.set(()).is_err() {
        return;
    }
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut last_groups: Option<Instant> = None;
        loop {
            let Some(st) = crate::server::AppState::upgrade(&weak) else { return };
            let _ = st.status_cache().refresh_cluster(|| st.call_raw(st.backend().cluster_status())).await;
            if last_groups.is_none_or(|t| t.elapsed() >= GROUP_METRICS_REFRESH_INTERVAL) {
                let _one = st.status_cache().groups_refresh.lock().await;
                let text = crate::routes::ops::group_metrics(&st).await;
                st.status_cache().set_groups(text);
                last_groups = Some(Instant::now());
            }
            drop(st);
            tokio::time::sleep(CLUSTER_REFRESH_INTERVAL).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_status_requests_make_one_backend_call() {
        let cache = std::sync::Arc::new(StatusCache::default());
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.spawn(async move {
                cache
                    .refresh_cluster(|| async {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(ClusterStatus { leader_id: Some(1), nodes: Vec::new() })
                    })
                    .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.expect("join").map(|s| s.leader_id), Ok(Some(1)));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one call for 50 concurrent requests");
        assert!(cache.cluster().is_some());
        cache.invalidate_cluster();
        assert!(cache.cluster().is_none());
    }
}
