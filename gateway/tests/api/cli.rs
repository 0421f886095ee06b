//! The `gateway` binary's command line.

use std::process::Command;

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LEDGER_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn openapi_subcommand_prints_the_generated_document() {
    let out = gateway().arg("openapi").output().expect("run gateway openapi");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), gateway::openapi::spec_json());
}

#[test]
fn valid_flags_exit_with_a_clear_message_until_the_grpc_backend_is_wired() {
    let out = gateway()
        .args(["--listen", "127.0.0.1:0", "--lognodes", "127.0.0.1:7001,127.0.0.1:7002"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gRPC backend is not wired yet"), "{err}");
    let out = gateway().args(["--listen", "127.0.0.1:0"]).env("LEDGER_JOIN", "127.0.0.1:7946").output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not wired yet"));
}

#[test]
fn invalid_flags_are_rejected() {
    for args in [
        vec!["--listen", "127.0.0.1:0"],
        vec!["--listen", "127.0.0.1:0", "--join", "a:1", "--lognodes", "b:2"],
        vec!["--listen", "nope", "--lognodes", "b:2"],
        vec!["--listen", "127.0.0.1:99999", "--lognodes", "b:2"],
        vec!["--listen", "127.0.0.1:0", "--lognodes", "b"],
        vec!["--listen", "127.0.0.1:0", "--lognodes", "b:2", "--gossip-addr", "c:3"],
    ] {
        let out = gateway().args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("not wired"), "{args:?} passed validation");
    }
}
