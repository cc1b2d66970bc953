//! The JSON API on xnetd's Unix socket: wire types (Docker-shaped where Docker has a shape),
//! the HTTP server routes, the client the CLI uses, and Docker's network plugin protocol.

pub mod client;
pub mod plugin;
pub mod server;
pub mod types;
