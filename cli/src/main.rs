//! `ledger`: the command-line client of a Ledger gateway, and `ledger dev`, which starts a whole
//! local system (lognodes, gateway, projector, PostgreSQL) on 127.0.0.1.
//!
//! Modules:
//! - `args`: the command line (clap) and the parsers of amounts and durations;
//! - `commands`: one function per client command, over `ledger-client`;
//! - `tail`: following a topic, by partition or as a consumer-group member;
//! - `output`: aligned tables, key-value blocks and JSON on stdout;
//! - `dev`: `ledger dev` (child processes, ports, data dir, PostgreSQL).
//!
//! Exit codes: 0 success, 1 the gateway answered an error (or `ledger dev` failed), 2 bad usage
//! or input rejected before sending, 3 the gateway cannot be reached.

mod args;
mod commands;
mod dev;
mod output;
mod tail;
mod tx;
mod webhook;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Cmd};

/// Exit code: the gateway answered an error, or a local operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage or input rejected before anything was sent (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the gateway could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A failure of one command: the line printed on stderr (after `error: `) and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code (`EXIT_*`).
    pub code: u8,
    /// One line naming the problem.
    pub message: String,
}

impl Failure {
    /// Input rejected before sending.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { code: EXIT_USAGE, message: message.into() }
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Failure { code: EXIT_FAILURE, message: message.into() }
    }
}

impl From<ledger_client::Error> for Failure {
    fn from(e: ledger_client::Error) -> Self {
        use ledger_client::Error;
        match e {
            Error::Problem(p) => {
                let mut message = format!("{}: {}", p.code, p.detail.trim());
                if p.detail.trim().is_empty() {
                    message = format!("{}: {} (HTTP {})", p.code, p.title, p.status);
                }
                if let Some(s) = p.retry_after_s {
                    message.push_str(&format!(" (retry after {s} s)"));
                }
                Failure { code: EXIT_FAILURE, message }
            }
            Error::Transport { url, message } => Failure {
                code: EXIT_UNREACHABLE,
                message: format!(
                    "cannot reach the gateway ({url}): {}; is `ledger dev` running? \
                     (--gateway or LEDGER_GATEWAY choose another)",
                    root_cause(&message)
                ),
            },
            e @ Error::InvalidUrl(_) => Failure::usage(e.to_string()),
            e @ Error::Decode { .. } => Failure::failed(e.to_string()),
        }
    }
}

/// The innermost part of an HTTP stack's error chain ("a: b: c: d" -> "c: d"): the outer parts
/// repeat the URL and say "error sending request".
fn root_cause(message: &str) -> &str {
    if message.starts_with("timed out") {
        return "timed out";
    }
    let mut cut = message.len();
    for _ in 0..2 {
        match message[..cut].rfind(": ") {
            Some(i) => cut = i,
            None => return message,
        }
    }
    &message[cut + 2..]
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        // Hidden helper of `ledger dev`: becomes one child process (see `dev::child`).
        Cmd::Child { parent, program, args } => dev::child::exec(parent, &program, &args),
        Cmd::Dev(ref d) => dev::run(d),
        ref cmd => run_client(&cli, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            output::error_line(&f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run_client(cli: &Cli, cmd: &Cmd) -> Result<(), Failure> {
    let mut client = ledger_client::Client::new(&cli.gateway)?.with_key(&cli.api_key);
    if let Some(ca) = &cli.ca_cert {
        let pem = std::fs::read(ca).map_err(|e| Failure::failed(format!("--ca-cert {}: {e}", ca.display())))?;
        client = client.with_ca_pem(&pem)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    let consistency = match cli.consistency {
        args::ReadConsistency::Strong => ledger_client::Consistency::Strong,
        args::ReadConsistency::Follower => ledger_client::Consistency::Follower,
    };
    let out = output::Out { json: cli.json, consistency };
    rt.block_on(commands::run(&client, &out, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_problems_exit_1_and_name_the_code() {
        let p = ledger_client::Problem {
            type_: "urn:ledger:problem:insufficient_funds".into(),
            title: "Insufficient funds".into(),
            status: 422,
            detail: "the debit would take account 'alice' below zero available".into(),
            code: "insufficient_funds".into(),
            retry_after_s: None,
        };
        let f = Failure::from(ledger_client::Error::Problem(p));
        assert_eq!(f.code, EXIT_FAILURE);
        assert_eq!(f.message, "insufficient_funds: the debit would take account 'alice' below zero available");
    }

    #[test]
    fn unreachable_gateway_exits_3_and_bad_url_exits_2() {
        let t =
            ledger_client::Error::Transport { url: "http://127.0.0.1:1/v1/cluster".into(), message: "refused".into() };
        let f = Failure::from(t);
        assert_eq!(f.code, EXIT_UNREACHABLE);
        assert!(f.message.starts_with("cannot reach the gateway"), "{}", f.message);
        assert_eq!(Failure::from(ledger_client::Error::InvalidUrl("x".into())).code, EXIT_USAGE);
        let chain = "error sending request for url (http://h:1/v1/cluster): client error (Connect): \
                     tcp connect error: Connection refused (os error 111)";
        assert_eq!(root_cause(chain), "tcp connect error: Connection refused (os error 111)");
        assert_eq!(root_cause("timed out (error sending request)"), "timed out");
        assert_eq!(root_cause("refused"), "refused");
    }
}
