//! xnet's kernel-side programs, arranged by attach point (where a packet enters), one entry
//! file each:
//!
//! - [`endpoint`]: the tcx hooks of each container's host-side veth (bridge and overlay
//!   networks, and LAN networks: macvlan, ipvlan);
//! - [`uplink`]: the XDP and tcx ingress hooks of the host's uplink;
//! - [`host`]: the socket hooks (root cgroup) for the host's own connections to published ports;
//! - [`parent`]: the tcx ingress hook of a macvlan or ipvlan network's parent device (frames
//!   from the LAN for its containers);
//! - [`crypt`]: the tcx ingress hook of the encryption worker's device (encrypted overlays:
//!   what the worker decrypted);
//!
//! and one module per concern that those entry points share:
//!
//! - deciding: [`forward`] (a container's IPv4 and IPv6: to a peer, to the host, to the
//!   outside) and [`lan`] (LAN networks: a container's frames switched or routed to a sibling,
//!   the host or the LAN; the LAN's frames demultiplexed to their container);
//! - answering in place: [`arp`] (the ARP responder) and [`nd`] (the neighbour discovery
//!   responder and ND policing);
//! - translating: [`sock_dnat`] (published ports for the host's own sockets), [`dnat`]
//!   (published ports: destination NAT and its reverse, hairpin) and [`nat`] (source NAT for
//!   egress and its reverse, NAT44 and NAT66);
//! - tunnelling: [`encap`] (VXLAN to and from the other hosts of a cluster: encapsulation for
//!   `forward`, handing encrypted networks' packets to the encryption worker, checked
//!   decapsulation for `uplink` and `crypt`);
//! - handing over: [`deliver`] (into an endpoint: every way into a container) and [`flood`]
//!   (broadcast and multicast to a network's members);
//! - reading packets: [`parse`] (bounds-checked header access), [`packet`] (the packet model:
//!   IPv4 and IPv6 as one `Family`, where ports and checksums sit), [`ipv6`] (address tests)
//!   and [`csum`] (checksum updates for XDP, and folding sums);
//! - reporting: [`monitor`] (drop and trace events for `xnet monitor`, rate-limited, through
//!   a ring buffer);
//! - state: [`stats`] (counters), [`outcome`] (results of the steps that run as BPF-to-BPF
//!   calls) and [`maps`] (the maps, typed by `xnet-common`).
//!
//! Every import points further down these lists, so no module imports one that imports it
//! back.
#![no_std]
#![no_main]

mod arp;
mod crypt;
mod csum;
mod deliver;
mod dnat;
mod encap;
mod endpoint;
mod flood;
mod forward;
mod host;
mod ipv6;
mod lan;
mod maps;
mod monitor;
mod nat;
mod nd;
mod outcome;
mod packet;
mod parent;
mod parse;
mod sock_dnat;
mod stats;
mod uplink;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach a panic, so this is never entered.
    loop {}
}

/// GPL-compatible licence, required for helpers such as bpf_redirect_peer.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
