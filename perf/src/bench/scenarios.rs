//! The scenarios. Each is a list of [`Case`]s; a case names the sides it compares and one
//! function that measures one side once. Adding a scenario is adding a function that returns
//! its cases to [`super::SCENARIOS`]. The container-to-container scenarios and what every
//! scenario shares are here, the published port ones in [`super::publish`].

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::{
    container::Pair,
    lab::Lab,
    side::Side,
    synthetic_cluster::ClusterSize,
    sys::{self, Held},
    uplink::{OUTSIDE_DEV, Uplink},
};
use crate::{frame::Mac, generator::GenReport, rr::RrReport, sink::SinkReport};

/// A scenario's cases, made on demand for the run's effort (their names may give counts, and
/// their measure functions capture parameters).
pub type Scenario = fn(&Effort) -> Vec<Case>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// How the table states xnet against the other sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// xnet / other (`better` says which way is good).
    Ratio,
    /// other / xnet, read "xnet is N x faster": for durations.
    Faster,
    /// Against a target of the issue in the metric's unit (None: reported, no target), not
    /// another side: met when xnet's median is on the `better` side of it.
    Target(Option<u32>),
}

/// One number a case measures; a case's measure returns them in this order.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Appended to the case's name ("" for the case's main metric).
    pub suffix: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub compare: Compare,
}

/// How long each measurement runs, and how big the published-port cases are.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    pub rounds: usize,
    /// Frames per packet-rate measurement: a count, or seconds of sending.
    pub frames: Frames,
    pub tcp_seconds: u32,
    pub rr_seconds: f64,
    /// Ports published in the many-ports cases (packet rate and setup time).
    pub many_ports: u16,
    /// Ports published in the setup case that installs iptables rules one exec at a time
    /// (too slow for `many_ports`).
    pub per_rule_ports: u16,
    /// Ports published in the setup case that real Docker is part of (two docker-proxy
    /// processes per port: too many for `per_rule_ports`).
    pub docker_setup_ports: u16,
    /// The CI check (`--smoke`): cases may leave out variants that only add time.
    pub smoke: bool,
    /// The simulated cluster of `overlay-scale`.
    pub cluster: ClusterSize,
    /// How long `overlay-scale` changes endpoints to measure propagation.
    pub change_time: Duration,
}

#[derive(Debug, Clone, Copy)]
pub enum Frames {
    Count(u64),
    Seconds(f64),
}

/// What one measurement of one side produced.
#[derive(Debug, Clone)]
pub struct Sample {
    /// One per metric of the case.
    pub values: Vec<f64>,
    /// Frames sent and delivered, where the case counts frames.
    pub frames: Option<Delivery>,
}

/// Frames the generator sent and the sink counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub delivered: u64,
}

impl Delivery {
    /// The fraction of sent frames that did not arrive.
    pub fn loss(self) -> f64 {
        self.sent.saturating_sub(self.delivered) as f64 / self.sent.max(1) as f64
    }
}

impl std::iter::Sum for Delivery {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| Self {
            sent: a.sent + b.sent,
            delivered: a.delivered + b.delivered,
        })
    }
}

pub type Measure = Box<dyn Fn(&Lab, Side, &Effort) -> anyhow::Result<Sample>>;

pub struct Case {
    pub name: String,
    /// In the order they are measured in each round; those the run has no lab for (real
    /// Docker without an engine) are left out.
    pub sides: &'static [Side],
    pub metrics: &'static [Metric],
    pub measure: Measure,
}

pub const HIGHER_MPPS: &[Metric] = &[Metric {
    suffix: "",
    unit: "Mpps",
    better: Better::Higher,
    compare: Compare::Ratio,
}];
pub const HIGHER_GBPS: &[Metric] = &[Metric {
    suffix: "",
    unit: "Gbit/s",
    better: Better::Higher,
    compare: Compare::Ratio,
}];
pub const RR_METRICS: &[Metric] = &rate_and_latency("transactions/s");

/// A rate in `unit` (higher is better) and its p50 and p99 latencies in microseconds.
pub const fn rate_and_latency(unit: &'static str) -> [Metric; 3] {
    const fn latency(suffix: &'static str) -> Metric {
        Metric {
            suffix,
            unit: "us",
            better: Better::Lower,
            compare: Compare::Ratio,
        }
    }
    [
        Metric {
            suffix: "",
            unit,
            better: Better::Higher,
            compare: Compare::Ratio,
        },
        latency("/p50"),
        latency("/p99"),
    ]
}

const XNET_VS_BRIDGE_AND_DOCKER: &[Side] = &[Side::Xnet, Side::DockerBridge, Side::DockerReal];

/// The containers a side is measured between: xnet's, real Docker's, or the bridge lab's for
/// every other side (the hops sit on its host-side veths, ahead of the bridge).
pub fn pair(lab: &Lab, side: Side) -> &Pair {
    match side {
        Side::Xnet => &lab.xnet().pair,
        Side::DockerReal => &lab.docker().pair,
        _ => &lab.bridge().pair,
    }
}

/// 64-byte UDP from A to B, counted at B.
pub fn bridge_pps(_: &Effort) -> Vec<Case> {
    [(1, "1flow"), (64, "64flows")]
        .into_iter()
        .map(|(flows, name)| Case {
            name: format!("bridge-pps/{name}"),
            sides: &[
                Side::Xnet,
                Side::DockerBridge,
                Side::DockerReal,
                Side::PeerHop,
                Side::XdpHop,
            ],
            metrics: HIGHER_MPPS,
            measure: Box::new(move |lab, side, effort| {
                if side == Side::DockerReal {
                    lab.docker().let_bridge_learn_b()?;
                }
                packet_rate(pair(lab, side), side, flows, effort.frames)
            }),
        })
        .collect()
}

/// iperf3 from A to B, containers with their default offloads.
pub fn bridge_tcp(_: &Effort) -> Vec<Case> {
    [(1, "1stream"), (4, "4streams")]
        .into_iter()
        .map(|(streams, name)| Case {
            name: format!("bridge-tcp/{name}"),
            sides: XNET_VS_BRIDGE_AND_DOCKER,
            metrics: HIGHER_GBPS,
            measure: Box::new(move |lab, side, effort| {
                let pair = pair(lab, side);
                let server = SocketAddrV4::new(pair.b.ip, IPERF3_PORT);
                iperf3(
                    &pair.b.netns,
                    &pair.a.netns,
                    server,
                    streams,
                    effort.tcp_seconds,
                )
            }),
        })
        .collect()
}

/// TCP ping-pong, client in A, server in B.
pub fn bridge_rr(_: &Effort) -> Vec<Case> {
    [(1, "1B"), (1024, "1KiB")]
        .into_iter()
        .map(|(size, name)| Case {
            name: format!("bridge-rr/{name}"),
            sides: XNET_VS_BRIDGE_AND_DOCKER,
            metrics: RR_METRICS,
            measure: Box::new(move |lab, side, effort| {
                let pair = pair(lab, side);
                let target = SocketAddrV4::new(pair.b.ip, RR_PORT);
                ping_pong(
                    &pair.b.netns,
                    &pair.a.netns,
                    target,
                    size,
                    effort.rr_seconds,
                )
            }),
        })
        .collect()
}

/// Turns generic receive offload on for some veths of a host namespace while it lives, and
/// back off (the default) afterwards. Frames a generator transmits with XDP into a veth are
/// dropped unless the receiving end has an XDP program or GRO on (see platform notes), so the
/// packet-rate scenarios turn it on for every side alike.
pub struct GroOn<'a> {
    host: &'a Path,
    veths: Vec<&'a str>,
}

impl<'a> GroOn<'a> {
    pub fn new(host: &'a Path, veths: Vec<&'a str>) -> anyhow::Result<Self> {
        let gro = Self { host, veths };
        gro.set("on")?;
        Ok(gro)
    }

    fn set(&self, state: &str) -> anyhow::Result<()> {
        for veth in &self.veths {
            sys::output(sys::in_netns(self.host, "ethtool").args(["-K", veth, "gro", state]))?;
        }
        Ok(())
    }
}

impl Drop for GroOn<'_> {
    fn drop(&mut self) {
        let _ = self.set("off");
    }
}

pub fn packet_rate(pair: &Pair, side: Side, flows: u16, frames: Frames) -> anyhow::Result<Sample> {
    let _gro = GroOn::new(&pair.host, vec![&pair.a.host_veth, &pair.b.host_veth])?;
    let hop_hook = match side {
        Side::PeerHop => Some("tc"),
        Side::XdpHop => Some("xdp"),
        _ => None,
    };
    let _hop = hop_hook
        .map(|hook| {
            Held::start(
                "xnet-hop",
                sys::in_netns(&pair.host, sys::tool("xnet-hop"))
                    .args(["--from", &pair.a.host_veth, "--to", &pair.b.host_veth])
                    .args(["--hook", hook]),
            )
        })
        .transpose()?;
    let sender = Sender {
        netns: &pair.a.netns,
        dev: "eth0",
        from: (pair.a.mac, pair.a.ip),
        to: (pair.b.mac, pair.b.ip),
        flows,
        dst_port: None,
    };
    // Frames redirected with bpf_redirect_peer skip the receiver's XDP hook, so every variant
    // counts at TC ingress, except XDP_REDIRECT, which only works into a veth whose peer runs
    // an XDP program: that program is the sink.
    let sink_hook = if side == Side::XdpHop { "xdp" } else { "tc" };
    send_and_count(&sender, (&pair.b.netns, "eth0"), sink_hook, frames)
}

/// Where the generator sends from, and to what.
pub struct Sender<'a> {
    /// The sending namespace and the device the frames leave by.
    pub netns: &'a Path,
    pub dev: &'a str,
    /// Source and destination MAC and address of every frame.
    pub from: (Mac, Ipv4Addr),
    pub to: (Mac, Ipv4Addr),
    pub flows: u16,
    /// UDP destination port of flow 0 (default: the generator's).
    pub dst_port: Option<u16>,
}

impl<'a> Sender<'a> {
    /// From the outside of `uplink` to the host's address on it, UDP port `dst_port`: the
    /// path of traffic from another host to a published port.
    pub fn from_outside(uplink: &'a Uplink, dst_port: u16) -> Self {
        Self {
            netns: &uplink.outside,
            dev: OUTSIDE_DEV,
            from: (uplink.outside_mac, uplink.outside_ip),
            to: (uplink.host_mac, uplink.host_ip),
            flows: 1,
            dst_port: Some(dst_port),
        }
    }
}

/// Sends 64-byte UDP frames from `sender` and counts at the sink on `receiver`: a device
/// (`eth0` of a container, say) in a namespace.
pub fn send_and_count(
    sender: &Sender,
    receiver: (&Path, &str),
    sink_hook: &str,
    frames: Frames,
) -> anyhow::Result<Sample> {
    let sink = Held::start(
        "xnet-sink",
        sys::in_netns(receiver.0, sys::tool("xnet-sink"))
            .args(["--dev", receiver.1, "--hook", sink_hook]),
    )?;
    let mut gen_cmd = sys::in_netns(sender.netns, sys::tool("xnet-gen"));
    gen_cmd
        .args(["--dev", sender.dev, "--size", "64"])
        .args(["--flows", &sender.flows.to_string()])
        .args(["--src-mac", &sender.from.0.to_string()])
        .args(["--dst-mac", &sender.to.0.to_string()])
        .args(["--src-ip", &sender.from.1.to_string()])
        .args(["--dst-ip", &sender.to.1.to_string()]);
    if let Some(port) = sender.dst_port {
        gen_cmd.args(["--dst-port", &port.to_string()]);
    }
    match frames {
        Frames::Count(count) => gen_cmd.args(["--count", &count.to_string()]),
        Frames::Seconds(seconds) => gen_cmd.args(["--duration", &seconds.to_string()]),
    };
    let sent: GenReport = sys::report(&mut gen_cmd)?;
    let got: SinkReport = sink.finish()?;
    ensure!(
        got.packets > 1,
        "{} of {} frames arrived at the sink",
        got.packets,
        sent.sent
    );
    Ok(Sample {
        values: vec![got.pps / 1e6],
        frames: Some(Delivery {
            sent: sent.sent,
            delivered: got.packets,
        }),
    })
}

/// The port the iperf3 servers listen on.
pub const IPERF3_PORT: u16 = 5201;

/// iperf3 from namespace `client` to `target`, which leads to the `--one-off` server started
/// in namespace `server` (on [`IPERF3_PORT`]): Gbit/s received.
pub fn iperf3(
    server: &Path,
    client: &Path,
    target: SocketAddrV4,
    streams: u32,
    seconds: u32,
) -> anyhow::Result<Sample> {
    let _server = Held::spawn(
        "iperf3 server",
        sys::in_netns(server, "iperf3").args([
            "--server",
            "--one-off",
            "--port",
            &IPERF3_PORT.to_string(),
        ]),
    )?;
    wait_listening(server, IPERF3_PORT)?;
    let out = sys::output(sys::in_netns(client, "iperf3").args([
        "--client",
        &target.ip().to_string(),
        "--port",
        &target.port().to_string(),
        "--time",
        &seconds.to_string(),
        "--parallel",
        &streams.to_string(),
        // A path that does not lead to the server fails the measurement instead of waiting
        // for TCP's connect timeout.
        "--connect-timeout",
        "5000",
        "--json",
    ]))?;
    let report: Value = serde_json::from_str(&out).context("parsing iperf3 --json")?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no end.sum_received.bits_per_second")?;
    ensure!(bps > 0.0, "iperf3 moved no data");
    Ok(Sample {
        values: vec![bps / 1e9],
        frames: None,
    })
}

/// The port the ping-pong servers listen on.
pub const RR_PORT: u16 = 7000;

/// TCP ping-pong of `size`-byte messages from namespace `client` to `target`, which leads to
/// the server started in namespace `server` (on [`RR_PORT`]).
pub fn ping_pong(
    server: &Path,
    client: &Path,
    target: SocketAddrV4,
    size: usize,
    seconds: f64,
) -> anyhow::Result<Sample> {
    ping_pong_on(server, client, target, size, seconds, None)
}

/// [`ping_pong`] with both ends pinned to CPU `cpu` if given (`taskset`): every step of a
/// round trip then runs on that CPU, one after the other (the softirqs a send raises run
/// where it was sent), so the time measured is the path's, without the wakeup of an idle
/// CPU that the unpinned ping-pong meets whenever the ends land on different CPUs.
pub fn ping_pong_on(
    server: &Path,
    client: &Path,
    target: SocketAddrV4,
    size: usize,
    seconds: f64,
    cpu: Option<usize>,
) -> anyhow::Result<Sample> {
    let rr = |netns: &Path| match cpu {
        Some(cpu) => sys::in_netns_on_cpu(netns, cpu, sys::tool("xnet-rr")),
        None => sys::in_netns(netns, sys::tool("xnet-rr")),
    };
    let _server = Held::start(
        "xnet-rr server",
        rr(server).args(["server", "--listen", &format!("0.0.0.0:{RR_PORT}")]),
    )?;
    let report: RrReport = sys::report(rr(client).args([
        "client",
        "--server",
        &target.to_string(),
        "--size",
        &size.to_string(),
        "--duration",
        &seconds.to_string(),
    ]))?;
    ensure!(report.transactions > 0, "no transaction completed");
    Ok(Sample {
        values: vec![report.tps, report.p50_us, report.p99_us],
        frames: None,
    })
}

/// Waits until something listens on TCP `port` in `netns` (iperf3 says nothing when it does).
fn wait_listening(netns: &Path, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        let listening = sys::output(sys::in_netns(netns, "ss").args(["-Hltn", &filter]))?;
        if !listening.trim().is_empty() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on port {port} in {}", netns.display())
}
