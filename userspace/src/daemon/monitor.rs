//! `xnet monitor`: the datapath's events, read from its ring buffer by one task, resolved to
//! interfaces, containers and networks, and handed to every attached monitor.
//!
//! The programs write events only while a monitor is attached: attaching writes the kinds all
//! monitors want into `MONITOR`, and the last one leaving clears it (as does a start, after a
//! daemon killed with monitors attached). Events the programs could not write (their rate
//! limit, a full ring) are counted in the datapath; the reader reports the growth of that
//! count once a second as a `lost` line.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::broadcast,
};
use tracing::warn;
use xnet_common::{
    DropReason, EVENT_DROP, EVENT_FROM_CONTAINER, EVENT_TO_CONTAINER, MONITOR_DROPS, MONITOR_TRACE,
    MonitorEvent,
};

use super::{Daemon, monitors::Tagged};
use crate::{
    api::types::{MonitorKind, MonitorLine, MonitorQuery, MonitoredFrame},
    datapath::{MonitorReader, decode_event},
    error::Result,
};

/// How often lost events are reported.
const LOST_INTERVAL: Duration = Duration::from_secs(1);

/// An attached monitor: its events, filtered. Detaches when dropped.
pub struct MonitorSubscription {
    lines: broadcast::Receiver<Arc<Vec<Tagged>>>,
    kinds: u32,
    container: Option<String>,
    network: Option<String>,
    _attached: Attached,
}

impl MonitorSubscription {
    /// The next batch of this monitor's lines (empty if none of the batch was for it);
    /// `None` when the daemon stops.
    pub async fn next(&mut self) -> Option<Vec<MonitorLine>> {
        loop {
            match self.lines.recv().await {
                Ok(batch) => {
                    return Some(
                        batch
                            .iter()
                            .filter(|t| self.wants(t))
                            .map(|t| t.line.clone())
                            .collect(),
                    );
                }
                Err(broadcast::error::RecvError::Lagged(batches)) => {
                    warn!(
                        batches,
                        "a monitor reads too slowly; it missed batches of events"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn wants(&self, tagged: &Tagged) -> bool {
        if tagged.kind == 0 {
            return true;
        }
        tagged.kind & self.kinds != 0
            && self
                .container
                .as_ref()
                .is_none_or(|c| tagged.container.as_ref() == Some(c))
            && self
                .network
                .as_ref()
                .is_none_or(|n| tagged.network.as_ref() == Some(n))
    }
}

/// A monitor's place in the registry; leaving it tells the programs what the others want.
struct Attached {
    daemon: Arc<Daemon>,
    id: u64,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.daemon
            .monitor
            .attached
            .lock()
            .expect("monitor registry poisoned")
            .remove(&self.id);
        let daemon = self.daemon.clone();
        tokio::spawn(async move { daemon.apply_monitor_kinds().await });
    }
}

impl Daemon {
    /// Attaches a monitor for `query`'s events. An unknown container or network is refused.
    pub(crate) async fn attach_monitor(
        self: &Arc<Self>,
        query: MonitorQuery,
    ) -> Result<MonitorSubscription> {
        let (container, network) = {
            let inner = self.inner.lock().await;
            let container = match &query.container {
                Some(name) => Some(inner.state.container(name)?.name.clone()),
                None => None,
            };
            let network = match &query.network {
                Some(name) => Some(inner.state.network(name)?.name.clone()),
                None => None,
            };
            (container, network)
        };
        let kinds = match query.kind {
            Some(MonitorKind::Drop) => MONITOR_DROPS,
            Some(MonitorKind::Trace) => MONITOR_TRACE,
            None => MONITOR_DROPS | MONITOR_TRACE,
        };
        // Listening before the programs are told, so the first events are not missed.
        let lines = self.monitor.lines.subscribe();
        let id = self.monitor.next_id.fetch_add(1, Ordering::Relaxed);
        self.monitor
            .attached
            .lock()
            .expect("monitor registry poisoned")
            .insert(id, kinds);
        let attached = Attached {
            daemon: self.clone(),
            id,
        };
        self.apply_monitor_kinds().await;
        Ok(MonitorSubscription {
            lines,
            kinds,
            container,
            network,
            _attached: attached,
        })
    }

    /// Tells the programs which events the attached monitors want.
    async fn apply_monitor_kinds(&self) {
        let kinds = self.monitor.wanted_kinds();
        let mut inner = self.inner.lock().await;
        if let Err(e) = inner
            .kernel
            .datapath
            .set_monitor(kinds, self.monitor.events_per_second)
        {
            warn!("telling the datapath what monitors want: {e:#}");
        }
    }

    /// Reads the datapath's events for as long as the daemon runs (xnetd spawns it once).
    pub async fn read_monitor_events(self: Arc<Self>) {
        if let Err(e) = self.follow_monitor_events().await {
            warn!("reading the datapath's monitor events stopped: {e:#}");
        }
    }

    async fn follow_monitor_events(&self) -> anyhow::Result<()> {
        let reader = {
            let mut inner = self.inner.lock().await;
            // No monitor is attached yet, whatever a killed daemon left asked for.
            inner
                .kernel
                .datapath
                .set_monitor(0, self.monitor.events_per_second)?;
            inner.kernel.datapath.take_monitor_reader()
        };
        let Some(MonitorReader {
            events: ring,
            losses,
        }) = reader
        else {
            return Ok(());
        };
        let mut lost_seen = losses.lost();
        // SAFETY: the ring owns its map's descriptor, which stays open and the same for as
        // long as the `AsyncFd` owns the ring.
        let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut lost_tick = tokio::time::interval(LOST_INTERVAL);
        loop {
            tokio::select! {
                ready = ring.readable_mut() => {
                    let mut ready = ready?;
                    let mut events = Vec::new();
                    while let Some(record) = ready.get_inner_mut().next() {
                        events.extend(decode_event(&record));
                    }
                    ready.clear_ready();
                    if events.is_empty() || self.monitor.lines.receiver_count() == 0 {
                        continue;
                    }
                    let batch = self.resolve_events(&events).await;
                    let _ = self.monitor.lines.send(Arc::new(batch));
                }
                _ = lost_tick.tick() => {
                    let lost = losses.lost();
                    let count = lost.saturating_sub(lost_seen);
                    lost_seen = lost;
                    if count > 0 && self.monitor.lines.receiver_count() > 0 {
                        let line = Tagged {
                            kind: 0,
                            container: None,
                            network: None,
                            line: MonitorLine::Lost { count },
                        };
                        let _ = self.monitor.lines.send(Arc::new(vec![line]));
                    }
                }
            }
        }
    }

    /// The events as lines, with the container and network of the interface they were on.
    async fn resolve_events(&self, events: &[MonitorEvent]) -> Vec<Tagged> {
        let endpoints: HashMap<u32, (String, String)> = {
            let inner = self.inner.lock().await;
            inner
                .state
                .containers
                .values()
                .flat_map(|c| {
                    c.endpoints
                        .iter()
                        .map(|e| (e.host_ifindex, (c.name.clone(), e.network.clone())))
                })
                .collect()
        };
        let clock = Clock::now();
        events
            .iter()
            .filter_map(|event| {
                let owner = endpoints.get(&event.ifindex).cloned();
                let (container, network) = owner.unzip();
                let frame = frame_of(event, &clock, container.clone(), network.clone());
                let (kind, line) = match event.kind {
                    EVENT_DROP => (
                        MONITOR_DROPS,
                        MonitorLine::Drop {
                            frame,
                            reason: reason_name(event.reason),
                        },
                    ),
                    EVENT_FROM_CONTAINER => (MONITOR_TRACE, MonitorLine::FromContainer { frame }),
                    EVENT_TO_CONTAINER => (MONITOR_TRACE, MonitorLine::ToContainer { frame }),
                    // Not an event of this version's programs.
                    _ => return None,
                };
                Some(Tagged {
                    kind,
                    container,
                    network,
                    line,
                })
            })
            .collect()
    }
}

/// The wall clock and the kernel's monotonic clock (`bpf_ktime_get_ns`) read together, to
/// date events.
struct Clock {
    wall: SystemTime,
    monotonic_ns: u64,
}

impl Clock {
    fn now() -> Self {
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
            .unwrap_or(0);
        Self {
            wall: SystemTime::now(),
            monotonic_ns: monotonic,
        }
    }

    fn date(&self, monotonic_ns: u64) -> String {
        let ago = Duration::from_nanos(self.monotonic_ns.saturating_sub(monotonic_ns));
        humantime::format_rfc3339_micros(self.wall - ago).to_string()
    }
}

fn reason_name(index: u8) -> String {
    DropReason::ALL
        .get(usize::from(index))
        .map_or_else(|| format!("reason-{index}"), |r| r.name().to_string())
}

fn interface_name(ifindex: u32) -> String {
    nix::net::if_::if_indextoname(ifindex)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("if{ifindex}"))
}

fn frame_of(
    event: &MonitorEvent,
    clock: &Clock,
    container: Option<String>,
    network: Option<String>,
) -> MonitoredFrame {
    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86dd;
    const ETH_P_ARP: u16 = 0x0806;
    let ipv4 = |bytes: &[u8; 16]| {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])).to_string()
    };
    let (ether_type, source, destination) = match event.ether_type {
        ETH_P_IP => (
            "ipv4".to_string(),
            Some(ipv4(&event.src)),
            Some(ipv4(&event.dst)),
        ),
        ETH_P_ARP => (
            "arp".to_string(),
            Some(ipv4(&event.src)),
            Some(ipv4(&event.dst)),
        ),
        ETH_P_IPV6 => (
            "ipv6".to_string(),
            Some(Ipv6Addr::from(event.src).to_string()),
            Some(Ipv6Addr::from(event.dst).to_string()),
        ),
        other => (format!("{other:#06x}"), None, None),
    };
    let ip = matches!(event.ether_type, ETH_P_IP | ETH_P_IPV6);
    let protocol = ip.then(|| match event.protocol {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        58 => "icmpv6".to_string(),
        132 => "sctp".to_string(),
        other => other.to_string(),
    });
    let has_ports = ip && matches!(event.protocol, 6 | 17 | 132);
    let is_icmp = ip && matches!(event.protocol, 1 | 58);
    let arp_operation = (event.ether_type == ETH_P_ARP).then(|| match event.dst_port {
        1 => "request".to_string(),
        2 => "reply".to_string(),
        other => other.to_string(),
    });
    MonitoredFrame {
        time: clock.date(event.time_ns),
        interface: interface_name(event.ifindex),
        container,
        network,
        ether_type,
        protocol,
        source,
        destination,
        source_port: has_ports.then_some(event.src_port),
        destination_port: has_ports.then_some(event.dst_port),
        icmp_type: is_icmp.then_some(event.src_port as u8),
        icmp_code: is_icmp.then_some(event.dst_port as u8),
        arp_operation,
        length: event.len,
    }
}
