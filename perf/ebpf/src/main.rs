//! Kernel-side programs of xnet's benchmark tools, one module per role:
//!
//! - [`generator`]: the XDP program behind `xnet-gen` (live frames, `XDP_TX`);
//! - [`sink`]: counters where forwarded frames arrive (XDP, and TC for skb redirects);
//! - [`hop`]: bare one-hop forwarders between two veths, the ceiling and the reference;
//! - the VXLAN mechanisms `vxlan-mech-*` compares (issue #13), over [`overlay`] (tables and
//!   globals) and [`vxlan`] (the wire format): [`tunnel_key`] (B: `bpf_skb_set_tunnel_key` and
//!   a collect_md vxlan device), [`adjust_room`] (C: the outer headers written with
//!   `bpf_skb_adjust_room`, decapsulated at tcx) and [`xdp_decap`] (C, decapsulated at XDP).
#![no_std]
#![no_main]

mod adjust_room;
mod generator;
mod hop;
mod overlay;
mod sink;
mod tunnel_key;
mod vxlan;
mod xdp_decap;

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
