//! A lean HTTP/1.1 client: one keep-alive connection per worker (hyper 1), reconnecting after a
//! failure, with a deadline on every request and a cap on every response body.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::limits::{REQUEST_TIMEOUT, RESPONSE_BODY_BYTES_MAX};

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// TCP connect or HTTP handshake failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The gateway address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The connection failed while the request was in flight.
    #[error("request failed: {0}")]
    Transport(String),
    /// No whole response within `REQUEST_TIMEOUT`.
    #[error("no response within {REQUEST_TIMEOUT:?}")]
    Timeout,
    /// The response body is over `RESPONSE_BODY_BYTES_MAX`.
    #[error("response body over {RESPONSE_BODY_BYTES_MAX} bytes")]
    TooLarge,
}

impl HttpError {
    /// The code under which this failure is counted.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Connect { .. } => "client_connect",
            HttpError::Transport(_) => "client_transport",
            HttpError::Timeout => "client_timeout",
            HttpError::TooLarge => "response_too_large",
        }
    }
}

/// One HTTP response, fully read.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The problem+json `code` of an error response, or `http_<status>` when the body has none.
    pub fn error_code(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Problem {
            code: Option<String>,
        }
        match serde_json::from_slice::<Problem>(&self.body) {
            Ok(Problem { code: Some(c) }) if !c.is_empty() => c,
            _ => format!("http_{}", self.status),
        }
    }
}

/// A keep-alive connection to the gateway. Not shared: each worker owns one.
pub struct Conn {
    /// Where the gateway listens.
    addr: SocketAddr,
    /// `Host` header value.
    host: String,
    /// The open connection; `None` before the first request and after a failure, so the next
    /// request reconnects.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// `Authorization` header value (`Bearer <key>`), when the run has a key.
    auth: Option<String>,
    /// TLS for an `https://` gateway.
    tls: Option<Tls>,
}

/// The TLS client of an `https://` gateway.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

/// A TLS client trusting the CA certificates of the PEM file `ca` (`--ca-cert`), for an
/// `https://` gateway.
pub fn tls_connector(ca: &std::path::Path) -> Result<Tls, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
    for c in certs {
        roots.add(c.map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?).map_err(|e| format!("--ca-cert: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("--ca-cert {}: no certificate in it", ca.display()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))))
}

impl Conn {
    /// A connection to `addr` (opened lazily by the first request), sending `key` (an API key's
    /// secret) with every request when given.
    pub fn new(addr: SocketAddr, key: Option<std::sync::Arc<str>>, tls: Option<Tls>) -> Conn {
        Conn { addr, host: addr.to_string(), sender: None, auth: key.map(|k| format!("Bearer {k}")), tls }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, HttpError> {
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let addr = self.addr;
            let stream =
                tokio::net::TcpStream::connect(addr).await.map_err(|source| HttpError::Connect { addr, source })?;
            let _ = stream.set_nodelay(true);
            let handshake_err = |e: hyper::Error| HttpError::Connect { addr, source: std::io::Error::other(e) };
            // The connection task ends when the sender is dropped or the peer closes.
            let sender = match &self.tls {
                None => {
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(handshake_err)?;
                    tokio::spawn(conn);
                    sender
                }
                Some(tls) => {
                    let name = rustls_pki_types::ServerName::from(addr.ip());
                    let stream =
                        tls.0.connect(name, stream).await.map_err(|source| HttpError::Connect { addr, source })?;
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(handshake_err)?;
                    tokio::spawn(conn);
                    sender
                }
            };
            self.sender = Some(sender);
        }
        match self.sender.as_mut() {
            Some(s) => Ok(s),
            None => Err(HttpError::Transport("no connection".into())),
        }
    }

    /// Sends one request (a JSON body when `body` is given) and reads the whole response.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<String>) -> Result<Response, HttpError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(method, path, body)).await;
        let result = result.unwrap_or(Err(HttpError::Timeout));
        if result.is_err() {
            // The connection's state is unknown (half a response may be in flight): start over.
            self.sender = None;
        }
        result
    }

    async fn send_inner(&mut self, method: Method, path: &str, body: Option<String>) -> Result<Response, HttpError> {
        let host = self.host.clone();
        let auth = self.auth.clone();
        let sender = self.connect().await?;
        sender.ready().await.map_err(|e| HttpError::Transport(e.to_string()))?;
        let mut req = Request::builder().method(method.clone()).uri(path).header("host", host);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        // The gateway refuses a write without a JSON content type, also with no body.
        if method != Method::GET {
            req = req.header("content-type", "application/json");
        }
        let bytes = body.map_or_else(Bytes::new, Bytes::from);
        let req = req.body(Full::new(bytes)).map_err(|e| HttpError::Transport(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| HttpError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), RESPONSE_BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    HttpError::TooLarge
                } else {
                    HttpError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Response { status, body })
    }

    /// GET.
    pub async fn get(&mut self, path: &str) -> Result<Response, HttpError> {
        self.send(Method::GET, path, None).await
    }

    /// POST a JSON body.
    pub async fn post(&mut self, path: &str, body: String) -> Result<Response, HttpError> {
        self.send(Method::POST, path, Some(body)).await
    }
}

/// `http[s]://host:port[/]` → the socket address and whether it is `https` (to an IP or
/// `localhost`; `https` needs `--ca-cert`).
pub fn parse_gateway(url: &str) -> Result<(SocketAddr, bool), String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, false),
        (None, Some(r)) => (r, true),
        _ => return Err(format!("--gateway {url:?}: only http:// and https:// URLs are supported")),
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(format!("--gateway {url:?}: give the gateway's root URL, without a path"));
    }
    let hostport = match hostport.strip_prefix("localhost") {
        Some(port) => format!("127.0.0.1{port}"),
        None => hostport.to_owned(),
    };
    let default_port = if https { 443 } else { 80 };
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport
    } else {
        format!("{hostport}:{default_port}")
    };
    let addr = hostport.parse().map_err(|e| format!("--gateway {url:?}: expected http://<ip>:<port> ({e})"))?;
    Ok((addr, https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_parse_to_socket_addresses() {
        let at = |s: &str, https| s.parse().ok().map(|a| (a, https));
        assert_eq!(parse_gateway("http://127.0.0.1:8080").ok(), at("127.0.0.1:8080", false));
        assert_eq!(parse_gateway("http://localhost:8080/").ok(), at("127.0.0.1:8080", false));
        assert_eq!(parse_gateway("http://127.0.0.1").ok(), at("127.0.0.1:80", false));
        assert_eq!(parse_gateway("https://127.0.0.1:8443").ok(), at("127.0.0.1:8443", true));
        assert_eq!(parse_gateway("https://127.0.0.1").ok(), at("127.0.0.1:443", true));
        assert!(parse_gateway("ftp://127.0.0.1:8080").is_err());
        assert!(parse_gateway("http://127.0.0.1:8080/v1").is_err());
        assert!(parse_gateway("http://example.invalid:8080").is_err());
    }

    #[test]
    fn error_codes_come_from_problem_json_or_the_status() {
        let r = Response { status: 422, body: Bytes::from_static(br#"{"code":"insufficient_funds","status":422}"#) };
        assert_eq!(r.error_code(), "insufficient_funds");
        let r = Response { status: 502, body: Bytes::from_static(b"bad gateway") };
        assert_eq!(r.error_code(), "http_502");
    }
}
