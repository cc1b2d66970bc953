//! What this host knows of the cluster's hosts and endpoints: read once when it joins, then
//! kept current by applying the store's watch events, so that syncing the datapath and
//! answering `inspect` never wait on the store.

use std::collections::BTreeMap;

use etcd_client::{Event, EventType};
use tracing::warn;

use super::{
    keys,
    records::{EndpointRecord, HostRecord},
    store::Keyed,
};

/// The cluster's hosts and endpoints, by key, as read at join and followed through the watch.
#[derive(Default)]
pub struct ClusterView {
    hosts: BTreeMap<String, HostRecord>,
    endpoints: BTreeMap<String, EndpointRecord>,
}

impl ClusterView {
    pub fn new(hosts: Vec<Keyed<HostRecord>>, endpoints: Vec<Keyed<EndpointRecord>>) -> Self {
        Self {
            hosts: hosts.into_iter().collect(),
            endpoints: endpoints.into_iter().collect(),
        }
    }

    /// Applies one change of the store; what is not about hosts or endpoints is left to the
    /// caller. A record that does not parse is left out, with a warning.
    pub fn apply(&mut self, event: &Event) {
        let Some((key, kv)) = event.kv().and_then(|kv| Some((kv.key_str().ok()?, kv))) else {
            return;
        };
        let put = event.event_type() == EventType::Put;
        if key.starts_with(keys::HOSTS) {
            update(&mut self.hosts, key, put.then(|| kv.value()));
        } else if key.starts_with(keys::ENDPOINTS) {
            update(&mut self.endpoints, key, put.then(|| kv.value()));
        }
    }

    /// The live hosts, this one included.
    pub fn hosts(&self) -> impl Iterator<Item = &HostRecord> {
        self.hosts.values()
    }

    /// Every host's endpoints, this host's included.
    pub fn endpoints(&self) -> impl Iterator<Item = &EndpointRecord> {
        self.endpoints.values()
    }
}

/// Puts (`Some(value)`) or removes (`None`) the record under `key`.
fn update<T: serde::de::DeserializeOwned>(
    records: &mut BTreeMap<String, T>,
    key: &str,
    value: Option<&[u8]>,
) {
    match value.map(serde_json::from_slice::<T>) {
        Some(Ok(record)) => {
            records.insert(key.to_string(), record);
        }
        Some(Err(e)) => warn!("a record of the cluster store at {key}: {e}; left out"),
        None => {
            records.remove(key);
        }
    }
}
