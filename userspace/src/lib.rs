//! xnet's user space: the `xnetd` daemon and the `xnet` CLI share this library.
//!
//! - [`api`]: the JSON API on the Unix socket (wire types, server routes, client);
//! - [`daemon`]: request handling, the one place that sequences state, OS and datapath;
//! - [`state`]: the desired world and its rules (IPAM, names), persisted atomically;
//! - [`datapath`]: loading, pinning and adopting the eBPF programs and maps;
//! - [`os`]: network namespaces, veths, addresses and routes over netlink;
//! - [`cli`]: the `xnet` commands.

pub mod api;
pub mod cli;
pub mod daemon;
pub mod datapath;
pub mod error;
pub mod os;
pub mod state;
