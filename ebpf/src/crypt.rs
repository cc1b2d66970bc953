//! Entry point on the encryption worker's device (`xnet-crypt`, a TAP device that xnetd's
//! encryption worker holds open): VXLAN packets another host of the cluster sent sealed, which
//! the worker authenticated, decrypted and checked to come from the host whose key sealed
//! them, and writes here, one Ethernet frame each.
//!
//! They take the uplink's two steps: [`decrypted_xdp`] (the device's XDP hook, which the kernel
//! runs on each frame the worker writes) checks and decapsulates unicast and leaves a note, so
//! that GRO (the device has NAPI) merges a flow's packets; [`decrypted_ingress`] (tcx) hands
//! the merged skb to its container, and decapsulates what XDP left (replicas). Both give the
//! checks VXLAN from the underlay gets (`encap`), except that an encrypted network's VNI is
//! accepted here. Nothing else is accepted on this device.

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use xnet_common::DropReason;

use crate::{
    encap::{self, Arrival},
    monitor,
};

/// XDP of the encryption worker's device: decrypted unicast VXLAN for this host is checked and
/// decapsulated (a note left for `decrypted_ingress`), replicas pass; anything else is dropped
/// and counted.
#[xdp]
pub fn decrypted_xdp(ctx: XdpContext) -> u32 {
    let reason = match encap::frame_from_underlay(&ctx, Arrival::Decrypted).unpack() {
        Ok(Some(verdict)) => return verdict as u32,
        Ok(None) => DropReason::MalformedVxlan,
        Err(reason) => reason,
    };
    monitor::dropped_at_xdp(&ctx, reason)
}

/// tcx ingress of the encryption worker's device: decrypted VXLAN for this host goes to the
/// endpoint it carries a frame for (or, a replica, to the network's members here); anything
/// else is dropped and counted.
#[classifier]
pub fn decrypted_ingress(ctx: TcContext) -> i32 {
    let reason = match encap::from_underlay(&ctx, Arrival::Decrypted).unpack() {
        Ok(Some(verdict)) => return verdict,
        // Sealed by a member, but not VXLAN for this host.
        Ok(None) => DropReason::MalformedVxlan,
        Err(reason) => reason,
    };
    monitor::dropped_at_tc(&ctx, None, reason)
}
