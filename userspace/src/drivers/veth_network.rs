//! What the drivers whose endpoints are veth pairs on the eBPF datapath share (bridge, and
//! overlay for its local side): the network's gateways are addresses of the host on its
//! loopback (/32, /128: the kernel accepts them on whichever veth a packet enters) and its
//! subnets are registered in the datapath, which keeps every network's traffic to itself; an
//! endpoint is a veth pair (`plumbing`) whose host end carries the programs, with its entry in
//! `ENDPOINTS` written before that end comes up.

use std::net::Ipv6Addr;

use ipnet::IpNet;
use xnet_common::{
    ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, ENDPOINT_IPV6, Endpoint as DatapathEndpoint,
};

use super::driver::Kernel;
use crate::{
    datapath::EndpointEntry,
    error::Result,
    plumbing::{self, DefaultRoute, Placement},
    state::{Container, Endpoint, Network},
};

/// Gives the host the network's gateways and the datapath its subnets.
pub async fn add_network(kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
    for (subnet, gateway) in net.subnets_and_gateways() {
        kernel
            .netlink
            .add_address(
                kernel.loopback,
                gateway,
                IpNet::from(gateway).max_prefix_len(),
            )
            .await?;
        kernel.datapath.add_subnet(subnet, net.datapath_id)?;
    }
    Ok(())
}

/// Undoes [`add_network`]; tolerates parts that are already gone.
pub async fn remove_network(kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
    for (subnet, gateway) in net.subnets_and_gateways() {
        kernel
            .netlink
            .delete_address(kernel.loopback, gateway)
            .await?;
        kernel.datapath.remove_subnet(subnet)?;
    }
    Ok(())
}

/// Makes the endpoint's veth pair, its datapath entry, then brings the host end up.
pub async fn plumb_endpoint(
    kernel: &mut Kernel,
    placement: Placement<'_>,
    ep: &mut Endpoint,
    net: &Network,
) -> Result<Option<String>> {
    let handed_to_docker = plumbing::make_pair(
        &kernel.netlink,
        placement,
        ep,
        net,
        DefaultRoute::ViaGateway,
    )
    .await?;
    kernel.datapath.add_endpoint(&endpoint_entry(ep, net))?;
    plumbing::bring_up_host_end(&kernel.netlink, ep, net).await?;
    Ok(handed_to_docker)
}

/// Undoes [`plumb_endpoint`] as far as it got.
pub async fn unplumb_endpoint(kernel: &mut Kernel, ep: &Endpoint) -> anyhow::Result<()> {
    if ep.host_ifindex != 0 {
        kernel.datapath.remove_endpoint(ep.host_ifindex)?;
    }
    plumbing::delete_pair(&kernel.netlink, ep).await
}

/// After a restart: the endpoint's entries (`entry`) written again (its pinned programs
/// adopted) if its pair survived.
pub async fn adopt_endpoint(
    kernel: &mut Kernel,
    container: &Container,
    ep: &Endpoint,
    entry: &EndpointEntry,
) -> anyhow::Result<bool> {
    let survived = plumbing::pair_survived(
        &kernel.netlink,
        container.sandbox,
        &container.sandbox_key,
        ep,
    )
    .await?;
    if survived {
        kernel.datapath.add_endpoint(entry)?;
    }
    Ok(survived)
}

/// The endpoint's `ENDPOINTS` entry: its addresses and MACs, and its network's policy in
/// `flags`, so the hot path needs one lookup for its own endpoint.
pub fn endpoint_entry(ep: &Endpoint, net: &Network) -> EndpointEntry {
    let mut flags = 0;
    if !net.icc {
        flags |= ENDPOINT_ICC_OFF;
    }
    if net.internal {
        flags |= ENDPOINT_INTERNAL;
    }
    let (ipv6, gateway6) = match ep.ipv6.zip(net.ipv6) {
        Some((ip, config)) => {
            flags |= ENDPOINT_IPV6;
            (ip, config.gateway)
        }
        None => (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED),
    };
    EndpointEntry {
        ifindex: ep.host_ifindex,
        ifname: ep.host_ifname.clone(),
        endpoint: DatapathEndpoint {
            network_id: net.datapath_id,
            ipv4: ep.ipv4.octets(),
            gateway: net.ipv4.gateway.octets(),
            mac: ep.mac.0,
            host_mac: ep.host_mac.0,
            flags,
            slot: ep.slot,
            ipv6: ipv6.octets(),
            gateway6: gateway6.octets(),
        },
    }
}
