//! HTTP tests of the gateway: a real server on 127.0.0.1 (ephemeral port)
//! over the in-process `MemoryBackend` (tests only; not a cluster).

mod auth;
#[path = "../common/auth_walk.rs"]
mod auth_walk;
mod balancing;
mod cli;
mod console;
mod errors;
mod happy;
mod limits_readme;
mod metrics;
mod openapi;
mod overload;
mod queries;
mod rejections;
mod support;
#[path = "../common/tools.rs"]
mod tools;
mod transactions;
