//! The simulated cluster of `overlay-scale` (issue #13): one real xnetd among thousands of
//! hosts that exist only as records in etcd.
//!
//! - **Lab**: an xnet-lab lab (`xb<pid>-scale-*`) with one etcd member (`e1`, data on tmpfs
//!   under /run) and one host, `h1`, whose xnetd is the one measured. The etcd client of the
//!   bench runs on a thread that joined the lab's router namespace, on the underlay.
//! - **Network**: one overlay network, `scale`, 10.96.0.0/14 (room for 262,142 endpoints),
//!   IPv4 only, created by h1's own CLI (`xnet network create -d overlay`), so its record is
//!   xnet's own.
//! - **Synthetic hosts**: host records `/xnet/v1/hosts/<id>` (12 hex digits, underlay
//!   addresses 10.78.x.y), each under a lease of its own, granted for an hour and never
//!   renewed: nothing keeps them alive but the lease's length, and nothing ever connects to
//!   their addresses.
//! - **Endpoints**: endpoint `i` belongs to host `i mod hosts`, has the address 10.96.0.2 + i,
//!   a locally administered MAC made of `i`, and is written as xnet writes an endpoint: the
//!   claim of its address and its record, both under its host's lease. The initial population
//!   goes in with transactions of 64 endpoints (128 operations, etcd's default
//!   `--max-txn-ops`), 8 in flight.
//!
//! Every round restarts h1's xnetd with neither state nor pins (a new host joining the
//! cluster), waits for its `NEIGHBORS` map to hold every endpoint, then changes endpoints at
//! 100 per second while watching the map, then reads its memory.

use std::{
    collections::VecDeque,
    fs, io,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail, ensure};
use aya::maps::{HashMap, Map, MapData, MapError};
use etcd_client::{Client, PutOptions, Txn, TxnOp};
use serde_json::Value;
use tokio::{
    task::JoinSet,
    time::{MissedTickBehavior, interval},
};
use xnet::{
    cluster::{
        keys,
        records::{EndpointRecord, HostRecord},
    },
    state::Mac,
};
use xnet_common::{Neighbor, NeighborKey};
use xnet_lab::{Lab, Spec};

use super::sys;

/// The lab's one real host.
const HOST: &str = "h1";
const NETWORK: &str = "scale";
const SUBNET: &str = "10.96.0.0/14";
/// The first endpoint's address: the subnet's, after its own address and the gateway.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 2);
/// Addresses in the subnet from [`FIRST_ADDRESS`] on, its broadcast address excluded.
const ADDRESSES: u32 = (1 << 18) - 3;
/// The synthetic hosts' underlay: 10.78.0.1 on.
const FIRST_HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// Long enough for any run: the leases are never renewed.
const LEASE_SECONDS: i64 = 3600;
/// Endpoints per transaction: two operations each (claim and record), 128 in all.
const ENDPOINTS_PER_TXN: usize = 64;
/// Host records per transaction.
const HOSTS_PER_TXN: usize = 128;
/// Transactions (or lease grants) in flight at once while populating.
const IN_FLIGHT: usize = 8;
/// Changes per second while propagation is measured (the rate).
pub const CHANGES_PER_SECOND: u32 = 100;
/// How long a round waits for the map to hold every endpoint, and for any one change.
const FILL_TIMEOUT: Duration = Duration::from_secs(120);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the map is looked at: while it fills, and for each change not seen yet.
const FILL_POLL: Duration = Duration::from_millis(5);
const CHANGE_POLL: Duration = Duration::from_micros(250);

/// How big the simulated cluster is.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSize {
    pub hosts: u32,
    pub endpoints: u32,
}

/// A host that exists only as its record.
struct Synthetic {
    id: String,
    lease: i64,
}

/// The endpoints in the store, by index (see the module's documentation).
struct Population {
    /// Oldest first: changes delete from the front.
    live: VecDeque<u32>,
    /// The next new endpoint's index.
    next: u32,
    /// h1's datapath id of the network, once its map showed it.
    network_id: Option<u32>,
}

/// What one round measured.
pub struct Round {
    /// From xnetd's start until its `NEIGHBORS` map holds every endpoint.
    pub fill: Duration,
    /// From each change's write until the map showed it, sorted.
    pub propagation: Vec<Duration>,
    /// xnetd's resident memory after the changes, and its peak, in bytes.
    pub rss: u64,
    pub peak_rss: u64,
}

pub struct ClusterLab {
    lab: Mutex<Lab>,
    /// The lab's router namespace, where the etcd client runs.
    client_netns: PathBuf,
    etcd: Vec<String>,
    /// The overlay network's id in the cluster.
    network: String,
    hosts: Vec<Synthetic>,
    population: Mutex<Population>,
}

impl ClusterLab {
    /// Brings the lab up, creates the network and writes `size`'s hosts and endpoints into
    /// etcd with h1's xnetd stopped (each round starts it).
    pub fn up(run_id: &str, bin_dir: &Path, size: ClusterSize) -> anyhow::Result<Self> {
        ensure!(
            size.hosts > 0 && size.endpoints <= ADDRESSES,
            "a cluster of {} hosts and {} endpoints does not fit the lab",
            size.hosts,
            size.endpoints
        );
        let mut lab = Lab::up(Spec {
            hosts: 1,
            etcd_members: 1,
            ..Spec::new(format!("{run_id}-scale"), bin_dir)
        })?;
        xnet(
            &lab,
            &[
                "network", "create", "-d", "overlay", "--subnet", SUBNET, NETWORK,
            ],
        )?;
        let inspect: Value = serde_json::from_str(&xnet(&lab, &["network", "inspect", NETWORK])?)
            .context("parsing `xnet network inspect`")?;
        let network = inspect[0]["Id"]
            .as_str()
            .context("`xnet network inspect` gave no Id")?
            .to_string();
        lab.stop_xnetd(HOST)?;
        let client_netns = lab.router().netns_path();
        let etcd = lab.etcd_urls();
        let started = Instant::now();
        let hosts = in_netns(&client_netns, &etcd, |client| {
            populate(client, network.clone(), size)
        })?;
        eprintln!(
            "overlay-scale: wrote {} hosts and {} endpoints into etcd in {:.1} s",
            size.hosts,
            size.endpoints,
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            lab: Mutex::new(lab),
            client_netns,
            etcd,
            network,
            hosts,
            population: Mutex::new(Population {
                live: (0..size.endpoints).collect(),
                next: size.endpoints,
                network_id: None,
            }),
        })
    }

    /// One round: a cold start of h1's xnetd, then `changes` seconds of changes, then its
    /// memory.
    pub fn round(&self, changes: Duration) -> anyhow::Result<Round> {
        let mut lab = self.lab.lock().map_err(|_| anyhow!("a round panicked"))?;
        let mut population = self
            .population
            .lock()
            .map_err(|_| anyhow!("a round panicked"))?;
        let fill = self
            .cold_start(&mut lab, &mut population)
            .with_context(|| log_tail(&lab))?;
        let propagation = self
            .change(&lab, &mut population, changes)
            .with_context(|| log_tail(&lab))?;
        let pid = lab.host(HOST)?.pid().context("h1's xnetd is not running")?;
        let (rss, peak_rss) = memory(pid)?;
        Ok(Round {
            fill,
            propagation,
            rss,
            peak_rss,
        })
    }

    /// Starts h1's xnetd afresh (no state, no pins) and returns how long it took until its
    /// `NEIGHBORS` map held every endpoint in the store.
    fn cold_start(&self, lab: &mut Lab, population: &mut Population) -> anyhow::Result<Duration> {
        let host = lab.host(HOST)?.clone();
        if lab.xnetd_running(HOST)? {
            lab.stop_xnetd(HOST)?;
        }
        for dir in [&host.bpffs, &host.state_dir] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", dir.display()));
                }
                _ => {}
            }
        }
        let expected: Vec<Ipv4Addr> = population.live.iter().map(|&i| address(i)).collect();
        let pin = neighbors_pin(&host.bpffs);
        let stop = AtomicBool::new(false);
        let (filled, started) = thread::scope(|scope| {
            let start = Instant::now();
            let (pin, expected, stop) = (&pin, &expected, &stop);
            let watcher = scope.spawn(move || wait_filled(pin, expected, start, stop));
            let started = lab.start_xnetd(HOST);
            if started.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            let filled = watcher
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the map watcher panicked")));
            (filled, started)
        });
        started?;
        let (took, network_id) = filled?;
        population.network_id = Some(network_id);
        // Nothing more than the store's endpoints either (untimed: a full walk of the map).
        let map = neighbors(&pin)?;
        let held = map.keys().filter(Result::is_ok).count();
        ensure!(
            held == expected.len(),
            "NEIGHBORS holds {held} entries for {} endpoints",
            expected.len()
        );
        Ok(took)
    }

    /// Changes endpoints for `duration` at [`CHANGES_PER_SECOND`], a new one and the
    /// removal of the oldest in turn, and returns how long each took to show in the map,
    /// sorted.
    fn change(
        &self,
        lab: &Lab,
        population: &mut Population,
        duration: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let network_id = population
            .network_id
            .context("no round has filled the map yet")?;
        let pin = neighbors_pin(&lab.host(HOST)?.bpffs);
        let (sent, seen) = mpsc::channel();
        thread::scope(|scope| {
            let watcher = scope.spawn(|| watch_changes(&pin, network_id, seen));
            let wrote = in_netns(&self.client_netns, &self.etcd, |client| {
                self.write_changes(client, population, duration, sent)
            });
            let watched = watcher
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the map watcher panicked")));
            wrote.and(watched)
        })
    }

    /// The writing side of [`Self::change`]: tells `sent` about each change just before it
    /// is written.
    async fn write_changes(
        &self,
        mut client: Client,
        population: &mut Population,
        duration: Duration,
        sent: Sender<Expected>,
    ) -> anyhow::Result<()> {
        let mut tick = interval(Duration::from_secs(1) / CHANGES_PER_SECOND);
        // A write that took long delays the next instead of bunching them up.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = Instant::now() + duration;
        let mut add = true;
        while Instant::now() < end {
            tick.tick().await;
            let (i, txn, mac) = if add {
                let i = population.next;
                ensure!(
                    i < ADDRESSES,
                    "the subnet has no address left for endpoint {i}"
                );
                population.next += 1;
                population.live.push_back(i);
                let record = endpoint(&self.network, &self.hosts, i);
                let txn = Txn::new().and_then(puts(host_of(&self.hosts, i), &record)?);
                (i, txn, Some(record.mac.0))
            } else {
                let i = population
                    .live
                    .pop_front()
                    .context("no endpoint left to remove")?;
                let record = endpoint(&self.network, &self.hosts, i);
                (i, Txn::new().and_then(deletes(&record)), None)
            };
            sent.send(Expected {
                ipv4: address(i),
                mac,
                written: Instant::now(),
            })
            .map_err(|_| anyhow!("the map watcher stopped"))?;
            client.txn(txn).await?;
            add = !add;
        }
        Ok(())
    }
}

/// Runs `xnet ARGS` against h1's xnetd; its stdout.
fn xnet(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    let out = lab.xnet(HOST, args)?;
    ensure!(
        out.status.success(),
        "xnet {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The end of h1's xnetd log, for a round that failed.
fn log_tail(lab: &Lab) -> String {
    let log = lab.xnetd_log(HOST).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "h1's xnetd log ends:\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

/// Runs `work` with an etcd client on a thread that joined `netns`, on a runtime of its own.
fn in_netns<T: Send, F: Future<Output = anyhow::Result<T>>>(
    netns: &Path,
    etcd: &[String],
    work: impl FnOnce(Client) -> F + Send,
) -> anyhow::Result<T> {
    sys::on_netns_thread(netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = Client::connect(etcd, None)
                .await
                .context("connecting to the lab's etcd")?;
            work(client).await
        })
    })
}

/// Writes the hosts (each under a lease of its own) and the endpoints of a cluster of `size`
/// on network `network`; returns the hosts.
async fn populate(
    client: Client,
    network: String,
    size: ClusterSize,
) -> anyhow::Result<Vec<Synthetic>> {
    let mut grants = JoinSet::new();
    let mut leases = vec![0; size.hosts as usize];
    for h in 0..size.hosts as usize {
        if grants.len() == IN_FLIGHT {
            let (h, lease) = grants.join_next().await.context("no grant in flight")???;
            leases[h] = lease;
        }
        let mut client = client.clone();
        grants.spawn(async move {
            anyhow::Ok((h, client.lease_grant(LEASE_SECONDS, None).await?.id()))
        });
    }
    while let Some(granted) = grants.join_next().await {
        let (h, lease) = granted??;
        leases[h] = lease;
    }
    let hosts: Vec<Synthetic> = leases
        .into_iter()
        .enumerate()
        .map(|(h, lease)| Synthetic {
            id: format!("5ca1e{h:07x}"),
            lease,
        })
        .collect();
    let mut host_puts = Vec::with_capacity(hosts.len());
    for (h, host) in hosts.iter().enumerate() {
        let record = HostRecord {
            id: host.id.clone(),
            name: format!("synthetic-{}", host.id),
            address: Ipv4Addr::from(u32::from(FIRST_HOST_ADDRESS) + h as u32),
            // Synthetic hosts take part in no encrypted overlay.
            public_key: String::new(),
        };
        let lease = PutOptions::new().with_lease(host.lease);
        host_puts.push(TxnOp::put(
            keys::host(&host.id),
            serde_json::to_string(&record)?,
            Some(lease),
        ));
    }
    let mut txns: Vec<Txn> = host_puts
        .chunks(HOSTS_PER_TXN)
        .map(|ops| Txn::new().and_then(ops.to_vec()))
        .collect();
    let indices: Vec<u32> = (0..size.endpoints).collect();
    for chunk in indices.chunks(ENDPOINTS_PER_TXN) {
        let mut ops = Vec::with_capacity(2 * chunk.len());
        for &i in chunk {
            ops.extend(puts(host_of(&hosts, i), &endpoint(&network, &hosts, i))?);
        }
        txns.push(Txn::new().and_then(ops));
    }
    let mut writes = JoinSet::new();
    for txn in txns {
        if writes.len() == IN_FLIGHT {
            writes.join_next().await.context("no write in flight")???;
        }
        let mut client = client.clone();
        writes.spawn(async move { anyhow::Ok(client.txn(txn).await.map(drop)?) });
    }
    while let Some(written) = writes.join_next().await {
        written??;
    }
    Ok(hosts)
}

/// Endpoint `i`'s address.
fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_ADDRESS) + i)
}

/// The host of endpoint `i`.
fn host_of(hosts: &[Synthetic], i: u32) -> &Synthetic {
    &hosts[i as usize % hosts.len()]
}

/// Endpoint `i` of network `network`.
fn endpoint(network: &str, hosts: &[Synthetic], i: u32) -> EndpointRecord {
    let [a, b, c, d] = i.to_be_bytes();
    EndpointRecord {
        id: format!("{i:064x}"),
        network: network.to_string(),
        host: host_of(hosts, i).id.clone(),
        container: format!("c{i}"),
        ipv4: address(i),
        ipv6: None,
        mac: Mac([0x02, 0x5c, a, b, c, d]),
    }
}

/// The writes of an endpoint, as xnet makes them: its claim and its record, under its
/// host's lease.
fn puts(host: &Synthetic, record: &EndpointRecord) -> anyhow::Result<Vec<TxnOp>> {
    let lease = host.lease;
    let under_lease = || Some(PutOptions::new().with_lease(lease));
    Ok(vec![
        TxnOp::put(
            keys::address(&record.network, record.ipv4),
            record.id.clone(),
            under_lease(),
        ),
        TxnOp::put(
            keys::endpoint(&record.network, &record.id),
            serde_json::to_string(record)?,
            under_lease(),
        ),
    ])
}

/// The removal of an endpoint: its record and its claim.
fn deletes(record: &EndpointRecord) -> Vec<TxnOp> {
    vec![
        TxnOp::delete(keys::endpoint(&record.network, &record.id), None),
        TxnOp::delete(keys::address(&record.network, record.ipv4), None),
    ]
}

fn neighbors_pin(bpffs: &Path) -> PathBuf {
    bpffs.join("maps").join("NEIGHBORS")
}

/// xnetd's pinned `NEIGHBORS` map.
fn neighbors(pin: &Path) -> anyhow::Result<HashMap<MapData, NeighborKey, Neighbor>> {
    let data = MapData::from_pin(pin).with_context(|| format!("opening {}", pin.display()))?;
    Ok(HashMap::try_from(Map::HashMap(data))?)
}

/// Waits until the map pinned at `pin` (once it exists) has an entry for each of
/// `expected`; returns the time since `start` and the network id of the entries. Looks up
/// each address once it is there, resuming where the last look stopped, so a look costs a
/// few lookups and the whole wait about one per endpoint.
fn wait_filled(
    pin: &Path,
    expected: &[Ipv4Addr],
    start: Instant,
    stop: &AtomicBool,
) -> anyhow::Result<(Duration, u32)> {
    let mut map = None;
    let mut network_id = None;
    let mut present = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("xnetd did not start");
        }
        if start.elapsed() > FILL_TIMEOUT {
            bail!(
                "after {FILL_TIMEOUT:?}, NEIGHBORS held {present} of {} endpoints (looked up in order)",
                expected.len()
            );
        }
        if map.is_none() && pin.exists() {
            map = Some(neighbors(pin)?);
        }
        if let Some(map) = &map {
            if network_id.is_none() {
                network_id = map.keys().next().transpose()?.map(|k| k.network_id);
            }
            if let Some(network_id) = network_id {
                while let Some(&ipv4) = expected.get(present) {
                    let key = NeighborKey {
                        network_id,
                        ipv4: ipv4.octets(),
                    };
                    match map.get(&key, 0) {
                        Ok(_) => present += 1,
                        Err(MapError::KeyNotFound) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                if present == expected.len() {
                    return Ok((start.elapsed(), network_id));
                }
            }
        }
        thread::sleep(FILL_POLL);
    }
}

/// A change written to the store, as the map should show it.
struct Expected {
    ipv4: Ipv4Addr,
    /// The remote entry's MAC when it should appear; None when it should go.
    mac: Option<[u8; 6]>,
    written: Instant,
}

/// Watches the map pinned at `pin` for each change `changes` announces until the writer is
/// done; returns how long each took from its write, sorted.
fn watch_changes(
    pin: &Path,
    network_id: u32,
    changes: Receiver<Expected>,
) -> anyhow::Result<Vec<Duration>> {
    let map = neighbors(pin)?;
    let mut pending: Vec<Expected> = Vec::new();
    let mut took = Vec::new();
    let mut writing = true;
    while writing || !pending.is_empty() {
        match changes.recv_timeout(CHANGE_POLL) {
            Ok(change) => pending.push(change),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => writing = false,
        }
        let now = Instant::now();
        let mut unseen = Vec::with_capacity(pending.len());
        for change in pending.drain(..) {
            let key = NeighborKey {
                network_id,
                ipv4: change.ipv4.octets(),
            };
            let seen = match (map.get(&key, 0), change.mac) {
                (Ok(entry), Some(mac)) => entry.mac == mac && entry.ifindex == 0,
                (Err(MapError::KeyNotFound), None) => true,
                (Ok(_), None) | (Err(MapError::KeyNotFound), Some(_)) => false,
                (Err(e), _) => return Err(e.into()),
            };
            if seen {
                took.push(now - change.written);
            } else if now - change.written > CHANGE_TIMEOUT {
                let what = if change.mac.is_some() {
                    "added"
                } else {
                    "removed"
                };
                bail!(
                    "endpoint {} {what} in the store did not show in NEIGHBORS within {CHANGE_TIMEOUT:?}",
                    change.ipv4
                );
            } else {
                unseen.push(change);
            }
        }
        pending = unseen;
    }
    took.sort_unstable();
    Ok(took)
}

/// VmRSS and VmHWM of process `pid`, in bytes.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |field: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
        let number = line.trim().trim_end_matches("kB").trim();
        Ok(number.parse::<u64>()? * 1024)
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}
