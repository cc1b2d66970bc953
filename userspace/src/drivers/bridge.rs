//! The bridge driver, without a bridge: each endpoint is a veth pair whose host end carries
//! the datapath's programs, which forward between the network's endpoints, answer ARP and ND,
//! and NAT to the outside. The network's gateways are addresses of the host on its loopback
//! (/32, /128: the kernel accepts them on whichever veth a packet enters), and its subnets are
//! registered in the datapath, which keeps every network's traffic to itself.

use std::{collections::BTreeMap, net::Ipv6Addr};

use async_trait::async_trait;
use ipnet::IpNet;
use xnet_common::{
    ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, ENDPOINT_IPV6, Endpoint as DatapathEndpoint,
};

use super::driver::{Attachment, Driver, EndpointDriver, Kernel};
use crate::{
    datapath::EndpointEntry,
    error::Result,
    plumbing::{self, Placement},
    state::{
        Container, DEFAULT_NETWORK, Endpoint, Network,
        options::{self, NetworkOptions, OPT_ICC, OPT_MTU},
    },
};

/// The driver's name (`-d bridge`, the default).
pub const BRIDGE: &str = "bridge";

pub struct Bridge;

impl Driver for Bridge {
    fn name(&self) -> &'static str {
        BRIDGE
    }

    fn predefined_network(&self) -> Option<&'static str> {
        Some(DEFAULT_NETWORK)
    }

    fn attachment(&self) -> Attachment {
        Attachment::Endpoints(&Bridge)
    }
}

#[async_trait]
impl EndpointDriver for Bridge {
    fn check_options(
        &self,
        options: &BTreeMap<String, String>,
        ipv6: bool,
    ) -> Result<NetworkOptions> {
        options::parse(options, &[OPT_ICC, OPT_MTU], ipv6)
    }

    async fn add_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
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

    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        for (subnet, gateway) in net.subnets_and_gateways() {
            kernel
                .netlink
                .delete_address(kernel.loopback, gateway)
                .await?;
            kernel.datapath.remove_subnet(subnet)?;
        }
        Ok(())
    }

    async fn plumb_endpoint(
        &self,
        kernel: &mut Kernel,
        placement: Placement<'_>,
        ep: &mut Endpoint,
        net: &Network,
    ) -> Result<Option<String>> {
        let handed_to_docker = plumbing::make_pair(&kernel.netlink, placement, ep, net).await?;
        kernel
            .datapath
            .add_endpoint(&self.endpoint_entry(ep, net))?;
        plumbing::bring_up_host_end(&kernel.netlink, ep, net).await?;
        Ok(handed_to_docker)
    }

    async fn unplumb_endpoint(&self, kernel: &mut Kernel, ep: &Endpoint) -> anyhow::Result<()> {
        if ep.host_ifindex != 0 {
            kernel.datapath.remove_endpoint(ep.host_ifindex)?;
        }
        plumbing::delete_pair(&kernel.netlink, ep).await
    }

    async fn adopt_endpoint(
        &self,
        kernel: &mut Kernel,
        container: &Container,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<bool> {
        let survived = plumbing::pair_survived(
            &kernel.netlink,
            container.sandbox,
            &container.sandbox_key,
            ep,
        )
        .await?;
        if survived {
            kernel
                .datapath
                .add_endpoint(&self.endpoint_entry(ep, net))?;
        }
        Ok(survived)
    }

    fn endpoint_entry(&self, ep: &Endpoint, net: &Network) -> EndpointEntry {
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
}
