//! STUB for the daemon side while the datapath branch (dp-overlay) is built; replaced at merge.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Datapath;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub network_id: u32,
    pub vni: u32,
    pub vtep: Ipv4Addr,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
}

impl Datapath {
    pub fn set_tunnel(&mut self, _tunnel: Option<(u32, Ipv4Addr, u16)>) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn add_vni(&mut self, _vni: u32, _network_id: u32) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remove_vni(&mut self, _vni: u32) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn vnis(&self) -> Vec<(u32, u32)> {
        Vec::new()
    }
    pub fn add_vtep(&mut self, _address: Ipv4Addr) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remove_vtep(&mut self, _address: Ipv4Addr) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn vteps(&self) -> Vec<Ipv4Addr> {
        Vec::new()
    }
    pub fn add_remote(&mut self, _remote: &RemoteEndpoint) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remove_remote(&mut self, _remote: &RemoteEndpoint) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn remote_endpoints(&self) -> Vec<RemoteEndpoint> {
        Vec::new()
    }
}
