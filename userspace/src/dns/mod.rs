//! The embedded DNS of xnet's containers, Docker's 127.0.0.11: container names and
//! `--network-alias`es resolve (A, AAAA, PTR) only for containers that share a network with
//! the asker, other names go to the host's resolvers.
//!
//! - `directory`: who is called what on which network, from the state;
//! - `answer`: one query's reply, or "forward it";
//! - `forward`: asking the host's resolvers;
//! - `server`: the per-container servers, following the state.

mod answer;
mod directory;
mod forward;
mod server;

pub use forward::resolvers_in;
pub use server::{DNS_ADDRESS, DnsServers};
