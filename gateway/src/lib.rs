//! `gateway`: Ledger's stateless HTTP/JSON API (axum + utoipa).
//!
//! The HTTP layer talks to the replicated ledger only through the
//! [`LedgerBackend`] trait; the product implementation speaks gRPC to the
//! `lognode` cluster. Layout:
//!
//! - [`auth`]: API keys and scopes (who may call what);
//! - [`backend`]: the trait, its request/response types and [`BackendError`];
//! - [`grpc_backend`]: the product backend (gRPC to the lognodes, gossip or a static list);
//! - [`routes`]: the handlers (`accounts`, `transfers`, `topics`, `ops`);
//! - [`dto`]: JSON bodies and their OpenAPI schemas (the only wire format);
//! - [`validate`] and [`limits`]: hostile input is checked against named limits;
//! - [`error`]: `application/problem+json` with stable codes;
//! - [`extract`]: extractors whose rejections are problem+json;
//! - [`metrics`]: the Prometheus text registry;
//! - [`quota`]: per-key token buckets and in-flight limits (429);
//! - [`openapi`]: the generated document;
//! - [`server`]: router assembly, in-flight limit, timeouts, serving.

pub mod auth;
pub mod backend;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod grpc_backend;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod quota;
pub mod routes;
pub mod server;
pub mod status_cache;
pub mod validate;

pub use backend::{BackendError, LedgerBackend, ReadConsistency};
pub use server::{AppState, GatewayConfig, ServeOptions, app, serve, serve_tls, serve_with, tls_acceptor};
