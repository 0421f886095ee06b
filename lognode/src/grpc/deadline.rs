//! The server's deadline per call. Every call is cut after
//! [`SERVER_CALL_TIMEOUT`](crate::limits::SERVER_CALL_TIMEOUT), except a snapshot install:
//! receiving a snapshot and loading it into the store takes time that grows with the state (a
//! 2.2 GB snapshot of 24M transfers takes minutes to load), and cutting it made the leader dump
//! its store again and again. An install is bounded instead by the wait for each chunk
//! ([`SNAPSHOT_CHUNK_WAIT_MAX`](crate::limits::SNAPSHOT_CHUNK_WAIT_MAX)), by the sender's own
//! deadline, which grows with the snapshot's size (`grpc-timeout`, which tonic applies to every
//! call), and by [`SNAPSHOT_INSTALLS_MAX`](crate::limits::SNAPSHOT_INSTALLS_MAX) at once.

use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

/// The path of the snapshot install call (`ledger.raft.v1.Raft/InstallSnapshot`).
const INSTALL_SNAPSHOT_PATH: &str = "/ledger.raft.v1.Raft/InstallSnapshot";

/// A service whose calls are cut after `limit`, snapshot installs excepted.
#[derive(Clone, Debug)]
pub struct CallDeadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> CallDeadline<S> {
    /// Wraps `inner`: each call but a snapshot install answers `DEADLINE_EXCEEDED` after `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        CallDeadline { inner, limit }
    }
}

impl<S: NamedService> NamedService for CallDeadline<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for CallDeadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let exempt = request.uri().path() == INSTALL_SNAPSHOT_PATH;
        let limit = self.limit;
        let call = self.inner.call(request);
        Box::pin(async move {
            if exempt {
                return call.await;
            }
            match tokio::time::timeout(limit, call).await {
                Ok(r) => r,
                Err(_) => {
                    Ok(Status::deadline_exceeded(format!("the call took over {} ms", limit.as_millis())).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A service that answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<http::Request<()>> for Slow {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let d = self.0;
            Box::pin(async move {
                tokio::time::sleep(d).await;
                Ok(http::Response::new("done".to_owned()))
            })
        }
    }

    fn grpc_status(r: &http::Response<String>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_call_is_cut_at_the_deadline_and_a_snapshot_install_is_not() {
        let mut svc = CallDeadline::new(Slow(Duration::from_millis(300)), Duration::from_millis(50));
        let call = |path: &str| http::Request::builder().uri(path).body(()).unwrap_or_default();
        let cut = svc.call(call("/ledger.raft.v1.Raft/AppendEntries")).await.unwrap_or_else(|e| match e {});
        assert_eq!(grpc_status(&cut), Some("4"), "DEADLINE_EXCEEDED: {cut:?}");
        let install = svc.call(call(INSTALL_SNAPSHOT_PATH)).await.unwrap_or_else(|e| match e {});
        assert_eq!((grpc_status(&install), install.body().as_str()), (None, "done"), "{install:?}");
        let mut quick = CallDeadline::new(Slow(Duration::from_millis(1)), Duration::from_secs(90));
        let fine = quick.call(call("/ledger.v1.Ledger/Submit")).await.unwrap_or_else(|e| match e {});
        assert_eq!(fine.body().as_str(), "done");
    }
}
