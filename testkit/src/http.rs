//! A small HTTP/1.1 client for the gateway's API: one request per fresh connection, bounded by
//! [`REQUEST_TIMEOUT`].

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Upper bound of one test request (connect, send, receive).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Ledger-Index` header.
    #[track_caller]
    pub fn index(&self) -> u64 {
        self.header("ledger-index").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no Ledger-Index: {self:?}"))
    }

    /// Panics unless the status is `want`.
    #[track_caller]
    pub fn expect(self, want: u16, what: &str) -> Resp {
        assert_eq!(self.status, want, "{what}: {}", String::from_utf8_lossy(&self.body));
        self
    }
}

/// Sends one request with these headers and body on a fresh connection to `addr` (`host` is set).
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let resp = sender.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        Resp { status, headers, body }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut).await.expect("request timed out")
}
