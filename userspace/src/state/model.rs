use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::{
    ipam::{IpConfig, Subnet},
    ports::PortMapping,
};
use crate::error::{Result, XnetError};

/// Docker's pre-defined networks, which every engine has: `bridge` is a network of the bridge
/// driver made on first start; `host` and `none` have no addresses and no record of their own,
/// only an id (the drivers `host` and `null`).
pub const DEFAULT_NETWORK: &str = "bridge";
pub const HOST_NETWORK: &str = "host";
pub const NONE_NETWORK: &str = "none";

/// Everything xnetd has promised, persisted as one JSON document.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    /// By name.
    pub networks: BTreeMap<String, Network>,
    /// By name.
    pub containers: BTreeMap<String, Container>,
    /// Next datapath id; ids are never reused so a stale map entry can't alias a new network.
    pub next_network_id: u32,
    /// Ids of the pre-defined `host` and `none` networks (made on first start).
    #[serde(default)]
    pub host_network_id: String,
    #[serde(default)]
    pub none_network_id: String,
    /// The unique local /48 that IPv6 subnets are taken from when none is given; random,
    /// made the first time one is needed (RFC 4193).
    #[serde(default)]
    pub ula_prefix: Option<Ipv6Net>,
    /// Endpoints Docker created on its networks (`CreateEndpoint`) and no container has
    /// joined yet (or left): by endpoint id.
    #[serde(default)]
    pub docker_endpoints: BTreeMap<String, DockerEndpoint>,
    /// The pools xnet's IPAM gave Docker's networks (`--ipam-driver xnet`), by pool id (the
    /// subnet), per family.
    #[serde(default)]
    pub docker_pools4: BTreeMap<String, DockerPool<Ipv4Net>>,
    #[serde(default)]
    pub docker_pools6: BTreeMap<String, DockerPool<Ipv6Net>>,
    /// Docker networks that stand for a network of the cluster (`docker network create -d
    /// xnet -o xnet.overlay=NAME`): Docker's network id -> the cluster network's id.
    #[serde(default)]
    pub docker_overlays: BTreeMap<String, String>,
    /// Addresses of cluster networks that xnet's IPAM reserved in the store for Docker
    /// endpoints not created yet: the claim's key -> the reservation's token.
    #[serde(default)]
    pub docker_reservations: BTreeMap<String, String>,
    /// Kernel objects that a request in progress is making (or taking apart) and that no
    /// record above owns yet (or any more). Written before they are made, cleared with the
    /// request's last save: if the daemon dies in between, the next start removes them, so a
    /// crash never leaves an object nobody owns. Empty between requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<KernelObject>,
    /// This host's membership of a cluster (`--cluster-store`), kept across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Membership>,
}

/// This host in its cluster: its id, kept for good, and the lease its keys live under, which
/// a restart renews rather than replaces while it is alive (so the other hosts never see
/// this host's endpoints go and come back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub host_id: String,
    #[serde(default)]
    pub lease: Option<i64>,
}

/// A kernel object xnetd makes whose owner is a record being created, or one just forgotten.
/// Map entries and link pins are not among them: they live under the daemon's own bpffs
/// directory, and every start prunes what the state does not explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KernelObject {
    /// A veth pair, by its end in the daemon's namespace (deleting one end deletes both, and
    /// the routes through it).
    Veth { name: String },
    /// A namespace bind mount of ours (a container's sandbox key).
    NetnsPin { path: PathBuf },
    /// An address of the host on its loopback (a network's gateway).
    HostAddress { ip: IpAddr },
    /// Host ports reserved from the ephemeral range for published ports.
    ReservedPorts { first: u16, last: u16 },
}

impl KernelObject {
    /// The host ports a published mapping reserves.
    pub fn reserved_ports(mapping: &PortMapping) -> Self {
        Self::ReservedPorts {
            first: *mapping.host_ports.start(),
            last: *mapping.host_ports.end(),
        }
    }
}

/// A pool xnet's IPAM gave a Docker network, and the addresses it handed out of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct DockerPool<N: Subnet> {
    pub config: IpConfig<N>,
    /// Not the gateway, which is the config's.
    pub allocated: BTreeSet<N::Addr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// Docker-style 64-hex id.
    pub id: String,
    pub name: String,
    pub driver: String,
    /// Every network has IPv4 (kept at the top level of the document, where state files
    /// written before IPv6 have it).
    #[serde(flatten)]
    pub ipv4: IpConfig<Ipv4Net>,
    /// IPv6 (`--ipv6`), besides IPv4.
    #[serde(default)]
    pub ipv6: Option<IpConfig<Ipv6Net>>,
    /// The small integer the datapath keys this network by.
    pub datapath_id: u32,
    /// RFC 3339.
    pub created: String,
    /// No way out, no way in (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// The `-o KEY=VALUE` options as given (shown by inspect); their effect is in the fields.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Inter-container communication (`com.docker.network.bridge.enable_icc`).
    #[serde(default = "default_true")]
    pub icc: bool,
    /// MTU of the veths on this network (`com.docker.network.driver.mtu`); the kernel's
    /// default when unset.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Made by a Docker engine through the plugin (`docker network create -d xnet`); only
    /// Docker removes it.
    #[serde(default)]
    pub docker: Option<DockerOwned>,
    /// The VXLAN id of a network of global scope (overlay), the same on every host; its
    /// record here mirrors the cluster store's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Addresses IPAM never hands out (`--aux-address NAME=IP`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// Standalone containers may join it (`--attachable`): a global network without it takes
    /// none, as Docker's swarm overlays take only services.
    #[serde(default)]
    pub attachable: bool,
}

impl Network {
    /// Each family's subnet and gateway.
    pub fn subnets_and_gateways(&self) -> impl Iterator<Item = (IpNet, IpAddr)> + use<> {
        let v4 = (self.ipv4.subnet.into(), self.ipv4.gateway.into());
        let v6 = self.ipv6.map(|c| (c.subnet.into(), c.gateway.into()));
        std::iter::once(v4).chain(v6)
    }

    /// Whether its traffic between hosts must be encrypted (`--opt encrypted`, an overlay's).
    pub fn is_encrypted(&self) -> bool {
        super::options::is_encrypted(&self.options)
    }
}

/// What xnet knows of an object a Docker engine made through the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerOwned {
    /// Whether the name is Docker's (asked from its API after the call that made the object:
    /// the plugin protocol carries ids only); until then it is `docker-<id prefix>`.
    pub named: bool,
}

/// An endpoint Docker created (`CreateEndpoint`) and no container has joined: its addresses,
/// given by Docker's IPAM, and the MAC the plugin gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEndpoint {
    /// The network's id (Docker's, which is xnet's for Docker's networks).
    pub network_id: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Mac,
}

fn default_true() -> bool {
    true
}

/// Whose network namespace a container lives in, which decides what removing it removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// Created by xnet for the container; removed with it.
    Owned,
    /// Someone else's (a Docker, containerd or podman container), attached with `xnet attach`;
    /// xnet holds it with a bind mount of its own and removes only that and its veths.
    Attached,
    /// The host namespace (`--network host`); nothing to create or remove.
    Host,
    /// A Docker container's sandbox, joined through the plugin: Docker made it, names and
    /// addresses the interfaces in it, and removes it; xnet holds no pin of it.
    Docker,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// The network namespace, a bind-mounted nsfs file (Docker's SandboxKey).
    pub sandbox_key: PathBuf,
    pub created: String,
    /// The command `xnet run` started in it, for `ps`.
    pub command: Vec<String>,
    /// The process `xnet run` started, while it may still run.
    pub pid: Option<u32>,
    pub sandbox: Sandbox,
    /// One per network, in the order they were connected; the first one's gateway is the
    /// container's default route.
    pub endpoints: Vec<Endpoint>,
    /// Published ports (`-p`), host ports resolved. They lead to the first endpoint's address
    /// of their host address's family and go with that endpoint.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// A Docker container (`sandbox` is [`Sandbox::Docker`]).
    #[serde(default)]
    pub docker: Option<DockerOwned>,
    /// Its resolv.conf beyond the embedded DNS (`--dns`, `--dns-search`, `--dns-option`).
    #[serde(default)]
    pub dns: DnsConfig,
    /// An attached namespace that gets the embedded DNS too (a CNI pod); xnet's own
    /// containers always do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedded_dns: bool,
}

/// A container's `--dns` (resolvers the embedded DNS forwards to instead of the host's),
/// `--dns-search` and `--dns-option` (lines of its resolv.conf), as Docker has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Container {
    /// The kernel objects that making this container makes: the pin of its namespace (unless
    /// it is the host's or Docker's), each endpoint's veth pair, its published host ports.
    pub fn kernel_objects(&self) -> Vec<KernelObject> {
        let pin = matches!(self.sandbox, Sandbox::Owned | Sandbox::Attached).then(|| {
            KernelObject::NetnsPin {
                path: self.sandbox_key.clone(),
            }
        });
        let veths = self.endpoints.iter().map(Endpoint::kernel_object);
        pin.into_iter()
            .chain(veths)
            .chain(self.ports.iter().map(KernelObject::reserved_ports))
            .collect()
    }
}

/// A container's attachment to a network: its veth pair and address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    /// Network name.
    pub network: String,
    pub ipv4: Ipv4Addr,
    /// On a network with IPv6.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// Which addresses were asked for (`--ip`, `--ip6`) rather than allocated; inspect shows
    /// them as Docker's `IPAMConfig`.
    #[serde(default)]
    pub static_ipv4: bool,
    #[serde(default)]
    pub static_ipv6: bool,
    pub mac: Mac,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host-side veth, in xnetd's namespace.
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: Mac,
    /// Index of its counters in the datapath (unique among the daemon's endpoints).
    pub slot: u32,
    /// More names the container answers to on this network in the embedded DNS
    /// (`--network-alias`, `network connect --alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// Its addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        std::iter::once(self.ipv4.into())
            .chain(self.ipv6.map(IpAddr::from))
            .collect()
    }

    /// Its veth pair, as a kernel object.
    pub fn kernel_object(&self) -> KernelObject {
        KernelObject::Veth {
            name: self.host_ifname.clone(),
        }
    }
}

impl State {
    /// A network by name, full id or unique id prefix, as Docker resolves them.
    pub fn network(&self, name_or_id: &str) -> Result<&Network> {
        resolve(&self.networks, name_or_id, |n| &n.id)
            .ok_or_else(|| XnetError::not_found(format!("network {name_or_id} not found")))
    }

    /// The network with this id (Docker names networks by id only).
    /// The network with this id; a Docker network that stands for a network of the cluster
    /// is that network.
    pub fn network_by_id(&self, id: &str) -> Result<&Network> {
        let id = self.docker_overlays.get(id).map_or(id, String::as_str);
        self.networks
            .values()
            .find(|n| n.id == id)
            .ok_or_else(|| XnetError::not_found(format!("network {id} not found")))
    }

    /// The container with a joined endpoint of this id, and the endpoint's position.
    pub fn joined_endpoint(&self, endpoint_id: &str) -> Option<(&Container, usize)> {
        self.containers.values().find_map(|c| {
            let position = c.endpoints.iter().position(|e| e.id == endpoint_id)?;
            Some((c, position))
        })
    }

    /// Forgets the endpoints Docker created that no sandbox joined: after a restart they are
    /// stale (their container was removed while xnetd was down, and Docker's DeleteEndpoint
    /// got no answer; or Docker rolled back a Join that got none).
    pub fn forget_unjoined_docker_endpoints(&mut self) {
        let joined: BTreeSet<String> = self.endpoints().map(|e| e.id.clone()).collect();
        self.docker_endpoints.retain(|id, _| joined.contains(id));
    }

    /// A container by name, full id or unique id prefix.
    pub fn container(&self, name_or_id: &str) -> Result<&Container> {
        resolve(&self.containers, name_or_id, |c| &c.id)
            .ok_or_else(|| XnetError::not_found(format!("No such container: {name_or_id}")))
    }

    /// The id of the pre-defined network `name` that has no record (`host`, `none`).
    pub fn predefined_id(&self, name: &str) -> Option<&str> {
        match name {
            HOST_NETWORK => Some(&self.host_network_id),
            NONE_NETWORK => Some(&self.none_network_id),
            _ => None,
        }
    }

    /// [`Self::predefined_id`], to set it.
    pub fn predefined_id_mut(&mut self, name: &str) -> Option<&mut String> {
        match name {
            HOST_NETWORK => Some(&mut self.host_network_id),
            NONE_NETWORK => Some(&mut self.none_network_id),
            _ => None,
        }
    }

    /// Every endpoint of every container.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.containers.values().flat_map(|c| &c.endpoints)
    }

    /// The endpoints on `network` (by name), with their containers.
    pub fn endpoints_on<'a>(
        &'a self,
        network: &'a str,
    ) -> impl Iterator<Item = (&'a Container, &'a Endpoint)> {
        self.containers.values().flat_map(move |c| {
            c.endpoints
                .iter()
                .filter(move |e| e.network == network)
                .map(move |e| (c, e))
        })
    }
}

/// The value named `name_or_id`: by name first, else the one whose id starts with it (only if
/// exactly one does, as Docker resolves id prefixes).
fn resolve<'a, T>(
    by_name: &'a BTreeMap<String, T>,
    name_or_id: &str,
    id: impl Fn(&T) -> &String,
) -> Option<&'a T> {
    if let Some(value) = by_name.get(name_or_id) {
        return Some(value);
    }
    let mut by_id = by_name
        .values()
        .filter(|v| !name_or_id.is_empty() && id(v).starts_with(name_or_id));
    match (by_id.next(), by_id.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// A MAC address, kept and shown as `02:42:ac:11:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Docker's scheme: 02:42 (locally administered) followed by the IPv4 address, so a MAC is
    /// unique within a network exactly when the address is.
    pub fn for_ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Mac([0x02, 0x42, a, b, c, d])
    }

    /// A random locally administered unicast MAC: overlay endpoints get one instead of
    /// Docker's address-derived scheme, so an address reused by another endpoint never meets
    /// a stale entry for its old MAC anywhere in the cluster (moby#52661).
    pub fn random() -> anyhow::Result<Self> {
        let mut mac = [0u8; 6];
        getrandom::fill(&mut mac).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
        mac[0] = (mac[0] & 0xfe) | 0x02;
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(|| format!("invalid MAC {s}"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC {s}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC {s}"));
        }
        Ok(Mac(mac))
    }
}

impl From<Mac> for String {
    fn from(mac: Mac) -> String {
        mac.to_string()
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_from_before_ipv6_load_and_ipv6_round_trips() {
        let old = r#"{"id":"ab","name":"n1","driver":"bridge","subnet":"10.1.0.0/24",
            "gateway":"10.1.0.1","datapath_id":3,"created":"2026-01-01T00:00:00Z",
            "ip_range":"10.1.0.128/25"}"#;
        let net: Network = serde_json::from_str(old).unwrap();
        assert_eq!(net.ipv4.subnet, "10.1.0.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(net.ipv4.gateway, Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(net.ipv4.ip_range, "10.1.0.128/25".parse().ok());
        assert!(net.ipv6.is_none() && net.icc);
        let ipv6 = IpConfig {
            subnet: "fd00:1::/64".parse::<Ipv6Net>().unwrap(),
            gateway: "fd00:1::1".parse().unwrap(),
            ip_range: None,
        };
        let json = serde_json::to_value(Network {
            ipv6: Some(ipv6),
            ..net
        })
        .unwrap();
        // IPv4 stays where old daemons (and old files) have it.
        assert_eq!(json["subnet"], "10.1.0.0/24");
        assert_eq!(json["ipv6"]["subnet"], "fd00:1::/64");
        let back: Network = serde_json::from_value(json).unwrap();
        assert_eq!(back.ipv6, Some(ipv6));
    }

    #[test]
    fn endpoints_from_before_ipv6_load() {
        let old = r#"{"id":"e","network":"n1","ipv4":"10.1.0.2","mac":"02:42:0a:01:00:02",
            "ifname":"eth0","host_ifname":"xv1","host_ifindex":7,
            "host_mac":"02:00:00:00:00:01","slot":0}"#;
        let ep: Endpoint = serde_json::from_str(old).unwrap();
        assert_eq!(ep.ipv6, None);
        assert!(!ep.static_ipv4 && !ep.static_ipv6);
    }

    #[test]
    fn containers_from_before_publishing_load_without_ports() {
        let old = r#"{"id":"c","name":"web","sandbox_key":"/run/xnet/netns/c","created":"x",
            "command":["true"],"pid":null,"sandbox":"owned","endpoints":[]}"#;
        let c: Container = serde_json::from_str(old).unwrap();
        assert!(c.ports.is_empty());
    }

    #[test]
    fn mac_round_trips_and_follows_dockers_scheme() {
        let mac = Mac::for_ipv4(Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:12:00:02");
        assert_eq!("02:42:ac:12:00:02".parse::<Mac>(), Ok(mac));
        assert!("02:42:ac:12:00".parse::<Mac>().is_err());
        assert!("02:42:ac:12:00:02:03".parse::<Mac>().is_err());
        assert!("zz:42:ac:12:00:02".parse::<Mac>().is_err());
    }
}
