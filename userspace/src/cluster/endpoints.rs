//! The store's calls for endpoints on networks of global scope. An endpoint is two or three
//! keys under its host's lease, written in one transaction: the claims of its addresses
//! (created only if absent, so two hosts allocating at the same moment never share one) and
//! its record (host, addresses, MAC), which every other host follows through its watch.

use std::{collections::BTreeSet, net::IpAddr};

use etcd_client::{
    Compare, CompareOp, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use ipnet::{Ipv4Net, Ipv6Net};

use super::{
    keys,
    records::EndpointRecord,
    store::{Keyed, Store, to_json},
};
use crate::{
    error::{Result, XnetError},
    state::{
        ids::random_below,
        ipam::{self, IpConfig, Subnet},
    },
};

/// How many free addresses one registration tries while other hosts take them first.
const CLAIM_ATTEMPTS: usize = 16;
/// The most operations etcd takes in one transaction (its `--max-txn-ops` default).
const TXN_OPS: usize = 128;

/// What a new endpoint asks of its network's address space: its subnets, and the addresses
/// asked for (`--ip`, `--ip6`), if any.
#[derive(Clone, Copy)]
pub struct AddressRequest<'a> {
    pub ipv4: &'a IpConfig<Ipv4Net>,
    pub ipv6: Option<&'a IpConfig<Ipv6Net>>,
    pub requested4: Option<&'a str>,
    pub requested6: Option<&'a str>,
}

impl Store {
    /// Registers `record` under `lease` with addresses chosen now: the requested ones
    /// (refused if another endpoint of the cluster has them) or the lowest free ones by
    /// `ipam::allocate`'s rules. A host that lost a race picks again, one of the few lowest
    /// free addresses at random, so the losers do not collide again and again. Fills in the
    /// record's addresses.
    pub async fn register_endpoint(
        &mut self,
        record: &mut EndpointRecord,
        request: AddressRequest<'_>,
        lease: i64,
    ) -> Result<()> {
        let requested = request.requested4.is_some() || request.requested6.is_some();
        let network = record.network.clone();
        self.claim_free(&network, requested, |claimed, attempt| {
            record.ipv4 = pick(request.ipv4, claimed, request.requested4, attempt)?;
            record.ipv6 = match request.ipv6 {
                Some(config) => Some(pick(config, claimed, request.requested6, attempt)?),
                None => None,
            };
            let addresses: Vec<IpAddr> = std::iter::once(record.ipv4.into())
                .chain(record.ipv6.map(IpAddr::from))
                .collect();
            Ok((addresses, puts(record, lease)?))
        })
        .await?;
        Ok(())
    }

    /// Reserves an address of network `network_id` for an endpoint that does not exist yet
    /// (Docker's IPAM asks for it before the endpoint is made): a claim whose value is
    /// `token`, under `lease`, chosen as [`Self::register_endpoint`] chooses.
    /// [`Self::adopt_reserved`] turns it into the endpoint's.
    pub async fn reserve_address<N: Subnet>(
        &mut self,
        network_id: &str,
        config: &IpConfig<N>,
        requested: Option<&str>,
        token: &str,
        lease: i64,
    ) -> Result<N::Addr> {
        let addresses = self
            .claim_free(network_id, requested.is_some(), |claimed, attempt| {
                let address: IpAddr = pick(config, claimed, requested, attempt)?.into();
                let put = TxnOp::put(
                    keys::address(network_id, address),
                    token,
                    Some(PutOptions::new().with_lease(lease)),
                );
                Ok((vec![address], vec![put]))
            })
            .await?;
        let address = addresses[0].to_string();
        address
            .parse()
            .map_err(|_| XnetError::Internal(format!("reserved {address}, not an address")))
    }

    /// Makes the claims reserved with `tokens` (one per address: IPv4, then IPv6) the
    /// endpoint `record`'s and writes its record, under `lease`. False if a claim is no
    /// longer its reservation's.
    pub async fn adopt_reserved(
        &mut self,
        record: &EndpointRecord,
        tokens: &[String],
        lease: i64,
    ) -> Result<bool> {
        let txn = Txn::new()
            .when(
                claim_keys(record)
                    .into_iter()
                    .zip(tokens)
                    .map(|(key, token)| Compare::value(key, CompareOp::Equal, token.as_str()))
                    .collect::<Vec<_>>(),
            )
            .and_then(puts(record, lease)?);
        Ok(self
            .call(|mut c| async move { c.txn(txn).await })
            .await?
            .succeeded())
    }

    /// Gives back an address reserved with `token` (gone, or adopted meanwhile, is fine).
    pub async fn release_reserved(
        &mut self,
        network_id: &str,
        address: IpAddr,
        token: &str,
    ) -> Result<()> {
        let key = keys::address(network_id, address);
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, token)])
            .and_then([TxnOp::delete(key, None)]);
        self.call(|mut c| async move { c.txn(txn).await }).await?;
        Ok(())
    }

    /// Claims free addresses of network `network_id`: `choose` picks them from what is
    /// claimed (after `attempt` lost races) and says which writes go with the claims; they
    /// happen in one transaction, only if none of the addresses is claimed yet. A host that
    /// lost a race picks again; a `requested` address that is taken is refused. Returns the
    /// addresses claimed.
    async fn claim_free(
        &mut self,
        network_id: &str,
        requested: bool,
        mut choose: impl FnMut(&BTreeSet<String>, usize) -> Result<(Vec<IpAddr>, Vec<TxnOp>)>,
    ) -> Result<Vec<IpAddr>> {
        for attempt in 0..CLAIM_ATTEMPTS {
            let claimed = self.claimed(network_id).await?;
            let (addresses, writes) = choose(&claimed, attempt)?;
            let txn = Txn::new()
                .when(
                    addresses
                        .iter()
                        .map(|ip| {
                            Compare::create_revision(
                                keys::address(network_id, ip),
                                CompareOp::Equal,
                                0,
                            )
                        })
                        .collect::<Vec<_>>(),
                )
                .and_then(writes);
            if self
                .call(|mut c| async move { c.txn(txn).await })
                .await?
                .succeeded()
            {
                return Ok(addresses);
            }
            if requested {
                let claimed = self.claimed(network_id).await?;
                if let Some(ip) = addresses
                    .iter()
                    .find(|ip| claimed.contains(&ip.to_string()))
                {
                    return Err(XnetError::conflict(format!(
                        "address {ip} is already in use on this network"
                    )));
                }
            }
        }
        Err(XnetError::conflict(
            "could not claim a free address: other hosts took each one first; try again",
        ))
    }

    /// Puts an endpoint this host already has back under `lease` (after its lease expired
    /// while the store did not answer, or to re-attach it): its claims if they are still its
    /// own or free again. False if another endpoint took one of its addresses meanwhile.
    pub async fn restore_endpoint(&mut self, record: &EndpointRecord, lease: i64) -> Result<bool> {
        for compare in [
            |key: String, id: &str| Compare::value(key, CompareOp::Equal, id),
            |key: String, _: &str| Compare::create_revision(key, CompareOp::Equal, 0),
        ] {
            let txn = Txn::new()
                .when(
                    claim_keys(record)
                        .into_iter()
                        .map(|key| compare(key, &record.id))
                        .collect::<Vec<_>>(),
                )
                .and_then(puts(record, lease)?);
            if self
                .call(|mut c| async move { c.txn(txn).await })
                .await?
                .succeeded()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes endpoint `endpoint_id` of network `network_id`: its record, and the claims of
    /// its `addresses` if they are still its own (gone already is fine).
    pub async fn withdraw_endpoint(
        &mut self,
        network_id: &str,
        endpoint_id: &str,
        addresses: &[IpAddr],
    ) -> Result<()> {
        let claims: Vec<String> = addresses
            .iter()
            .map(|ip| keys::address(network_id, ip))
            .collect();
        let record_key = keys::endpoint(network_id, endpoint_id);
        let txn = Txn::new()
            .when(
                claims
                    .iter()
                    .map(|key| Compare::value(key.clone(), CompareOp::Equal, endpoint_id))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                claims
                    .iter()
                    .chain([&record_key])
                    .map(|key| TxnOp::delete(key.clone(), None))
                    .collect::<Vec<_>>(),
            )
            .or_else([TxnOp::delete(record_key.clone(), None)]);
        self.call(|mut c| async move { c.txn(txn).await }).await?;
        Ok(())
    }

    /// Every endpoint of the cluster with its key, read at `revision` (the newest if None),
    /// and the revision they were read at.
    pub async fn endpoints(
        &mut self,
        revision: Option<i64>,
    ) -> Result<(Vec<Keyed<EndpointRecord>>, i64)> {
        self.list_keyed(keys::ENDPOINTS, revision).await
    }

    /// The keys (claims and records) held under `lease`, with their values: what a host
    /// finds of its own when it joins again, to drop what it no longer has. Asked of the
    /// lease, not read from every endpoint of the cluster: a host's own keys are few.
    pub async fn keys_under_lease(&mut self, lease: i64) -> Result<Vec<(String, String)>> {
        let attached = self
            .call(|mut c| async move {
                c.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
                    .await
            })
            .await?;
        let owned: Vec<String> = attached
            .keys()
            .iter()
            .filter_map(|key| String::from_utf8(key.clone()).ok())
            .filter(|key| key.starts_with(keys::ADDRESSES) || key.starts_with(keys::ENDPOINTS))
            .collect();
        let mut values = Vec::with_capacity(owned.len());
        for chunk in owned.chunks(TXN_OPS) {
            let txn = Txn::new().and_then(
                chunk
                    .iter()
                    .map(|key| TxnOp::get(key.clone(), None))
                    .collect::<Vec<_>>(),
            );
            let response = self.call(|mut c| async move { c.txn(txn).await }).await?;
            for answer in response.op_responses() {
                let TxnOpResponse::Get(get) = answer else {
                    continue;
                };
                // A key that went since the lease was asked is no longer there to drop.
                values.extend(get.kvs().iter().filter_map(|kv| {
                    Some((
                        kv.key_str().ok()?.to_string(),
                        kv.value_str().ok()?.to_string(),
                    ))
                }));
            }
        }
        Ok(values)
    }

    /// Deletes `keys` (gone already is fine).
    pub async fn delete_keys(&mut self, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let txn = Txn::new().and_then(
            keys.into_iter()
                .map(|key| TxnOp::delete(key, None))
                .collect::<Vec<_>>(),
        );
        self.call(|mut c| async move { c.txn(txn).await }).await?;
        Ok(())
    }

    /// The addresses claimed on network `network_id`, as text (both families).
    async fn claimed(&mut self, network_id: &str) -> Result<BTreeSet<String>> {
        let mut claimed = BTreeSet::new();
        self.scan(&keys::addresses(network_id), None, true, |kv| {
            if let Some(address) = kv.key_str().ok().and_then(|key| key.rsplit('/').next()) {
                claimed.insert(address.to_string());
            }
            Ok(())
        })
        .await?;
        Ok(claimed)
    }
}

/// An address of `config` for a new endpoint: `requested`, or the lowest free one; after
/// `attempt` lost races, one of the `attempt + 1` lowest free ones at random.
fn pick<N: Subnet>(
    config: &IpConfig<N>,
    claimed: &BTreeSet<String>,
    requested: Option<&str>,
    attempt: usize,
) -> Result<N::Addr> {
    let mut used: BTreeSet<N::Addr> = claimed.iter().filter_map(|ip| ip.parse().ok()).collect();
    let mut address = ipam::allocate(config, &used, requested)?;
    if requested.is_none() {
        for _ in 0..random_below(attempt + 1)? {
            used.insert(address);
            match ipam::allocate(config, &used, None) {
                Ok(next) => address = next,
                Err(_) => break,
            }
        }
    }
    Ok(address)
}

/// The claims of an endpoint's addresses.
fn claim_keys(record: &EndpointRecord) -> Vec<String> {
    std::iter::once(keys::address(&record.network, record.ipv4))
        .chain(record.ipv6.map(|ip| keys::address(&record.network, ip)))
        .collect()
}

/// The writes of an endpoint: its claims and its record, all under `lease`.
fn puts(record: &EndpointRecord, lease: i64) -> Result<Vec<TxnOp>> {
    let under_lease = || Some(PutOptions::new().with_lease(lease));
    let mut ops: Vec<TxnOp> = claim_keys(record)
        .into_iter()
        .map(|key| TxnOp::put(key, record.id.clone(), under_lease()))
        .collect();
    ops.push(TxnOp::put(
        keys::endpoint(&record.network, &record.id),
        to_json(record)?,
        under_lease(),
    ));
    Ok(ops)
}
