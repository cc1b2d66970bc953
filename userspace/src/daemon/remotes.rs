//! Which remote endpoints and VTEPs this host's datapath has, derived from the cluster's view:
//! every other live host is a VTEP, and each of its endpoints on a network this host mirrors
//! is a remote entry (its addresses and MAC, its host's VTEP, the network's datapath id and
//! VNI). An endpoint whose host is not live, this host's own endpoints and endpoints of
//! networks not mirrored here are not.
//!
//! Two ways to get there, both as a list of [`Edit`]s: [`Remotes::resync`] compares the whole
//! view with what the datapath has (after joining, and when the mirrored networks change),
//! and [`Remotes::follow`] turns one change of the view into the few writes it implies, so a
//! watch event costs the same with 100 endpoints in the cluster as with 100,000. Each
//! network's flood set (the other hosts its broadcasts are replicated to) comes from the same
//! view: [`Remotes::flood_set`], for the networks [`Remotes::touched`] names.

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
};

use crate::{
    cluster::{
        records::EndpointRecord,
        view::{Change, ClusterView},
    },
    datapath::{Datapath, FloodSet, RemoteEndpoint},
    state::Network,
};

/// One write to the datapath's remote entries or VTEPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    RemoveRemote(RemoteEndpoint),
    AddRemote(RemoteEndpoint),
    RemoveVtep(Ipv4Addr),
    AddVtep(Ipv4Addr),
}

/// The networks of global scope this host mirrors: cluster id → (datapath id, VNI).
pub(crate) type Mirrored<'a> = HashMap<&'a str, (u32, u32)>;

/// The networks of `networks` that have a VNI, for [`Remotes`].
pub(crate) fn mirrored<'a>(networks: impl Iterator<Item = &'a Network>) -> Mirrored<'a> {
    networks
        .filter_map(|n| Some((n.id.as_str(), (n.datapath_id, n.vni?))))
        .collect()
}

/// What decides which records of the view are remote entries here.
pub(crate) struct Remotes<'a> {
    /// This host's id.
    pub(crate) me: &'a str,
    pub(crate) view: &'a ClusterView,
    pub(crate) networks: &'a Mirrored<'a>,
}

impl Remotes<'_> {
    /// The edits that make the datapath's remote entries (`remotes`) and VTEPs (`vteps`) what
    /// the view wants: removals first, so a changed endpoint's new entries are never removed
    /// with its old ones.
    pub(crate) fn resync(
        &self,
        remotes: &BTreeSet<RemoteEndpoint>,
        vteps: &[Ipv4Addr],
    ) -> Vec<Edit> {
        let wanted: BTreeSet<RemoteEndpoint> = self
            .view
            .endpoints()
            .filter_map(|e| self.remote(e))
            .collect();
        let live: BTreeSet<Ipv4Addr> = self
            .view
            .hosts()
            .filter(|h| h.id != self.me)
            .map(|h| h.address)
            .collect();
        let gone = remotes.difference(&wanted).cloned().map(Edit::RemoveRemote);
        let new = wanted.difference(remotes).cloned().map(Edit::AddRemote);
        let dead = vteps.iter().filter(|v| !live.contains(v));
        let dead = dead.copied().map(Edit::RemoveVtep);
        // Every live one is written again: cheap (one per host), and a VTEP removed by hand
        // comes back.
        let again = live.iter().copied().map(Edit::AddVtep);
        gone.chain(new).chain(dead).chain(again).collect()
    }

    /// The edits that follow `change`, which the view has just applied.
    pub(crate) fn follow(&self, change: &Change) -> Vec<Edit> {
        match change {
            Change::None => Vec::new(),
            Change::Endpoint { old, new } => {
                let was = old.as_ref().and_then(|e| self.remote(e));
                let is = new.as_ref().and_then(|e| self.remote(e));
                replace(was, is).collect()
            }
            Change::Host { id, .. } if id == self.me => Vec::new(),
            Change::Host { id, old, new } => {
                let was = old.as_ref().map(|h| h.address);
                let is = new.as_ref().map(|h| h.address);
                if was == is {
                    return Vec::new();
                }
                // Its endpoints in the view are those it had before this change too: the
                // view applies one record at a time.
                let endpoints = self
                    .view
                    .endpoints_of(id)
                    .flat_map(|e| replace(self.remote_via(e, was), self.remote_via(e, is)));
                let orphaned = was.filter(|address| {
                    !self
                        .view
                        .hosts()
                        .any(|h| h.id != self.me && h.address == *address)
                });
                is.map(Edit::AddVtep)
                    .into_iter()
                    .chain(endpoints)
                    .chain(orphaned.map(Edit::RemoveVtep))
                    .collect()
            }
        }
    }

    /// The flood set of mirrored network `network` (its cluster id), by its datapath id: the
    /// VTEPs of the other live hosts with endpoints on it, where its broadcasts and
    /// multicasts are replicated to. None for a network not mirrored here.
    pub(crate) fn flood_set(&self, network: &str) -> Option<(u32, FloodSet)> {
        let (network_id, vni) = *self.networks.get(network)?;
        let vteps = self
            .view
            .hosts_on(network)
            .filter(|h| h.id != self.me)
            .map(|h| h.address)
            .collect();
        Some((network_id, FloodSet { vni, vteps }))
    }

    /// The networks (cluster ids) whose flood sets `change` may have changed: an endpoint's,
    /// or every network a host that arrived, moved or left has endpoints on.
    pub(crate) fn touched(&self, change: &Change) -> BTreeSet<String> {
        match change {
            Change::None => BTreeSet::new(),
            Change::Endpoint { old, new } => {
                old.iter().chain(new).map(|e| e.network.clone()).collect()
            }
            Change::Host { id, .. } => self
                .view
                .endpoints_of(id)
                .map(|e| e.network.clone())
                .collect(),
        }
    }

    /// The remote entry of endpoint `e`, if it is one here.
    fn remote(&self, e: &EndpointRecord) -> Option<RemoteEndpoint> {
        self.remote_via(e, self.view.host(&e.host).map(|h| h.address))
    }

    /// The remote entry of endpoint `e` if its host's VTEP is `vtep` (None: not live).
    fn remote_via(&self, e: &EndpointRecord, vtep: Option<Ipv4Addr>) -> Option<RemoteEndpoint> {
        if e.host == self.me {
            return None;
        }
        let (network_id, vni) = *self.networks.get(e.network.as_str())?;
        Some(RemoteEndpoint {
            network_id,
            vni,
            vtep: vtep?,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            mac: e.mac.0,
        })
    }
}

/// The edits that replace remote entry `was` with `is` (either may be None).
fn replace(was: Option<RemoteEndpoint>, is: Option<RemoteEndpoint>) -> impl Iterator<Item = Edit> {
    let changed = was != is;
    let gone = was.filter(|_| changed).map(Edit::RemoveRemote);
    let new = is.filter(|_| changed).map(Edit::AddRemote);
    gone.into_iter().chain(new)
}

/// Writes `edits` into the datapath, in order.
pub(crate) fn write(datapath: &mut Datapath, edits: &[Edit]) -> anyhow::Result<()> {
    for edit in edits {
        match edit {
            Edit::RemoveRemote(remote) => datapath.remove_remote(remote)?,
            Edit::AddRemote(remote) => datapath.add_remote(remote)?,
            Edit::RemoveVtep(address) => datapath.remove_vtep(*address)?,
            Edit::AddVtep(address) => datapath.add_vtep(*address)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::{
        cluster::{keys, records::HostRecord},
        state::Mac,
    };

    const ME: &str = "me";

    /// What a datapath holds, changed by edits as the maps are.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Model {
        remotes: BTreeSet<RemoteEndpoint>,
        vteps: BTreeSet<Ipv4Addr>,
    }

    impl Model {
        fn write(&mut self, edits: &[Edit]) {
            for edit in edits {
                match edit {
                    Edit::RemoveRemote(r) => assert!(self.remotes.remove(r), "{r:?} was not there"),
                    Edit::AddRemote(r) => assert!(self.remotes.insert(r.clone()), "{r:?} twice"),
                    Edit::RemoveVtep(v) => assert!(self.vteps.remove(v), "VTEP {v} was not there"),
                    Edit::AddVtep(v) => {
                        self.vteps.insert(*v);
                    }
                }
            }
        }

        /// What a full resync makes of an empty datapath: the reference.
        fn resynced(view: &ClusterView, networks: &Mirrored) -> Self {
            let mut model = Self::default();
            let remotes = Remotes {
                me: ME,
                view,
                networks,
            };
            model.write(&remotes.resync(&BTreeSet::new(), &[]));
            model
        }
    }

    fn host(id: &str, last: u8) -> (String, HostRecord) {
        let record = HostRecord {
            id: id.into(),
            name: id.into(),
            address: Ipv4Addr::new(10, 77, 0, last),
            public_key: String::new(),
        };
        (keys::host(id), record)
    }

    fn endpoint(n: u8, network: &str, host: &str) -> (String, EndpointRecord) {
        let id = format!("e{n}");
        let record = EndpointRecord {
            id: id.clone(),
            network: network.into(),
            host: host.into(),
            container: id.clone(),
            ipv4: Ipv4Addr::new(10, 0, 0, n),
            ipv6: n
                .is_multiple_of(2)
                .then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n.into())),
            mac: Mac([2, 0, 0, 0, 0, n]),
        };
        (keys::endpoint(network, &id), record)
    }

    /// Applies `step` to the view, follows it in `model`, and checks that the model is what
    /// a full resync of the view makes.
    fn step(
        view: &mut ClusterView,
        networks: &Mirrored,
        model: &mut Model,
        step: impl FnOnce(&mut ClusterView) -> Change,
    ) {
        let change = step(view);
        let remotes = Remotes {
            me: ME,
            view,
            networks,
        };
        model.write(&remotes.follow(&change));
        assert_eq!(*model, Model::resynced(view, networks), "after {change:?}");
    }

    #[test]
    fn following_changes_one_by_one_ends_where_a_resync_does() {
        // Networks "ov" and "ov2" are mirrored here, "elsewhere" is not.
        let networks: Mirrored = HashMap::from([("ov", (7, 4096)), ("ov2", (8, 4097))]);
        let mut view = ClusterView::default();
        let mut model = Model::default();
        let mut go =
            |f: &dyn Fn(&mut ClusterView) -> Change| step(&mut view, &networks, &mut model, f);
        // This host: no VTEP, and its endpoints are local ones.
        go(&|v| v.put_host(&host(ME, 1).0, host(ME, 1).1));
        go(&|v| v.put_endpoint(&endpoint(1, "ov", ME).0, endpoint(1, "ov", ME).1));
        // An endpoint of a host that is not live yet is installed when the host arrives.
        go(&|v| v.put_endpoint(&endpoint(2, "ov", "a").0, endpoint(2, "ov", "a").1));
        go(&|v| v.put_endpoint(&endpoint(3, "ov2", "a").0, endpoint(3, "ov2", "a").1));
        go(&|v| v.put_host(&host("a", 2).0, host("a", 2).1));
        // Networks not mirrored here are ignored.
        go(&|v| {
            v.put_endpoint(
                &endpoint(4, "elsewhere", "a").0,
                endpoint(4, "elsewhere", "a").1,
            )
        });
        go(&|v| v.put_host(&host("b", 3).0, host("b", 3).1));
        go(&|v| v.put_endpoint(&endpoint(5, "ov", "b").0, endpoint(5, "ov", "b").1));
        // A record rewritten with another MAC and address.
        go(&|v| {
            let (key, mut record) = endpoint(5, "ov", "b");
            record.mac = Mac([2, 0, 0, 0, 1, 5]);
            record.ipv4 = Ipv4Addr::new(10, 0, 1, 5);
            v.put_endpoint(&key, record)
        });
        // A host that moves to another underlay address takes its endpoints along.
        go(&|v| v.put_host(&host("a", 9).0, host("a", 9).1));
        // A host that leaves takes its endpoints and its VTEP, before or after their records.
        go(&|v| v.delete_host(&host("a", 9).0));
        go(&|v| v.delete_endpoint(&endpoint(2, "ov", "a").0));
        go(&|v| v.delete_endpoint(&endpoint(5, "ov", "b").0));
        go(&|v| v.delete_host(&host("b", 3).0));
        // Two hosts on one address (a host that came back under a new id while its old
        // record lives): the VTEP stays while either does.
        go(&|v| v.put_host(&host("c", 4).0, host("c", 4).1));
        go(&|v| v.put_host(&host("c2", 4).0, host("c2", 4).1));
        go(&|v| v.put_endpoint(&endpoint(6, "ov", "c2").0, endpoint(6, "ov", "c2").1));
        go(&|v| v.delete_host(&host("c", 4).0));
        // Replays change nothing.
        go(&|v| v.put_host(&host("c2", 4).0, host("c2", 4).1));
        go(&|v| v.delete_endpoint(&endpoint(2, "ov", "a").0));
        assert_eq!(
            model.vteps,
            BTreeSet::from([Ipv4Addr::new(10, 77, 0, 4)]),
            "{model:?}"
        );
        assert_eq!(model.remotes.len(), 1, "{model:?}");
        let remote = model.remotes.first().unwrap();
        assert_eq!(
            (remote.network_id, remote.vni, remote.vtep, remote.ipv4),
            (
                7,
                4096,
                Ipv4Addr::new(10, 77, 0, 4),
                Ipv4Addr::new(10, 0, 0, 6)
            )
        );
        assert_eq!(
            remote.ipv6,
            Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 6))
        );
    }

    #[test]
    fn a_resync_removes_what_the_view_no_longer_has() {
        let networks: Mirrored = HashMap::from([("ov", (7, 4096))]);
        let view = ClusterView::new(
            vec![host("a", 2)],
            vec![endpoint(2, "ov", "a"), endpoint(3, "ov", "gone")],
        );
        let remotes = Remotes {
            me: ME,
            view: &view,
            networks: &networks,
        };
        let reference = Model::resynced(&view, &networks);
        // The datapath as a previous run left it: one endpoint still right, one of a host
        // that left, a VTEP of that host.
        let stale = RemoteEndpoint {
            vtep: Ipv4Addr::new(10, 77, 0, 3),
            ..reference.remotes.first().unwrap().clone()
        };
        let mut datapath = Model {
            remotes: BTreeSet::from([reference.remotes.first().unwrap().clone(), stale.clone()]),
            vteps: BTreeSet::from([Ipv4Addr::new(10, 77, 0, 3)]),
        };
        let vteps: Vec<Ipv4Addr> = datapath.vteps.iter().copied().collect();
        let edits = remotes.resync(&datapath.remotes, &vteps);
        assert_eq!(
            edits,
            [
                Edit::RemoveRemote(stale),
                Edit::RemoveVtep(Ipv4Addr::new(10, 77, 0, 3)),
                Edit::AddVtep(Ipv4Addr::new(10, 77, 0, 2)),
            ]
        );
        datapath.write(&edits);
        assert_eq!(datapath, reference);
    }
}
