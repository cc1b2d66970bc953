//! The LAN scenarios (issue #15): a host of the LAN sends to a container on a macvlan or
//! ipvlan network, as a LAN reaches Docker's macvlan containers, on the LAN lab (`lan_lab`): xnet's
//! networks against the kernel's macvlan driver in bridge mode, which is what Docker's macvlan
//! driver builds. This kernel has no ipvlan module, so the ipvlan rows compare with the
//! kernel's macvlan too.

use std::net::SocketAddrV4;

use super::{
    lab::Lab,
    scenarios::{
        Case, Effort, Frames, GroOn, HIGHER_GBPS, HIGHER_MPPS, IPERF3_PORT, RR_METRICS, RR_PORT,
        Sample, Sender, iperf3, ping_pong, send_and_count,
    },
    side::Side,
};

const MACVLAN_SIDES: &[Side] = &[Side::XnetMacvlan, Side::KernelMacvlan];
const IPVLAN_SIDES: &[Side] = &[Side::XnetIpvlan, Side::KernelMacvlan];

/// 64-byte UDP from the LAN to the container, counted in the container.
fn packet_rate(lab: &Lab, side: Side, frames: Frames) -> anyhow::Result<Sample> {
    let path = lab.lan().path(side);
    let pair = &path.pair;
    // The generator's XDP frames need NAPI on the receiving veth: GRO on the parent, alike
    // for both sides.
    let _gro = GroOn::new(&pair.host, vec![&pair.a.host_veth])?;
    let sender = Sender {
        netns: &pair.a.netns,
        dev: path.lan_dev,
        from: (pair.a.mac, pair.a.ip),
        to: (pair.b.mac, pair.b.ip),
        flows: 1,
        dst_port: None,
    };
    send_and_count(&sender, (&pair.b.netns, "eth0"), "tc", frames)
}

fn tcp(lab: &Lab, side: Side, effort: &Effort) -> anyhow::Result<Sample> {
    let pair = &lab.lan().path(side).pair;
    let server = SocketAddrV4::new(pair.b.ip, IPERF3_PORT);
    iperf3(&pair.b.netns, &pair.a.netns, server, 1, effort.tcp_seconds)
}

fn rr(lab: &Lab, side: Side, effort: &Effort) -> anyhow::Result<Sample> {
    let pair = &lab.lan().path(side).pair;
    let target = SocketAddrV4::new(pair.b.ip, RR_PORT);
    ping_pong(&pair.b.netns, &pair.a.netns, target, 1, effort.rr_seconds)
}

pub fn macvlan_pps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "macvlan-pps/1flow".into(),
        sides: MACVLAN_SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(|lab, side, effort| packet_rate(lab, side, effort.frames)),
    }]
}

pub fn macvlan_tcp(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "macvlan-tcp/1stream".into(),
        sides: MACVLAN_SIDES,
        metrics: HIGHER_GBPS,
        measure: Box::new(tcp),
    }]
}

pub fn macvlan_rr(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "macvlan-rr/1B".into(),
        sides: MACVLAN_SIDES,
        metrics: RR_METRICS,
        measure: Box::new(rr),
    }]
}

pub fn ipvlan_pps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "ipvlan-pps/1flow".into(),
        sides: IPVLAN_SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(|lab, side, effort| packet_rate(lab, side, effort.frames)),
    }]
}

pub fn ipvlan_tcp(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "ipvlan-tcp/1stream".into(),
        sides: IPVLAN_SIDES,
        metrics: HIGHER_GBPS,
        measure: Box::new(tcp),
    }]
}
