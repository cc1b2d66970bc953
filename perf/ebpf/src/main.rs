//! Kernel-side programs of xnet's benchmark tools, one module per role:
//!
//! - [`generator`]: the XDP program behind `xnet-gen` (live frames, `XDP_TX`);
//! - [`sink`]: counters where forwarded frames arrive (XDP, and TC for skb redirects);
//! - [`hop`]: bare one-hop forwarders between two veths, the ceiling and the reference.
#![no_std]
#![no_main]

mod generator;
mod hop;
mod sink;

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
