//! The ARP responder: the datapath knows every address of a network, so it answers requests
//! itself instead of flooding them (there is no bridge to flood through).

use aya_ebpf::{bindings::TC_ACT_OK, helpers::bpf_redirect, programs::TcContext};
use network_types::{arp::ArpHdr, eth::EthHdr};
use xnet_common::{DropReason, ENDPOINT_ICC_OFF, Endpoint};

use crate::{flood, maps, outcome::Outcome, parse};

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
pub const OPER_REQUEST: u16 = 1;
const OPER_REPLY: u16 = 2;

/// Handles an ARP frame sent by `endpoint`: requests for the gateway or for another endpoint of
/// its network are answered in place and sent back into the container; replies (to the host's
/// own requests) go to the host stack; anything else is dropped.
///
/// Not inlined: its copies of the header stay off the stack frame every forwarded frame pays
/// for (a BPF-to-BPF call has a frame of its own).
#[inline(never)]
pub fn answer_from_container(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Outcome {
    Outcome::pack(answer(ctx, ifindex, endpoint).map(Some))
}

#[inline(always)]
fn answer(ctx: &TcContext, ifindex: u32, endpoint: &Endpoint) -> Result<i32, DropReason> {
    let arp: *const ArpHdr = parse::header(ctx, EthHdr::LEN).ok_or(DropReason::Truncated)?;
    // SAFETY: `header` checked that a whole ArpHdr lies inside the packet; copied out.
    let mut arp = unsafe { *arp };
    check_from(&arp, endpoint)?;
    match arp.oper() {
        OPER_REPLY => Ok(TC_ACT_OK),
        OPER_REQUEST => {
            let target = arp.tpa;
            if target == endpoint.ipv4 {
                // Gratuitous ARP (an announcement, or a duplicate-address probe): there is no
                // other owner to answer for; the network's members hear it, as on a bridge.
                return flood::to_members(ctx, ifindex, endpoint);
            }
            let answer_mac = if target == endpoint.gateway {
                endpoint.host_mac
            } else {
                let peer = maps::neighbor(endpoint.network_id, target)
                    .ok_or(DropReason::UnknownArpTarget)?;
                if endpoint.flags & ENDPOINT_ICC_OFF != 0 {
                    return Err(DropReason::IccBlocked);
                }
                peer.mac
            };
            turn_into_reply(ctx, &mut arp, answer_mac)?;
            // Out of the same host-side veth, i.e. back into the container that asked.
            // SAFETY: plain helper call; flags 0 means egress of `ifindex`.
            Ok(unsafe { bpf_redirect(ifindex, 0) } as i32)
        }
        _ => Err(DropReason::MalformedArp),
    }
}

/// Checks an ARP frame `endpoint` sent: Ethernet and IPv4, its own MAC and address as sender.
#[inline(always)]
pub fn check_from(arp: &ArpHdr, endpoint: &Endpoint) -> Result<(), DropReason> {
    if arp.htype() != HTYPE_ETHERNET || arp.ptype() != PTYPE_IPV4 || arp.hlen != 6 || arp.plen != 4
    {
        return Err(DropReason::MalformedArp);
    }
    if arp.sha != endpoint.mac {
        return Err(DropReason::SpoofedMac);
    }
    if arp.spa != endpoint.ipv4 {
        return Err(DropReason::SpoofedIp);
    }
    Ok(())
}

/// Rewrites a request into the reply `answer_mac` would send, Ethernet header included.
///
/// Written with `bpf_skb_store_bytes`, not through packet pointers: a program that writes
/// packet data directly gets a prologue that makes every skb's head writable, a cost the
/// forwarding fast path would pay on every frame for the sake of this rare one.
#[inline(always)]
pub fn turn_into_reply(
    ctx: &TcContext,
    arp: &mut ArpHdr,
    answer_mac: [u8; 6],
) -> Result<(), DropReason> {
    let (asker_mac, asker_ip, answered_ip) = (arp.sha, arp.spa, arp.tpa);
    arp.set_oper(OPER_REPLY);
    arp.sha = answer_mac;
    arp.spa = answered_ip;
    arp.tha = asker_mac;
    arp.tpa = asker_ip;
    let eth_addresses: [[u8; 6]; 2] = [asker_mac, answer_mac];
    ctx.store(0, &eth_addresses, 0)
        .and_then(|()| ctx.store(EthHdr::LEN, arp, 0))
        .map_err(|_| DropReason::Truncated)
}
