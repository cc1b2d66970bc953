//! xnet's IPAM for Docker (`docker network create -d xnet --ipam-driver xnet`): pools and
//! addresses by xnet's rules, the ones `xnet network create` and `xnet run` follow. Docker's
//! own IPAM knows only Docker's networks, so without `--subnet` it hands out 172.17.0.0/16
//! first, whatever the host routes there (xnet's `bridge`, docker0); this one skips every
//! subnet xnet or the host uses, and gives the lowest free address.
//!
//! A pool is requested before the network is created (the request carries no network id), so
//! pools are kept by pool id (the subnet) until Docker releases them.
//!
//! With `--ipam-opt xnet.overlay=NAME` the pool is the subnet of the cluster's overlay network
//! NAME and its addresses are the cluster's: each is reserved in the store (a claim under this
//! host's lease, with a token), so two hosts' Docker engines never hand out the same one, and
//! becomes the endpoint's when Docker creates it (`docker::network`).

use std::{collections::BTreeMap, net::IpAddr};

use super::wire::{
    AddressGranted, Empty, GATEWAY_ADDRESS, OPT_OVERLAY, PoolGranted, REQUEST_ADDRESS_TYPE,
    ReleaseAddress, ReleasePool, RequestAddress, RequestPool,
};
use crate::{
    cluster::keys,
    daemon::{Daemon, inner::Inner},
    error::{Result, XnetError},
    state::{
        DockerPool, IpConfig, Network,
        ids::random_id,
        ipam::{self, Requested, Subnet, Taken},
    },
};

impl Daemon {
    pub async fn ipam_request_pool(&self, req: RequestPool) -> Result<PoolGranted> {
        self.inner.lock().await.ipam_request_pool(req).await
    }

    pub async fn ipam_release_pool(&self, req: ReleasePool) -> Result<Empty> {
        let mut inner = self.inner.lock().await;
        // An overlay's pool is the cluster's network: nothing of it is kept here.
        inner.state.docker_pools4.remove(&req.pool_id);
        inner.state.docker_pools6.remove(&req.pool_id);
        inner.save()?;
        Ok(Empty {})
    }

    pub async fn ipam_request_address(&self, req: RequestAddress) -> Result<AddressGranted> {
        let mut inner = self.inner.lock().await;
        if let Some(pool) = OverlayPool::parse(&req.pool_id) {
            let address = inner.reserve_overlay_address(&pool, &req).await?;
            return Ok(AddressGranted {
                address,
                data: BTreeMap::new(),
            });
        }
        let state = &mut inner.state;
        let address = match (
            state.docker_pools4.get_mut(&req.pool_id),
            state.docker_pools6.get_mut(&req.pool_id),
        ) {
            (Some(pool), _) => grant(pool, &req)?,
            (_, Some(pool)) => grant(pool, &req)?,
            (None, None) => return Err(unknown_pool(&req.pool_id)),
        };
        inner.save()?;
        Ok(AddressGranted {
            address,
            data: BTreeMap::new(),
        })
    }

    pub async fn ipam_release_address(&self, req: ReleaseAddress) -> Result<Empty> {
        let mut inner = self.inner.lock().await;
        if let Some(pool) = OverlayPool::parse(&req.pool_id) {
            inner.release_overlay_address(&pool, &req.address).await?;
            return Ok(Empty {});
        }
        let state = &mut inner.state;
        if let Some(pool) = state.docker_pools4.get_mut(&req.pool_id) {
            release(pool, &req.address)?;
        } else if let Some(pool) = state.docker_pools6.get_mut(&req.pool_id) {
            release(pool, &req.address)?;
        }
        inner.save()?;
        Ok(Empty {})
    }
}

impl Inner {
    async fn ipam_request_pool(&mut self, req: RequestPool) -> Result<PoolGranted> {
        if let Some(name) = req.options.get(OPT_OVERLAY) {
            return self.overlay_pool(name, req.v6);
        }
        if let Some(key) = req.options.keys().next() {
            return Err(XnetError::invalid(format!(
                "unsupported --ipam-opt {key:?}: xnet's IPAM takes none"
            )));
        }
        let requested = Requested {
            subnet: given(&req.pool),
            gateway: None,
            ip_range: given(&req.sub_pool),
        };
        let (mut taken4, mut taken6) = self.taken_subnets().await?;
        let subnet = if req.v6 {
            taken6.extend(pools_taken(&self.state.docker_pools6));
            let pool = ipam::ula_pool(self.ula_prefix()?);
            let config = ipam::configure(&requested, &taken6, pool)?;
            keep(&mut self.state.docker_pools6, config)
        } else {
            taken4.extend(pools_taken(&self.state.docker_pools4));
            let config = ipam::configure(&requested, &taken4, ipam::default_pool())?;
            keep(&mut self.state.docker_pools4, config)
        };
        self.save()?;
        Ok(PoolGranted {
            pool_id: subnet.clone(),
            pool: subnet,
            data: BTreeMap::new(),
        })
    }

    /// The pool of the cluster's overlay network `name` (its subnet of the family asked for).
    fn overlay_pool(&self, name: &str, v6: bool) -> Result<PoolGranted> {
        let net = self.overlay_named(name)?;
        let subnet = match (v6, &net.ipv6) {
            (false, _) => net.ipv4.subnet.to_string(),
            (true, Some(config)) => config.subnet.to_string(),
            (true, None) => {
                return Err(XnetError::invalid(format!(
                    "overlay network {name} has no IPv6; create it with --ipv6"
                )));
            }
        };
        Ok(PoolGranted {
            pool_id: OverlayPool::id(&net.id, &subnet),
            pool: subnet,
            data: BTreeMap::new(),
        })
    }

    /// The cluster's overlay network `name` as this host mirrors it.
    pub(crate) fn overlay_named(&self, name: &str) -> Result<&Network> {
        self.state
            .networks
            .get(name)
            .filter(|n| n.vni.is_some())
            .ok_or_else(|| {
                XnetError::not_found(format!(
                    "no overlay network {name} in the cluster: create it with `xnet network create -d overlay --attachable {name}` on any host"
                ))
            })
    }

    /// The gateway of an overlay's pool (every host has it), or an address reserved in the
    /// cluster for a Docker endpoint to come.
    async fn reserve_overlay_address(
        &mut self,
        pool: &OverlayPool,
        req: &RequestAddress,
    ) -> Result<String> {
        let net = self.state.network_by_id(&pool.network_id)?.clone();
        let wanted = given(&req.address).map(|a| a.split('/').next().unwrap_or(a));
        let is_gateway =
            req.options.get(REQUEST_ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY_ADDRESS);
        let v6 = pool.subnet.contains(':');
        let (gateway, prefix) = match (v6, &net.ipv6) {
            (true, Some(config)) => (IpAddr::from(config.gateway), config.subnet.prefix_len()),
            _ => (IpAddr::from(net.ipv4.gateway), net.ipv4.subnet.prefix_len()),
        };
        if is_gateway {
            if wanted.is_some_and(|w| w != gateway.to_string()) {
                return Err(XnetError::invalid(format!(
                    "overlay network {} has gateway {gateway}; --gateway cannot change it",
                    net.name
                )));
            }
            return Ok(format!("{gateway}/{prefix}"));
        }
        let (mut store, _) = self.cluster_store(&net.driver)?;
        let (_, lease) = self.membership()?;
        let token = format!("docker-{}", &random_id()?[..16]);
        let ip: IpAddr = match (v6, &net.ipv6) {
            (true, Some(config)) => store
                .reserve_address(&net.id, config, wanted, &token, lease)
                .await?
                .into(),
            _ => store
                .reserve_address(&net.id, &net.ipv4, wanted, &token, lease)
                .await?
                .into(),
        };
        self.state
            .docker_reservations
            .insert(keys::address(&net.id, ip), token);
        self.save()?;
        Ok(format!("{ip}/{prefix}"))
    }

    /// Gives back an address reserved for a Docker endpoint that was never created (once
    /// created, the endpoint's removal withdraws it).
    async fn release_overlay_address(&mut self, pool: &OverlayPool, address: &str) -> Result<()> {
        let text = address.split('/').next().unwrap_or(address);
        let ip: IpAddr = text
            .parse()
            .map_err(|_| XnetError::invalid(format!("invalid address {address:?}")))?;
        let key = keys::address(&pool.network_id, ip);
        let Some(token) = self.state.docker_reservations.get(&key).cloned() else {
            return Ok(());
        };
        let net = self.state.network_by_id(&pool.network_id)?.clone();
        let (mut store, _) = self.cluster_store(&net.driver)?;
        store.release_reserved(&net.id, ip, &token).await?;
        self.state.docker_reservations.remove(&key);
        Ok(self.save()?)
    }
}

/// The id of an overlay network's pool, `overlay/<network id>/<subnet>`: requests for its
/// addresses name the cluster network without any state kept here.
pub(crate) struct OverlayPool {
    network_id: String,
    subnet: String,
}

impl OverlayPool {
    const PREFIX: &'static str = "overlay/";

    fn id(network_id: &str, subnet: &str) -> String {
        format!("{}{network_id}/{subnet}", Self::PREFIX)
    }

    fn parse(id: &str) -> Option<Self> {
        let (network_id, subnet) = id.strip_prefix(Self::PREFIX)?.split_once('/')?;
        Some(Self {
            network_id: network_id.to_string(),
            subnet: subnet.to_string(),
        })
    }
}

/// Keeps a new pool under its id, the subnet; returns the id.
fn keep<N: Subnet>(pools: &mut BTreeMap<String, DockerPool<N>>, config: IpConfig<N>) -> String {
    let id = config.subnet.to_string();
    pools.insert(
        id.clone(),
        DockerPool {
            config,
            allocated: Default::default(),
        },
    );
    id
}

/// Pools already handed out count as taken, also before their network exists.
fn pools_taken<N: Subnet>(pools: &BTreeMap<String, DockerPool<N>>) -> Vec<Taken<N>> {
    pools
        .values()
        .map(|p| Taken {
            subnet: p.config.subnet,
            owner: "a Docker network's pool".to_string(),
        })
        .collect()
}

/// The gateway (`--gateway`, else the first address) or a container's address (`--ip`, else
/// the lowest free one), with the pool's prefix length.
fn grant<N: Subnet>(pool: &mut DockerPool<N>, req: &RequestAddress) -> Result<String> {
    let wanted = given(&req.address).map(|a| a.split('/').next().unwrap_or(a));
    let is_gateway =
        req.options.get(REQUEST_ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY_ADDRESS);
    let ip = if is_gateway {
        pool.config.gateway = ipam::gateway(pool.config.subnet, wanted)?;
        pool.config.gateway
    } else {
        let ip = ipam::allocate(&pool.config, &pool.allocated, wanted)?;
        pool.allocated.insert(ip);
        ip
    };
    Ok(format!("{ip}/{}", pool.config.subnet.prefix_len()))
}

fn release<N: Subnet>(pool: &mut DockerPool<N>, address: &str) -> Result<()> {
    let text = address.split('/').next().unwrap_or(address);
    let ip: N::Addr = text
        .parse()
        .map_err(|_| XnetError::invalid(format!("invalid address {address:?}")))?;
    pool.allocated.remove(&ip);
    Ok(())
}

fn unknown_pool(id: &str) -> XnetError {
    XnetError::not_found(format!("pool {id} was not requested from xnet's IPAM"))
}

/// A request's optional text field.
fn given(text: &str) -> Option<&str> {
    Some(text).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use ipnet::Ipv4Net;

    use super::*;

    fn pool(subnet: &str) -> DockerPool<Ipv4Net> {
        let requested = Requested {
            subnet: Some(subnet),
            ..Requested::default()
        };
        DockerPool {
            config: ipam::configure(&requested, &[], std::iter::empty()).unwrap(),
            allocated: Default::default(),
        }
    }

    fn request(address: &str, gateway: bool) -> RequestAddress {
        let mut options = BTreeMap::new();
        if gateway {
            options.insert(
                REQUEST_ADDRESS_TYPE.to_string(),
                GATEWAY_ADDRESS.to_string(),
            );
        }
        RequestAddress {
            pool_id: "p".into(),
            address: address.into(),
            options,
        }
    }

    #[test]
    fn addresses_follow_xnets_rules() {
        let mut p = pool("10.1.0.0/24");
        assert_eq!(grant(&mut p, &request("", true)).unwrap(), "10.1.0.1/24");
        assert_eq!(grant(&mut p, &request("", false)).unwrap(), "10.1.0.2/24");
        assert_eq!(
            grant(&mut p, &request("10.1.0.9", false)).unwrap(),
            "10.1.0.9/24"
        );
        assert_eq!(grant(&mut p, &request("", false)).unwrap(), "10.1.0.3/24");
        // Taken, the gateway, outside: refused.
        for bad in ["10.1.0.9", "10.1.0.1", "10.2.0.5"] {
            assert!(grant(&mut p, &request(bad, false)).is_err(), "{bad}");
        }
        release(&mut p, "10.1.0.2").unwrap();
        assert_eq!(grant(&mut p, &request("", false)).unwrap(), "10.1.0.2/24");
        // --gateway.
        let mut p = pool("10.1.0.0/24");
        assert_eq!(
            grant(&mut p, &request("10.1.0.254", true)).unwrap(),
            "10.1.0.254/24"
        );
        assert_eq!(grant(&mut p, &request("", false)).unwrap(), "10.1.0.1/24");
    }
}
