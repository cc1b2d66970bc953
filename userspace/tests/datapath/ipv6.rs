//! IPv6 at the packet level: the neighbour discovery responder and ND policing, forwarding,
//! isolation and anti-spoofing, and NAT66 with its reverse (replies and ICMPv6 errors).

use aya::maps::{
    MapData,
    lpm_trie::{Key, LpmTrie},
};
use xnet_common::{
    DropReason, ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, ENDPOINT_IPV6, Endpoint, MAP_NEIGHBORS6,
    MAP_SUBNETS6, NAT_PORT_COUNT, NAT_PORT_FIRST, Neighbor6Key, PROG_UPLINK_INGRESS, Uplink,
    link_local_of,
};
use xnet_dockerlab::skip;

use super::{
    Datapath, HOST_MAC, LOOPBACK, ME_MAC, ME_SLOT, NET, OTHER_NET, PEER_IFINDEX, PEER_MAC,
    PEER_SLOT, STRANGER_MAC, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, csum, eth, me,
};

pub(super) const fn fd(last: u8) -> [u8; 16] {
    [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
}
pub(super) const ME_IP6: [u8; 16] = fd(2);
pub(super) const GATEWAY6: [u8; 16] = fd(1);
const PEER_IP6: [u8; 16] = fd(3);
/// On the other network, in the same range on purpose: only the network id separates them.
const STRANGER_IP6: [u8; 16] = fd(4);
pub(super) const ME_LL: [u8; 16] = link_local_of(ME_MAC);
const PEER_LL: [u8; 16] = link_local_of(PEER_MAC);
const HOST_LL: [u8; 16] = link_local_of(HOST_MAC);
pub(super) const UNSPECIFIED: [u8; 16] = [0; 16];
pub(super) const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(super) const MLD_ROUTERS: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];
pub(super) const UPLINK_IP6: [u8; 16] = [0xfd, 0, 0xc8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(super) const REMOTE_IP6: [u8; 16] = [0xfd, 0, 0xc9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

const ICMPV6: u8 = 58;
const UDP: u8 = 17;
const NS: u8 = 135;
const NA: u8 = 136;

/// The endpoint under test on an IPv6 network, with `flags`.
fn me6(flags: u32) -> Endpoint {
    Endpoint {
        ipv6: ME_IP6,
        gateway6: GATEWAY6,
        ..me(flags | ENDPOINT_IPV6)
    }
}

/// A datapath whose endpoint under test has IPv6, with its peer (address and link-local
/// address) and the stranger of the other network registered, as the daemon would.
pub(super) fn datapath6() -> Datapath {
    let mut dp = Datapath::new();
    dp.set_me(Some(me6(0)));
    let key = |network_id, ipv6| Neighbor6Key { network_id, ipv6 };
    dp.add_neighbors(
        MAP_NEIGHBORS6,
        [
            (key(NET, ME_IP6), LOOPBACK, ME_MAC, ME_SLOT),
            (key(NET, ME_LL), LOOPBACK, ME_MAC, ME_SLOT),
            (key(NET, PEER_IP6), PEER_IFINDEX, PEER_MAC, PEER_SLOT),
            (key(NET, PEER_LL), PEER_IFINDEX, PEER_MAC, PEER_SLOT),
            (key(OTHER_NET, STRANGER_IP6), 43, STRANGER_MAC, 2),
        ],
    );
    let mut subnets: LpmTrie<&mut MapData, [u8; 16], u32> =
        LpmTrie::try_from(dp.ebpf.map_mut(MAP_SUBNETS6).unwrap()).unwrap();
    subnets.insert(&Key::new(64, fd(0)), NET, 0).unwrap();
    dp
}

/// The group MAC of an IPv6 multicast address (33:33 + its last four bytes).
pub(super) fn multicast_mac(group: [u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// The solicited-node multicast address of `target`.
fn solicited_node(target: [u8; 16]) -> [u8; 16] {
    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&target[13..]);
    group
}

/// The pseudo header IPv6 upper-layer checksums cover.
pub(super) fn pseudo(src: [u8; 16], dst: [u8; 16], next_header: u8, len: usize) -> Vec<u8> {
    [
        &src[..],
        &dst[..],
        &(len as u32).to_be_bytes()[..],
        &[0, 0, 0, next_header],
    ]
    .concat()
}

/// An IPv6 frame carrying `payload` (whose checksum, at `csum_at`, is filled in).
pub(super) fn ipv6_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    (src, dst): ([u8; 16], [u8; 16]),
    (next_header, hop_limit): (u8, u8),
    mut payload: Vec<u8>,
    csum_at: usize,
) -> Vec<u8> {
    let sum = csum(&[&pseudo(src, dst, next_header, payload.len()), &payload]);
    payload[csum_at..csum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next_header, hop_limit]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&payload);
    f
}

/// An ICMPv6 message of `icmp_type` with `body` (after type, code and checksum).
pub(super) fn icmp6(
    dst_mac: [u8; 6],
    (src, dst): ([u8; 16], [u8; 16]),
    icmp_type: u8,
    hop_limit: u8,
    body: &[u8],
) -> Vec<u8> {
    let payload = [&[icmp_type, 0, 0, 0][..], body].concat();
    ipv6_frame(dst_mac, ME_MAC, (src, dst), (ICMPV6, hop_limit), payload, 2)
}

/// A neighbour solicitation from `src` for `target`, multicast to its solicited-node group,
/// with a source link-layer address option if `sll` is given.
pub(super) fn solicitation(src: [u8; 16], target: [u8; 16], sll: Option<[u8; 6]>) -> Vec<u8> {
    let group = solicited_node(target);
    let mut body = vec![0; 4];
    body.extend_from_slice(&target);
    if let Some(mac) = sll {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac);
    }
    icmp6(multicast_mac(group), (src, group), NS, 255, &body)
}

pub(super) fn ns_from_me(target: [u8; 16]) -> Vec<u8> {
    solicitation(ME_IP6, target, Some(ME_MAC))
}

/// A neighbour advertisement from the endpoint under test for `target`.
pub(super) fn advertisement(
    dst_mac: [u8; 6],
    dst: [u8; 16],
    target: [u8; 16],
    tll: [u8; 6],
) -> Vec<u8> {
    let mut body = vec![0x60, 0, 0, 0];
    body.extend_from_slice(&target);
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&tll);
    icmp6(dst_mac, (ME_LL, dst), NA, 255, &body)
}

/// A UDP datagram over IPv6 with a valid checksum.
pub(super) fn udp6(
    src_mac: [u8; 6],
    (src, sport): ([u8; 16], u16),
    (dst, dport): ([u8; 16], u16),
) -> Vec<u8> {
    let body = b"xnet nat66";
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(body);
    ipv6_frame(HOST_MAC, src_mac, (src, dst), (UDP, 64), udp, 6)
}

pub(super) fn udp6_from_me(dst_mac: [u8; 6], dst: [u8; 16]) -> Vec<u8> {
    let mut f = udp6(ME_MAC, (ME_IP6, 40000), (dst, 53));
    f[0..6].copy_from_slice(&dst_mac);
    f
}

/// Asserts the upper-layer checksum of an IPv6 frame verifies; returns (src, dst, payload).
pub(super) fn checked6(frame: &[u8]) -> ([u8; 16], [u8; 16], &[u8]) {
    let src: [u8; 16] = frame[22..38].try_into().unwrap();
    let dst: [u8; 16] = frame[38..54].try_into().unwrap();
    let payload = &frame[54..];
    let next_header = frame[20];
    assert_eq!(
        csum(&[&pseudo(src, dst, next_header, payload.len()), payload]),
        0,
        "bad upper-layer checksum"
    );
    (src, dst, payload)
}

/// Asserts `frame` is the advertisement `owner_mac` would send for `target` to the endpoint
/// under test, with `flags` and a target link-layer address option iff `with_option`.
pub(super) fn assert_advertisement(
    frame: &[u8],
    target: [u8; 16],
    owner_mac: [u8; 6],
    flags: u8,
    with_option: bool,
) {
    assert_eq!(&frame[0..6], &ME_MAC, "to the asker");
    assert_eq!(&frame[6..12], &owner_mac, "from the owner");
    let (src, dst, icmp) = checked6(frame);
    assert_eq!((src, dst), (target, ME_IP6));
    assert_eq!(frame[21], 255, "hop limit");
    assert_eq!(&icmp[..2], &[NA, 0]);
    assert_eq!(icmp[4], flags, "router/solicited/override flags");
    assert_eq!(&icmp[8..24], &target);
    if with_option {
        assert_eq!(&icmp[24..], &[&[2, 1][..], &owner_mac[..]].concat());
    } else {
        assert_eq!(icmp.len(), 24);
    }
}

#[test]
fn neighbour_solicitations_for_the_gateway_and_the_host_are_answered() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    let (verdict, out) = dp.ingress(&ns_from_me(GATEWAY6));
    assert_eq!(verdict, TC_ACT_REDIRECT, "answered back into the asker");
    assert_advertisement(&out, GATEWAY6, HOST_MAC, 0xe0, true);
    // A unicast probe without an option (neighbour unreachability detection) gets a bare
    // advertisement; the host-side veth's link-local address is the host too.
    let mut probe = solicitation(ME_IP6, HOST_LL, None);
    probe[0..6].copy_from_slice(&HOST_MAC);
    let (verdict, out) = dp.ingress(&probe);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_advertisement(&out, HOST_LL, HOST_MAC, 0x60, false);
    assert_eq!(dp.counters(ME_SLOT).drops, 0);
}

#[test]
fn neighbour_solicitations_for_peers_are_answered_with_their_mac() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    for target in [PEER_IP6, PEER_LL] {
        let (verdict, out) = dp.ingress(&ns_from_me(target));
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_advertisement(&out, target, PEER_MAC, 0x60, true);
    }
    // From its link-local address too (how Linux resolves link-local neighbours).
    let (verdict, _) = dp.ingress(&solicitation(ME_LL, PEER_LL, Some(ME_MAC)));
    assert_eq!(verdict, TC_ACT_REDIRECT);
}

#[test]
fn neighbour_discovery_never_answers_for_unknown_or_foreign_addresses() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    dp.assert_dropped(&ns_from_me(fd(99)), DropReason::UnknownNdTarget);
    // The stranger exists, but on another network: no answer, no leak of its MAC.
    dp.assert_dropped(&ns_from_me(STRANGER_IP6), DropReason::UnknownNdTarget);
    // ICC off: peers are not resolved (L2 isolation), the gateway still is.
    dp.set_me(Some(me6(ENDPOINT_ICC_OFF)));
    dp.assert_dropped(&ns_from_me(PEER_IP6), DropReason::IccBlocked);
    dp.assert_dropped(&udp6_from_me(PEER_MAC, PEER_IP6), DropReason::IccBlocked);
    assert_eq!(dp.ingress(&ns_from_me(GATEWAY6)).0, TC_ACT_REDIRECT);
    assert_eq!(dp.ingress(&udp6_from_me(HOST_MAC, GATEWAY6)).0, TC_ACT_OK);
}

#[test]
fn spoofed_malformed_and_router_nd_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    // A source link-layer address option naming someone else's MAC.
    dp.assert_dropped(
        &solicitation(ME_IP6, GATEWAY6, Some(PEER_MAC)),
        DropReason::SpoofedMac,
    );
    // Advertising a peer's address (neighbour cache poisoning), even with its own MAC.
    dp.assert_dropped(
        &advertisement(HOST_MAC, HOST_LL, PEER_IP6, ME_MAC),
        DropReason::SpoofedIp,
    );
    dp.assert_dropped(
        &advertisement(HOST_MAC, HOST_LL, ME_IP6, PEER_MAC),
        DropReason::SpoofedMac,
    );
    // Only duplicate-address probes may come from `::`.
    dp.assert_dropped(
        &solicitation(UNSPECIFIED, PEER_IP6, None),
        DropReason::SpoofedIp,
    );
    // Hop limit other than 255 (it crossed a router), a non-zero code, an unknown length.
    let mut routed = ns_from_me(GATEWAY6);
    routed[21] = 64;
    dp.assert_dropped(&routed, DropReason::MalformedNd);
    let mut coded = ns_from_me(GATEWAY6);
    coded[55] = 1;
    dp.assert_dropped(&coded, DropReason::MalformedNd);
    let long = {
        let group = solicited_node(GATEWAY6);
        let mut body = vec![0; 4];
        body.extend_from_slice(&GATEWAY6);
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&ME_MAC);
        body.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        icmp6(multicast_mac(group), (ME_IP6, group), NS, 255, &body)
    };
    dp.assert_dropped(&long, DropReason::MalformedNd);
    // Router advertisements and redirects: a container never routes for its network.
    for rogue in [134, 137] {
        let frame = icmp6(
            multicast_mac(ALL_NODES),
            (ME_LL, ALL_NODES),
            rogue,
            255,
            &[0; 36],
        );
        dp.assert_dropped(&frame, DropReason::RogueRouter);
    }
}

#[test]
fn ipv6_multicast_and_duplicate_address_probes_reach_members_only() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    // A duplicate-address probe (from `::`), a multicast listener report, an unsolicited
    // advertisement and a router solicitation: fanned out (no members registered here), the
    // original consumed, nothing counted as a drop.
    let dad = solicitation(UNSPECIFIED, ME_IP6, None);
    let report = icmp6(
        multicast_mac(MLD_ROUTERS),
        (ME_LL, MLD_ROUTERS),
        143,
        1,
        &[0; 4],
    );
    let unsolicited = advertisement(multicast_mac(ALL_NODES), ALL_NODES, ME_IP6, ME_MAC);
    let solicit_routers = icmp6(
        [0x33, 0x33, 0, 0, 0, 2],
        (ME_LL, [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        133,
        255,
        &[0; 4],
    );
    for frame in [&dad, &report, &unsolicited, &solicit_routers] {
        assert_eq!(dp.ingress(frame).0, TC_ACT_SHOT);
    }
    assert_eq!(dp.counters(ME_SLOT).drops, 0);
    assert_eq!(dp.counters(ME_SLOT).tx_packets, 4);
    dp.set_me(Some(me6(ENDPOINT_ICC_OFF)));
    dp.assert_dropped(&report, DropReason::IccBlocked);
}

#[test]
fn ipv6_is_delivered_to_peers_and_the_host() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    for dst in [PEER_IP6, PEER_LL] {
        let frame = udp6_from_me(HOST_MAC, dst);
        let (verdict, out) = dp.ingress(&frame);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_eq!(&out[0..6], &PEER_MAC, "re-addressed to the owner");
        assert_eq!(out[14..], frame[14..], "packet untouched");
    }
    assert_eq!(dp.counters(PEER_SLOT).rx_packets, 2);
    // The gateway, and (an answer to the host's own solicitation) the host-side link-local.
    let to_gateway = udp6_from_me(HOST_MAC, GATEWAY6);
    assert_eq!(dp.ingress(&to_gateway), (TC_ACT_OK, to_gateway));
    let answer = advertisement(HOST_MAC, HOST_LL, ME_IP6, ME_MAC);
    assert_eq!(dp.ingress(&answer).0, TC_ACT_OK);
}

#[test]
fn spoofed_ipv6_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    for forged in [fd(77), PEER_IP6, PEER_LL, UNSPECIFIED] {
        let frame = udp6(ME_MAC, (forged, 40000), (PEER_IP6, 53));
        dp.assert_dropped(&frame, DropReason::SpoofedIp);
    }
    let frame = udp6(STRANGER_MAC, (ME_IP6, 40000), (PEER_IP6, 53));
    dp.assert_dropped(&frame, DropReason::SpoofedMac);
    // IPv4 version behind the IPv6 EtherType.
    let mut bad_version = udp6_from_me(PEER_MAC, PEER_IP6);
    bad_version[14] = 0x45;
    dp.assert_dropped(&bad_version, DropReason::MalformedIp);
}

#[test]
fn ipv6_to_other_networks_or_nowhere_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = datapath6();
    dp.assert_dropped(
        &udp6_from_me(STRANGER_MAC, STRANGER_IP6),
        DropReason::OtherNetwork,
    );
    dp.assert_dropped(
        &udp6_from_me(HOST_MAC, link_local_of(STRANGER_MAC)),
        DropReason::NoRoute,
    );
    dp.assert_dropped(&udp6_from_me(ME_MAC, ME_IP6), DropReason::NoRoute);
    dp.assert_dropped(&udp6_from_me(HOST_MAC, REMOTE_IP6), DropReason::NoUplink);
    // An uplink without IPv6 is no IPv6 way out either.
    dp.set_uplink(Uplink {
        ifindex: 7,
        ipv4: [10, 200, 0, 1],
        ipv6: [0; 16],
    });
    dp.assert_dropped(&udp6_from_me(HOST_MAC, REMOTE_IP6), DropReason::NoUplink);
    dp.set_me(Some(me6(ENDPOINT_INTERNAL)));
    dp.assert_dropped(&udp6_from_me(HOST_MAC, REMOTE_IP6), DropReason::Internal);
}

pub(super) fn port(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

pub(super) fn dp_with_uplink6() -> Datapath {
    let mut dp = datapath6();
    dp.set_uplink(Uplink {
        ifindex: 7,
        ipv4: [10, 200, 0, 1],
        ipv6: UPLINK_IP6,
    });
    dp
}

pub(super) fn assert_nat_port(port: u16) {
    let range = u32::from(NAT_PORT_FIRST)..u32::from(NAT_PORT_FIRST) + u32::from(NAT_PORT_COUNT);
    assert!(range.contains(&u32::from(port)), "{port}");
}

#[test]
fn ipv6_egress_is_nat66_and_replies_come_back() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    let (verdict, out) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 40000), (REMOTE_IP6, 53)));
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent out of the uplink");
    let (src, dst, udp) = checked6(&out);
    assert_eq!((src, dst, port(&udp[2..])), (UPLINK_IP6, REMOTE_IP6, 53));
    let nat_port = port(udp);
    assert_nat_port(nat_port);

    let reply = udp6(HOST_MAC, (REMOTE_IP6, 53), (UPLINK_IP6, nat_port));
    let (verdict, back) = dp.run(PROG_UPLINK_INGRESS, &reply);
    assert_eq!(verdict, TC_ACT_REDIRECT, "redirected into the container");
    let (src, dst, udp) = checked6(&back);
    assert_eq!((src, dst), (REMOTE_IP6, ME_IP6));
    assert_eq!((port(udp), port(&udp[2..])), (53, 40000));
    assert_eq!(&back[0..6], &ME_MAC);

    // Traffic for the uplink's address that belongs to no flow is the host's: untouched.
    let host_traffic = udp6(HOST_MAC, (REMOTE_IP6, 53), (UPLINK_IP6, nat_port + 1));
    assert_eq!(
        dp.run(PROG_UPLINK_INGRESS, &host_traffic),
        (TC_ACT_OK, host_traffic)
    );
}

#[test]
fn icmpv6_echo_and_errors_are_translated_both_ways() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    let echo = icmp6(
        HOST_MAC,
        (ME_IP6, REMOTE_IP6),
        128,
        64,
        &[0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'],
    );
    let (verdict, out) = dp.ingress(&echo);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    let (src, _, icmp) = checked6(&out);
    assert_eq!(src, UPLINK_IP6);
    let nat_id = port(&icmp[4..]);
    assert_nat_port(nat_id);
    let mut reply_body = icmp[4..].to_vec();
    reply_body[4..].copy_from_slice(b"pong");
    let reply = icmp6(HOST_MAC, (REMOTE_IP6, UPLINK_IP6), 129, 64, &reply_body);
    let (verdict, back) = dp.run(PROG_UPLINK_INGRESS, &reply);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    let (_, dst, icmp) = checked6(&back);
    assert_eq!((dst, port(&icmp[4..])), (ME_IP6, 0x1234));

    // A port unreachable about a UDP flow, quoting the datagram as it left.
    let (_, sent) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 40000), (REMOTE_IP6, 53)));
    let nat_port = port(&sent[54..]);
    let mut error_body = vec![0; 4];
    error_body.extend_from_slice(&sent[14..]);
    let error = icmp6(HOST_MAC, (REMOTE_IP6, UPLINK_IP6), 1, 64, &error_body);
    let (verdict, back) = dp.run(PROG_UPLINK_INGRESS, &error);
    assert_eq!(verdict, TC_ACT_REDIRECT, "the error reaches the container");
    let (_, dst, icmp) = checked6(&back);
    assert_eq!(dst, ME_IP6);
    let quoted = &icmp[8..];
    assert_eq!(&quoted[8..24], &ME_IP6, "quoted source translated back");
    assert_eq!(
        port(&quoted[40..]),
        40000,
        "quoted source port translated back"
    );
    assert_ne!(nat_port, 40000);
}
