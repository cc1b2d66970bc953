//! The VXLAN mechanism scenarios (issue #13): container to container across two simulated
//! hosts ([`super::overlay`]), Docker's overlay datapath (A) against the two ways an eBPF
//! datapath can encapsulate - `bpf_skb_set_tunnel_key` with a collect_md vxlan device (B) and
//! outer headers written after `bpf_skb_adjust_room` (C, decapsulated at tcx or at XDP) - so
//! the project can keep the faster one that keeps TCP's offloads working.
//!
//! - `vxlan-mech-pps`: 64-byte UDP, one flow, from A's generator to B's TC sink;
//! - `vxlan-mech-tcp`: iperf3, 1 and 4 streams, and 1 stream over an underlay segmented as a
//!   wire is, with what TCP lost and how big the packets on the underlay and into the
//!   container are: a mechanism that breaks GSO or checksums carries (almost) nothing, and
//!   the measurement then fails;
//! - `vxlan-mech-rr`: 1-byte TCP ping-pong, unpinned and with both ends on one CPU.

use std::{collections::HashMap, net::SocketAddrV4, path::Path};

use anyhow::{Context as _, ensure};

use super::{
    container::TwoHosts,
    overlay::{SIDES, SegmentedUnderlay, received},
    scenarios::{
        Better, Case, Compare, Effort, GroOn, HIGHER_MPPS, IPERF3_PORT, Metric, RR_METRICS,
        RR_PORT, Sample, Sender, iperf3, ping_pong_on, send_and_count,
    },
    sys,
};

/// Below this, TCP between two containers on veths is broken, not slow: a datapath that loses
/// GSO super-packets or their checksums delivers a trickle of retransmissions.
const TCP_WORKS_GBPS: f64 = 0.1;

/// 64-byte UDP from A to B, one flow, counted at B.
pub fn vxlan_mech_pps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "vxlan-mech-pps/1flow".into(),
        sides: SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(|lab, side, effort| {
            let pair = lab.two_hosts(side);
            // The generator's frames arrive at A's host-side veth, which drops them without
            // GRO (or an XDP program) on it: on for every mechanism alike.
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

/// Gbit/s received; what TCP retransmitted and what it lost, in % of the segments it sent;
/// the mean size of what host B's underlay received: tens of kilobytes while GSO
/// super-packets cross the underlay whole (between veths), about 1,500 bytes when they were
/// segmented before the wire; and the mean size of the skbs delivered into container B: tens
/// of kilobytes while GSO survived or GRO coalesced the segments again, about 1,500 bytes when
/// the container gets every segment on its own.
pub const TCP_METRICS: &[Metric] = &[
    Metric {
        suffix: "",
        unit: "Gbit/s",
        better: Better::Higher,
        compare: Compare::Ratio,
    },
    Metric {
        suffix: "/retransmitted",
        unit: "% of segments",
        better: Better::Lower,
        compare: Compare::Ratio,
    },
    Metric {
        suffix: "/lost",
        unit: "% of segments",
        better: Better::Lower,
        compare: Compare::Ratio,
    },
    Metric {
        suffix: "/underlay-packet",
        unit: "bytes (mean)",
        better: Better::Higher,
        compare: Compare::Ratio,
    },
    Metric {
        suffix: "/delivered-skb",
        unit: "bytes (mean)",
        better: Better::Higher,
        compare: Compare::Ratio,
    },
];

/// iperf3 from A to B, containers with their default offloads: 1 and 4 streams over the veth
/// underlay, and 1 stream over an underlay segmented as a wire between NICs is
/// ([`SegmentedUnderlay`]), where receive-side GRO decides what the container gets. The smoke
/// run keeps one stream over the veth: it checks that TCP works, which the others do not
/// check better.
pub fn vxlan_mech_tcp(effort: &Effort) -> Vec<Case> {
    let variants: &[(u32, &str, bool)] = if effort.smoke {
        &[(1, "1stream", false)]
    } else {
        &[
            (1, "1stream", false),
            (4, "4streams", false),
            (1, "1stream-segmented", true),
        ]
    };
    variants
        .iter()
        .map(|&(streams, name, segmented)| Case {
            name: format!("vxlan-mech-tcp/{name}"),
            sides: SIDES,
            metrics: TCP_METRICS,
            measure: Box::new(move |lab, side, effort| {
                tcp_across(lab.two_hosts(side), streams, effort.tcp_seconds, segmented)
            }),
        })
        .collect()
}

/// iperf3 with `streams` streams from A to B of `pair` for `seconds`, over an underlay
/// segmented as a wire is if `segmented`: the values of [`TCP_METRICS`]. Fails where TCP
/// carries (almost) nothing.
pub fn tcp_across(
    pair: &TwoHosts,
    streams: u32,
    seconds: u32,
    segmented: bool,
) -> anyhow::Result<Sample> {
    let _wire = segmented
        .then(|| SegmentedUnderlay::new(pair))
        .transpose()?;
    let server = SocketAddrV4::new(pair.b.ip, IPERF3_PORT);
    let b_underlay = (&pair.hosts[1], pair.underlay);
    let before = TcpCounters::of(&pair.a.netns)?;
    let underlay_before = received(b_underlay.0, b_underlay.1)?;
    let delivered_before = received(&pair.b.netns, "eth0")?;
    let sample = iperf3(&pair.b.netns, &pair.a.netns, server, streams, seconds)?;
    let sent = TcpCounters::of(&pair.a.netns)?.since(&before);
    let mean = |now: (u64, u64), before: (u64, u64)| {
        let packets = now.1.saturating_sub(before.1).max(1);
        now.0.saturating_sub(before.0) as f64 / packets as f64
    };
    let underlay = mean(received(b_underlay.0, b_underlay.1)?, underlay_before);
    let delivered = mean(received(&pair.b.netns, "eth0")?, delivered_before);
    let gbps = sample.values[0];
    ensure!(
        gbps >= TCP_WORKS_GBPS,
        "TCP carried only {gbps:.4} Gbit/s: the datapath breaks TCP's offloads ({sent:?})"
    );
    Ok(Sample {
        values: vec![gbps, sent.retransmitted(), sent.lost(), underlay, delivered],
        frames: None,
    })
}

/// TCP ping-pong of 1-byte messages, client in A, server in B: as `bridge-rr` does it, and
/// with both ends on one CPU (`1B-one-cpu`). Unpinned, a round trip takes about 7 us here when
/// both ends happen to share a CPU and about 70 us when they do not (an idle CPU's wakeup), so
/// the rounds fall into one mode or the other; on one CPU every round measures the path. The
/// smoke run leaves the pinned case out.
pub fn vxlan_mech_rr(effort: &Effort) -> Vec<Case> {
    let one_cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let placements: &[(Option<usize>, &str)] = if effort.smoke {
        &[(None, "1B")]
    } else {
        &[(None, "1B"), (Some(one_cpu), "1B-one-cpu")]
    };
    placements
        .iter()
        .map(|&(cpu, name)| Case {
            name: format!("vxlan-mech-rr/{name}"),
            sides: SIDES,
            metrics: RR_METRICS,
            measure: Box::new(move |lab, side, effort| {
                let pair = lab.two_hosts(side);
                let target = SocketAddrV4::new(pair.b.ip, RR_PORT);
                let (server, client) = (&pair.b.netns, &pair.a.netns);
                ping_pong_on(server, client, target, 1, effort.rr_seconds, cpu)
            }),
        })
        .collect()
}

/// The sender's TCP counters (its namespace's `/proc/net/snmp` and `/proc/net/netstat`):
/// segments sent and retransmitted, and retransmitted segments the receiver reported as
/// duplicates (D-SACK: the original had arrived, so the retransmission was spurious, a
/// reordering rather than a loss).
#[derive(Debug, Clone, Copy, Default)]
struct TcpCounters {
    out_segs: u64,
    retrans_segs: u64,
    dsack_segs: u64,
}

impl TcpCounters {
    fn of(netns: &Path) -> anyhow::Result<Self> {
        let mut cat = sys::in_netns(netns, "cat");
        let text = sys::output(cat.args(["/proc/net/snmp", "/proc/net/netstat"]))?;
        let counters = proc_counters(&text);
        let get = |name: &str| {
            counters
                .get(name)
                .copied()
                .with_context(|| format!("no counter {name} in {}", netns.display()))
        };
        Ok(Self {
            out_segs: get("Tcp:OutSegs")?,
            retrans_segs: get("Tcp:RetransSegs")?,
            dsack_segs: get("TcpExt:TCPDSACKRecvSegs")?,
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            out_segs: self.out_segs.saturating_sub(before.out_segs),
            retrans_segs: self.retrans_segs.saturating_sub(before.retrans_segs),
            dsack_segs: self.dsack_segs.saturating_sub(before.dsack_segs),
        }
    }

    fn percent(&self, segs: u64) -> f64 {
        100.0 * segs as f64 / self.out_segs.max(1) as f64
    }

    fn retransmitted(&self) -> f64 {
        self.percent(self.retrans_segs)
    }

    /// Retransmissions that were needed: the receiver had not got the original.
    fn lost(&self) -> f64 {
        self.percent(self.retrans_segs.saturating_sub(self.dsack_segs))
    }
}

/// `/proc/net/snmp`-style text - pairs of lines `Group: name name ...` and `Group: value
/// value ...` - as `Group:name` -> value.
fn proc_counters(text: &str) -> HashMap<String, u64> {
    let mut counters = HashMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (mut names, mut values) = (names.split_whitespace(), values.split_whitespace());
        let (Some(group), Some(_)) = (names.next(), values.next()) else {
            continue;
        };
        for (name, value) in names.zip(values) {
            if let Ok(value) = value.parse() {
                counters.insert(format!("{group}{name}"), value);
            }
        }
    }
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_snmp_and_netstat_pairs() {
        let text = "Tcp: RtoAlgorithm OutSegs RetransSegs\n\
                    Tcp: 1 1000 30\n\
                    Udp: InDatagrams\n\
                    Udp: 5\n\
                    TcpExt: SyncookiesSent TCPDSACKRecvSegs\n\
                    TcpExt: 0 20\n";
        let c = proc_counters(text);
        assert_eq!(c["Tcp:OutSegs"], 1000);
        assert_eq!(c["TcpExt:TCPDSACKRecvSegs"], 20);
        let sent = TcpCounters {
            out_segs: 1000,
            retrans_segs: 30,
            dsack_segs: 20,
        };
        assert!((sent.retransmitted() - 3.0).abs() < 1e-9);
        assert!((sent.lost() - 1.0).abs() < 1e-9);
    }
}
