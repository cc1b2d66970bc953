//! xnetd as a Docker engine's network plugin (`xnetd --docker-plugin NAME`): libnetwork's
//! remote network driver and remote IPAM driver, served on `<plugin dir>/NAME.sock` beside
//! xnet's own socket, under the same lock, so Docker's networks and containers are xnet
//! networks and containers on the same datapath.
//!
//! - [`wire`]: the protocols' requests and answers;
//! - [`routes`]: the socket's routes;
//! - [`network`]: the network driver's calls (networks, endpoints, joins, published ports);
//! - `convert`: Docker's wire shapes as xnet's (options, pools, addresses, port bindings);
//! - [`ipam`]: the IPAM driver's calls (pools and addresses by xnet's rules);
//! - [`names`]: Docker's names for what those calls made, asked from Docker's API.

mod convert;
pub mod ipam;
pub mod names;
pub mod network;
pub mod routes;
pub mod wire;
