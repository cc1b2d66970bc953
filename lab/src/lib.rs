//! A lab of simulated hosts on one machine, for multi-host xnet: `cargo xtask lab`, and tests
//! and benchmarks that need several hosts and a cluster store.
//!
//! [`Lab::up`] builds, from a [`Spec`]:
//!
//! - a switch: a namespace `<prefix>-sw` with a Linux bridge, the underlay (MTU 1500), on
//!   which every other node has a veth whose end in its own namespace is `eth0`;
//! - a router, `<prefix>-out`: the hosts' default route, with 10.201.0.1 and fd00:201::1
//!   beyond it (a simulated outside, for egress);
//! - etcd members `e1`, `e2`, … (namespaces `<prefix>-e1`, …), one etcd process each, one
//!   cluster;
//! - hosts `h1`, `h2`, … (namespaces `<prefix>-h1`, …), each with its own xnetd (own socket,
//!   state and bpffs pins) whose uplink and cluster address is `eth0` and whose cluster store
//!   is the lab's etcd.
//!
//! Addresses ([`topology`]): the underlay is 10.77.0.0/24 and fd00:77::/64; the router is .1,
//! member `eN` is .(10+N), host `hN` is .(100+N) (and fd00:77::1, fd00:77::101, … with the
//! same digits). Two labs have two switches, so they may use the same addresses at once.
//!
//! A lab writes its record (names, paths, pids) to `/run/xnet-lab/<prefix>/lab.json` as it
//! grows, so another process can find it ([`Lab::load`]) and take it down. Dropping a lab
//! that this process brought up takes it down, panic or not; [`Lab::leave_running`] keeps it.

mod etcd;
mod eventually;
mod lab;
mod netns;
mod process;
mod record;
mod teardown;
pub mod topology;
mod xnetd;

pub use eventually::eventually;
pub use lab::Lab;
pub use record::{Host, Member, Router};
pub use topology::{ROUTER, RUN_DIR, Spec};
