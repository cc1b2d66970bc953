//! Entry point on the parent device of macvlan and ipvlan networks (`-o parent=IFACE[.VID]`):
//! frames from the LAN.
//!
//! [`parent_ingress`] (tcx) hands what is for a container of a LAN network (by MAC for
//! macvlan, by address for ipvlan; broadcasts to every member) into it, untagged, and lets
//! everything else go on: to the next program on the hook (the uplink's, when the parent is
//! also the uplink) and to the host's stack.

use aya_ebpf::{macros::classifier, programs::TcContext};

use crate::{lan, monitor};

/// tcx ingress of a parent device.
#[classifier]
pub fn parent_ingress(ctx: TcContext) -> i32 {
    // SAFETY: `skb` is the context pointer the kernel passed in; `ifindex` is readable for TC.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    match lan::from_parent(&ctx, ifindex) {
        Ok(action) => action,
        Err(reason) => monitor::dropped_at_tc(&ctx, None, reason),
    }
}
