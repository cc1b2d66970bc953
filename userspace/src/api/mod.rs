//! The JSON API on xnetd's Unix socket: wire types (Docker-shaped where Docker has a shape),
//! the HTTP server routes, and the client the CLI uses.

pub mod client;
pub mod server;
pub mod types;
