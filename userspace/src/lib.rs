//! xnet's user space: the `xnetd` daemon and the `xnet` CLI share this library. Layers, each
//! using only those below it:
//!
//! - [`cli`]: the `xnet` commands, a client of [`api`]; [`cni`]: the `xnet-cni` plugin, another;
//! - [`api`]: xnet's JSON API on the Unix socket (wire types, routes, client), and
//!   [`docker`]: Docker's plugin protocols on the plugin socket; both call the daemon;
//! - [`daemon`]: request handling, the one place that sequences state, drivers and kernel;
//! - [`drivers`]: the network drivers (bridge, host, null), what a network and an endpoint of
//!   each are in the kernel, through [`plumbing`] (an endpoint's veth pair, addresses and
//!   routes) and [`datapath`] (loading, pinning and adopting the eBPF programs and maps);
//! - [`dns`]: the containers' embedded DNS servers, which the daemon keeps in step with the
//!   state;
//! - [`encryption`]: the encryption worker of encrypted overlays (a TAP device, UDP
//!   sockets, WireGuard sessions with the other hosts), which the daemon feeds with peers;
//! - [`os`]: network namespaces, links, addresses and routes over netlink, sysctls;
//! - [`state`]: the desired world and its rules (IPAM, ports, options, names), persisted
//!   atomically;
//! - [`logging`]: xnetd's log lines.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod docker;
pub mod drivers;
pub mod encryption;
pub mod error;
pub mod logging;
pub mod os;
pub mod plumbing;
pub mod state;
