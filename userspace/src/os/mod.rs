//! OS plumbing: network namespaces and the links, addresses and routes inside them, all
//! through netlink (rtnetlink) and namespace syscalls (nix), and the one device feature xnet
//! sets (ethtool ioctl); the encryption worker's TAP device (`tap`) and UDP sockets with the
//! kernel's segmentation offloads (`udp`); a container's announcement on its LAN
//! (`announce`). No shelling out to `ip` or `ethtool`.

pub mod announce;
pub mod bpffs;
pub mod ethtool;
pub mod link;
pub mod netns;
pub mod sockets;
pub mod tap;
pub mod udp;

pub use link::Netlink;
