//! Router assembly, shared state, middleware and serving.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::AuthMode;
use crate::backend::{BackendError, BackendResult, LedgerBackend};
use crate::error::{ApiError, ErrorCode};
use crate::limits::{
    BACKEND_TIMEOUT_DEFAULT, BODY_BYTES_MAX_DEFAULT, BODY_READ_TIMEOUT_DEFAULT, IN_FLIGHT_MAX_DEFAULT,
    RETRY_AFTER_SECS_DEFAULT,
};
use crate::metrics::{Metrics, method_label};

/// Gateway settings (the limits that can be tuned per deployment).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Maximum request body size in bytes (413 `body_too_large` past it).
    pub max_body_bytes: usize,
    /// Requests handled at once; past it 503 `overloaded` at once.
    pub max_in_flight: usize,
    /// Deadline of one backend call (503 `timeout` past it).
    pub backend_timeout: Duration,
    /// Time allowed to receive a request body (408 past it).
    pub body_read_timeout: Duration,
    /// `Retry-After` seconds for overload and timeouts.
    pub retry_after_secs: u64,
    /// Bearer token of the admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    /// Lower-case host names (or `host:port`) the gateway answers to; empty: any. A request whose
    /// `Host` is not listed gets 421 `host_not_allowed` (a browser page on another site that
    /// rebinds its DNS name to this gateway's address still sends its own name as `Host`).
    pub allowed_hosts: Vec<String>,
    /// Whether requests need an API key (`crate::auth`). The library's default is
    /// [`AuthMode::None`] (tests and embedders); the `gateway` binary's is `keys`.
    pub auth: AuthMode,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: BODY_BYTES_MAX_DEFAULT,
            max_in_flight: IN_FLIGHT_MAX_DEFAULT,
            backend_timeout: BACKEND_TIMEOUT_DEFAULT,
            body_read_timeout: BODY_READ_TIMEOUT_DEFAULT,
            retry_after_secs: RETRY_AFTER_SECS_DEFAULT,
            admin_token: None,
            allowed_hosts: Vec::new(),
            auth: AuthMode::None,
        }
    }
}

/// The application's shared state.
pub(crate) struct Inner {
    backend: Arc<dyn LedgerBackend>,
    config: GatewayConfig,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    spec_json: String,
    cache: crate::status_cache::StatusCache,
    metrics_permits: Arc<Semaphore>,
    keys: crate::auth::KeyTable,
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

fn error_kind(e: &BackendError) -> &'static str {
    match e {
        BackendError::Unavailable { .. } => "unavailable",
        BackendError::Timeout => "timeout",
        BackendError::NotFound(..) => "not_found",
        BackendError::InvalidArgument(_) => "invalid_argument",
        BackendError::OutOfRange(_) => "out_of_range",
        BackendError::AlreadyExists(_) => "already_exists",
        BackendError::Internal(_) => "internal",
        BackendError::Group(..) => "group",
        BackendError::IndexNotReached { .. } => "index_not_reached",
        BackendError::IndexNotApplied { .. } => "index_not_applied",
    }
}

impl AppState {
    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.0.config
    }

    /// The backend.
    pub fn backend(&self) -> &dyn LedgerBackend {
        self.0.backend.as_ref()
    }

    /// The live API keys as last loaded.
    pub fn keys(&self) -> &crate::auth::KeyTable {
        &self.0.keys
    }

    /// The cached cluster status and group metrics.
    pub fn status_cache(&self) -> &crate::status_cache::StatusCache {
        &self.0.cache
    }

    /// A handle that does not keep the application alive (for background tasks).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    /// The application again, if it is still alive.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<AppState> {
        weak.upgrade().map(AppState)
    }

    /// A backend call under the backend timeout, failures counted but not mapped to HTTP.
    pub async fn call_raw<T>(&self, fut: impl Future<Output = BackendResult<T>>) -> BackendResult<T> {
        let res = match tokio::time::timeout(self.0.config.backend_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout),
        };
        if let Err(e) = &res {
            self.0.metrics.backend_error(error_kind(e));
        }
        res
    }

    /// The served OpenAPI document.
    pub fn spec_json(&self) -> &str {
        &self.0.spec_json
    }

    /// Runs a backend call under the backend timeout, mapping failures to
    /// HTTP errors and counting them.
    pub async fn call<T>(&self, fut: impl Future<Output = BackendResult<T>>) -> Result<T, ApiError> {
        self.call_with_extra_time(Duration::ZERO, fut).await
    }

    /// Like [`AppState::call`], with `extra` added to the deadline (long polls).
    pub async fn call_with_extra_time<T>(
        &self,
        extra: Duration,
        fut: impl Future<Output = BackendResult<T>>,
    ) -> Result<T, ApiError> {
        let res = match tokio::time::timeout(self.0.config.backend_timeout + extra, fut).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout),
        };
        res.map_err(|e| {
            self.0.metrics.backend_error(error_kind(&e));
            if matches!(e, BackendError::Internal(_)) {
                tracing::error!(error = %e, "backend error");
            } else {
                tracing::debug!(error = %e, "backend error");
            }
            ApiError::from_backend(&e, self.0.config.retry_after_secs)
        })
    }

    /// The `/metrics` text.
    pub fn render_metrics(&self) -> String {
        let in_flight = self.0.config.max_in_flight.saturating_sub(self.0.permits.available_permits());
        let mut text = self.0.metrics.render(in_flight, &self.0.backend.stats());
        if self.0.config.auth == AuthMode::Keys {
            text.push_str(&self.0.keys.quotas().render());
        }
        text
    }
}

/// Bounds the requests in flight: past the limit, 503 at once (no queue).
/// `/healthz` is exempt; `/metrics`, served from cached state (`status_cache`), has its own
/// small limit (`METRICS_IN_FLIGHT_MAX`) so the gateway stays observable when it is overloaded.
async fn limit_in_flight(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" {
        return next.run(req).await;
    }
    if path == "/metrics" {
        return match st.0.metrics_permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let resp = next.run(req).await;
                drop(permit);
                resp
            }
            Err(_) => ApiError::unavailable(
                ErrorCode::Overloaded,
                format!("more than {} /metrics requests in flight", crate::limits::METRICS_IN_FLIGHT_MAX),
                st.0.config.retry_after_secs,
            )
            .into_response(),
        };
    }
    match st.0.permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            st.0.metrics.overloaded();
            ApiError::unavailable(
                ErrorCode::Overloaded,
                format!("more than {} requests in flight", st.0.config.max_in_flight),
                st.0.config.retry_after_secs,
            )
            .into_response()
        }
    }
}

/// Counts requests and latencies by route template and status.
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    st.0.metrics.observe(method, &route, status, elapsed);
    tracing::debug!(method, route, status, latency_us = elapsed.as_micros() as u64, "request");
    resp
}

/// The request's host: the `Host` header (HTTP/1.1), else the URI authority (HTTP/2).
fn request_host(req: &Request) -> Option<String> {
    let h = match req.headers().get(axum::http::header::HOST) {
        Some(v) => v.to_str().ok()?.to_owned(),
        None => req.uri().authority()?.as_str().to_owned(),
    };
    Some(h.trim().to_ascii_lowercase())
}

/// Whether `host` (`name` or `name:port`) matches an allow-list entry: the entry equals it, or
/// equals its name without the port.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    allowed.iter().any(|a| a == host || a == name)
}

/// With `--allowed-hosts`, refuses a request whose `Host` is not listed (421 `host_not_allowed`).
/// `/healthz` and `/readyz` are exempt: probes address the gateway by IP and read nothing.
async fn check_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let allowed = &st.0.config.allowed_hosts;
    let path = req.uri().path();
    if allowed.is_empty() || path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    match request_host(&req) {
        Some(h) if host_allowed(allowed, &h) => next.run(req).await,
        h => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::HostNotAllowed,
            match h {
                Some(h) => format!("this gateway does not answer to host {h:?}; see --allowed-hosts"),
                None => "the request has no Host; this gateway answers only to the hosts of --allowed-hosts".into(),
            },
        )
        .into_response(),
    }
}

/// Every state-changing request (POST, PUT, PATCH, DELETE) must say `Content-Type:
/// application/json`, even with an empty body: a cross-site HTML form or `no-cors` fetch cannot
/// send that header without a CORS preflight, which this gateway never grants.
async fn require_json_writes(req: Request, next: Next) -> Response {
    if let Some(e) = write_without_json(&req) {
        return e.into_response();
    }
    next.run(req).await
}

/// The 415 for a write of an existing operation without a JSON content type.
fn write_without_json(req: &Request) -> Option<ApiError> {
    use axum::http::Method;
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
        || crate::extract::has_json_content_type(req.headers())
    {
        return None;
    }
    // Only operations that exist: a wrong method on a known path stays 405.
    let m = req.method().as_str().to_ascii_lowercase();
    let path = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if !crate::openapi::OPERATION_IDS.iter().any(|(om, op, _)| *om == m && Some(*op) == path) {
        return None;
    }
    Some(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        format!(
            "{} needs `Content-Type: application/json`, also with an empty body (send `{{}}` or nothing, with \
             the header)",
            req.method()
        ),
    ))
}

async fn not_found(State(st): State<AppState>, req: Request) -> Response {
    st.0.metrics.observe(method_label(req.method()), "unmatched", 404, Duration::ZERO);
    ApiError::not_found(ErrorCode::NotFound, format!("no route for {}", req.uri().path())).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// The whole HTTP application over `backend`.
pub fn app(backend: Arc<dyn LedgerBackend>, config: GatewayConfig) -> Router {
    let (api, mut spec) = crate::openapi::router().split_for_parts();
    crate::openapi::finish(&mut spec);
    let mut spec_json = spec.to_pretty_json().unwrap_or_default();
    spec_json.push('\n');
    let max_body = config.max_body_bytes;
    let state = AppState(Arc::new(Inner {
        backend,
        permits: Arc::new(Semaphore::new(config.max_in_flight)),
        config,
        metrics: Metrics::default(),
        spec_json,
        cache: crate::status_cache::StatusCache::default(),
        metrics_permits: Arc::new(Semaphore::new(crate::limits::METRICS_IN_FLIGHT_MAX)),
        keys: crate::auth::KeyTable::default(),
    }));
    if state.config().auth == AuthMode::Keys {
        crate::auth::start_refresher(&state);
    }
    let swagger: Router<AppState> =
        SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")).into();
    api.merge(swagger)
        .merge(crate::console::router())
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(require_json_writes))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_in_flight))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Connection-level limits of [`serve_with`].
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Time allowed to receive a request's headers once they started (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Time from accept to the first complete request head (HTTP/1 and HTTP/2).
    pub first_request_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 keep-alive PINGs; a PING not acknowledged within
    /// `min(interval, HTTP2_KEEPALIVE_TIMEOUT)` closes the connection.
    pub http2_keepalive_interval: Duration,
    /// Maximum open connections; past it new ones are closed at once (except
    /// for `health_reserved` more that serve only `/healthz`).
    pub max_connections: usize,
    /// Maximum open connections from one client IP address.
    pub max_connections_per_client: usize,
    /// Connection slots past `max_connections` that serve only `/healthz`.
    pub health_reserved: usize,
    /// Longest graceful-shutdown drain.
    pub shutdown_drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        use crate::limits as l;
        ServeOptions {
            header_read_timeout: l::HEADER_READ_TIMEOUT,
            first_request_timeout: l::FIRST_REQUEST_TIMEOUT,
            idle_timeout: l::CONNECTION_IDLE_TIMEOUT,
            http2_keepalive_interval: l::HTTP2_KEEPALIVE_INTERVAL,
            max_connections: l::CONNECTIONS_MAX,
            max_connections_per_client: l::CONNECTIONS_PER_CLIENT_MAX,
            health_reserved: l::HEALTH_CONNECTIONS_RESERVED,
            shutdown_drain: l::SHUTDOWN_DRAIN_MAX,
        }
    }
}

/// An accepted connection's bytes: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The HTTPS side of [`serve_tls`]: a certificate chain and its private key (PEM files), served
/// with rustls for HTTP/2 and HTTP/1.1 (ALPN).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// [`serve_with`] with the default [`ServeOptions`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeOptions::default(), shutdown).await
}

/// Open connections per client IP address (the per-client cap).
#[derive(Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One counted connection of a client; uncounted on drop.
struct ClientSlot {
    table: Arc<PerClient>,
    ip: std::net::IpAddr,
}

impl PerClient {
    fn try_add(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut t = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { table: self.clone(), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = t.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// What one connection's task watches: the first request, requests in
/// flight and the end of the last one.
struct ConnWatch {
    /// Serves only `/healthz` (a reserved slot).
    health_only: bool,
    in_flight: std::sync::atomic::AtomicUsize,
    last_done: std::sync::Mutex<Instant>,
    first: tokio::sync::Notify,
}

/// Counts a request in flight; on drop, marks the connection active now.
struct RequestMark(Arc<ConnWatch>);

impl Drop for RequestMark {
    fn drop(&mut self) {
        *self.0.last_done.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ConnWatch {
    fn start_request(self: &Arc<Self>) -> RequestMark {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.first.notify_one();
        RequestMark(self.clone())
    }

    /// How long the connection has been idle (no request in flight), if it is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return None;
        }
        Some(self.last_done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed())
    }
}

/// Counts refused connections and logs the first and then every
/// `REFUSED_LOG_EVERY`-th (a flood must not flood the log too).
fn log_refused(counter: &std::sync::atomic::AtomicU64, peer: std::net::SocketAddr, why: &str) {
    /// One warning per this many refused connections.
    const REFUSED_LOG_EVERY: u64 = 1000;
    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n.is_multiple_of(REFUSED_LOG_EVERY) {
        tracing::warn!(%peer, refused_so_far = n + 1, "{why}; closing a new connection");
    } else {
        tracing::debug!(%peer, "{why}; closing a new connection");
    }
}

/// Serves `app` on `listener` (HTTP/1.1 and h2c) until `shutdown`
/// resolves, then stops accepting and finishes the requests in flight
/// (graceful shutdown, at most `opts.shutdown_drain`).
///
/// Unlike `axum::serve`, it bounds every connection's life: the time from
/// accept to the first complete request head (HTTP/1 and HTTP/2), the time
/// to receive later request heads (HTTP/1), the idle time between requests,
/// HTTP/2 keep-alive PINGs; and the number of open connections, in total and
/// per client address, with a few slots kept for `/healthz`.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, app, opts, None, shutdown).await
}

/// [`serve_with`], over TLS when `tls` is given (HTTPS: `gateway --tls-cert --tls-key`; the
/// handshake runs in the connection's task, within [`TLS_HANDSHAKE_TIMEOUT`]).
///
/// [`TLS_HANDSHAKE_TIMEOUT`]: crate::limits::TLS_HANDSHAKE_TIMEOUT
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;

    let mut builder = Builder::new(TokioExecutor::new());
    // `ignore_invalid_headers`: a header line that is not valid HTTP (a control character in its
    // value) is dropped instead of hyper answering a bare 400 without a body; a request that
    // needed that header then gets the route's own problem+json (401, 415, 421).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(opts.header_read_timeout).ignore_invalid_headers(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(opts.http2_keepalive_interval))
        .keep_alive_timeout(opts.http2_keepalive_interval.min(crate::limits::HTTP2_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(crate::limits::HTTP2_STREAMS_PER_CONNECTION_MAX);
    let connections = Arc::new(Semaphore::new(opts.max_connections));
    let health_slots = Arc::new(Semaphore::new(opts.health_reserved));
    let per_client = Arc::new(PerClient::default());
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(client_slot) = per_client.try_add(peer.ip(), opts.max_connections_per_client) else {
            log_refused(&refused, peer, "too many connections from this client address");
            drop(stream);
            continue;
        };
        let (permit, health_only) = match connections.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match health_slots.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    log_refused(&refused, peer, "too many connections");
                    drop(stream);
                    continue;
                }
            },
        };
        let watch = Arc::new(ConnWatch {
            health_only,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last_done: std::sync::Mutex::new(Instant::now()),
            first: tokio::sync::Notify::new(),
        });
        let service = {
            let watch = watch.clone();
            let app = app.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mark = watch.start_request();
                let app = app.clone();
                async move {
                    let resp = if mark.0.health_only && req.uri().path() != "/healthz" {
                        ApiError::unavailable(
                            ErrorCode::Overloaded,
                            "every connection slot is taken; this one serves only /healthz",
                            crate::limits::RETRY_AFTER_SECS_DEFAULT,
                        )
                        .into_response()
                    } else {
                        match tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    };
                    drop(mark);
                    Ok::<_, std::convert::Infallible>(resp)
                }
            })
        };
        let first_deadline = if health_only {
            opts.first_request_timeout.min(crate::limits::HEALTH_FIRST_REQUEST_TIMEOUT)
        } else {
            opts.first_request_timeout
        };
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(crate::limits::TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            drop((permit, client_slot));
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no TLS handshake in time; closing the connection");
                            drop((permit, client_slot));
                            return;
                        }
                    }
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
            let conn = watcher.watch(conn);
            let mut conn = std::pin::pin!(conn);
            // Accept → first complete request head.
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop((permit, client_slot));
                    return;
                }
                () = watch.first.notified() => {}
                () = tokio::time::sleep(first_deadline) => {
                    tracing::debug!(%peer, "no complete request head in time; closing the connection");
                    drop((permit, client_slot));
                    return;
                }
            }
            // Then until it ends or stays idle too long.
            loop {
                let wait = watch.idle_for().map_or(opts.idle_timeout, |idle| opts.idle_timeout.saturating_sub(idle));
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {
                        if watch.idle_for().is_some_and(|idle| idle >= opts.idle_timeout) {
                            tracing::debug!(%peer, "idle connection closed");
                            break;
                        }
                    }
                }
            }
            drop((permit, client_slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.shutdown_drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("graceful shutdown: requests still running after the drain limit were cut");
    }
    Ok(())
}
