//! xnet's JSON API on xnetd's Unix socket: wire types (Docker-shaped where Docker has a shape),
//! the HTTP server routes, and the client the CLI uses; and the Prometheus metrics
//! (`metrics`). Docker's plugin protocols are
//! [`crate::docker`]'s.

pub mod client;
pub mod metrics;
pub mod server;
pub mod types;

/// Where xnetd serves its API unless told otherwise (`xnetd --socket`, `xnet --host`).
pub const DEFAULT_SOCKET: &str = "/run/xnet/xnet.sock";
