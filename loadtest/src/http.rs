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
}

impl Conn {
    /// A connection to `addr` (opened lazily by the first request), sending `key` (an API key's
    /// secret) with every request when given.
    pub fn new(addr: SocketAddr, key: Option<std::sync::Arc<str>>) -> Conn {
        Conn { addr, host: addr.to_string(), sender: None, auth: key.map(|k| format!("Bearer {k}")) }
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
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| HttpError::Connect { addr, source: std::io::Error::other(e) })?;
            // The connection task ends when the sender is dropped or the peer closes.
            tokio::spawn(conn);
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

/// `http://host:port[/]` → the socket address (only plain `http` to an IP or `localhost`).
pub fn parse_gateway(url: &str) -> Result<SocketAddr, String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("--gateway {url:?}: only http:// URLs are supported"))?;
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(format!("--gateway {url:?}: give the gateway's root URL, without a path"));
    }
    let hostport = match hostport.strip_prefix("localhost") {
        Some(port) => format!("127.0.0.1{port}"),
        None => hostport.to_owned(),
    };
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') { hostport } else { format!("{hostport}:80") };
    hostport.parse().map_err(|e| format!("--gateway {url:?}: expected http://<ip>:<port> ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_parse_to_socket_addresses() {
        assert_eq!(parse_gateway("http://127.0.0.1:8080").ok(), "127.0.0.1:8080".parse().ok());
        assert_eq!(parse_gateway("http://localhost:8080/").ok(), "127.0.0.1:8080".parse().ok());
        assert_eq!(parse_gateway("http://127.0.0.1").ok(), "127.0.0.1:80".parse().ok());
        assert!(parse_gateway("https://127.0.0.1:8080").is_err());
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
