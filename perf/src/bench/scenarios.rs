//! The scenarios. Each is a list of [`Case`]s; a case names the sides it compares and one
//! function that measures one side once. Adding a scenario is adding a function that returns
//! its cases to [`SCENARIOS`].

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::{
    lab::{Lab, Pair},
    sys::{self, Held},
};
use crate::{generator::GenReport, rr::RrReport, sink::SinkReport};

/// A scenario's cases, made on demand (their measure functions capture parameters).
pub type Scenario = fn() -> Vec<Case>;

/// Every scenario by name, in the order they run.
pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("bridge-pps", bridge_pps),
    ("bridge-tcp", bridge_tcp),
    ("bridge-rr", bridge_rr),
];

/// What is being compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The real xnetd and CLI.
    Xnet,
    /// Linux bridge + br_netfilter + Docker's iptables rules.
    DockerBridge,
    /// tcx ingress + `bpf_redirect_peer` to a fixed ifindex: xnet's mechanism, no lookups.
    PeerHop,
    /// XDP_REDIRECT between the host-side veths, for reference.
    XdpHop,
}

/// How a side enters the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ours,
    Baseline,
    Ceiling,
    Reference,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Xnet => "xnet",
            Side::DockerBridge => "docker-bridge",
            Side::PeerHop => "bare-tcx-peer-hop",
            Side::XdpHop => "bare-xdp-redirect-hop",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Side::Xnet => Role::Ours,
            Side::DockerBridge => Role::Baseline,
            Side::PeerHop => Role::Ceiling,
            Side::XdpHop => Role::Reference,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One number a case measures; a case's measure returns them in this order.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Appended to the case's name ("" for the case's main metric).
    pub suffix: &'static str,
    pub unit: &'static str,
    pub better: Better,
}

/// How long each measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    pub rounds: usize,
    /// Frames per packet-rate measurement: a count, or seconds of sending.
    pub frames: Frames,
    pub tcp_seconds: u32,
    pub rr_seconds: f64,
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
    pub sides: &'static [Side],
    pub metrics: &'static [Metric],
    pub measure: Measure,
}

const HIGHER_MPPS: &[Metric] = &[Metric {
    suffix: "",
    unit: "Mpps",
    better: Better::Higher,
}];
const HIGHER_GBPS: &[Metric] = &[Metric {
    suffix: "",
    unit: "Gbit/s",
    better: Better::Higher,
}];
const RR_METRICS: &[Metric] = &[
    Metric {
        suffix: "",
        unit: "transactions/s",
        better: Better::Higher,
    },
    Metric {
        suffix: "/p50",
        unit: "us",
        better: Better::Lower,
    },
    Metric {
        suffix: "/p99",
        unit: "us",
        better: Better::Lower,
    },
];

const XNET_VS_BRIDGE: &[Side] = &[Side::Xnet, Side::DockerBridge];

fn pair(lab: &Lab, side: Side) -> &Pair {
    match side {
        Side::Xnet => &lab.xnet.pair,
        // The hops sit on the bridge lab's host-side veths, ahead of the bridge.
        Side::DockerBridge | Side::PeerHop | Side::XdpHop => &lab.bridge.pair,
    }
}

/// 64-byte UDP from A to B, counted at B.
fn bridge_pps() -> Vec<Case> {
    [(1, "1flow"), (64, "64flows")]
        .into_iter()
        .map(|(flows, name)| Case {
            name: format!("bridge-pps/{name}"),
            sides: &[Side::Xnet, Side::DockerBridge, Side::PeerHop, Side::XdpHop],
            metrics: HIGHER_MPPS,
            measure: Box::new(move |lab, side, effort| {
                packet_rate(pair(lab, side), side, flows, effort.frames)
            }),
        })
        .collect()
}

/// iperf3 from A to B, containers with their default offloads.
fn bridge_tcp() -> Vec<Case> {
    [(1, "1stream"), (4, "4streams")]
        .into_iter()
        .map(|(streams, name)| Case {
            name: format!("bridge-tcp/{name}"),
            sides: XNET_VS_BRIDGE,
            metrics: HIGHER_GBPS,
            measure: Box::new(move |lab, side, effort| {
                iperf3(pair(lab, side), streams, effort.tcp_seconds)
            }),
        })
        .collect()
}

/// TCP ping-pong, client in A, server in B.
fn bridge_rr() -> Vec<Case> {
    [(1, "1B"), (1024, "1KiB")]
        .into_iter()
        .map(|(size, name)| Case {
            name: format!("bridge-rr/{name}"),
            sides: XNET_VS_BRIDGE,
            metrics: RR_METRICS,
            measure: Box::new(move |lab, side, effort| {
                ping_pong(pair(lab, side), size, effort.rr_seconds)
            }),
        })
        .collect()
}

/// Turns GRO on for the host-side veths while it lives (the generator needs it; see
/// [`Pair::set_gro`]) and back off, the default, afterwards.
struct GroOn<'a>(&'a Pair);

impl<'a> GroOn<'a> {
    fn new(pair: &'a Pair) -> anyhow::Result<Self> {
        pair.set_gro(true)?;
        Ok(Self(pair))
    }
}

impl Drop for GroOn<'_> {
    fn drop(&mut self) {
        let _ = self.0.set_gro(false);
    }
}

fn packet_rate(pair: &Pair, side: Side, flows: u16, frames: Frames) -> anyhow::Result<Sample> {
    let _gro = GroOn::new(pair)?;
    // Frames redirected with bpf_redirect_peer skip the receiver's XDP hook, so every variant
    // counts at TC ingress, except XDP_REDIRECT, which only works into a veth whose peer runs
    // an XDP program: that program is the sink.
    let sink_hook = if side == Side::XdpHop { "xdp" } else { "tc" };
    let sink = Held::start(
        "xnet-sink",
        sys::in_netns(&pair.b.netns, sys::tool("xnet-sink"))
            .args(["--dev", "eth0", "--hook", sink_hook]),
    )?;
    let hop_hook = match side {
        Side::PeerHop => Some("tc"),
        Side::XdpHop => Some("xdp"),
        Side::Xnet | Side::DockerBridge => None,
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
    let mut gen_cmd = sys::in_netns(&pair.a.netns, sys::tool("xnet-gen"));
    gen_cmd
        .args([
            "--dev",
            "eth0",
            "--size",
            "64",
            "--flows",
            &flows.to_string(),
        ])
        .args([
            "--src-mac",
            &pair.a.mac.to_string(),
            "--dst-mac",
            &pair.b.mac.to_string(),
        ])
        .args([
            "--src-ip",
            &pair.a.ip.to_string(),
            "--dst-ip",
            &pair.b.ip.to_string(),
        ]);
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

const IPERF3_PORT: u16 = 5201;

fn iperf3(pair: &Pair, streams: u32, seconds: u32) -> anyhow::Result<Sample> {
    let _server = Held::spawn(
        "iperf3 server",
        sys::in_netns(&pair.b.netns, "iperf3").args([
            "--server",
            "--one-off",
            "--port",
            &IPERF3_PORT.to_string(),
        ]),
    )?;
    wait_listening(&pair.b.netns, IPERF3_PORT)?;
    let out = sys::output(sys::in_netns(&pair.a.netns, "iperf3").args([
        "--client",
        &pair.b.ip.to_string(),
        "--port",
        &IPERF3_PORT.to_string(),
        "--time",
        &seconds.to_string(),
        "--parallel",
        &streams.to_string(),
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

const RR_PORT: u16 = 7000;

fn ping_pong(pair: &Pair, size: usize, seconds: f64) -> anyhow::Result<Sample> {
    let _server = Held::start(
        "xnet-rr server",
        sys::in_netns(&pair.b.netns, sys::tool("xnet-rr")).args([
            "server",
            "--listen",
            &format!("0.0.0.0:{RR_PORT}"),
        ]),
    )?;
    let report: RrReport = sys::report(sys::in_netns(&pair.a.netns, sys::tool("xnet-rr")).args([
        "client",
        "--server",
        &format!("{}:{RR_PORT}", pair.b.ip),
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
fn wait_listening(netns: &std::path::Path, port: u16) -> anyhow::Result<()> {
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
