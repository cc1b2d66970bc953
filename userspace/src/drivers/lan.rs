//! The macvlan and ipvlan drivers (`-d macvlan`, `-d ipvlan`): containers directly on the LAN
//! of a parent device (`-o parent=IFACE`, or `IFACE.VID` for VLAN VID on IFACE), with
//! addresses of that LAN, no NAT and no published ports. Docker builds them on the kernel's
//! macvlan and ipvlan devices and 802.1Q sub-interfaces; xnet builds them in the datapath, so
//! they work on kernels without ipvlan or 802.1Q (this one) and keep a host-side hook for
//! policy and counters:
//!
//! - an endpoint is a veth pair, as on a bridge network, whose container end has the
//!   container's own MAC (macvlan) or the parent's (ipvlan); its host end runs
//!   `lan_endpoint_ingress`, which switches (l2) or routes (l3) the container's frames to a
//!   sibling, the host (with `xnet.host_access`) or out of the parent, tagged;
//! - the parent runs `parent_ingress` (tcx), which hands the LAN's frames to their container
//!   by MAC or address, untagged; macvlan MACs go into the parent's unicast filter;
//! - no VLAN sub-interface is made: the datapath tags and untags, on kernels with 802.1Q too.
//!
//! A parent (device and VLAN) carries one layer-2 network (macvlan, or ipvlan l2), or any
//! number of ipvlan l3 networks, which route to each other as the kernel's ipvlan l3 slaves of
//! one master do; anything else on a parent in use is refused, as Docker refuses it.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::Ipv4Addr,
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use async_trait::async_trait;
use tracing::{debug, warn};
use xnet_common::{
    ENDPOINT_LAN, LAN_HOST_ACCESS, LAN_IPVLAN, LAN_L3, LAN_MODE_BRIDGE, LAN_MODE_PASSTHRU,
    LAN_MODE_PRIVATE, LAN_MODE_VEPA, LanNetwork, Neighbor,
};

use super::{
    driver::{Addressing, Attachment, Driver, EndpointDriver, Kernel, Scope},
    veth_network,
};
use crate::{
    datapath::EndpointEntry,
    error::{Result, XnetError},
    os::{announce, netns},
    plumbing::{self, DefaultRoute, Placement},
    state::{
        Container, Endpoint, Mac, Network,
        options::{
            self, NetworkOptions, OPT_HOST_ACCESS, OPT_IPVLAN_FLAG, OPT_IPVLAN_MODE,
            OPT_MACVLAN_MODE, OPT_MTU, OPT_PARENT,
        },
    },
};

/// The drivers' names.
pub const MACVLAN: &str = "macvlan";
pub const IPVLAN: &str = "ipvlan";

/// The largest 802.1Q VLAN id (4095 is reserved).
const VLAN_MAX: u16 = 4094;

/// `-d macvlan` or `-d ipvlan`: one implementation, told apart by `ipvlan`.
pub struct Lan {
    ipvlan: bool,
}

pub static MACVLAN_DRIVER: Lan = Lan { ipvlan: false };
pub static IPVLAN_DRIVER: Lan = Lan { ipvlan: true };

impl Driver for Lan {
    fn name(&self) -> &'static str {
        if self.ipvlan { IPVLAN } else { MACVLAN }
    }

    fn predefined_network(&self) -> Option<&'static str> {
        None
    }

    fn attachment(&self) -> Attachment {
        Attachment::Endpoints(if self.ipvlan {
            &IPVLAN_DRIVER
        } else {
            &MACVLAN_DRIVER
        })
    }

    fn scope(&self) -> Scope {
        Scope::Local
    }
}

/// How the containers of one parent meet each other: macvlan's modes, ipvlan's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Directly.
    Bridge,
    /// Never.
    Private,
    /// Through the LAN's switch, which must send their frames back (hairpin).
    Vepa,
    /// macvlan only: the one container owns the parent.
    Passthru,
}

impl Isolation {
    fn datapath_mode(self) -> u8 {
        match self {
            Isolation::Bridge => LAN_MODE_BRIDGE,
            Isolation::Private => LAN_MODE_PRIVATE,
            Isolation::Vepa => LAN_MODE_VEPA,
            Isolation::Passthru => LAN_MODE_PASSTHRU,
        }
    }
}

/// A parent device and the VLAN its frames carry there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub device: String,
    /// 0: untagged.
    pub vlan: u16,
}

impl Parent {
    /// `IFACE` or `IFACE.VID` (VID 1-4094). A name whose part after the last dot is not a
    /// number is a device name.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid =
            |why: &str| XnetError::invalid(format!("invalid -o {OPT_PARENT}={text:?}: {why}"));
        let (device, vlan) = match text.rsplit_once('.') {
            Some((device, vid)) if !vid.is_empty() && vid.bytes().all(|b| b.is_ascii_digit()) => {
                let vlan = vid
                    .parse::<u16>()
                    .ok()
                    .filter(|v| (1..=VLAN_MAX).contains(v))
                    .ok_or_else(|| invalid(&format!("the VLAN id must be 1 to {VLAN_MAX}")))?;
                (device, vlan)
            }
            _ => (text, 0),
        };
        if device.is_empty() || device.len() > 15 || device.contains(['/', ' ']) {
            return Err(invalid("not an interface name"));
        }
        if device == "lo" {
            return Err(XnetError::invalid(format!(
                "-o {OPT_PARENT}={text}: the loopback device cannot be a parent"
            )));
        }
        Ok(Self {
            device: device.to_owned(),
            vlan,
        })
    }
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vlan {
            0 => f.write_str(&self.device),
            vlan => write!(f, "{}.{vlan}", self.device),
        }
    }
}

/// A LAN network's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanConfig {
    /// None: no parent, the members reach only each other.
    pub parent: Option<Parent>,
    pub ipvlan: bool,
    /// ipvlan l3 or l3s: routed.
    pub l3: bool,
    pub isolation: Isolation,
    pub host_access: bool,
}

impl LanConfig {
    /// The options of a network of driver `ipvlan` (or macvlan), checked.
    pub fn parse(options: &BTreeMap<String, String>, ipvlan: bool) -> Result<Self> {
        let value = |key: &str| options.get(key).map(String::as_str);
        let choice = |key: &str, choices: &[&'static str]| -> Result<Option<&'static str>> {
            value(key)
                .map(|v| {
                    choices.iter().copied().find(|c| *c == v).ok_or_else(|| {
                        XnetError::invalid(format!(
                            "invalid -o {key}={v:?}: expected {}",
                            choices.join(", ")
                        ))
                    })
                })
                .transpose()
        };
        let (l3, isolation) = if ipvlan {
            // l3s is l3 here: its netfilter hook has no counterpart in the datapath.
            let l3 = choice(OPT_IPVLAN_MODE, &["l2", "l3", "l3s"])?.is_some_and(|m| m != "l2");
            let isolation = match choice(OPT_IPVLAN_FLAG, &["bridge", "private", "vepa"])? {
                Some("private") => Isolation::Private,
                Some("vepa") => Isolation::Vepa,
                _ => Isolation::Bridge,
            };
            (l3, isolation)
        } else {
            let mode = choice(OPT_MACVLAN_MODE, &["bridge", "private", "vepa", "passthru"])?;
            let isolation = match mode {
                Some("private") => Isolation::Private,
                Some("vepa") => Isolation::Vepa,
                Some("passthru") => Isolation::Passthru,
                _ => Isolation::Bridge,
            };
            (false, isolation)
        };
        let host_access = match value(OPT_HOST_ACCESS) {
            None => false,
            Some(v) => v.parse().map_err(|_| {
                XnetError::invalid(format!(
                    "invalid -o {OPT_HOST_ACCESS}={v:?}: expected true or false"
                ))
            })?,
        };
        Ok(Self {
            parent: value(OPT_PARENT).map(Parent::parse).transpose()?,
            ipvlan,
            l3,
            isolation,
            host_access,
        })
    }

    /// The config of network `net` (of this driver: its options were checked at create).
    fn of(net: &Network, ipvlan: bool) -> anyhow::Result<Self> {
        Self::parse(&net.options, ipvlan)
            .with_context(|| format!("the options of network {}", net.name))
    }

    /// What `inspect` and errors call its mode.
    fn mode_name(&self) -> String {
        let isolation = match self.isolation {
            Isolation::Bridge => "bridge",
            Isolation::Private => "private",
            Isolation::Vepa => "vepa",
            Isolation::Passthru => "passthru",
        };
        match (self.ipvlan, self.l3) {
            (false, _) => format!("macvlan {isolation}"),
            (true, false) => format!("ipvlan l2 {isolation}"),
            (true, true) => format!("ipvlan l3 {isolation}"),
        }
    }
}

/// The parent as the kernel has it now.
struct ParentLink {
    index: u32,
    mac: [u8; 6],
    mtu: u32,
    ipv4: Option<Ipv4Addr>,
}

async fn parent_link(kernel: &Kernel, parent: &Parent) -> anyhow::Result<ParentLink> {
    let flag = format!("-o {OPT_PARENT}={parent}");
    let interface = kernel.netlink.interface(&flag, &parent.device).await?;
    Ok(ParentLink {
        index: interface.index,
        mac: interface.mac,
        mtu: interface.mtu,
        ipv4: interface.ipv4,
    })
}

impl Lan {
    fn config(&self, net: &Network) -> anyhow::Result<LanConfig> {
        LanConfig::of(net, self.ipvlan)
    }

    /// The network's parent link, if it has a parent.
    async fn parent_of(
        &self,
        kernel: &Kernel,
        config: &LanConfig,
    ) -> anyhow::Result<Option<ParentLink>> {
        match &config.parent {
            Some(parent) => Ok(Some(parent_link(kernel, parent).await?)),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl EndpointDriver for Lan {
    fn check_options(
        &self,
        options: &BTreeMap<String, String>,
        ipv6: bool,
    ) -> Result<NetworkOptions> {
        let keys: &[&str] = if self.ipvlan {
            &[
                OPT_PARENT,
                OPT_IPVLAN_MODE,
                OPT_IPVLAN_FLAG,
                OPT_HOST_ACCESS,
                OPT_MTU,
            ]
        } else {
            &[OPT_PARENT, OPT_MACVLAN_MODE, OPT_HOST_ACCESS, OPT_MTU]
        };
        let parsed = options::parse(options, keys, ipv6)?;
        LanConfig::parse(options, self.ipvlan)?;
        if self.ipvlan && ipv6 {
            // Its containers share the parent's MAC, so their link-local addresses would all
            // be the parent's (and the host's own, with EUI-64 addresses).
            return Err(XnetError::invalid(
                "ipvlan networks are IPv4 only in xnet: their containers share the parent's MAC, and with it one link-local IPv6 address",
            ));
        }
        Ok(parsed)
    }

    fn addressing(&self) -> Addressing {
        Addressing::Lan
    }

    fn publishes_ports(&self) -> bool {
        false
    }

    fn check_network(&self, net: &Network, existing: &BTreeMap<String, Network>) -> Result<()> {
        let config = LanConfig::parse(&net.options, self.ipvlan)?;
        let Some(parent) = &config.parent else {
            return Ok(());
        };
        for other in existing.values() {
            if other.driver != MACVLAN && other.driver != IPVLAN {
                continue;
            }
            let Ok(other_config) = LanConfig::parse(&other.options, other.driver == IPVLAN) else {
                continue;
            };
            let Some(other_parent) = &other_config.parent else {
                continue;
            };
            let same_device = other_parent.device == parent.device;
            let passthru = [&config, &other_config]
                .iter()
                .any(|c| c.isolation == Isolation::Passthru);
            // ipvlan l3 networks (only ipvlan has l3) with the same flag route to each other.
            let both_routed =
                config.l3 && other_config.l3 && config.isolation == other_config.isolation;
            if (same_device && passthru) || (other_parent == parent && !both_routed) {
                return Err(XnetError::conflict(format!(
                    "network {} is already using parent interface {other_parent} ({})",
                    other.name,
                    other_config.mode_name()
                )));
            }
        }
        Ok(())
    }

    async fn add_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        let config = self.config(net)?;
        // `--internal`: no traffic through the parent, so the datapath has none.
        let parent = match net.internal {
            true => None,
            false => self.parent_of(kernel, &config).await?,
        };
        let mut flags = 0;
        if config.ipvlan {
            flags |= LAN_IPVLAN;
        }
        if config.l3 {
            flags |= LAN_L3;
        }
        if config.host_access {
            flags |= LAN_HOST_ACCESS;
        }
        let entry = LanNetwork {
            parent: parent.as_ref().map_or(0, |p| p.index),
            host_ipv4: parent
                .as_ref()
                .and_then(|p| p.ipv4)
                .filter(|_| config.host_access)
                .unwrap_or(Ipv4Addr::UNSPECIFIED)
                .octets(),
            parent_mac: parent.as_ref().map_or([0; 6], |p| p.mac),
            vlan: config.parent.as_ref().map_or(0, |p| p.vlan),
            mode: config.isolation.datapath_mode(),
            flags,
            _pad: [0; 6],
        };
        let subnets: Vec<_> = net.subnets_and_gateways().map(|(s, _)| s).collect();
        kernel
            .datapath
            .add_lan_network(net.datapath_id, entry, !config.l3, &subnets)?;
        if let (Some(link), Some(parent)) = (&parent, &config.parent) {
            kernel.datapath.attach_parent(&parent.device, link.index)?;
        }
        Ok(())
    }

    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        let subnets: Vec<_> = net.subnets_and_gateways().map(|(s, _)| s).collect();
        kernel
            .datapath
            .remove_lan_network(net.datapath_id, &subnets)
    }

    async fn plumb_endpoint(
        &self,
        kernel: &mut Kernel,
        placement: Placement<'_>,
        ep: &mut Endpoint,
        net: &Network,
    ) -> Result<Option<String>> {
        let config = self.config(net)?;
        if config.isolation == Isolation::Passthru
            && kernel.datapath.lan_macs_of(net.datapath_id) > 0
        {
            return Err(XnetError::conflict(format!(
                "network {} is in passthru mode: its parent takes one container",
                net.name
            )));
        }
        let parent = self.parent_of(kernel, &config).await?;
        match &parent {
            // Every ipvlan container has the parent's MAC.
            Some(link) if config.ipvlan => ep.mac = Mac(link.mac),
            _ => ep.mac = lan_mac(ep.ipv4),
        }
        // The LAN's MTU unless the network says otherwise.
        let mut on_lan = net.clone();
        on_lan.mtu = net.mtu.or(parent.as_ref().map(|p| p.mtu));
        let route = if config.l3 {
            DefaultRoute::OnLink
        } else {
            DefaultRoute::ViaGateway
        };
        let handed_to_docker =
            plumbing::make_pair(&kernel.netlink, placement, ep, &on_lan, route).await?;
        let entry = self.endpoint_entry(ep, net);
        kernel.datapath.add_endpoint(&entry)?;
        if let Some(link) = parent.as_ref().filter(|_| !net.internal)
            && !config.ipvlan
        {
            register_mac(kernel, net, ep, link.index).await?;
        }
        if let Some(mtu) = on_lan.mtu {
            kernel.netlink.set_mtu(ep.host_ifindex, mtu).await?;
        }
        kernel.netlink.set_up(ep.host_ifindex).await?;
        if let Some(host) = parent
            .as_ref()
            .and_then(|p| p.ipv4)
            .filter(|_| config.host_access && !net.internal)
        {
            kernel
                .netlink
                .add_host_route(ep.ipv4.into(), ep.host_ifindex, host.into())
                .await?;
        }
        // Announced on its LAN (l3 has no ARP, and internal networks no LAN).
        if let (Placement::Namespace(sandbox), Some(_)) = (placement, &config.parent)
            && !config.l3
            && !net.internal
        {
            announce_on_join(sandbox, ep);
        }
        Ok(handed_to_docker)
    }

    async fn unplumb_endpoint(
        &self,
        kernel: &mut Kernel,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<()> {
        let config = self.config(net)?;
        if !config.ipvlan
            && let Some(parent) = &config.parent
            && let Some(link) = kernel.netlink.link_by_name(&parent.device).await?
        {
            kernel
                .netlink
                .remove_unicast_filter(link.index, ep.mac.0)
                .await?;
        }
        kernel.datapath.remove_lan_mac(net.datapath_id, ep.mac.0)?;
        veth_network::unplumb_endpoint(kernel, ep).await
    }

    async fn adopt_endpoint(
        &self,
        kernel: &mut Kernel,
        container: &Container,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<bool> {
        let entry = self.endpoint_entry(ep, net);
        let survived = veth_network::adopt_endpoint(kernel, container, ep, &entry).await?;
        let config = self.config(net)?;
        if survived && !config.ipvlan && !net.internal {
            // A parent that is gone leaves the container without its LAN, not the daemon
            // without a start.
            match self.parent_of(kernel, &config).await {
                Ok(Some(link)) => register_mac(kernel, net, ep, link.index).await?,
                Ok(None) => {}
                Err(e) => warn!(network = %net.name, "{e:#}"),
            }
        }
        Ok(survived)
    }

    fn endpoint_entry(&self, ep: &Endpoint, net: &Network) -> EndpointEntry {
        let mut entry = veth_network::endpoint_entry(ep, net);
        entry.endpoint.flags |= ENDPOINT_LAN;
        entry
    }
}

/// How many times a joining container is announced, and how far apart: Docker 28's defaults
/// (`com.docker.network.advertise_addr_nmsgs` and `…_ms`). Best effort: a neighbour that misses
/// them all learns the MAC at its next ARP.
const ANNOUNCEMENTS: u32 = 3;
const ANNOUNCEMENT_INTERVAL: Duration = Duration::from_millis(600);

/// Announces the container from its namespace: the first time before its join returns, the
/// others in the background, ending quietly if the container has gone meanwhile.
fn announce_on_join(sandbox: &Path, ep: &Endpoint) {
    let (sandbox, ifname) = (sandbox.to_owned(), ep.ifname.clone());
    let (mac, ipv4, ipv6) = (ep.mac.0, ep.ipv4, ep.ipv6);
    let send = move || {
        let ifname = ifname.clone();
        netns::run_in(&sandbox, move || {
            announce::announce(&ifname, mac, ipv4, ipv6)
        })
    };
    if let Err(e) = send() {
        warn!(interface = %ep.host_ifname, "announcing the container on its LAN: {e:#}");
        return;
    }
    let interface = ep.host_ifname.clone();
    tokio::spawn(async move {
        for _ in 1..ANNOUNCEMENTS {
            tokio::time::sleep(ANNOUNCEMENT_INTERVAL).await;
            let send = send.clone();
            match tokio::task::spawn_blocking(send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(%interface, "announcing again (the container may have left): {e:#}");
                    return;
                }
                Err(e) => {
                    warn!(%interface, "announcing again: {e}");
                    return;
                }
            }
        }
    });
}

/// Makes a macvlan container known by its MAC: in `LAN_MACS`, and in the unicast filter of
/// its network's parent (`parent`, an ifindex).
async fn register_mac(
    kernel: &mut Kernel,
    net: &Network,
    ep: &Endpoint,
    parent: u32,
) -> anyhow::Result<()> {
    let container = Neighbor {
        ifindex: ep.host_ifindex,
        mac: ep.mac.0,
        _pad: [0; 2],
        slot: ep.slot,
        vtep: [0; 4],
        vni: 0,
    };
    kernel
        .datapath
        .add_lan_mac(net.datapath_id, ep.mac.0, container)?;
    kernel.netlink.add_unicast_filter(parent, ep.mac.0).await
}

/// The first two bytes of a macvlan container's MAC (locally administered, then `X`), the
/// four others its IPv4 address: unique on its LAN as the address is, and told apart from
/// the MACs other software (Docker's 02:42:…, say) puts in the same parent's filter.
const LAN_MAC_PREFIX: [u8; 2] = [0x02, 0x58];

/// A macvlan container's MAC, from its address.
fn lan_mac(ipv4: Ipv4Addr) -> Mac {
    let [a, b, c, d] = ipv4.octets();
    Mac([LAN_MAC_PREFIX[0], LAN_MAC_PREFIX[1], a, b, c, d])
}

/// On start: the parents' unicast filters hold exactly the MACs of the macvlan containers
/// there (`macs`, by parent device). A MAC of xnet's scheme (`LAN_MAC_PREFIX`) that no
/// container has was left by a request that died with the daemon; every other entry (the
/// admin's, another program's macvlan devices') stays.
pub async fn prune_unicast_filters(
    kernel: &Kernel,
    macs: &BTreeMap<String, HashSet<[u8; 6]>>,
) -> anyhow::Result<()> {
    for (device, keep) in macs {
        let Some(link) = kernel.netlink.link_by_name(device).await? else {
            continue;
        };
        for mac in kernel.netlink.unicast_filters(link.index).await? {
            if mac[..2] == LAN_MAC_PREFIX && !keep.contains(&mac) {
                kernel
                    .netlink
                    .remove_unicast_filter(link.index, mac)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The parent device of a macvlan network, if it is one with a parent.
pub fn macvlan_parent(net: &Network) -> Option<String> {
    if net.driver != MACVLAN {
        return None;
    }
    LanConfig::parse(&net.options, false)
        .ok()?
        .parent
        .map(|p| p.device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::options::tests::opts;

    #[test]
    fn parents_name_a_device_and_maybe_a_vlan() {
        assert_eq!(
            Parent::parse("eth0").unwrap(),
            Parent {
                device: "eth0".into(),
                vlan: 0
            }
        );
        let tagged = Parent::parse("eth0.50").unwrap();
        assert_eq!((tagged.device.as_str(), tagged.vlan), ("eth0", 50));
        assert_eq!(tagged.to_string(), "eth0.50");
        assert_eq!(Parent::parse("br.lan").unwrap().device, "br.lan");
        for bad in ["eth0.0", "eth0.4095", "eth0.99999", "", ".5", "lo", "a/b"] {
            assert!(Parent::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(
            Parent::parse("lo")
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
    }

    #[test]
    fn modes_default_as_in_docker_and_are_checked() {
        let c = LanConfig::parse(&opts(&[("parent", "eth0")]), false).unwrap();
        assert_eq!(
            (c.isolation, c.l3, c.host_access),
            (Isolation::Bridge, false, false)
        );
        let c = LanConfig::parse(&opts(&[]), true).unwrap();
        assert_eq!(
            (c.isolation, c.l3, c.parent),
            (Isolation::Bridge, false, None)
        );
        let c = LanConfig::parse(
            &opts(&[("ipvlan_mode", "l3s"), ("ipvlan_flag", "private")]),
            true,
        )
        .unwrap();
        assert_eq!((c.isolation, c.l3), (Isolation::Private, true));
        let c = LanConfig::parse(&opts(&[("macvlan_mode", "passthru")]), false).unwrap();
        assert_eq!(c.isolation, Isolation::Passthru);
        for (key, value) in [
            ("macvlan_mode", "l2"),
            ("xnet.host_access", "yes"),
            ("parent", "eth0.0"),
        ] {
            assert!(
                LanConfig::parse(&opts(&[(key, value)]), false).is_err(),
                "{key}={value}"
            );
        }
        assert!(LanConfig::parse(&opts(&[("ipvlan_mode", "l4")]), true).is_err());
    }
}
