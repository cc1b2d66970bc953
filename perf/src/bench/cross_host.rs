//! The overlay scenarios (issue #13): container to container across two hosts on one overlay
//! network, xnet (two simulated hosts with the real xnetd, one etcd) against Docker's overlay
//! datapath rebuilt (A of the VXLAN mechanisms) and real Docker's overlay (two private
//! engines in a swarm); labs in [`super::cluster`] and [`super::overlay`].
//!
//! The underlay is a wire ([`SegmentedUnderlay`]: every host's underlay device segments
//! what it sends to MTU-sized packets and has GRO on) in every case but
//! `overlay-tcp/1stream-gso-underlay`, where it is the veths' default that carries GSO
//! super-packets whole. That difference matters to xnet most: xnetd runs `uplink_xdp`
//! natively on its uplink, and a veth whose peer runs native XDP loses GSO, so between veths
//! every super-packet bound for an xnet host is segmented on the way (by the switch's port);
//! a real NIC's wire carries MTU-sized frames anyway and the NIC runs XDP before GRO.
//!
//! - `overlay-pps`: 64-byte UDP, one flow, from A's generator to B's TC sink;
//! - `overlay-tcp`: iperf3, 1 and 4 streams, and 1 stream over the veth underlay, with what
//!   TCP lost and how big the packets on the underlay and into the container are;
//! - `overlay-rr`: 1-byte TCP ping-pong, unpinned and with both ends on one CPU;
//! - `overlay-encrypted-tcp` and `overlay-encrypted-rr` (issue #14): the same measurements on
//!   xnet's encrypted overlay against its plain overlay on the same two hosts, with what the
//!   whole machine's CPUs spent per Gbit/s.

use std::net::SocketAddrV4;

use super::{
    container::TwoHosts,
    overlay::SegmentedUnderlay,
    scenarios::{
        Better, Case, Compare, Effort, GroOn, HIGHER_MPPS, Metric, RR_METRICS, RR_PORT, Sample,
        Sender, ping_pong_on, send_and_count,
    },
    side::Side,
    sys,
    vxlan::{TCP_METRICS, tcp_across},
};

/// xnet against Docker's overlay rebuilt and real Docker's, in the order each round measures
/// them.
const SIDES: &[Side] = &[
    Side::XnetOverlay,
    Side::DockerOverlay,
    Side::DockerRealOverlay,
];

/// 64-byte UDP from A to B, one flow, counted at B.
pub fn overlay_pps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "overlay-pps/1flow".into(),
        sides: SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(|lab, side, effort| {
            let pair = lab.two_hosts(side);
            let _wire = SegmentedUnderlay::new(pair)?;
            announce_b(pair)?;
            // The generator's frames arrive at A's host-side veth, which drops them without
            // GRO (or an XDP program) on it: on for every side alike.
            let _gro = GroOn::new(&pair.a_veth_ns, vec![&pair.a.host_veth])?;
            let sender = Sender {
                netns: &pair.a.netns,
                dev: "eth0",
                from: (pair.a.mac, pair.a.ip),
                to: (pair.b.mac, pair.b.ip),
                flows: 1,
                dst_port: None,
            };
            send_and_count(&sender, (&pair.b.netns, "eth0"), "tc", effort.frames)
        }),
    }]
}

/// B sends A one frame (a ping), so that the bridges on the way know B's MAC and forward the
/// measured frames, which B only receives, instead of flooding them: Docker's overlay bridge
/// learns (for five minutes) and floods unknown destinations to every port, its load
/// balancer's veth included. Done for every side alike.
fn announce_b(pair: &TwoHosts) -> anyhow::Result<()> {
    let mut ping = sys::in_netns(&pair.b.netns, "ping");
    sys::output(ping.args(["-c", "1", "-W", "1", &pair.a.ip.to_string()])).map(drop)
}

/// iperf3 from A to B, containers with their default offloads: 1 and 4 streams over a wire,
/// and 1 stream over the veth underlay that passes GSO super-packets (`1stream-gso-underlay`).
/// The smoke run keeps 1 stream over the wire.
pub fn overlay_tcp(effort: &Effort) -> Vec<Case> {
    let variants: &[(u32, &str, bool)] = if effort.smoke {
        &[(1, "1stream", true)]
    } else {
        &[
            (1, "1stream", true),
            (4, "4streams", true),
            (1, "1stream-gso-underlay", false),
        ]
    };
    variants
        .iter()
        .map(|&(streams, name, wire)| Case {
            name: format!("overlay-tcp/{name}"),
            sides: SIDES,
            metrics: TCP_METRICS,
            measure: Box::new(move |lab, side, effort| {
                tcp_across(lab.two_hosts(side), streams, effort.tcp_seconds, wire)
            }),
        })
        .collect()
}

/// TCP ping-pong of 1-byte messages, client in A, server in B, over a wire: unpinned (`1B`,
/// the target's row) and with both ends on one CPU (`1B-one-cpu`: unpinned, a round trip
/// waits for an idle CPU's wakeup whenever the ends land on different CPUs, which hides the
/// path's own cost; see `vxlan-mech-rr`). The smoke run leaves the pinned case out.
pub fn overlay_rr(effort: &Effort) -> Vec<Case> {
    rr_over_wire("overlay-rr", SIDES, effort)
}

/// The cases of a ping-pong scenario `scenario` between the pairs of `sides`, over a wire.
fn rr_over_wire(scenario: &str, sides: &'static [Side], effort: &Effort) -> Vec<Case> {
    let one_cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let placements: &[(Option<usize>, &str)] = if effort.smoke {
        &[(None, "1B")]
    } else {
        &[(None, "1B"), (Some(one_cpu), "1B-one-cpu")]
    };
    placements
        .iter()
        .map(|&(cpu, name)| Case {
            name: format!("{scenario}/{name}"),
            sides,
            metrics: RR_METRICS,
            measure: Box::new(move |lab, side, effort| {
                let pair = lab.two_hosts(side);
                let _wire = SegmentedUnderlay::new(pair)?;
                let target = SocketAddrV4::new(pair.b.ip, RR_PORT);
                let (server, client) = (&pair.b.netns, &pair.a.netns);
                ping_pong_on(server, client, target, 1, effort.rr_seconds, cpu)
            }),
        })
        .collect()
}

/// The encrypted overlay against the plain one, on the same hosts.
const ENCRYPTED_SIDES: &[Side] = &[Side::XnetEncryptedOverlay, Side::XnetPlainOverlay];

/// [`TCP_METRICS`] and what the transfer cost the machine: the CPU cores it kept busy (all
/// of them: senders, receivers, softirqs, the encryption workers) per Gbit/s carried.
const ENCRYPTED_TCP_METRICS: &[Metric] = &[
    TCP_METRICS[0],
    TCP_METRICS[1],
    TCP_METRICS[2],
    TCP_METRICS[3],
    TCP_METRICS[4],
    Metric {
        suffix: "/cpu-per-gbps",
        unit: "CPU cores per Gbit/s",
        better: Better::Lower,
        compare: Compare::Ratio,
    },
];

/// iperf3 from A to B over a wire on the encrypted overlay and on the plain one: 1 and 4
/// streams (the smoke run keeps 1).
pub fn overlay_encrypted_tcp(effort: &Effort) -> Vec<Case> {
    let variants: &[(u32, &str)] = if effort.smoke {
        &[(1, "1stream")]
    } else {
        &[(1, "1stream"), (4, "4streams")]
    };
    variants
        .iter()
        .map(|&(streams, name)| Case {
            name: format!("overlay-encrypted-tcp/{name}"),
            sides: ENCRYPTED_SIDES,
            metrics: ENCRYPTED_TCP_METRICS,
            measure: Box::new(move |lab, side, effort| {
                let busy = sys::BusyCpus::start()?;
                let mut sample =
                    tcp_across(lab.two_hosts(side), streams, effort.tcp_seconds, true)?;
                let cores = busy.cores()?;
                sample.values.push(cores / sample.values[0]);
                Ok(sample)
            }),
        })
        .collect()
}

/// 1-byte TCP ping-pong over a wire on the encrypted overlay and on the plain one, unpinned
/// and with both ends on one CPU (the smoke run leaves the pinned case out).
pub fn overlay_encrypted_rr(effort: &Effort) -> Vec<Case> {
    rr_over_wire("overlay-encrypted-rr", ENCRYPTED_SIDES, effort)
}

/// Pings A sends B in `overlay-encrypted-pings`, 200 ms apart.
const PINGS: u32 = 20;

/// Whether an encrypted overlay carries anything at all: xnet's (beside its plain overlay,
/// the baseline, which loses none either), and real Docker's, whose kernel IPsec this
/// machine's kernel lacks (Docker makes the network and runs the containers without a word;
/// its log holds warnings).
const PING_METRICS: &[Metric] = &[Metric {
    suffix: "",
    unit: "% of 20 pings lost",
    better: Better::Lower,
    compare: Compare::Ratio,
}];

/// [`PINGS`] pings from A to B across the encrypted overlay: what share is lost.
pub fn overlay_encrypted_pings(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "overlay-encrypted-pings/lost".into(),
        sides: &[
            Side::XnetEncryptedOverlay,
            Side::XnetPlainOverlay,
            Side::DockerRealEncryptedOverlay,
        ],
        metrics: PING_METRICS,
        measure: Box::new(|lab, side, _| {
            let pair = lab.two_hosts(side);
            let mut ping = sys::in_netns(&pair.a.netns, "ping");
            let count = PINGS.to_string();
            let b = pair.b.ip.to_string();
            ping.args(["-c", &count, "-i", "0.2", "-W", "1", &b]);
            // ping exits 1 when nothing came back: the summary says how much did.
            let out = ping.output()?;
            let summary = String::from_utf8_lossy(&out.stdout);
            let received = summary
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .and_then(|l| l.split(", ").nth(1))
                .and_then(|part| part.split_whitespace().next())
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| anyhow::anyhow!("no ping summary: {summary}"))?;
            let lost = f64::from(PINGS - received.min(PINGS)) * 100.0 / f64::from(PINGS);
            Ok(Sample {
                values: vec![lost],
                frames: None,
            })
        }),
    }]
}
