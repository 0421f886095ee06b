//! The OpenAPI walk of the API-key tests (issue 16), shared by the in-process and the
//! real-process suites: every operation of the served document says what it needs, and asks
//! for it.
#![allow(dead_code)]

use std::net::SocketAddr;

use gateway::auth::need_of;
use serde_json::{Value, json};

/// One request to `addr` with a JSON content type and, when given, `key` as the bearer key.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> testkit::http::Resp {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    testkit::http::request(addr, method, path, &headers, body).await
}

fn problem_code(r: &testkit::http::Resp) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|p| p["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A concrete path for a template: numbers where the parameter is a number; a node id that no
/// cluster has (the admin key must not remove a real node).
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{partition}" => "1".to_owned(),
            "{id}" if template.starts_with("/v1/cluster") => "99".to_owned(),
            s if s.starts_with('{') => "p1".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Walks the OpenAPI document served at `addr`: every operation lists what it needs
/// (`security`, the scope of `gateway::auth::need_of`); each protected one answers 401
/// `unauthorized` (with `WWW-Authenticate: Bearer`) without a key and with an unknown one, 403
/// `forbidden` with `weak` (a key holding none of the scopes it needs), and neither with
/// `admin`; public ones answer without a key. A route missing from the scope table needs
/// `admin`, and this walk shows it. Returns how many protected operations it checked.
pub async fn walk(addr: SocketAddr, admin: &str, weak: &str) -> usize {
    let spec = call(addr, "GET", "/openapi.json", None, None).await.json();
    let mut protected = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            let security = op["security"].as_array().unwrap_or_else(|| panic!("{id}: no security"));
            let url = concrete(path);
            let m = method.to_ascii_uppercase();
            let body = (m != "GET").then(|| json!({}));
            let Some(scopes) = need_of(id).doc() else {
                assert!(security.is_empty(), "{id} is public but lists {security:?}");
                let r = call(addr, &m, &url, None, body.as_ref()).await;
                assert!(r.status != 401 && r.status != 403, "{id}: public, yet {} {}", r.status, r.text());
                continue;
            };
            protected += 1;
            assert_eq!(security, &vec![json!({"api_key": scopes})], "{id}: security");
            // No scope listed: any live key may call it (`whoami`), so a weak key is never refused.
            let any_key = scopes.is_empty();
            for status in ["401", "403"] {
                let documented = op["responses"][status].is_object();
                assert!(documented != (any_key && status == "403"), "{id}: {status} documented: {documented}");
            }
            for (key, what) in [
                (None, "without a key"),
                (Some("lk_not_a_key_of_this_cluster_0123456789abcdef"), "with an unknown key"),
            ] {
                let r = call(addr, &m, &url, key, body.as_ref()).await;
                assert_eq!((r.status, problem_code(&r).as_str()), (401, "unauthorized"), "{id} {what}: {}", r.text());
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{id} {what}");
            }
            let r = call(addr, &m, &url, Some(weak), body.as_ref()).await;
            if any_key {
                assert_eq!(r.status, 200, "{id} with any key: {}", r.text());
            } else {
                assert_eq!(
                    (r.status, problem_code(&r).as_str()),
                    (403, "forbidden"),
                    "{id} without {scopes:?}: {}",
                    r.text()
                );
            }
            let r = call(addr, &m, &url, Some(admin), body.as_ref()).await;
            assert!(r.status != 401 && r.status != 403, "{id} with the admin key: {} {}", r.status, r.text());
        }
    }
    protected
}
