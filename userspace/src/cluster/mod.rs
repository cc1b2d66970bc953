//! The cluster: hosts that share networks of global scope (overlay) through etcd, an existing
//! distributed store (`xnetd --cluster-store etcd://… --cluster-advertise IP|IFACE`). xnet
//! builds no consensus or gossip of its own: etcd's transactions make names, VNIs (and
//! addresses) unique cluster-wide, its leases tell which hosts are alive, and its watch tells
//! every host what changed.
//!
//! - [`config`]: the flags;
//! - [`keys`]: the key layout (versioned);
//! - [`records`]: the JSON records under those keys;
//! - [`store`]: the calls, each bounded in time; [`endpoints`] those for endpoints;
//! - [`view`]: this host's copy of the hosts and endpoints, kept current by the watch.

pub mod config;
pub mod endpoints;
pub mod keys;
pub mod records;
pub mod store;
pub mod view;
