//! The worker's threads, each blocking on one descriptor, with no locks between them but a
//! peer's session:
//!
//! - `xnet-seal-N` waits for a frame on TAP queue N, takes what else is queued there (up to
//!   [`BATCH_FRAMES`]), seals each frame's IPv4 packet for the host it is addressed to, and
//!   sends each host's sealed datagrams of one size together, from UDP socket N, as one buffer
//!   the kernel segments (`UDP_SEGMENT`);
//! - `xnet-open-N` receives on UDP socket N (all N share one port, `SO_REUSEPORT`, so the
//!   kernel spreads hosts over them) what GRO coalesced of one host's datagrams (`UDP_GRO`),
//!   opens each with that host's session, and writes the packet into the TAP device (or sends
//!   the handshake reply boringtun asks for);
//! - `xnet-seal-timers` runs each session's timers every 250 ms (handshake retries, rekeying,
//!   keepalives), as boringtun asks.
//!
//! A frame for a host that is not a peer, a datagram from an address that is not a peer's, one
//! that fails authentication or replays an old counter, and one whose inner source is not the
//! host that sealed it are dropped and counted ([`Counters`]).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::Context as _;
use boringtun::{
    noise::{TunnResult, errors::WireGuardError},
    x25519::{PublicKey, StaticSecret},
};
use tracing::warn;

use super::peers::{Peer, Peers};
use crate::os::{tap::TapQueue, udp::SegmentingSocket};

/// The UDP port the workers listen on, on each host's advertise address: WireGuard's.
pub const ENCRYPTION_PORT: u16 = 51820;
/// The worker's TAP device.
pub const DEVICE_NAME: &str = "xnet-crypt";
/// At most this many queues of the device, and threads of each kind.
pub const MAX_QUEUES: usize = 8;
/// What sealing adds to a packet: UDP and IPv4 headers, WireGuard's data header (16 bytes)
/// and tag (16), and up to 15 bytes of padding to a multiple of 16 (none when the overlay's
/// MTU leaves the packet a multiple of 16, as its default does). The overlay's default MTU
/// subtracts the first four.
pub const SEALING_OVERHEAD: u32 = 20 + 8 + 16 + 16;
/// How many frames a seal thread takes from its queue before sending.
pub const BATCH_FRAMES: usize = 64;

const ETH_LEN: usize = 14;
/// WireGuard's message types (the first byte of a datagram).
const HANDSHAKE_INITIATION: u8 = 1;
const HANDSHAKE_RESPONSE: u8 = 2;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
/// The largest frame or datagram.
const PACKET_LEN: usize = 65536;
/// The most one send carries (with its headers under UDP's 64 KiB).
const BATCH_BYTES: usize = 60000;
const TIMER_TICK: Duration = Duration::from_millis(250);

/// The worker's counts, for `xnet stats`.
#[derive(Default)]
pub struct Counters {
    /// Packets sealed and sent, and opened and delivered to the datapath.
    pub sealed: AtomicU64,
    pub opened: AtomicU64,
    /// A frame for a host the worker has no session for (the datapath only hands it frames
    /// for peers, so only around a peer's departure): dropped, never sent in clear.
    pub no_peer: AtomicU64,
    /// A datagram from an address that is no peer's (a non-member host).
    pub from_stranger: AtomicU64,
    /// A datagram a peer's session refused: failed authentication, a replayed or too old
    /// counter, no session for it.
    pub rejected: AtomicU64,
    /// A packet sealed by one host whose source is another address.
    pub spoofed_source: AtomicU64,
    /// Handshakes completed: a response to ours accepted, or an initiation answered.
    pub handshakes: AtomicU64,
}

/// What the worker has done, read from its [`Counters`] at one moment.
pub struct Work {
    pub sealed: u64,
    pub opened: u64,
    pub handshakes: u64,
}

impl Counters {
    /// The drops, by the names `xnet stats` shows (`unencrypted` is the datapath's too).
    pub fn drops(&self) -> [(&'static str, u64); 4] {
        [
            ("unencrypted", load(&self.no_peer)),
            ("encrypted-from-stranger", load(&self.from_stranger)),
            ("encrypted-rejected", load(&self.rejected)),
            ("encrypted-spoofed-source", load(&self.spoofed_source)),
        ]
    }

    /// The packets sealed and opened, and the handshakes.
    pub fn work(&self) -> Work {
        Work {
            sealed: load(&self.sealed),
            opened: load(&self.opened),
            handshakes: load(&self.handshakes),
        }
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The worker's TAP device, made and set up by the daemon.
pub struct Device {
    pub ifindex: u32,
    /// The destination MAC of the frames the worker writes into it.
    pub mac: [u8; 6],
    /// One seal thread and one open thread each.
    pub queues: Vec<TapQueue>,
}

/// The running worker.
pub struct EncryptionWorker {
    ifindex: u32,
    peers: Arc<Peers>,
    counters: Arc<Counters>,
}

impl EncryptionWorker {
    /// Starts the worker on `device`, with its UDP sockets on `local`:`port` and its threads,
    /// and no peers yet. `secret` is this host's private key.
    pub fn start(
        secret: StaticSecret,
        local: Ipv4Addr,
        port: u16,
        device: Device,
    ) -> anyhow::Result<Self> {
        let peers = Arc::new(Peers::new(secret));
        let counters = Arc::new(Counters::default());
        let mut first_socket = None;
        for (n, queue) in device.queues.into_iter().enumerate() {
            let address = SocketAddrV4::new(local, port);
            let socket = SegmentingSocket::bind_shared(address).with_context(|| {
                format!("binding the encryption worker's UDP socket to {address}")
            })?;
            let socket = Arc::new(socket);
            first_socket.get_or_insert_with(|| socket.clone());
            let queue = Arc::new(queue);
            let seal = Sealer {
                queue: queue.clone(),
                socket: socket.clone(),
                port,
                peers: peers.clone(),
                counters: counters.clone(),
            };
            spawn(format!("xnet-seal-{n}"), move || seal.run())?;
            let open = Opener {
                queue,
                socket,
                port,
                mac: device.mac,
                peers: peers.clone(),
                counters: counters.clone(),
            };
            spawn(format!("xnet-open-{n}"), move || open.run())?;
        }
        // A socket of its own would get its share of the port's datagrams, and never read
        // them: the timers send from an opener's.
        let timers = Timers {
            socket: first_socket.context("no queue")?,
            port,
            peers: peers.clone(),
        };
        spawn("xnet-seal-timers".into(), move || timers.run())?;
        Ok(Self {
            ifindex: device.ifindex,
            peers,
            counters,
        })
    }

    /// The TAP device's ifindex: where the datapath sends what it wants sealed.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Makes the peers `wanted` (each host's underlay address and public key); returns the
    /// addresses the worker can now seal for.
    pub fn set_peers(
        &self,
        wanted: &[(Ipv4Addr, PublicKey)],
    ) -> std::collections::BTreeSet<Ipv4Addr> {
        self.peers.replace(wanted)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The hosts it can seal for, ordered.
    pub fn peers(&self) -> Vec<Ipv4Addr> {
        let mut peers: Vec<_> = self.peers.all().iter().map(|p| p.address).collect();
        peers.sort();
        peers
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .with_context(|| format!("starting thread {name}"))?;
    Ok(())
}

/// Sends `datagram` to `peer`'s worker. A full socket buffer or an unreachable host loses
/// it, as the underlay would; the protocols above retransmit.
fn send(socket: &SegmentingSocket, datagram: &[u8], peer: &Peer, port: u16) {
    let to = SocketAddrV4::new(peer.address, port);
    let _ = socket.send_segments(datagram, datagram.len(), to);
}

/// Logs a descriptor's error once per thread, and pauses so a lasting one does not spin.
fn failed(what: &str, error: io::Error, warned: &mut bool) {
    if !*warned {
        warn!("encryption worker: {what}: {error}");
        *warned = true;
    }
    thread::sleep(Duration::from_millis(10));
}

/// Sealed datagrams waiting to be sent together: one host's, all of one size but the last.
struct Batch {
    buf: Vec<u8>,
    used: usize,
    /// The size of each datagram (the first's).
    size: usize,
    /// The last datagram is shorter: nothing more may follow it.
    closed: bool,
    to: Option<SocketAddrV4>,
}

impl Batch {
    fn new() -> Self {
        Self {
            buf: vec![0; BATCH_BYTES + PACKET_LEN],
            used: 0,
            size: 0,
            closed: false,
            to: None,
        }
    }

    /// Where the next datagram for `to` goes: behind the batch's, or at the start of a new
    /// batch once the one waiting is sent (another host's, full, or closed).
    fn room_for(&mut self, to: SocketAddrV4, socket: &SegmentingSocket) -> &mut [u8] {
        if self.to != Some(to) || self.closed || self.used + self.size > BATCH_BYTES {
            self.send(socket);
            self.to = Some(to);
        }
        &mut self.buf[self.used..]
    }

    /// Takes the datagram of `len` bytes just written where [`Batch::room_for`] said.
    fn commit(&mut self, len: usize, socket: &SegmentingSocket) {
        if self.used == 0 {
            self.size = len;
        } else if len > self.size {
            // Longer than the batch's datagrams: it starts a batch of its own.
            let start = self.used;
            let to = self.to;
            self.send(socket);
            self.buf.copy_within(start..start + len, 0);
            self.to = to;
            self.size = len;
        } else if len < self.size {
            self.closed = true;
        }
        self.used += len;
    }

    /// Sends what waits, as one buffer the kernel segments; where it refuses (a path MTU
    /// smaller than the datagrams, say), one datagram at a time.
    fn send(&mut self, socket: &SegmentingSocket) {
        if let Some(to) = self.to.filter(|_| self.used > 0) {
            let datagrams = &self.buf[..self.used];
            if socket.send_segments(datagrams, self.size, to).is_err() && self.used > self.size {
                for datagram in datagrams.chunks(self.size) {
                    let _ = socket.send_segments(datagram, datagram.len(), to);
                }
            }
        }
        self.used = 0;
        self.closed = false;
        self.to = None;
    }
}

struct Sealer {
    queue: Arc<TapQueue>,
    socket: Arc<SegmentingSocket>,
    port: u16,
    peers: Arc<Peers>,
    counters: Arc<Counters>,
}

impl Sealer {
    fn run(self) {
        let mut frame = vec![0u8; PACKET_LEN];
        let mut batch = Batch::new();
        let mut warned = false;
        loop {
            match self.queue.read(&mut frame) {
                Ok(len) => self.seal(&frame[..len], &mut batch),
                Err(e) => {
                    failed(&format!("reading {DEVICE_NAME}"), e, &mut warned);
                    continue;
                }
            }
            for _ in 1..BATCH_FRAMES {
                match self.queue.try_read(&mut frame) {
                    Ok(Some(len)) => self.seal(&frame[..len], &mut batch),
                    Ok(None) => break,
                    Err(e) => {
                        failed(&format!("reading {DEVICE_NAME}"), e, &mut warned);
                        break;
                    }
                }
            }
            batch.send(&self.socket);
        }
    }

    /// Seals the IPv4 packet in `frame` for the host it is addressed to, into `batch`.
    fn seal(&self, frame: &[u8], batch: &mut Batch) {
        let Some(packet) = frame.get(ETH_LEN..) else {
            return;
        };
        let Some(destination) = ipv4_address(packet, 16) else {
            return;
        };
        let Some(peer) = self.peers.get(destination) else {
            count(&self.counters.no_peer);
            return;
        };
        let mut session = peer.session();
        let to = SocketAddrV4::new(peer.address, self.port);
        match session.encapsulate(packet, batch.room_for(to, &self.socket)) {
            // Sealed; or, with no session yet, the packet is queued and this is the
            // handshake that starts one.
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                batch.commit(len, &self.socket);
                count(&self.counters.sealed);
            }
            TunnResult::Err(_) => count(&self.counters.no_peer),
            _ => {}
        }
    }
}

struct Opener {
    queue: Arc<TapQueue>,
    socket: Arc<SegmentingSocket>,
    port: u16,
    /// The TAP device's MAC: the destination of the frames written into it.
    mac: [u8; 6],
    peers: Arc<Peers>,
    counters: Arc<Counters>,
}

impl Opener {
    fn run(self) {
        let mut datagrams = vec![0u8; PACKET_LEN];
        let mut frame = vec![0u8; PACKET_LEN];
        frame[..6].copy_from_slice(&self.mac);
        frame[12..ETH_LEN].copy_from_slice(&ETHERTYPE_IPV4);
        let mut warned = false;
        loop {
            match self.socket.recv_segments(&mut datagrams) {
                Ok((len, size, from)) => {
                    for datagram in datagrams[..len].chunks(size) {
                        self.open(datagram, *from.ip(), &mut frame);
                    }
                }
                Err(e) => failed("receiving", e, &mut warned),
            }
        }
    }
    /// Opens a datagram from `from` and writes what it carried into the TAP device, in
    /// `frame` behind its Ethernet header.
    fn open(&self, datagram: &[u8], from: Ipv4Addr, frame: &mut [u8]) {
        let Some(peer) = self.peers.get(from) else {
            count(&self.counters.from_stranger);
            return;
        };
        let mut session = peer.session();
        let (_, body) = frame.split_at_mut(ETH_LEN);
        let mut result = session.decapsulate(Some(IpAddr::V4(from)), datagram, body);
        // An initiation answered (boringtun's answer is to be sent) or a response to ours
        // accepted (its queued packets, or nothing, follow): a new session either way.
        let handshake = matches!(
            datagram.first(),
            Some(&(HANDSHAKE_INITIATION | HANDSHAKE_RESPONSE))
        );
        if handshake && !matches!(result, TunnResult::Err(_)) {
            count(&self.counters.handshakes);
        }
        let len = loop {
            match result {
                // A handshake reply, a cookie, or packets queued until the session existed:
                // sent, then boringtun is asked for more until it has none.
                TunnResult::WriteToNetwork(reply) => {
                    send(&self.socket, reply, &peer, self.port);
                    result = session.decapsulate(None, &[], body);
                }
                TunnResult::WriteToTunnelV4(packet, source) => {
                    if source != peer.address {
                        count(&self.counters.spoofed_source);
                        return;
                    }
                    break packet.len();
                }
                TunnResult::WriteToTunnelV6(..) => {
                    count(&self.counters.spoofed_source);
                    return;
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Done => return,
                TunnResult::Err(error) => {
                    count(&self.counters.rejected);
                    // Sealed with a session this host does not have (this host restarted, and
                    // the sender has not noticed yet): a handshake now gives both ends a new
                    // one within a round trip, rather than after the sender's own timeout
                    // (15 s). boringtun starts at most one at a time.
                    let stale = matches!(
                        error,
                        WireGuardError::NoCurrentSession | WireGuardError::WrongIndex
                    );
                    if stale
                        && let TunnResult::WriteToNetwork(initiation) =
                            session.format_handshake_initiation(body, false)
                    {
                        send(&self.socket, initiation, &peer, self.port);
                    }
                    return;
                }
            }
        };
        drop(session);
        match self.queue.write(&frame[..ETH_LEN + len]) {
            Ok(_) => count(&self.counters.opened),
            Err(e) => warn!("encryption worker: writing {DEVICE_NAME}: {e}"),
        }
    }
}

struct Timers {
    socket: Arc<SegmentingSocket>,
    port: u16,
    peers: Arc<Peers>,
}

impl Timers {
    fn run(self) {
        let mut out = vec![0u8; PACKET_LEN];
        loop {
            thread::sleep(TIMER_TICK);
            for peer in self.peers.all() {
                let mut session = peer.session();
                if let TunnResult::WriteToNetwork(datagram) = session.update_timers(&mut out) {
                    send(&self.socket, datagram, &peer, self.port);
                }
            }
        }
    }
}

/// The IPv4 address at `offset` of `packet`, if it is an IPv4 packet that long.
fn ipv4_address(packet: &[u8], offset: usize) -> Option<Ipv4Addr> {
    if packet.first()? >> 4 != 4 {
        return None;
    }
    let bytes: [u8; 4] = packet.get(offset..offset + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}
