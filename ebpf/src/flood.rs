//! Broadcast and multicast within a network: a copy to every other member, and to no one
//! else. There is no bridge to flood through, so the datapath does the fan-out itself, from the
//! network's member list that the daemon keeps in `MEMBERS`. (Copies for the members on other
//! hosts of an overlay network are `encap`'s.)

use aya_ebpf::{bindings::TC_ACT_SHOT, programs::TcContext};
use xnet_common::{DropReason, ENDPOINT_ICC_OFF, Endpoint, MAX_FLOOD};

use crate::maps;

/// Copies the frame the endpoint behind `ifindex` sent to every other member of its network,
/// out of each member's host-side veth (into the member's container), then consumes the
/// original.
#[inline(always)]
pub fn to_members(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Result<i32, DropReason> {
    if endpoint.flags & ENDPOINT_ICC_OFF != 0 {
        // Members of an ICC-off network never hear each other, broadcasts included.
        return Err(DropReason::IccBlocked);
    }
    copy_to_members(ctx, endpoint.network_id, ifindex);
    Ok(TC_ACT_SHOT)
}

/// Copies a frame another host replicated to this one (decapsulated) to every member of
/// network `network_id` here, then consumes it.
#[inline(always)]
pub fn from_another_host(ctx: &TcContext, network_id: u32) -> i32 {
    // Host-side ifindexes are never 0: nobody is left out.
    copy_to_members(ctx, network_id, 0);
    TC_ACT_SHOT
}

/// A copy of the frame to every member of network `network_id` but the one behind `except`
/// (0: nobody is left out); the frame itself is left to the caller.
#[inline(always)]
pub fn copy_to_members(ctx: &TcContext, network_id: u32, except: u32) {
    let members = maps::member_count(network_id).min(MAX_FLOOD);
    for slot in 0..MAX_FLOOD {
        if slot >= members {
            break;
        }
        let Some(member) = maps::member(network_id, slot) else {
            continue;
        };
        // Each copy leaves through the member's host-side veth, whose egress hook counts it;
        // a member whose veth vanished mid-update just misses this copy.
        if member != except {
            let _ = ctx.clone_redirect(member, 0);
        }
    }
}
