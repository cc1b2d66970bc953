//! xnet's kernel-side programs, arranged by attach point (where a packet enters):
//!
//! - [`endpoint`]: the tcx hooks of each container's host-side veth;
//! - [`uplink`]: the XDP and tcx ingress hooks of the host's uplink;
//! - [`host`]: the socket hooks (root cgroup) for the host's own connections to published ports;
//!
//! and one module per concern that those entry points share:
//! [`parse`] (bounds-checked header access), [`csum`] (checksum updates for XDP), [`ipv6`] (address tests), [`arp`] (the ARP
//! responder), [`nd`] (the neighbour discovery responder and ND policing), [`forward`] (IPv4
//! and IPv6 delivery between endpoints, to the host and to the outside), [`flood`] (broadcast
//! and multicast to a network's members), [`nat`] (source NAT for egress and its reverse, NAT44
//! and NAT66), [`dnat`] (published ports: destination NAT and its reverse, hairpin), [`maps`] (the maps, typed by `xnet-common`), [`stats`] (counters) and
//! [`outcome`] (results of the steps that run as BPF-to-BPF calls).
#![no_std]
#![no_main]

mod arp;
mod csum;
mod deliver;
mod dnat;
mod endpoint;
mod flood;
mod forward;
mod host;
mod ipv6;
mod maps;
mod nat;
mod nd;
mod outcome;
mod packet;
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
