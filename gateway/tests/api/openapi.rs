//! The committed OpenAPI document must match what the code generates.

use std::path::PathBuf;

/// Regenerates the committed file.
pub const REGENERATE: &str = "cargo run -p gateway --bin gateway -- openapi > openapi/ledger.v1.json";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("openapi").join("ledger.v1.json")
}

#[test]
fn committed_openapi_matches_the_generated_document() {
    let generated = gateway::openapi::spec_json();
    let path = committed_path();
    if std::env::var_os("LEDGER_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi/ledger.v1.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/ledger.v1.json is out of date with the code.\nRegenerate it from the repository root with:\n    \
         {REGENERATE}\n(or run the tests with LEDGER_UPDATE_OPENAPI=1), then commit it."
    );
}

#[test]
fn the_spec_documents_every_route_error_code_and_example() {
    let spec: serde_json::Value = serde_json::from_str(&gateway::openapi::spec_json()).expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    for p in [
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/transfers",
        "/v1/transfers",
        "/v1/transfers/batch",
        "/v1/transfers/{id}",
        "/v1/transfers/{id}/post",
        "/v1/transfers/{id}/void",
        "/v1/topics",
        "/v1/topics/{topic}/records",
        "/v1/topics/{topic}/partitions/{partition}/records",
        "/v1/groups",
        "/v1/groups/{group}",
        "/v1/groups/{group}/members",
        "/v1/groups/{group}/members/{member_id}",
        "/v1/groups/{group}/members/{member_id}/heartbeat",
        "/v1/groups/{group}/members/{member_id}/records",
        "/v1/groups/{group}/members/{member_id}/offsets",
        "/v1/groups/{group}/offsets/reset",
        "/v1/cluster",
        "/v1/cluster/nodes/{id}/remove",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} is not in the spec");
    }
    // Every operation documents its responses; every write documents Ledger-Index.
    for (p, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {p}: no responses"));
            assert!(!responses.is_empty(), "{method} {p}");
            for (status, resp) in responses {
                if let Some(problem) = resp["content"].get("application/problem+json") {
                    let code = problem["example"]["code"].as_str().unwrap_or_default();
                    assert!(
                        gateway::error::ErrorCode::parse(code).is_some(),
                        "{method} {p} {status}: the problem response has no example with a known code"
                    );
                    assert_eq!(
                        problem["example"]["status"].as_u64().map(|s| s.to_string()).as_deref(),
                        Some(status.as_str())
                    );
                }
            }
            if method == "post" {
                let ok = responses.iter().find(|(s, _)| s.starts_with('2')).map(|(_, r)| r).expect("a 2xx");
                assert!(ok["headers"]["Ledger-Index"].is_object(), "{method} {p}: no Ledger-Index header");
            }
        }
    }
    let codes: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for c in gateway::error::ErrorCode::ALL {
        assert!(codes.contains(&c.as_str()), "{} missing from the spec", c.as_str());
    }
    for schema in [
        "CreateAccountRequest",
        "CreateTransferRequest",
        "CreateTransfersRequest",
        "Transfer",
        "Account",
        "Problem",
        "ProduceRequest",
        "FetchResponse",
        "Cluster",
        "JoinGroupRequest",
        "JoinGroupResponse",
        "HeartbeatResponse",
        "GroupFetchResponse",
        "CommitOffsetsRequest",
        "GroupList",
        "GroupDescriptionBody",
        "ResetOffsetsRequest",
        "ResetOffsetsResponse",
    ] {
        assert!(spec["components"]["schemas"][schema]["example"].is_object(), "{schema} has no example");
    }
}
