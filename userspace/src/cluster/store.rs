//! The cluster store: etcd, through the etcd-client crate. Every call is bounded in time, so a
//! store that does not answer turns into a one-line refusal of what needs it, never a hang;
//! what only this host needs (bridge networks, traffic) never waits on it.

use std::{future::Future, time::Duration};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchStream,
};
use ipnet::{IpNet, Ipv6Net};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    config::ClusterConfig,
    keys,
    records::{ClusterNetwork, DEFAULT_VXLAN_PORT, HostRecord, Settings},
};
use crate::error::{Result, XnetError};

/// How long one call to the store may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How many keys one read of a listing returns. The client refuses an answer over 4 MiB
/// (gRPC's default), and a cluster's endpoint records outgrow that: 100,000 of them are
/// about 30 MB. 1,000 records of up to 4 KB each stay under it.
const PAGE: i64 = 1000;
/// How long a host's keys outlive its last renewal: when a host dies, every other host
/// removes its endpoints within this time.
pub const LEASE_TTL_SECONDS: i64 = 10;
/// The VNIs xnet hands out, as Docker's swarm does: from 4096 up (below are left for VNIs
/// given with `-o com.docker.network.driver.overlay.vxlanid_list`), to VXLAN's 24 bits.
pub const VNI_FIRST_FREE: u32 = 4096;
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// What made a new network's transaction fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Another network of the cluster has its name.
    Name,
    /// Another network of the cluster has its VNI.
    Vni,
    /// Another network of the cluster has one of its subnets.
    Subnet,
}

/// A record as the store holds it: its key (which the watch's deletions name) and value.
pub type Keyed<T> = (String, T);

/// A connection to the cluster's etcd.
#[derive(Clone)]
pub struct Store {
    client: Client,
    /// The members' URLs, for messages.
    urls: String,
}

impl Store {
    /// Connects to the first member `config` names that answers. One member at a time: when
    /// it stops answering, the daemon connects again and gets the next one that does (a
    /// client balancing over all of them failed outright here while one was down).
    pub async fn connect(config: &ClusterConfig) -> Result<Self> {
        let urls = config.endpoints.join(",");
        let mut last = String::from("no members");
        for member in &config.endpoints {
            let options = ConnectOptions::new()
                .with_connect_timeout(CALL_TIMEOUT)
                .with_timeout(CALL_TIMEOUT);
            let connected = tokio::time::timeout(
                CALL_TIMEOUT,
                Client::connect([member.as_str()], Some(options)),
            )
            .await;
            let client = match connected {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    last = format!("{member}: {}", reason(&e));
                    continue;
                }
                Err(_) => {
                    last = format!("{member}: timed out after {CALL_TIMEOUT:?}");
                    continue;
                }
            };
            let mut store = Self {
                client,
                urls: urls.clone(),
            };
            // It answers a read, or the next member is tried.
            match store
                .call(|mut c| async move { c.get(keys::SETTINGS, None).await })
                .await
            {
                Ok(_) => return Ok(store),
                Err(e) => last = format!("{member}: {e}"),
            }
        }
        Err(unavailable(&urls, last))
    }

    /// The cluster's settings, written now if this is its first host (with `vxlan_port`, or
    /// Docker's default, and `ula_prefix`). A host asking for another port than the
    /// cluster's is refused.
    pub async fn settings(
        &mut self,
        vxlan_port: Option<u16>,
        ula_prefix: Ipv6Net,
    ) -> Result<Settings> {
        let proposed = Settings {
            vxlan_port: vxlan_port.unwrap_or(DEFAULT_VXLAN_PORT),
            ula_prefix,
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                keys::SETTINGS,
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(keys::SETTINGS, to_json(&proposed)?, None)])
            .or_else([TxnOp::get(keys::SETTINGS, None)]);
        let response = self.call(|mut c| async move { c.txn(txn).await }).await?;
        if response.succeeded() {
            return Ok(proposed);
        }
        let stored: Settings = match response.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => match get.kvs().first() {
                Some(kv) => from_json(kv.value())?,
                None => return Err(XnetError::Internal("cluster settings vanished".into())),
            },
            _ => return Err(XnetError::Internal("unexpected answer from etcd".into())),
        };
        if let Some(port) = vxlan_port.filter(|p| *p != stored.vxlan_port) {
            return Err(XnetError::invalid(format!(
                "--data-path-port {port}: the cluster's VXLAN port is {}",
                stored.vxlan_port
            )));
        }
        Ok(stored)
    }

    /// Registers this host under a lease: `lease` (a previous run's, if it is still alive) or
    /// a new one. Returns the lease.
    pub async fn join(&mut self, host: &HostRecord, lease: Option<i64>) -> Result<i64> {
        let alive = match lease {
            Some(id) => {
                let ttl = self
                    .call(|mut c| async move { c.lease_time_to_live(id, None).await })
                    .await?;
                (ttl.ttl() > 0).then_some(id)
            }
            None => None,
        };
        let lease = match alive {
            Some(id) => id,
            None => self
                .call(|mut c| async move { c.lease_grant(LEASE_TTL_SECONDS, None).await })
                .await?
                .id(),
        };
        let value = to_json(host)?;
        let key = keys::host(&host.id);
        self.call(|mut c| async move {
            c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        })
        .await?;
        Ok(lease)
    }

    /// Renews `lease` once; false if it had expired (the host's keys are gone).
    pub async fn renew(&mut self, lease: i64) -> Result<bool> {
        let response = self
            .call(|mut c| async move {
                let (mut keeper, mut answers) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                answers.message().await
            })
            .await?;
        Ok(response.is_some_and(|r| r.ttl() > 0))
    }

    /// The hosts of the cluster.
    pub async fn hosts(&mut self) -> Result<Vec<HostRecord>> {
        Ok(self.list(keys::HOSTS).await?.0)
    }

    /// The networks of global scope, and the store's revision they were read at (to watch
    /// from the next one).
    pub async fn networks(&mut self) -> Result<(Vec<ClusterNetwork>, i64)> {
        self.list(keys::NETWORKS).await
    }

    /// The lowest VNI from [`VNI_FIRST_FREE`] that no network has.
    pub async fn free_vni(&mut self) -> Result<u32> {
        let response = self
            .call(|mut c| async move {
                c.get(
                    keys::VNIS,
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
                .await
            })
            .await?;
        let taken: Vec<u32> = response
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok().and_then(keys::vni_of))
            .collect();
        (VNI_FIRST_FREE..=VNI_MAX)
            .find(|vni| !taken.contains(vni))
            .ok_or_else(|| XnetError::conflict("every VXLAN id of the cluster is in use"))
    }

    /// Adds a network of global scope, unless its name, its VNI or one of its subnets is
    /// taken (all checked in the same transaction as the write, so two hosts creating at once
    /// cannot both succeed): then which one was.
    pub async fn create_network(&mut self, net: &ClusterNetwork) -> Result<Option<Taken>> {
        let (name, vni) = (keys::name(&net.name), keys::vni(net.vni));
        let subnets = subnet_keys(net);
        let claims = [name.clone(), vni.clone()]
            .into_iter()
            .chain(subnets.clone());
        let txn = Txn::new()
            .when(
                claims
                    .clone()
                    .map(|key| Compare::create_revision(key, CompareOp::Equal, 0))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                std::iter::once(TxnOp::put(keys::network(&net.id), to_json(net)?, None))
                    .chain(
                        claims
                            .clone()
                            .map(|key| TxnOp::put(key, net.id.clone(), None)),
                    )
                    .collect::<Vec<_>>(),
            )
            .or_else(claims.map(|key| TxnOp::get(key, None)).collect::<Vec<_>>());
        let response = self.call(|mut c| async move { c.txn(txn).await }).await?;
        if response.succeeded() {
            return Ok(None);
        }
        let taken: Vec<bool> = response
            .op_responses()
            .iter()
            .map(|r| matches!(r, TxnOpResponse::Get(get) if !get.kvs().is_empty()))
            .collect();
        Ok(Some(match taken.as_slice() {
            [true, ..] => Taken::Name,
            [_, true, ..] => Taken::Vni,
            _ => Taken::Subnet,
        }))
    }

    /// The subnets of every network of global scope, to choose a new one's clear of them.
    pub async fn subnets(&mut self) -> Result<Vec<IpNet>> {
        let (networks, _) = self.networks().await?;
        Ok(networks
            .iter()
            .flat_map(|n| {
                std::iter::once(IpNet::V4(n.ipv4.subnet)).chain(n.ipv6.map(|c| IpNet::V6(c.subnet)))
            })
            .collect())
    }

    /// Removes a network of global scope (its name, VNI and subnets with it), if it is still the one
    /// this host knows under that name.
    pub async fn remove_network(&mut self, net: &ClusterNetwork) -> Result<()> {
        let txn = Txn::new()
            .when([Compare::value(
                keys::name(&net.name),
                CompareOp::Equal,
                net.id.clone(),
            )])
            .and_then(
                [
                    keys::network(&net.id),
                    keys::name(&net.name),
                    keys::vni(net.vni),
                ]
                .into_iter()
                .chain(subnet_keys(net))
                .map(|key| TxnOp::delete(key, None))
                .collect::<Vec<_>>(),
            );
        self.call(|mut c| async move { c.txn(txn).await }).await?;
        Ok(())
    }

    /// Every change under xnet's prefix from `revision` on.
    pub async fn watch(&mut self, revision: i64) -> Result<WatchStream> {
        self.call(|mut c| async move {
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision);
            c.watch(keys::ROOT, Some(options)).await
        })
        .await
    }

    /// The records under `prefix`, and the revision they were read at.
    pub(super) async fn list<T: DeserializeOwned>(
        &mut self,
        prefix: &'static str,
    ) -> Result<(Vec<T>, i64)> {
        let (keyed, revision) = self.list_keyed(prefix, None).await?;
        Ok((
            keyed.into_iter().map(|(_, record)| record).collect(),
            revision,
        ))
    }

    /// The records under `prefix` with their keys, read at `revision` (the newest if None),
    /// and the revision they were read at.
    pub async fn list_keyed<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        revision: Option<i64>,
    ) -> Result<(Vec<Keyed<T>>, i64)> {
        let mut records = Vec::new();
        let revision = self
            .scan(prefix, revision, false, |kv| {
                let key = kv
                    .key_str()
                    .map_err(|e| XnetError::Internal(format!("a key of the cluster store: {e}")))?;
                records.push((key.to_string(), from_json(kv.value())?));
                Ok(())
            })
            .await?;
        Ok((records, revision))
    }

    /// Calls `each` with every key under `prefix` (and its value, unless `keys_only`), in
    /// pages of [`PAGE`] keys all read at one revision: `revision`, or the newest when the
    /// first page is read. Returns that revision, from which a watch misses nothing.
    pub(super) async fn scan(
        &mut self,
        prefix: &str,
        revision: Option<i64>,
        keys_only: bool,
        mut each: impl FnMut(&KeyValue) -> Result<()>,
    ) -> Result<i64> {
        let end = range_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        // 0 asks etcd for its newest revision.
        let mut at = revision.unwrap_or(0);
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_revision(at);
            if keys_only {
                options = options.with_keys_only();
            }
            let key = from.clone();
            let page = self
                .call(|mut c| async move { c.get(key, Some(options)).await })
                .await?;
            if at == 0 {
                // The header's revision is the store's, which a read at the newest is of.
                at = page.header().map_or(0, |h| h.revision());
            }
            page.kvs().iter().try_for_each(&mut each)?;
            match page.kvs().last() {
                Some(last) if page.more() => from = key_after(last.key()),
                _ => return Ok(at),
            }
        }
    }

    /// One call to etcd, bounded by [`CALL_TIMEOUT`]; failures are "unavailable".
    pub(super) async fn call<T, F>(&mut self, call: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, call(self.client.clone())).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(unavailable(&self.urls, reason(&e))),
            Err(_) => Err(unavailable(
                &self.urls,
                format!("timed out after {CALL_TIMEOUT:?}"),
            )),
        }
    }
}

/// The end of the range of keys that start with `prefix`: its last byte that is not 0xff
/// increased by one, what is after it dropped (etcd's own `GetPrefixRangeEnd`).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: to the end of the key space.
    vec![0]
}

/// The first key after `key`.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// The claims of a network's subnets, one key per family.
fn subnet_keys(net: &ClusterNetwork) -> Vec<String> {
    std::iter::once(keys::subnet(net.ipv4.subnet))
        .chain(net.ipv6.map(|c| keys::subnet(c.subnet)))
        .collect()
}

/// What went wrong with a call, in a few words: gRPC's own message (e.g. "Timeout
/// expired"), not the transport's chain of causes.
fn reason(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    }
}

/// The refusal of whatever needed a store that did not answer (`urls`: its members).
pub fn unavailable(urls: &str, why: impl std::fmt::Display) -> XnetError {
    XnetError::Unavailable(format!(
        "the cluster store ({urls}) does not answer ({why}); overlay networks cannot change until it does"
    ))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| XnetError::Internal(format!("encoding: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| XnetError::Internal(format!("a record of the cluster store: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_exactly_the_prefix() {
        assert_eq!(range_end(b"/xnet/v1/endpoints/"), b"/xnet/v1/endpoints0");
        assert_eq!(range_end(b"a\xff\xff"), b"b");
        assert_eq!(range_end(b"\xff"), [0]);
        // The next page starts right after the last key read: that key is not read twice,
        // and no key between them exists.
        let last = b"/xnet/v1/endpoints/n/e1".as_slice();
        let next = key_after(last);
        assert!(next.as_slice() > last);
        assert!(next.as_slice() < b"/xnet/v1/endpoints/n/e1\x01".as_slice());
        assert!(next.as_slice() < range_end(b"/xnet/v1/endpoints/").as_slice());
    }
}
