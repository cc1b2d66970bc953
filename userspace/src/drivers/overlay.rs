//! The overlay driver (`-d overlay`): networks of global scope, the same on every host of a
//! cluster (`xnetd --cluster-store`). The network itself lives in the cluster store (name,
//! VNI, subnets, options) and every host mirrors it: its gateways on the host's loopback and
//! its subnets in the datapath, as for a bridge network, so a container's gateway is its own
//! host wherever it runs (egress and published ports stay local, as Docker's
//! docker_gwbridge makes them).
//!
//! Containers cannot join overlay networks yet: forwarding between hosts (VXLAN in the
//! datapath, endpoints in the cluster store) is the next part of issue #13. Until then a join
//! is refused with that reason.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{
    driver::{Attachment, Driver, EndpointDriver, Kernel, Scope},
    veth_network,
};
use crate::{
    datapath::EndpointEntry,
    error::{Result, XnetError},
    plumbing::Placement,
    state::{
        Container, Endpoint, Network,
        options::{self, NetworkOptions, OPT_MTU, OPT_VXLANID},
    },
};

/// The driver's name (`-d overlay`).
pub const OVERLAY: &str = "overlay";

pub struct Overlay;

impl Driver for Overlay {
    fn name(&self) -> &'static str {
        OVERLAY
    }

    fn predefined_network(&self) -> Option<&'static str> {
        None
    }

    fn attachment(&self) -> Attachment {
        Attachment::Endpoints(&Overlay)
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }
}

#[async_trait]
impl EndpointDriver for Overlay {
    fn check_options(
        &self,
        options: &BTreeMap<String, String>,
        ipv6: bool,
    ) -> Result<NetworkOptions> {
        options::parse(options, &[OPT_MTU, OPT_VXLANID], ipv6)
    }

    async fn add_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        veth_network::add_network(kernel, net).await
    }

    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        veth_network::remove_network(kernel, net).await
    }

    async fn plumb_endpoint(
        &self,
        _kernel: &mut Kernel,
        _placement: Placement<'_>,
        _ep: &mut Endpoint,
        net: &Network,
    ) -> Result<Option<String>> {
        Err(XnetError::invalid(format!(
            "containers cannot join overlay network {} yet: forwarding between hosts is not built",
            net.name
        )))
    }

    async fn unplumb_endpoint(&self, kernel: &mut Kernel, ep: &Endpoint) -> anyhow::Result<()> {
        veth_network::unplumb_endpoint(kernel, ep).await
    }

    async fn adopt_endpoint(
        &self,
        kernel: &mut Kernel,
        container: &Container,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<bool> {
        veth_network::adopt_endpoint(kernel, container, ep, net).await
    }

    fn endpoint_entry(&self, ep: &Endpoint, net: &Network) -> EndpointEntry {
        veth_network::endpoint_entry(ep, net)
    }
}
