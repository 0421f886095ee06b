//! `GET /metrics` of the projector (Prometheus text), on `--metrics-listen`:
//! the dead letters, so a record PostgreSQL refused is seen without reading
//! the logs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use sqlx::{PgPool, Row};

/// Longest a scrape waits for PostgreSQL's count of dead letters; past it the
/// gauge is left out.
pub const SCRAPE_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest a scrape connection may take to send its request and read the
/// answer (a metrics port is not a place to hold connections).
pub const SCRAPE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Most scrape connections served at once; more wait in the accept queue.
pub const SCRAPE_CONNECTIONS_MAX: usize = 8;

/// The metrics text.
pub async fn render(pool: &PgPool) -> String {
    let recorded = crate::db::DEAD_LETTERS_RECORDED.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = String::new();
    out.push_str(
        "# HELP projector_dead_letters_recorded_total Records PostgreSQL refused, recorded by this process.\n\
         # TYPE projector_dead_letters_recorded_total counter\n",
    );
    out.push_str(&format!("projector_dead_letters_recorded_total {recorded}\n"));
    let count = tokio::time::timeout(
        SCRAPE_DB_TIMEOUT,
        sqlx::query("SELECT count(*) FROM projector_dead_letters").fetch_one(pool),
    )
    .await;
    if let Ok(Ok(row)) = count
        && let Ok(n) = row.try_get::<i64, _>(0)
    {
        out.push_str(
            "# HELP projector_dead_letters Rows of projector_dead_letters (records PostgreSQL refused).\n\
             # TYPE projector_dead_letters gauge\n",
        );
        out.push_str(&format!("projector_dead_letters {n}\n"));
    }
    out
}

/// Serves `/metrics` on `listen` until the process ends.
pub async fn serve(listen: SocketAddr, pool: PgPool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(SCRAPE_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return Ok(()) };
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let pool = pool.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(render(&pool).await)))
                    } else {
                        hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(SCRAPE_CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}
