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

/// The committed document is a valid OpenAPI 3.1 document: every `$ref` resolves (checked
/// here) and `openapi-spec-validator` (PyPI) accepts it.
#[test]
fn committed_openapi_is_valid_openapi_3_1_and_every_ref_resolves() {
    use crate::tools;
    let path = tools::committed_spec();
    let text = std::fs::read_to_string(&path).expect("read openapi/ledger.v1.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the committed spec is JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "not OpenAPI 3.1");
    let bad = tools::unresolved_refs(&doc);
    assert!(bad.is_empty(), "$refs that resolve to nothing in openapi/ledger.v1.json: {bad:?}");

    let py = tools::python_with("openapi_spec_validator");
    let mut cmd = std::process::Command::new(py);
    cmd.args(["-m", "openapi_spec_validator", "--schema", "3.1", "--errors", "all"]).arg(&path);
    let (out, in_time) = tools::run_bounded(cmd, std::time::Duration::from_secs(120));
    assert!(in_time, "openapi-spec-validator did not finish in 120 s");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects openapi/ledger.v1.json:\n{}\n{}",
        tools::tail(&out.stdout, 40),
        tools::tail(&out.stderr, 40)
    );
}

/// What a generated client needs: a unique operationId that makes a method name, a
/// description, an example for every request body, and `retryable` in every problem.
#[test]
fn every_operation_has_a_method_name_a_description_and_body_examples() {
    let spec: serde_json::Value = serde_json::from_str(&gateway::openapi::spec_json()).expect("json");
    let mut ids = std::collections::BTreeSet::new();
    for (p, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {p}: no operationId"));
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {p}: operationId {id:?} is not a camelCase method name"
            );
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert!(op["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {p}: no description");
            if let Some(body) = op.get("requestBody") {
                let media = &body["content"]["application/json"];
                let schema = &media["schema"];
                let target = match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
                    Some(ptr) => spec.pointer(ptr).cloned().unwrap_or_default(),
                    None => schema.clone(),
                };
                assert!(
                    media.get("example").is_some() || target.get("example").is_some(),
                    "{method} {p}: the request body has no example"
                );
            }
            if method != "get" {
                assert!(op["responses"].get("415").is_some(), "{method} {p}: 415 not documented");
            }
        }
    }
    let problem = &spec["components"]["schemas"]["Problem"];
    let required: Vec<&str> =
        problem["required"].as_array().expect("required").iter().filter_map(|v| v.as_str()).collect();
    assert!(required.contains(&"retryable"), "Problem.retryable must be required: {required:?}");
}
