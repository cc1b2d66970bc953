//! The published-port scenarios: traffic from another host (the lab's outside namespace)
//! through the host's uplink to a port published by container B, and the time publishing
//! takes. xnet publishes with its CLI; Docker's side is its iptables rules on the bridge lab
//! (DNAT, filter accept, masquerade per port), and for TCP also a userland proxy like
//! docker-proxy; real Docker publishes with `docker run -p` (its DNAT, with docker-proxy
//! running beside, as by default). Real Docker is measured at one published port only:
//! docker-proxy is one process per published port, and 10,000 of them do not fit here.

use std::{net::SocketAddrV4, time::Duration};

use anyhow::bail;

use super::{
    lab::Lab,
    ports::{Install, Ports, Proto, Published},
    scenarios::{
        Better, Case, Compare, Effort, Frames, GroOn, HIGHER_GBPS, HIGHER_MPPS, IPERF3_PORT,
        Metric, RR_METRICS, RR_PORT, Sample, Sender, Side, iperf3, pair, ping_pong, send_and_count,
    },
    sys::{self, Held},
    uplink::{OUTSIDE_DEV, UPLINK, Uplink},
};

/// First port of the UDP range published for the packet rate (host and container alike).
const PPS_FIRST_PORT: u16 = 10_000;
/// First port of the range whose publishing is timed.
const SETUP_FIRST_PORT: u16 = 30_000;
/// Host port published for the TCP scenarios, and the one the userland proxy listens on (not covered by
/// the DNAT rules: traffic from outside would be DNATed before it reached a proxy there).
const TCP_HOST_PORT: u16 = 8080;
const PROXY_PORT: u16 = 8081;
/// Real Docker publishes both TCP servers at once (the other sides one at a time, on
/// `TCP_HOST_PORT`): the ping-pong server's host port there.
const DOCKER_RR_HOST_PORT: u16 = 8082;

const LOWER_SECONDS: &[Metric] = &[Metric {
    suffix: "",
    unit: "s",
    better: Better::Lower,
    compare: Compare::Faster,
}];

/// What real Docker's container B publishes (`docker run -p`, when it is created): the packet
/// rate's single port and the TCP scenarios' servers.
pub fn docker_ports() -> Vec<Ports> {
    let one = |proto, host, container| Ports {
        proto,
        host,
        container,
        count: 1,
    };
    vec![
        one(Proto::Udp, PPS_FIRST_PORT, PPS_FIRST_PORT),
        one(Proto::Tcp, TCP_HOST_PORT, IPERF3_PORT),
        one(Proto::Tcp, DOCKER_RR_HOST_PORT, RR_PORT),
    ]
}

/// 64-byte UDP from the outside to the last of 1 and of many published ports of B.
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
                let ports = Ports {
                    proto: Proto::Udp,
                    host: PPS_FIRST_PORT,
                    container: PPS_FIRST_PORT,
                    count,
                };
                published_packet_rate(lab, side, ports, effort.frames)
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
/// iptables-restore batch; and, at fewer ports, also against one iptables exec per rule.
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
            let (_published, took) = publish(lab, side, ports)?;
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
    ]
}

/// Publishes `ports` of container B the way `side` does, and how long that took.
fn publish(lab: &Lab, side: Side, ports: Ports) -> anyhow::Result<(Published<'_>, Duration)> {
    match side {
        Side::Xnet => Published::by_xnet(&lab.xnet, "b", ports),
        Side::DockerDnat | Side::IptablesBatch => {
            Published::by_iptables(&lab.bridge, ports, Install::Batch)
        }
        Side::IptablesPerRule => Published::by_iptables(&lab.bridge, ports, Install::PerRule),
        Side::DockerReal => Published::by_docker(lab.docker(), ports),
        _ => bail!("{} does not publish ports", side.label()),
    }
}

fn uplink(lab: &Lab, side: Side) -> &Uplink {
    match side {
        Side::Xnet => &lab.xnet.uplink,
        Side::DockerReal => &lab.docker().uplink,
        _ => &lab.bridge.uplink,
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
    let sender = Sender {
        netns: &uplink.outside,
        dev: OUTSIDE_DEV,
        from: (uplink.outside_mac, uplink.outside_ip),
        to: (uplink.host_mac, uplink.host_ip),
        flows: 1,
        dst_port: Some(ports.last_host_port()),
    };
    // Delivered into B as skbs (through the veth's NAPI or the bridge), so counted at TC
    // ingress.
    send_and_count(&sender, receiver, sink_hook, frames)
}

fn published_tcp(lab: &Lab, side: Side, seconds: u32) -> anyhow::Result<Sample> {
    let (pair, uplink) = (pair(lab, side), uplink(lab, side));
    let entry = TcpEntry::open(lab, side, IPERF3_PORT)?;
    iperf3(&pair.b.netns, &uplink.outside, entry.target, 1, seconds)
}

/// TCP ping-pong from the outside through a published port, 1-byte messages: each message
/// crosses the host once more per direction behind a userland proxy, which shows in
/// transactions per second and latency where a single stream's throughput hides it.
pub fn publish_rr(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "publish-rr/1B".into(),
        sides: &[
            Side::Xnet,
            Side::DockerDnat,
            Side::UserlandProxy,
            Side::DockerReal,
        ],
        metrics: RR_METRICS,
        measure: Box::new(|lab, side, effort| {
            let (pair, uplink) = (pair(lab, side), uplink(lab, side));
            let entry = TcpEntry::open(lab, side, RR_PORT)?;
            ping_pong(
                &pair.b.netns,
                &uplink.outside,
                entry.target,
                1,
                effort.rr_seconds,
            )
        }),
    }]
}

/// The way in from the outside to TCP `container_port` of B, as `side` provides it: a port
/// published by xnet or by Docker's rules, or a userland proxy on the host. Withdrawn on drop.
struct TcpEntry<'a> {
    /// Where outside clients connect.
    target: SocketAddrV4,
    _published: Option<(Published<'a>, Duration)>,
    _proxy: Option<Held>,
}

impl<'a> TcpEntry<'a> {
    fn open(lab: &'a Lab, side: Side, container_port: u16) -> anyhow::Result<Self> {
        let (pair, uplink) = (pair(lab, side), uplink(lab, side));
        if side == Side::UserlandProxy {
            let proxy = Held::start(
                "xnet-proxy",
                sys::in_netns(&pair.host, sys::tool("xnet-proxy"))
                    .arg("--listen")
                    .arg(SocketAddrV4::new(uplink.host_ip, PROXY_PORT).to_string())
                    .arg("--to")
                    .arg(SocketAddrV4::new(pair.b.ip, container_port).to_string()),
            )?;
            return Ok(Self {
                target: SocketAddrV4::new(uplink.host_ip, PROXY_PORT),
                _published: None,
                _proxy: Some(proxy),
            });
        }
        let host_port = match side {
            Side::DockerReal => lab
                .docker()
                .host_port(Proto::Tcp, container_port)
                .ok_or_else(|| {
                    anyhow::anyhow!("real Docker's B does not publish {container_port}")
                })?,
            _ => TCP_HOST_PORT,
        };
        let ports = Ports {
            proto: Proto::Tcp,
            host: host_port,
            container: container_port,
            count: 1,
        };
        Ok(Self {
            target: SocketAddrV4::new(uplink.host_ip, ports.host),
            _published: Some(publish(lab, side, ports)?),
            _proxy: None,
        })
    }
}
