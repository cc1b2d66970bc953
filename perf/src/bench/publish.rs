//! The published-port scenarios: traffic from another host (the lab's outside namespace)
//! through the host's uplink, or from the host itself, to a port published by container B,
//! and the time publishing takes. xnet publishes with its CLI; Docker's side is its iptables
//! rules on the bridge lab (DNAT, filter accept, masquerade per port), and for TCP also a
//! userland proxy like docker-proxy; real Docker publishes with `docker run -p`, docker-proxy
//! on, as by default.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

use anyhow::bail;

use super::{
    lab::Lab,
    ports::{Install, Ports, Proto, Published},
    scenarios::{
        Better, Case, Compare, Effort, Frames, GroOn, HIGHER_GBPS, HIGHER_MPPS, IPERF3_PORT,
        Metric, RR_METRICS, RR_PORT, Sample, Sender, iperf3, pair, ping_pong, send_and_count,
    },
    side::Side,
    sys::{self, Held},
    uplink::{UPLINK, Uplink},
};

/// First port of the UDP range published for the packet rate (host and container alike).
const PPS_FIRST_PORT: u16 = 10_000;
/// First port of the range whose publishing is timed.
const SETUP_FIRST_PORT: u16 = 30_000;
/// Host ports published for the TCP servers of B, iperf3's and the ping-pong's: one each, as
/// real Docker's B publishes both for the whole run.
const IPERF3_HOST_PORT: u16 = 8080;
const RR_HOST_PORT: u16 = 8082;
/// The port the userland proxy listens on: not a published one (traffic from outside would be
/// DNATed before it reached a proxy there).
const PROXY_PORT: u16 = 8081;
/// The container real Docker publishes the setup case's ports on (B cannot gain ports).
const DOCKER_SETUP_CONTAINER: &str = "bench-setup";

const LOWER_SECONDS: &[Metric] = &[Metric {
    suffix: "",
    unit: "s",
    better: Better::Lower,
    compare: Compare::Faster,
}];

/// The UDP ports the packet rate is sent to: `count` from [`PPS_FIRST_PORT`], host and
/// container alike.
fn pps_ports(count: u16) -> Ports {
    Ports {
        proto: Proto::Udp,
        host: PPS_FIRST_PORT,
        container: PPS_FIRST_PORT,
        count,
    }
}

/// TCP `container_port` of B (iperf3's or the ping-pong's) published on its host port.
fn tcp_ports(container_port: u16) -> Ports {
    let host = if container_port == RR_PORT {
        RR_HOST_PORT
    } else {
        IPERF3_HOST_PORT
    };
    Ports {
        proto: Proto::Tcp,
        host,
        container: container_port,
        count: 1,
    }
}

/// What real Docker's B publishes from its creation on, as `-p` specs: the one-port packet
/// rate's port and both TCP servers.
pub fn docker_published() -> Vec<String> {
    [pps_ports(1), tcp_ports(IPERF3_PORT), tcp_ports(RR_PORT)]
        .iter()
        .map(Ports::spec)
        .collect()
}

/// 64-byte UDP from the outside to the last of 1 and of many published ports of B. Real
/// Docker only at one port: docker-proxy runs two processes per published port (IPv4 and
/// IPv6), 20,000 for the big range.
pub fn publish_pps(effort: &Effort) -> Vec<Case> {
    [1, effort.many_ports]
        .into_iter()
        .map(|count| Case {
            name: format!(
                "publish-pps/{count}port{}",
                if count == 1 { "" } else { "s" }
            ),
            sides: if count == 1 {
                &[
                    Side::Xnet,
                    Side::DockerDnat,
                    Side::DockerReal,
                    Side::UplinkDrop,
                ]
            } else {
                &[Side::Xnet, Side::DockerDnat, Side::UplinkDrop]
            },
            metrics: HIGHER_MPPS,
            measure: Box::new(move |lab, side, effort| {
                if side == Side::DockerReal {
                    lab.docker().let_bridge_learn_b()?;
                }
                published_packet_rate(lab, side, pps_ports(count), effort.frames)
            }),
        })
        .collect()
}

/// iperf3 from the outside to a port published by B, one stream.
pub fn publish_tcp(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "publish-tcp/1stream".into(),
        sides: &[
            Side::Xnet,
            Side::DockerDnat,
            Side::UserlandProxy,
            Side::DockerReal,
        ],
        metrics: HIGHER_GBPS,
        measure: Box::new(|lab, side, effort| published_tcp(lab, side, effort.tcp_seconds)),
    }]
}

/// Publishing many ports of the running B: xnet's CLI against Docker's rules in one
/// iptables-restore batch; at fewer ports, also against one iptables exec per rule; and at
/// fewer still, also against real Docker, which starts two docker-proxy processes per port.
pub fn publish_setup(effort: &Effort) -> Vec<Case> {
    let case = |count: u16, sides| Case {
        name: format!("publish-setup/{count}ports"),
        sides,
        metrics: LOWER_SECONDS,
        measure: Box::new(move |lab, side, _| {
            let ports = Ports {
                proto: Proto::Udp,
                host: SETUP_FIRST_PORT,
                container: SETUP_FIRST_PORT,
                count,
            };
            let (_published, took) = publish_timed(lab, side, ports)?;
            Ok(Sample {
                values: vec![took.as_secs_f64()],
                frames: None,
            })
        }),
    };
    vec![
        case(effort.many_ports, &[Side::Xnet, Side::IptablesBatch]),
        case(
            effort.per_rule_ports,
            &[Side::Xnet, Side::IptablesBatch, Side::IptablesPerRule],
        ),
        case(
            effort.docker_setup_ports,
            &[
                Side::Xnet,
                Side::IptablesBatch,
                Side::IptablesPerRule,
                Side::DockerReal,
            ],
        ),
    ]
}

/// Publishes `ports` the way `side` does, and how long that took: of the running B, or, for
/// real Docker, which cannot, of a container it creates with them.
fn publish_timed(lab: &Lab, side: Side, ports: Ports) -> anyhow::Result<(Published<'_>, Duration)> {
    match side {
        Side::Xnet => Published::by_xnet(lab.xnet(), "b", ports),
        Side::DockerDnat | Side::IptablesBatch => {
            Published::by_iptables(lab.bridge(), ports, Install::Batch)
        }
        Side::IptablesPerRule => Published::by_iptables(lab.bridge(), ports, Install::PerRule),
        Side::DockerReal => Published::by_docker_run(lab.docker(), DOCKER_SETUP_CONTAINER, ports),
        _ => bail!("{} does not publish ports", side.label()),
    }
}

/// Publishes `ports` of B for traffic to reach them: real Docker's B publishes its ports
/// since its creation.
fn publish(lab: &Lab, side: Side, ports: Ports) -> anyhow::Result<Published<'_>> {
    match side {
        Side::DockerReal => Published::by_docker_at_creation(lab.docker(), ports),
        _ => publish_timed(lab, side, ports).map(|(published, _)| published),
    }
}

fn uplink(lab: &Lab, side: Side) -> &Uplink {
    match side {
        Side::Xnet => &lab.xnet().uplink,
        Side::DockerReal => &lab.docker().uplink,
        _ => &lab.bridge().uplink,
    }
}

fn published_packet_rate(
    lab: &Lab,
    side: Side,
    ports: Ports,
    frames: Frames,
) -> anyhow::Result<Sample> {
    let (pair, uplink) = (pair(lab, side), uplink(lab, side));
    let _gro = GroOn::new(&pair.host, vec![UPLINK])?;
    // The ceiling publishes nothing: its sink drops every frame as it arrives on the uplink.
    let (_published, receiver, sink_hook) = match side {
        Side::UplinkDrop => (None, (pair.host.as_path(), UPLINK), "xdp"),
        _ => (
            Some(publish(lab, side, ports)?),
            (pair.b.netns.as_path(), "eth0"),
            "tc",
        ),
    };
    let sender = Sender::from_outside(uplink, ports.last_host_port());
    // Delivered into B as skbs (through the veth's NAPI or the bridge), so counted at TC
    // ingress.
    send_and_count(&sender, receiver, sink_hook, frames)
}

fn published_tcp(lab: &Lab, side: Side, seconds: u32) -> anyhow::Result<Sample> {
    let entry = TcpEntry::open(lab, side, IPERF3_PORT, Origin::Outside)?;
    iperf3(
        &pair(lab, side).b.netns,
        &entry.client,
        entry.target,
        1,
        seconds,
    )
}

/// TCP ping-pong through a published port, 1-byte messages: each message crosses the host
/// once more per direction behind a userland proxy, which shows in transactions per second and
/// latency where a single stream's throughput hides it. From the outside, Docker's way in is
/// its DNAT (docker-proxy never sees those connections); from the host itself, to 127.0.0.1,
/// it is docker-proxy, and xnet's is its socket hooks. Docker's rules serve the host's
/// connections to its own non-loopback addresses (nat `OUTPUT`): the iptables side is measured
/// from the host that way.
pub fn publish_rr(_: &Effort) -> Vec<Case> {
    [
        ("publish-rr/1B", Origin::Outside),
        ("publish-rr/1B-from-host", Origin::Host),
    ]
    .into_iter()
    .map(|(name, origin)| Case {
        name: name.into(),
        sides: &[
            Side::Xnet,
            Side::DockerDnat,
            Side::UserlandProxy,
            Side::DockerReal,
        ],
        metrics: RR_METRICS,
        measure: Box::new(move |lab, side, effort| {
            let entry = TcpEntry::open(lab, side, RR_PORT, origin)?;
            ping_pong(
                &pair(lab, side).b.netns,
                &entry.client,
                entry.target,
                1,
                effort.rr_seconds,
            )
        }),
    })
    .collect()
}

/// Where a published port's client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The lab's outside namespace, through the host's uplink.
    Outside,
    /// The lab's host namespace itself.
    Host,
}

/// The way in to TCP `container_port` of B, as `side` provides it: a port published by xnet,
/// by Docker's rules or by real Docker, or a userland proxy on the host. Withdrawn on drop.
struct TcpEntry<'a> {
    /// The namespace the client runs in, and where it connects.
    client: PathBuf,
    target: SocketAddrV4,
    _published: Option<Published<'a>>,
    _proxy: Option<Held>,
}

impl<'a> TcpEntry<'a> {
    fn open(lab: &'a Lab, side: Side, container_port: u16, origin: Origin) -> anyhow::Result<Self> {
        let (pair, uplink) = (pair(lab, side), uplink(lab, side));
        let (client, host_ip) = match origin {
            Origin::Outside => (uplink.outside.clone(), uplink.host_ip),
            // Docker's rules leave 127.0.0.0/8 alone (it is docker-proxy's): the host reaches
            // a port they publish on its own address.
            Origin::Host if side == Side::DockerDnat => (pair.host.clone(), uplink.host_ip),
            Origin::Host => (pair.host.clone(), Ipv4Addr::LOCALHOST),
        };
        if side == Side::UserlandProxy {
            let target = SocketAddrV4::new(host_ip, PROXY_PORT);
            let proxy = Held::start(
                "xnet-proxy",
                sys::in_netns(&pair.host, sys::tool("xnet-proxy"))
                    .arg("--listen")
                    .arg(target.to_string())
                    .arg("--to")
                    .arg(SocketAddrV4::new(pair.b.ip, container_port).to_string()),
            )?;
            return Ok(Self {
                client,
                target,
                _published: None,
                _proxy: Some(proxy),
            });
        }
        let ports = tcp_ports(container_port);
        Ok(Self {
            client,
            target: SocketAddrV4::new(host_ip, ports.host),
            _published: Some(publish(lab, side, ports)?),
            _proxy: None,
        })
    }
}
