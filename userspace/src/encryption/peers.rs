//! The other hosts of the cluster the worker seals for: one WireGuard session (a boringtun
//! `Tunn`) per host, keyed by its underlay address, which is also where its worker listens.
//! A session is used by one thread at a time (its lock); hosts come and go with the cluster's
//! view ([`Peers::replace`]), and a host whose key changed gets a new session.

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
    sync::{
        Arc, Mutex, MutexGuard, RwLock,
        atomic::{AtomicU32, Ordering},
    },
};

use boringtun::{
    noise::Tunn,
    x25519::{PublicKey, StaticSecret},
};

/// One other host.
pub struct Peer {
    pub address: Ipv4Addr,
    public_key: PublicKey,
    session: Mutex<Tunn>,
}

impl Peer {
    /// Its session, locked. A thread that panicked while holding it left no broken state
    /// boringtun could not recover from (it handshakes again), so a poisoned lock is taken.
    pub fn session(&self) -> MutexGuard<'_, Tunn> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every host the worker can seal for.
pub struct Peers {
    secret: StaticSecret,
    by_address: RwLock<HashMap<Ipv4Addr, Arc<Peer>>>,
    /// WireGuard's local session index of the next new peer (24 bits; boringtun adds 8).
    next_index: AtomicU32,
}

impl Peers {
    pub fn new(secret: StaticSecret) -> Self {
        Self {
            secret,
            by_address: RwLock::default(),
            next_index: AtomicU32::new(1),
        }
    }

    /// The host at `address`, if it is a peer.
    pub fn get(&self, address: Ipv4Addr) -> Option<Arc<Peer>> {
        self.read().get(&address).cloned()
    }

    /// Every peer, for the timers.
    pub fn all(&self) -> Vec<Arc<Peer>> {
        self.read().values().cloned().collect()
    }

    /// Makes the peers exactly `wanted` (address and public key): a host already there with
    /// the same key keeps its session, a new host or a new key gets a new one, and hosts not
    /// wanted go. Returns the addresses of the peers.
    pub fn replace(&self, wanted: &[(Ipv4Addr, PublicKey)]) -> BTreeSet<Ipv4Addr> {
        let mut by_address = self.by_address.write().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::with_capacity(wanted.len());
        for (address, public_key) in wanted {
            let kept = by_address
                .remove(address)
                .filter(|p| p.public_key.as_bytes() == public_key.as_bytes());
            let peer = kept.unwrap_or_else(|| Arc::new(self.peer(*address, *public_key)));
            next.insert(*address, peer);
        }
        *by_address = next;
        by_address.keys().copied().collect()
    }

    fn peer(&self, address: Ipv4Addr, public_key: PublicKey) -> Peer {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        Peer {
            address,
            public_key,
            session: Mutex::new(Tunn::new(
                self.secret.clone(),
                public_key,
                None,
                None,
                index,
                None,
            )),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Ipv4Addr, Arc<Peer>>> {
        self.by_address.read().unwrap_or_else(|e| e.into_inner())
    }
}
