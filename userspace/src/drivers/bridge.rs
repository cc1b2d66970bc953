//! The bridge driver, without a bridge: each endpoint is a veth pair whose host end carries
//! the datapath's programs, which forward between the network's endpoints, answer ARP and ND,
//! and NAT to the outside (see `veth_network`).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{
    driver::{Attachment, Driver, EndpointDriver, Kernel, Scope},
    veth_network,
};
use crate::{
    datapath::EndpointEntry,
    error::Result,
    plumbing::Placement,
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

    fn scope(&self) -> Scope {
        Scope::Local
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
        veth_network::add_network(kernel, net).await
    }

    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        veth_network::remove_network(kernel, net).await
    }

    async fn plumb_endpoint(
        &self,
        kernel: &mut Kernel,
        placement: Placement<'_>,
        ep: &mut Endpoint,
        net: &Network,
    ) -> Result<Option<String>> {
        veth_network::plumb_endpoint(kernel, placement, ep, net).await
    }

    async fn unplumb_endpoint(
        &self,
        kernel: &mut Kernel,
        ep: &Endpoint,
        _net: &Network,
    ) -> anyhow::Result<()> {
        veth_network::unplumb_endpoint(kernel, ep).await
    }

    async fn adopt_endpoint(
        &self,
        kernel: &mut Kernel,
        container: &Container,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<bool> {
        veth_network::adopt_endpoint(kernel, container, ep, &self.endpoint_entry(ep, net)).await
    }

    fn endpoint_entry(&self, ep: &Endpoint, net: &Network) -> EndpointEntry {
        veth_network::endpoint_entry(ep, net)
    }
}
