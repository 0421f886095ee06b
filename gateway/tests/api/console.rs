//! The console's files (`/console`, issue 18) and `GET /v1/whoami`, which the console asks to
//! show only what the key may see. The pages themselves run in a real browser in
//! `tests/cluster/console.rs`.

use gateway::GatewayConfig;
use gateway::auth::AuthMode;

use crate::auth::{ADMIN, TENANT, keyed};
use crate::support::{assert_problem, start};

/// The files the console is made of, with their content types.
const FILES: &[(&str, &str)] = &[
    ("/console/", "text/html; charset=utf-8"),
    ("/console/console.css", "text/css; charset=utf-8"),
    ("/console/console.js", "text/javascript; charset=utf-8"),
    ("/console/core.js", "text/javascript; charset=utf-8"),
    ("/console/charts.js", "text/javascript; charset=utf-8"),
    ("/console/pages.js", "text/javascript; charset=utf-8"),
];

/// Served without a key (the page asks for one), with a strict Content-Security-Policy; every
/// file the page or a module refers to is served, nothing comes from another origin.
#[tokio::test]
async fn the_console_is_served_from_the_binary() {
    let srv = keyed().await;
    let r = crate::auth_walk::call(srv.addr, "GET", "/console", None, None).await;
    assert_eq!((r.status, r.header("location")), (308, Some("/console/")), "{}", r.text());
    let mut all = String::new();
    for (path, content_type) in FILES {
        let r = crate::auth_walk::call(srv.addr, "GET", path, None, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(*content_type), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default().to_owned();
        for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive:?}");
        }
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        all.push_str(&r.text());
    }
    // Every local file named by `src=`, `href=` or an import is one of FILES; none is remote.
    let served: Vec<&str> = FILES.iter().map(|(p, _)| p.trim_start_matches("/console/")).collect();
    for quote in ['"', '\''] {
        for piece in all.split(quote).filter(|p| p.ends_with(".js") || p.ends_with(".css")) {
            let name = piece.trim_start_matches("./");
            assert!(served.contains(&name), "the console refers to {piece:?}, which it does not serve");
        }
    }
    // (the SVG namespace is a name, not a download)
    let all = all.replace("http://www.w3.org/2000/svg", "");
    assert!(!all.contains("http://") && !all.contains("https://"), "the console loads nothing from elsewhere");
    let r = crate::auth_walk::call(srv.addr, "GET", "/console/../openapi.json", None, None).await;
    assert_ne!(r.status, 200, "{}", r.text());
    let r = crate::auth_walk::call(srv.addr, "GET", "/console/secret.txt", None, None).await;
    assert_problem(&r, 404, "not_found", "an unknown console file");
}

/// `GET /v1/whoami`: any live key learns its id, scopes and prefix; no key is 401; with
/// `--auth none` everything is open, as if with `admin`.
#[tokio::test]
async fn whoami_tells_a_key_its_scopes() {
    let srv = keyed().await;
    let r = crate::auth_walk::call(srv.addr, "GET", "/v1/whoami", Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"auth": "keys", "key_id": "admin", "scopes": ["admin"], "account_prefix": ""})
    );
    let r = crate::auth_walk::call(srv.addr, "GET", "/v1/whoami", Some(TENANT), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["key_id"], "tenant");
    assert_eq!(r.json()["account_prefix"], "t1-");
    assert_eq!(r.json()["scopes"].as_array().map(Vec::len), Some(4));
    let r = crate::auth_walk::call(srv.addr, "GET", "/v1/whoami", None, None).await;
    assert_problem(&r, 401, "unauthorized", "whoami without a key");

    let open = start(GatewayConfig { auth: AuthMode::None, ..GatewayConfig::default() }).await;
    let r = crate::auth_walk::call(open.addr, "GET", "/v1/whoami", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"auth": "none", "key_id": null, "scopes": ["admin"], "account_prefix": ""})
    );
}

/// Every limit of the console (`LIMITS` in `console/core.js`) is in gateway/README.md's console
/// table with its value, and the table lists no other.
#[test]
fn the_console_limits_are_documented() {
    let js = include_str!("../../console/core.js");
    let start = js.find("export const LIMITS = Object.freeze({").expect("LIMITS in core.js");
    let body = &js[start..js[start..].find("});").map(|e| start + e).expect("end of LIMITS")];
    let mut limits = Vec::new();
    for line in body.lines().skip(1) {
        let Some((name, rest)) = line.trim().split_once(':') else { continue };
        let expr = rest.split("//").next().unwrap_or_default().trim().trim_end_matches(',');
        // Products such as `5 * 60 * 1000`.
        let value: u64 = expr.split('*').map(|f| f.trim().parse::<u64>().expect("a number")).product();
        limits.push((name.to_owned(), value));
    }
    assert!(limits.len() >= 10, "{limits:?}");
    let readme = include_str!("../../README.md");
    let table =
        &readme[readme.find("**Limits** (`LIMITS` in `gateway/console/core.js`").expect("the console's table")..];
    let rows: Vec<&str> = table.lines().skip(4).take_while(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), limits.len(), "README rows {rows:?} vs LIMITS {limits:?}");
    for (name, value) in &limits {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} not in README"));
        assert!(row.contains(&format!("| {value} ")), "README's row for {name} does not say {value}: {row}");
    }
}
