//! The workspace's test kit, used as a dev-dependency only.
//!
//! - [`datadriven`] (always, no dependencies): the runner of the pure cores' data-driven scripts
//!   (`testdata/*.txt`: a command, `----`, its expected output), with `REWRITE=1` to rewrite.
//! - feature `process`: [`ports`] (free 127.0.0.1 ports), [`process::Proc`] (a child process
//!   killed by pid on drop, its output kept in a log file that is printed when the test fails),
//!   [`bins`] (where the workspace's binaries are), [`wait`] (bounded waits, each named),
//!   [`cluster`] (lognode processes and clusters: kill, pause, restart; gateway and projector
//!   processes), [`proxy`] (a TCP proxy a test can cut off), [`pg`] (`DATABASE_URL` checked loudly),
//!   [`raw_http`] (a blocking request over a plain socket), [`netns`] (hosts made of network
//!   namespaces, and cuts between them). Lognode flags come from
//!   `lognode-args`, the builder `ledger dev` uses too.
//! - feature `grpc`: [`grpc`] (a lognode client, leader lookup, whole-partition reads).
//! - feature `http`: [`http`] (a small HTTP/1.1 client with a bounded request time).
//!
//! The tidy tests (`tests/tidy.rs`) check the architecture's rules over the whole workspace.

pub mod datadriven;

#[cfg(feature = "process")]
pub mod bins;
#[cfg(feature = "process")]
pub mod cluster;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "process")]
pub mod netns;
#[cfg(feature = "process")]
pub mod pg;
#[cfg(feature = "process")]
pub mod ports;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "process")]
pub mod proxy;
#[cfg(feature = "process")]
pub mod raw_http;
#[cfg(feature = "process")]
pub mod wait;

#[cfg(feature = "process")]
pub use cluster::{Cluster, Lognode};
#[cfg(feature = "process")]
pub use ports::free_port;
#[cfg(feature = "process")]
pub use process::Proc;
#[cfg(feature = "process")]
pub use wait::{wait_for, wait_until};
