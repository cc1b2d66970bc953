//! An endpoint's kernel side, for the drivers whose endpoints are veth pairs (all of them):
//! the pair in the daemon's namespace, the container end named, addressed, routed and moved
//! into the sandbox (or left for Docker to move), the host end up and routed to. The driver
//! puts its map entries in between: the host end comes up only once the datapath knows it, so
//! nothing is forwarded before the programs are attached (fail closed).
//!
//! The veth names derive from the endpoint's id: `xv<id>` on the host (where the programs are
//! attached), `xp<id>` for the container end while it is still in the daemon's namespace.

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use anyhow::Context as _;

use crate::{
    error::{Result, XnetError},
    os::{Netlink, ethtool, netns},
    state::{Endpoint, Mac, Network, Sandbox},
};

/// Host-side veths are named with this prefix plus an id prefix; routes through them are ours.
pub const HOST_VETH_PREFIX: &str = "xv";
/// The container ends, while in the daemon's namespace: the same id prefix.
const PEER_VETH_PREFIX: &str = "xp";

/// The host-side veth name of the endpoint with this id.
pub fn host_veth_name(endpoint_id: &str) -> String {
    format!("{HOST_VETH_PREFIX}{}", &endpoint_id[..11])
}

/// The name of the container end of an endpoint's veth while it is in the daemon's namespace.
fn peer_name(ep: &Endpoint) -> String {
    format!("{PEER_VETH_PREFIX}{}", &ep.id[..11])
}

/// The lowest `ethN` not taken inside the namespace at `sandbox`.
pub async fn free_ifname(sandbox: &Path) -> anyhow::Result<String> {
    let taken: BTreeSet<String> = Netlink::in_netns(sandbox)?
        .links()
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    Ok((0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(name))
        .expect("some ethN is free"))
}

/// `ifname`, if it is a valid interface name that the namespace at `sandbox` does not use.
pub async fn check_free_ifname(sandbox: &Path, ifname: &str) -> Result<String> {
    let valid = (1..16).contains(&ifname.len())
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if !valid {
        return Err(XnetError::invalid(format!(
            "invalid interface name {ifname:?}"
        )));
    }
    let taken = Netlink::in_netns(sandbox)?
        .links()
        .await?
        .into_iter()
        .any(|l| l.name == ifname);
    if taken {
        return Err(XnetError::conflict(format!(
            "interface {ifname} already exists in that namespace"
        )));
    }
    Ok(ifname.to_string())
}

/// Where the container end of an endpoint goes.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// Into the namespace pinned here, named, addressed and routed by xnet.
    Namespace(&'a Path),
    /// Nowhere yet: Docker moves it into its sandbox, names, addresses and routes it (the
    /// plugin's `Join`); it stays in the daemon's namespace, which is dockerd's, until then.
    Docker,
}

/// How the container reaches what is outside its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRoute {
    /// `default via GATEWAY` (bridge, overlay, macvlan, ipvlan l2).
    ViaGateway,
    /// `default dev IFACE`, with ARP off on the link (ipvlan l3): every destination is on the
    /// link, addressed to the container's own MAC, and the datapath routes by address.
    OnLink,
}

/// Creates the endpoint's veth pair in the daemon's namespace and fills in the host end's
/// ifindex and MAC; then sets the container end up for `placement`, routed as `route` says.
/// Returns the container end's name when it is left for Docker.
pub async fn make_pair(
    netlink: &Netlink,
    placement: Placement<'_>,
    ep: &mut Endpoint,
    net: &Network,
    route: DefaultRoute,
) -> Result<Option<String>> {
    let peer_name = peer_name(ep);
    netlink.create_veth(&ep.host_ifname, &peer_name).await?;
    let host = netlink
        .link_by_name(&ep.host_ifname)
        .await?
        .context("host-side veth vanished")?;
    ep.host_ifindex = host.index;
    ep.host_mac = Mac(host.mac);
    // On an IPv4-only network the host side needs no IPv6 of its own; without it the host
    // sends the container no router solicitations or MLD reports (noise in its counters, and
    // in tests). The daemon's threads are in its namespace, so these are the host side's.
    let host_sysctls = if ep.ipv6.is_some() {
        ipv6_sysctls(&ep.host_ifname, Side::Host)
    } else {
        vec![(format!("ipv6/conf/{}/disable_ipv6", ep.host_ifname), "1")]
    };
    netns::write_sysctls(&host_sysctls)?;
    let peer = netlink
        .link_by_name(&peer_name)
        .await?
        .context("container-side veth vanished")?;
    match placement {
        Placement::Namespace(sandbox) => {
            netlink.move_to_netns(peer.index, sandbox).await?;
            configure_container_end(sandbox, &peer_name, ep, net, route).await?;
            Ok(None)
        }
        Placement::Docker => {
            netlink
                .configure(peer.index, &peer_name, ep.mac.0, net.mtu)
                .await?;
            // GRO is the device's setting: it moves into the sandbox with it.
            ethtool::enable_gro(&peer_name)?;
            Ok(Some(peer_name))
        }
    }
}

/// Names, addresses and brings up the container end inside its namespace, with a default
/// route (as `route` says) unless the namespace has one.
async fn configure_container_end(
    sandbox: &Path,
    peer_name: &str,
    ep: &Endpoint,
    net: &Network,
    route: DefaultRoute,
) -> Result<()> {
    let inside = Netlink::in_netns(sandbox)?;
    let link = inside
        .link_by_name(peer_name)
        .await?
        .context("veth missing in the container namespace")?;
    inside
        .configure(link.index, &ep.ifname, ep.mac.0, net.mtu)
        .await?;
    accept_xdp_frames(sandbox, &ep.ifname)?;
    if ep.ipv6.is_some() {
        netns::write_sysctls_in(sandbox, ipv6_sysctls(&ep.ifname, Side::Container))?;
    }
    let addresses = addresses(ep, net);
    for a in &addresses {
        inside.add_address(link.index, a.ip, a.prefix_len).await?;
    }
    if route == DefaultRoute::OnLink {
        inside.set_noarp(link.index).await?;
    }
    inside.set_up(link.index).await?;
    for a in &addresses {
        match route {
            DefaultRoute::ViaGateway => inside.ensure_default_route(a.gateway).await?,
            DefaultRoute::OnLink => inside.ensure_default_device_route(a.ip, link.index).await?,
        }
    }
    Ok(())
}

/// Brings the host end up (with the network's MTU) and routes the endpoint's addresses to it,
/// from the gateway. Call it once the datapath has the endpoint.
pub async fn bring_up_host_end(netlink: &Netlink, ep: &Endpoint, net: &Network) -> Result<()> {
    if let Some(mtu) = net.mtu {
        netlink.set_mtu(ep.host_ifindex, mtu).await?;
    }
    netlink.set_up(ep.host_ifindex).await?;
    for a in &addresses(ep, net) {
        netlink
            .add_host_route(a.ip, ep.host_ifindex, a.gateway)
            .await?;
    }
    Ok(())
}

/// Deletes the endpoint's veth pair (and the host routes through it); gone already is fine.
pub async fn delete_pair(netlink: &Netlink, ep: &Endpoint) -> anyhow::Result<()> {
    delete_veth(netlink, &ep.host_ifname).await
}

/// Deletes the veth pair whose end in the daemon's namespace is `host_ifname` (deleting one
/// end deletes both); gone already is fine.
pub async fn delete_veth(netlink: &Netlink, host_ifname: &str) -> anyhow::Result<()> {
    if let Some(link) = netlink.link_by_name(host_ifname).await? {
        netlink.delete_link(link.index).await?;
    }
    Ok(())
}

/// After a restart, whether the endpoint's pair is still where it was left: the host end with
/// its recorded ifindex and, for a Docker sandbox, the container end still inside it (when
/// Docker leaves while xnetd is down, it moves that end back into its own namespace, xnetd's,
/// under its old name). Surviving ends inside xnet's own sandboxes are made ready again for
/// the uplink's XDP redirects (endpoints of daemons from before that program need it too).
pub async fn pair_survived(
    netlink: &Netlink,
    sandbox: Sandbox,
    sandbox_key: &Path,
    ep: &Endpoint,
) -> anyhow::Result<bool> {
    let host_end = netlink.link_by_name(&ep.host_ifname).await?;
    if host_end.is_none_or(|l| l.index != ep.host_ifindex) {
        return Ok(false);
    }
    if sandbox == Sandbox::Docker {
        return Ok(netlink.link_by_name(&peer_name(ep)).await?.is_none());
    }
    accept_xdp_frames(sandbox_key, &ep.ifname)?;
    Ok(true)
}

/// Lets the container's end of its veth take the frames the uplink's XDP program redirects to
/// it (published ports), by turning GRO on there: see [`ethtool::enable_gro`].
fn accept_xdp_frames(sandbox: &Path, ifname: &str) -> anyhow::Result<()> {
    let ifname = ifname.to_owned();
    netns::run_in(sandbox, move || ethtool::enable_gro(&ifname))
}

/// One of an endpoint's addresses, with what goes with it on its network.
struct Address {
    ip: IpAddr,
    prefix_len: u8,
    gateway: IpAddr,
}

/// The endpoint's address in each family of its network.
fn addresses(ep: &Endpoint, net: &Network) -> Vec<Address> {
    let v4 = Address {
        ip: ep.ipv4.into(),
        prefix_len: net.ipv4.subnet.prefix_len(),
        gateway: net.ipv4.gateway.into(),
    };
    let v6 = ep.ipv6.zip(net.ipv6).map(|(ip, config)| Address {
        ip: ip.into(),
        prefix_len: config.subnet.prefix_len(),
        gateway: config.gateway.into(),
    });
    std::iter::once(v4).chain(v6).collect()
}

/// Which end of an endpoint's veth pair.
#[derive(PartialEq, Eq)]
enum Side {
    Host,
    Container,
}

/// IPv6 on interface `ifname` of an endpoint on an IPv6 network, as the datapath expects it,
/// written while the link is down (its link-local address is made when it comes up):
/// - `addr_gen_mode` 0: the link-local address is the modified EUI-64 of the MAC, the one
///   `link_local_of` derives (the datapath recognises the host side and checks containers'
///   sources by it);
/// - no DAD: IPAM made the addresses unique, and DAD would keep them unusable for a second;
/// - in the container, no router advertisements: its router is the gateway, set statically.
fn ipv6_sysctls(ifname: &str, side: Side) -> Vec<(String, &'static str)> {
    let mut settings = vec![("addr_gen_mode", "0"), ("accept_dad", "0")];
    if side == Side::Container {
        settings.push(("accept_ra", "0"));
    }
    settings.push(("disable_ipv6", "0"));
    settings
        .into_iter()
        .map(|(key, value)| (format!("ipv6/conf/{ifname}/{key}"), value))
        .collect()
}
