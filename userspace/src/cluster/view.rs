//! What this host knows of the cluster's hosts and endpoints: read once when it joins, then
//! kept current by applying the store's watch events, so that syncing the datapath and
//! answering `inspect` never wait on the store. Each event applied says what it changed
//! ([`Change`]), so the datapath can follow one endpoint or host at a time; the view keeps
//! each host's endpoints by network ([`ClusterView::endpoints_of`],
//! [`ClusterView::hosts_on`]), so a host's arrival or departure touches only its own
//! endpoints, not every endpoint of the cluster.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use etcd_client::{Event, EventType};
use tracing::warn;

use super::{
    keys,
    records::{EndpointRecord, HostRecord},
    store::Keyed,
};

/// The cluster's hosts and endpoints, as read at join and followed through the watch.
#[derive(Default)]
pub struct ClusterView {
    /// The live hosts, by id.
    hosts: BTreeMap<String, HostRecord>,
    /// Every endpoint, by key.
    endpoints: HashMap<Arc<str>, EndpointRecord>,
    /// The keys of the endpoints, by host id, then network id (only non-empty sets).
    placed: HashMap<String, HashMap<String, BTreeSet<Arc<str>>>>,
}

/// What one event changed in the view: a record before and after (None: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing (another prefix, a record that did not parse, the same record again).
    None,
    Host {
        id: String,
        old: Option<HostRecord>,
        new: Option<HostRecord>,
    },
    Endpoint {
        old: Option<EndpointRecord>,
        new: Option<EndpointRecord>,
    },
}

impl ClusterView {
    pub fn new(hosts: Vec<Keyed<HostRecord>>, endpoints: Vec<Keyed<EndpointRecord>>) -> Self {
        let mut view = Self::default();
        for (key, host) in hosts {
            view.put_host(&key, host);
        }
        for (key, endpoint) in endpoints {
            view.put_endpoint(&key, endpoint);
        }
        view
    }

    /// Applies one change of the store and says what it changed; what is not about hosts or
    /// endpoints is left to the caller. A record that does not parse is left out, with a
    /// warning (the one before it stays).
    pub fn apply(&mut self, event: &Event) -> Change {
        let Some((key, kv)) = event.kv().and_then(|kv| Some((kv.key_str().ok()?, kv))) else {
            return Change::None;
        };
        let put = event.event_type() == EventType::Put;
        if key.starts_with(keys::HOSTS) {
            match put {
                true => parsed(key, kv.value()).map_or(Change::None, |h| self.put_host(key, h)),
                false => self.delete_host(key),
            }
        } else if key.starts_with(keys::ENDPOINTS) {
            match put {
                true => parsed(key, kv.value()).map_or(Change::None, |e| self.put_endpoint(key, e)),
                false => self.delete_endpoint(key),
            }
        } else {
            Change::None
        }
    }

    /// The live hosts, this one included, by id.
    pub fn hosts(&self) -> impl Iterator<Item = &HostRecord> {
        self.hosts.values()
    }

    /// The live host `id`.
    pub fn host(&self, id: &str) -> Option<&HostRecord> {
        self.hosts.get(id)
    }

    /// Every host's endpoints, this host's included.
    pub fn endpoints(&self) -> impl Iterator<Item = &EndpointRecord> {
        self.endpoints.values()
    }

    /// The endpoints of host `id` (whether it is live or not), on every network.
    pub fn endpoints_of(&self, id: &str) -> impl Iterator<Item = &EndpointRecord> {
        self.placed
            .get(id)
            .into_iter()
            .flat_map(|networks| networks.values().flatten())
            .filter_map(|key| self.endpoints.get(key))
    }

    /// The live hosts with endpoints on network `network_id`, this one included, by id.
    pub fn hosts_on<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a HostRecord> {
        self.hosts.values().filter(move |h| {
            self.placed
                .get(&h.id)
                .is_some_and(|networks| networks.contains_key(network_id))
        })
    }

    /// Host `host` under `key` (new or changed), as a put event of the watch.
    pub fn put_host(&mut self, key: &str, host: HostRecord) -> Change {
        let id = host_id(key).to_string();
        let old = self.hosts.insert(id.clone(), host.clone());
        if old.as_ref() == Some(&host) {
            return Change::None;
        }
        Change::Host {
            id,
            old,
            new: Some(host),
        }
    }

    /// The host under `key` left (its lease expired, or it was deleted).
    pub fn delete_host(&mut self, key: &str) -> Change {
        let id = host_id(key);
        match self.hosts.remove(id) {
            Some(old) => Change::Host {
                id: id.to_string(),
                old: Some(old),
                new: None,
            },
            None => Change::None,
        }
    }

    /// Endpoint `endpoint` under `key` (new or changed).
    pub fn put_endpoint(&mut self, key: &str, endpoint: EndpointRecord) -> Change {
        let key: Arc<str> = match self.endpoints.get_key_value(key) {
            Some((_, record)) if *record == endpoint => return Change::None,
            Some((known, _)) => known.clone(),
            None => key.into(),
        };
        let old = self.endpoints.insert(key.clone(), endpoint.clone());
        if let Some(old) = &old {
            self.unplace(&key, old);
        }
        self.placed
            .entry(endpoint.host.clone())
            .or_default()
            .entry(endpoint.network.clone())
            .or_default()
            .insert(key);
        Change::Endpoint {
            old,
            new: Some(endpoint),
        }
    }

    /// The endpoint under `key` went.
    pub fn delete_endpoint(&mut self, key: &str) -> Change {
        let Some((key, old)) = self.endpoints.remove_entry(key) else {
            return Change::None;
        };
        self.unplace(&key, &old);
        Change::Endpoint {
            old: Some(old),
            new: None,
        }
    }

    /// Takes `key`, the key of `endpoint`, out of its host's and network's set.
    fn unplace(&mut self, key: &str, endpoint: &EndpointRecord) {
        let Some(networks) = self.placed.get_mut(&endpoint.host) else {
            return;
        };
        if let Some(keys) = networks.get_mut(&endpoint.network) {
            keys.remove(key);
            if keys.is_empty() {
                networks.remove(&endpoint.network);
            }
        }
        if networks.is_empty() {
            self.placed.remove(&endpoint.host);
        }
    }
}

/// The host id a `hosts/` key names.
fn host_id(key: &str) -> &str {
    key.strip_prefix(keys::HOSTS).unwrap_or(key)
}

/// The record in `value`, or None with a warning.
fn parsed<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    serde_json::from_slice(value)
        .inspect_err(|e| warn!("a record of the cluster store at {key}: {e}; left out"))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::Mac;

    fn host(id: &str, last: u8) -> HostRecord {
        HostRecord {
            id: id.into(),
            name: id.into(),
            address: Ipv4Addr::new(10, 77, 0, last),
            public_key: String::new(),
        }
    }

    fn endpoint(id: &str, network: &str, host: &str) -> EndpointRecord {
        EndpointRecord {
            id: id.into(),
            network: network.into(),
            host: host.into(),
            container: id.into(),
            ipv4: Ipv4Addr::new(10, 0, 0, 2),
            ipv6: None,
            mac: Mac([2, 0, 0, 0, 0, 1]),
        }
    }

    fn ids<'a>(endpoints: impl Iterator<Item = &'a EndpointRecord>) -> BTreeSet<&'a str> {
        endpoints.map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn changes_say_what_was_and_what_is() {
        let mut view = ClusterView::default();
        let a = host("a", 1);
        assert_eq!(
            view.put_host(&keys::host("a"), a.clone()),
            Change::Host {
                id: "a".into(),
                old: None,
                new: Some(a.clone())
            }
        );
        // A replay of what the view has changes nothing.
        assert_eq!(view.put_host(&keys::host("a"), a.clone()), Change::None);
        let moved = host("a", 2);
        assert_eq!(
            view.put_host(&keys::host("a"), moved.clone()),
            Change::Host {
                id: "a".into(),
                old: Some(a),
                new: Some(moved.clone())
            }
        );
        let e = endpoint("e", "n", "a");
        let key = keys::endpoint("n", "e");
        assert_eq!(
            view.put_endpoint(&key, e.clone()),
            Change::Endpoint {
                old: None,
                new: Some(e.clone())
            }
        );
        assert_eq!(view.put_endpoint(&key, e.clone()), Change::None);
        assert_eq!(
            view.delete_endpoint(&key),
            Change::Endpoint {
                old: Some(e),
                new: None
            }
        );
        assert_eq!(view.delete_endpoint(&key), Change::None);
        assert_eq!(
            view.delete_host(&keys::host("a")),
            Change::Host {
                id: "a".into(),
                old: Some(moved),
                new: None
            }
        );
        assert_eq!(view.delete_host(&keys::host("a")), Change::None);
    }

    #[test]
    fn endpoints_are_found_by_host_and_network() {
        let mut view = ClusterView::new(
            vec![
                (keys::host("a"), host("a", 1)),
                (keys::host("b"), host("b", 2)),
            ],
            vec![
                (keys::endpoint("n", "e1"), endpoint("e1", "n", "a")),
                (keys::endpoint("m", "e2"), endpoint("e2", "m", "a")),
                (keys::endpoint("n", "e3"), endpoint("e3", "n", "b")),
                // Of a host that is not live (yet): placed all the same.
                (keys::endpoint("n", "e4"), endpoint("e4", "n", "c")),
            ],
        );
        assert_eq!(ids(view.endpoints_of("a")), BTreeSet::from(["e1", "e2"]));
        assert_eq!(ids(view.endpoints_of("c")), BTreeSet::from(["e4"]));
        let on = |view: &ClusterView, net: &str| -> Vec<String> {
            view.hosts_on(net).map(|h| h.id.clone()).collect()
        };
        assert_eq!(on(&view, "n"), ["a", "b"]);
        assert_eq!(on(&view, "m"), ["a"]);
        // Moving an endpoint to another host (a record rewritten) moves it in the index.
        view.put_endpoint(&keys::endpoint("m", "e2"), endpoint("e2", "m", "b"));
        assert_eq!(ids(view.endpoints_of("a")), BTreeSet::from(["e1"]));
        assert_eq!(on(&view, "m"), ["b"]);
        view.delete_endpoint(&keys::endpoint("n", "e1"));
        assert_eq!(ids(view.endpoints_of("a")), BTreeSet::new());
        assert_eq!(on(&view, "n"), ["b"]);
        assert!(!view.placed.contains_key("a"), "no empty sets are kept");
        view.delete_host(&keys::host("b"));
        assert_eq!(on(&view, "n"), Vec::<String>::new());
        assert_eq!(ids(view.endpoints_of("b")), BTreeSet::from(["e2", "e3"]));
    }
}
