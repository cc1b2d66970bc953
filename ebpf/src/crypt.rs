//! Entry point on the encryption worker's device (`xnet-crypt`, a TAP device that xnetd's
//! encryption worker holds open): VXLAN packets another host of the cluster sent sealed, which
//! the worker authenticated, decrypted and checked to come from the host whose key sealed
//! them, and writes here, one Ethernet frame each.
//!
//! [`decrypted_ingress`] gives them the checks VXLAN from the underlay gets
//! (`encap::from_underlay`), except that an encrypted network's VNI is accepted here, and
//! delivers them into their container the same way. Nothing else is accepted on this device.

use aya_ebpf::{bindings::TC_ACT_SHOT, macros::classifier, programs::TcContext};
use xnet_common::DropReason;

use crate::{
    encap::{self, Arrival},
    stats,
};

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
    stats::count_drop(None, reason);
    TC_ACT_SHOT
}
