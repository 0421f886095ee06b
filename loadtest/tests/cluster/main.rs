//! The load tests against a real cluster (3 `lognode` processes, fsync on, and the `gateway`
//! binary, all on 127.0.0.1): the k6 scripts run briefly, and short runs of the Rust generator
//! produce reports whose numbers add up and whose conservation check passes. Needs the `lognode`
//! and `gateway` binaries next to the test binary (`cargo test --workspace` builds them).

mod fake;
mod generator;
mod k6;
mod support;
