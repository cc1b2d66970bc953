//! The overlay driver (`-d overlay`): networks of global scope, the same on every host of a
//! cluster (`xnetd --cluster-store`). The network itself lives in the cluster store (name,
//! VNI, subnets, options) and every host mirrors it: its gateways on the host's loopback and
//! its subnets in the datapath, as for a bridge network, so a container's gateway is its own
//! host wherever it runs (egress and published ports stay local, as Docker's
//! docker_gwbridge makes them).
//!
//! An endpoint is a veth pair as on a bridge network; what differs is in the daemon (its
//! addresses are claimed cluster-wide and it is registered in the store, so every other host
//! adds it to its datapath as a remote endpoint) and in the datapath, which finds the
//! network of a VXLAN frame by its VNI (`VNIS`, written here) and replicates its broadcasts to
//! the other hosts with endpoints on it (`FLOOD_VTEPS`, written by the cluster's sync, removed
//! here with the network).

use std::collections::BTreeMap;

use anyhow::Context as _;
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
        Container, Endpoint, Network,
        options::{self, NetworkOptions, OPT_ENCRYPTED, OPT_MTU, OPT_VXLANID},
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
        options::parse(options, &[OPT_MTU, OPT_VXLANID, OPT_ENCRYPTED], ipv6)
    }

    async fn add_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        veth_network::add_network(kernel, net).await?;
        let vni = net.vni.context("an overlay network without a VNI")?;
        kernel
            .datapath
            .add_vni(vni, net.datapath_id, net.is_encrypted())
    }

    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()> {
        if let Some(vni) = net.vni {
            kernel.datapath.remove_vni(vni)?;
        }
        kernel.datapath.remove_flood(net.datapath_id)?;
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
