//! OS plumbing: network namespaces and the links, addresses and routes inside them, all
//! through netlink (rtnetlink) and namespace syscalls (nix). No shelling out to `ip`.

pub mod bpffs;
pub mod link;
pub mod netns;
pub mod sockets;

pub use link::Netlink;
