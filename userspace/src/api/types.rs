//! What travels over the socket. Responses use Docker's field names and nesting, so the CLI can
//! print them as-is for `inspect` and scripts written against Docker's JSON keep working.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: Option<String>,
    /// `--subnet`, `--gateway`, `--ip-range`: at most one of each per address family.
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub ip_ranges: Vec<String>,
    /// `--aux-address NAME=IP`: addresses IPAM never hands out (a router, a printer of the
    /// LAN), by name.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    /// `--ipv6`: IPv6 besides IPv4.
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub internal: bool,
    /// `--attachable`: standalone containers may join a network of global scope.
    #[serde(default)]
    pub attachable: bool,
    /// `-o KEY=VALUE` driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `network connect` / `network disconnect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkConnect {
    pub container: String,
    #[serde(default)]
    pub ip: Option<String>,
    /// Static IPv6 address (`--ip6`).
    #[serde(default)]
    pub ip6: Option<String>,
    /// More names on this network for the embedded DNS (`--alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `xnet attach`: give a namespace that something else created an endpoint on a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachRequest {
    pub name: String,
    /// A network namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`, ...).
    pub netns: String,
    pub network: Option<String>,
    pub ip: Option<String>,
    /// Static IPv6 address (`--ip6`).
    #[serde(default)]
    pub ip6: Option<String>,
    /// The interface's name in the namespace (CNI's `CNI_IFNAME`); the first free `ethN`
    /// when absent.
    #[serde(default)]
    pub ifname: Option<String>,
    /// More names on the network for the embedded DNS (CNI's `aliases` capability).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Serve the embedded DNS (127.0.0.11) in the namespace too (CNI pods; `xnet attach`
    /// leaves another runtime's namespace alone).
    #[serde(default)]
    pub embedded_dns: bool,
    /// The interface's MAC (CNI's `mac` capability); bridge networks only. Docker's scheme
    /// (02:42 + the IPv4 address) when absent.
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerCreate {
    pub name: String,
    pub network: Option<String>,
    pub ip: Option<String>,
    /// Static IPv6 address (`--ip6`).
    #[serde(default)]
    pub ip6: Option<String>,
    /// `-p` specs as given; the daemon parses them (`state::ports`).
    #[serde(default)]
    pub publish: Vec<String>,
    pub command: Vec<String>,
    /// More names on its network for the embedded DNS (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`, as given.
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_option: Vec<String>,
}

/// `xnet port add` / `xnet port rm`: `-p` specs, as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortsRequest {
    pub specs: Vec<String>,
}

/// One mapping as `xnet port add` / `xnet port rm` report it, a whole range at once (a range of
/// 10,000 ports is one line, not 10,000): printed `80-81/tcp -> 127.0.0.1:8080-8081`, and a
/// single port as `docker port` prints it, `80/tcp -> 0.0.0.0:8080`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortRange {
    /// `80/tcp` or `80-81/tcp`.
    pub container_ports: String,
    pub host_ip: String,
    /// `8080` or `8080-8081`.
    pub host_ports: String,
}

/// Docker's port map: by container port (`80/tcp`), its bindings on the host.
pub type PortMap = BTreeMap<String, Vec<PortBinding>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// The process `xnet run` started in a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerProcess {
    pub pid: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoveOptions {
    #[serde(default)]
    pub force: bool,
}

/// Every error body: one line for the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// `docker network inspect` shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    /// By container id.
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Overlay networks only: the hosts with endpoints on it (Docker's swarm shows them so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Peer>>,
    /// Encrypted overlays only (xnet's, not Docker's): whether this host encrypts the
    /// network's traffic to each of its other hosts, and if not, why (its traffic to them is
    /// dropped, never sent in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
}

/// A host of the cluster with endpoints on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Peer {
    pub name: String,
    #[serde(rename = "IP")]
    pub ip: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `--aux-address` of this family, by name (Docker's `AuxiliaryAddresses`).
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `docker inspect` (container) shape, the parts xnet has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    /// Docker's convention: the name with a leading slash.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub host_config: HostConfig,
    pub network_settings: NetworkSettings,
    /// The resolv.conf `run` and `exec` mount over the container's `/etc/resolv.conf`
    /// (naming the embedded DNS); empty where xnet gives none (the host's network, Docker's
    /// and attached containers).
    #[serde(default)]
    pub resolv_conf_path: String,
}

/// The parts of Docker's `HostConfig` xnet has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// The published ports as they were asked for.
    pub port_bindings: PortMap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// "created", "running" or "exited".
    pub status: String,
    pub running: bool,
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub sandbox_key: String,
    /// Docker's top-level copy of the endpoint on the default `bridge` network (empty when
    /// the container is not on it).
    #[serde(flatten)]
    pub default_network: EndpointAddresses,
    /// By network name.
    pub networks: BTreeMap<String, EndpointSettings>,
    /// Published ports.
    pub ports: PortMap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// The addresses that were asked for (`--ip`, `--ip6`); null when all were allocated.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(flatten)]
    pub addresses: EndpointAddresses,
}

/// An endpoint's addresses, under Docker's names; empty strings and zeros where there are
/// none (as Docker shows a network without IPv6).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointAddresses {
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    pub mac_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "IPv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
}

/// `xnet stats`: per-endpoint counters and datapath drops by reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsReport {
    pub containers: Vec<ContainerStats>,
    /// By drop reason name (the encryption worker's too).
    pub drops: BTreeMap<String, u64>,
    /// The encryption worker's, on a cluster member that runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionStats>,
}

/// What the encryption worker of encrypted overlays has done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionStats {
    /// The hosts (underlay addresses) it can seal for: the other members with a key.
    pub peers: Vec<String>,
    /// Packets sealed and sent to other hosts; opened and handed to the datapath.
    pub sealed: u64,
    pub opened: u64,
    /// Handshakes completed with other hosts: each a new session key (the first with a host,
    /// WireGuard's rekey every two minutes under traffic, after either side restarted).
    pub handshakes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStats {
    pub name: String,
    pub network: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}

/// `GET /monitor` (`xnet monitor`): which events to stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorQuery {
    /// `drop` or `trace`; both when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<MonitorKind>,
    /// Only events on this container's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Only events on this network's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonitorKind {
    /// Frames the datapath dropped.
    Drop,
    /// Frames containers sent (as they arrived) and the host delivered to them.
    Trace,
}

/// One line of `GET /monitor`: a datapath event, or how many were lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MonitorLine {
    /// A frame was dropped (`reason`, the name `xnet stats` uses).
    Drop {
        #[serde(flatten)]
        frame: MonitoredFrame,
        reason: String,
    },
    /// A container sent a frame (before the datapath decided anything).
    FromContainer {
        #[serde(flatten)]
        frame: MonitoredFrame,
    },
    /// The host's stack delivered a frame to a container.
    ToContainer {
        #[serde(flatten)]
        frame: MonitoredFrame,
    },
    /// Events the datapath could not write since the last such line: over its rate limit, or
    /// the ring buffer full. Of every monitor's, not only this one's filter.
    Lost { count: u64 },
}

/// What an event says about its frame and where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoredFrame {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    /// The interface the frame was on (a container's host-side veth, the uplink, a parent).
    pub interface: String,
    /// The container and network of that interface, when it is an endpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `ipv4`, `ipv6`, `arp` or the EtherType in hex.
    pub ether_type: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or the number; absent when not IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// For ARP, the sender's and target's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Ports (TCP, UDP, SCTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// ICMP's (and ICMPv6's) type and code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// ARP's operation: `request`, `reply` or the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_operation: Option<String>,
    /// The frame's length in bytes.
    pub length: u32,
}
