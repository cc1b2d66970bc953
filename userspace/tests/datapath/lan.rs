//! LAN networks (macvlan, ipvlan): the parent's `parent_ingress` hands a frame from the LAN
//! only to the container that owns its destination MAC (macvlan) or address (ipvlan), on the
//! network's own VLAN, untagged; a container's `lan_endpoint_ingress` sends only with its own
//! MAC and address, and meets its siblings only as the network's mode allows. The parent under
//! test is the loopback device the test runner uses (ifindex 1).

use aya::maps::{HashMap, MapData};
use xnet_common::{
    DropReason, ENDPOINT_LAN, LAN_IPVLAN, LAN_L3, LAN_MODE_BRIDGE, LAN_MODE_PRIVATE, LanMacKey,
    LanNetwork, LanParent, LanParentKey, MAP_LAN_MACS, MAP_LAN_NETWORKS, MAP_LAN_PARENTS,
    PROG_LAN_ENDPOINT_INGRESS, PROG_PARENT_INGRESS,
};
use xnet_dockerlab::skip;

use super::{
    Datapath, LOOPBACK, ME_IP, ME_MAC, ME_SLOT, NET, OTHER_NET, PEER_IP, PEER_MAC, PEER_SLOT,
    STRANGER_MAC, TC_ACT_REDIRECT, TC_ACT_SHOT, me, udp,
};

/// tcx's "go on": the next program on the hook, then the host's stack.
const TC_ACT_UNSPEC: u32 = -1i32 as u32;
const VLAN: u16 = 50;
const PARENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];
const ROUTER_IP: [u8; 4] = [10, 0, 0, 254];
/// The container's host-side veth, as `LAN_MACS` and `NEIGHBORS` name it.
const ME_VETH: u32 = 41;

impl Datapath {
    /// Makes network `NET` a LAN network on the loopback device (tagged `vlan`), with the
    /// endpoint under test (behind `ME_VETH` in the maps) and its peer as containers there.
    fn make_lan(&mut self, vlan: u16, mode: u8, flags: u8) {
        self.set_me(Some(me(ENDPOINT_LAN)));
        let mut networks: HashMap<&mut MapData, u32, LanNetwork> =
            HashMap::try_from(self.ebpf.map_mut(MAP_LAN_NETWORKS).unwrap()).unwrap();
        let lan = LanNetwork {
            parent: LOOPBACK,
            host_ipv4: [0; 4],
            parent_mac: PARENT_MAC,
            vlan,
            mode,
            flags,
            _pad: [0; 6],
        };
        networks.insert(NET, lan, 0).unwrap();
        if flags & LAN_L3 == 0 {
            let mut parents: HashMap<&mut MapData, LanParentKey, LanParent> =
                HashMap::try_from(self.ebpf.map_mut(MAP_LAN_PARENTS).unwrap()).unwrap();
            let key = LanParentKey {
                ifindex: LOOPBACK,
                vlan,
                _pad: [0; 2],
            };
            let parent = LanParent {
                network_id: NET,
                flags,
                _pad: 0,
                parent_mac: PARENT_MAC,
            };
            parents.insert(key, parent, 0).unwrap();
        }
        let key = |network_id, ipv4| xnet_common::NeighborKey { network_id, ipv4 };
        self.add_neighbors(
            xnet_common::MAP_NEIGHBORS,
            [
                (key(NET, ME_IP), ME_VETH, ME_MAC, ME_SLOT),
                (key(NET, PEER_IP), super::PEER_IFINDEX, PEER_MAC, PEER_SLOT),
            ],
        );
        if flags & LAN_IPVLAN == 0 {
            let key = |network_id, mac| LanMacKey {
                network_id,
                mac,
                _pad: [0; 2],
            };
            self.add_neighbors(
                MAP_LAN_MACS,
                [
                    (key(NET, ME_MAC), ME_VETH, ME_MAC, ME_SLOT),
                    (key(NET, PEER_MAC), super::PEER_IFINDEX, PEER_MAC, PEER_SLOT),
                    (key(OTHER_NET, STRANGER_MAC), 43, STRANGER_MAC, 2),
                ],
            );
        }
    }

    fn run_parent(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(PROG_PARENT_INGRESS, frame)
    }

    fn run_lan_endpoint(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(PROG_LAN_ENDPOINT_INGRESS, frame)
    }

    fn assert_container_dropped(&mut self, frame: &[u8], reason: DropReason) {
        let before = self.drops(reason);
        let (verdict, _) = self.run_lan_endpoint(frame);
        assert_eq!(verdict, TC_ACT_SHOT, "{reason:?}: frame not dropped");
        assert_eq!(self.drops(reason), before + 1, "{reason:?}: not counted");
    }
}

/// `frame` with an 802.1Q tag (`tpid`, `vid`) after its MACs.
fn tagged(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

#[test]
fn frames_from_the_lan_reach_only_their_container_on_their_vlan_untagged() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.make_lan(VLAN, LAN_MODE_BRIDGE, 0);
    let to_me = udp(ME_MAC, ROUTER_MAC, ROUTER_IP, ME_IP);
    let (verdict, delivered) = dp.run_parent(&tagged(&to_me, 0x8100, VLAN));
    assert_eq!(
        verdict, TC_ACT_REDIRECT,
        "VLAN 50 to my MAC: into my container"
    );
    assert_eq!(
        delivered, to_me,
        "delivered untagged and otherwise unchanged"
    );
    assert_eq!(dp.counters(ME_SLOT).rx_packets, 1);
    // Untagged, another VLAN, QinQ, another network's MAC, an unknown MAC: not ours; the host
    // (or the next program) has them, no container does.
    let stranger = udp(STRANGER_MAC, ROUTER_MAC, ROUTER_IP, ME_IP);
    let unknown = udp([0x02, 0, 0, 0, 0, 9], ROUTER_MAC, ROUTER_IP, ME_IP);
    for (what, frame) in [
        ("untagged", to_me.clone()),
        ("VLAN 60", tagged(&to_me, 0x8100, 60)),
        ("QinQ", tagged(&to_me, 0x88a8, VLAN)),
        // VLAN hopping: a frame of VLAN 60 that carries VLAN 50's tag inside, and the
        // reverse order.
        (
            "VLAN 60 around 50",
            tagged(&tagged(&to_me, 0x8100, VLAN), 0x8100, 60),
        ),
        (
            "VLAN 50 around 60",
            tagged(&tagged(&to_me, 0x8100, 60), 0x8100, VLAN),
        ),
        ("another network's MAC", tagged(&stranger, 0x8100, VLAN)),
        ("an unknown MAC", tagged(&unknown, 0x8100, VLAN)),
    ] {
        let (verdict, _) = dp.run_parent(&frame);
        assert_eq!(verdict, TC_ACT_UNSPEC, "{what}: {verdict}");
    }
    assert_eq!(
        dp.counters(ME_SLOT).rx_packets,
        1,
        "nothing else reached me"
    );
    // A tag cut short is dropped, counted.
    let before = dp.drops(DropReason::Truncated);
    let (verdict, _) = dp.run_parent(&tagged(&to_me, 0x8100, VLAN)[..15]);
    assert_eq!(verdict, TC_ACT_SHOT);
    assert_eq!(dp.drops(DropReason::Truncated), before + 1);
}

#[test]
fn ipvlan_frames_from_the_lan_are_told_apart_by_address() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.make_lan(0, LAN_MODE_BRIDGE, LAN_IPVLAN);
    let (verdict, _) = dp.run_parent(&udp(PARENT_MAC, ROUTER_MAC, ROUTER_IP, ME_IP));
    assert_eq!(
        verdict, TC_ACT_REDIRECT,
        "to the parent's MAC and my address"
    );
    // My address at another MAC, or an address no container has, is not mine.
    for frame in [
        udp(ROUTER_MAC, ROUTER_MAC, ROUTER_IP, ME_IP),
        udp(PARENT_MAC, ROUTER_MAC, ROUTER_IP, [10, 0, 0, 77]),
    ] {
        assert_eq!(dp.run_parent(&frame).0, TC_ACT_UNSPEC);
    }
    assert_eq!(dp.counters(ME_SLOT).rx_packets, 1);
}

#[test]
fn a_lan_container_sends_only_as_itself_and_meets_siblings_as_its_mode_says() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.make_lan(VLAN, LAN_MODE_BRIDGE, 0);
    // To the LAN (its router's MAC): out of the parent.
    let (verdict, _) = dp.run_lan_endpoint(&udp(ROUTER_MAC, ME_MAC, ME_IP, ROUTER_IP));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    // To a sibling's MAC in bridge mode: into the sibling.
    let (verdict, _) = dp.run_lan_endpoint(&udp(PEER_MAC, ME_MAC, ME_IP, PEER_IP));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(dp.counters(PEER_SLOT).rx_packets, 1);
    dp.assert_container_dropped(
        &udp(ROUTER_MAC, PEER_MAC, ME_IP, ROUTER_IP),
        DropReason::SpoofedMac,
    );
    dp.assert_container_dropped(
        &udp(ROUTER_MAC, ME_MAC, PEER_IP, ROUTER_IP),
        DropReason::SpoofedIp,
    );
    dp.assert_container_dropped(
        &super::arp(1, ME_MAC, PEER_IP, ROUTER_IP),
        DropReason::SpoofedIp,
    );
    // Private: never to a sibling.
    dp.make_lan(VLAN, LAN_MODE_PRIVATE, 0);
    dp.assert_container_dropped(
        &udp(PEER_MAC, ME_MAC, ME_IP, PEER_IP),
        DropReason::LanPrivate,
    );
    assert_eq!(dp.counters(PEER_SLOT).rx_packets, 1);
    // l3: nothing to a group, no ARP.
    dp.make_lan(0, LAN_MODE_BRIDGE, LAN_IPVLAN | LAN_L3);
    dp.set_me(Some(xnet_common::Endpoint {
        mac: PARENT_MAC,
        ..me(ENDPOINT_LAN)
    }));
    dp.assert_container_dropped(
        &udp([0xff; 6], PARENT_MAC, ME_IP, [255; 4]),
        DropReason::LanL3Group,
    );
    dp.assert_container_dropped(
        &udp(PARENT_MAC, PARENT_MAC, ME_IP, [255; 4]),
        DropReason::LanL3Group,
    );
    dp.assert_container_dropped(
        &super::arp(1, PARENT_MAC, ME_IP, ROUTER_IP),
        DropReason::LanL3Group,
    );
}
