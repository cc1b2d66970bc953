//! One DNS server per container, at 127.0.0.11:53 (UDP and TCP) inside the container's
//! namespace: sockets made there (on a throwaway thread that enters it) and served by the
//! daemon's tasks, so no process runs per container. The servers follow the state: `sync`
//! starts one for every container with a namespace of xnet's (and every CNI pod) and stops
//! those of containers gone, and swaps in the new directory.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use hickory_proto::op::ResponseCode;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, UdpSocket},
    task::AbortHandle,
};
use tracing::{debug, warn};

use super::{
    answer::{self, Reply},
    directory::Directory,
    forward,
};
use crate::{
    os::netns,
    state::{Sandbox, State},
};

/// Where containers find the embedded DNS (Docker's address).
pub const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The largest query taken over UDP.
const MAX_UDP_QUERY: usize = 4096;

/// The containers' DNS servers and what they answer from.
pub struct DnsServers {
    shared: Arc<Shared>,
    running: Mutex<HashMap<String, Running>>,
}

/// What every server reads.
struct Shared {
    directory: RwLock<Directory>,
    /// The host's resolvers (`xnetd --resolv-conf`).
    resolvers: Vec<SocketAddr>,
    /// Containers' own resolvers (`run --dns`), by id.
    own_resolvers: RwLock<HashMap<String, Vec<SocketAddr>>>,
}

/// A container's server: its namespace and its tasks, stopped when dropped.
struct Running {
    sandbox: PathBuf,
    tasks: Vec<AbortHandle>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DnsServers {
    pub fn new(resolvers: Vec<SocketAddr>) -> Self {
        Self {
            shared: Arc::new(Shared {
                directory: RwLock::new(Directory::default()),
                resolvers,
                own_resolvers: RwLock::new(HashMap::new()),
            }),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the servers match `state`. A server that cannot start (the namespace not made
    /// yet, mid-request) is tried again at the next sync.
    pub fn sync(&self, state: &State) {
        let directory = Directory::from_state(state);
        let own: HashMap<String, Vec<SocketAddr>> = state
            .containers
            .values()
            .filter(|c| !c.dns.servers.is_empty())
            .map(|c| {
                let servers = c.dns.servers.iter().map(|ip| SocketAddr::new(*ip, 53));
                (c.id.clone(), servers.collect())
            })
            .collect();
        *self
            .shared
            .own_resolvers
            .write()
            .expect("DNS lock poisoned") = own;
        *self.shared.directory.write().expect("DNS lock poisoned") = directory;
        let mut running = self.running.lock().expect("DNS lock poisoned");
        running.retain(|id, server| {
            state
                .containers
                .values()
                .any(|c| c.id == *id && c.sandbox_key == server.sandbox)
        });
        for container in state.containers.values() {
            let served = container.sandbox == Sandbox::Owned || container.embedded_dns;
            if !served || running.contains_key(&container.id) {
                continue;
            }
            match self.start(&container.id, &container.sandbox_key) {
                Ok(server) => {
                    running.insert(container.id.clone(), server);
                }
                Err(e) => debug!(container = %container.name, "DNS server not started yet: {e:#}"),
            }
        }
    }

    fn start(&self, id: &str, sandbox: &Path) -> anyhow::Result<Running> {
        let address = SocketAddrV4::new(DNS_ADDRESS, 53);
        let (udp, tcp) = netns::run_in(sandbox, move || {
            let udp = std::net::UdpSocket::bind(address)?;
            let tcp = std::net::TcpListener::bind(address)?;
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        })?;
        let (udp, tcp) = (UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?);
        let shared = self.shared.clone();
        let asker = id.to_string();
        let serve_udp = tokio::spawn(serve_udp(shared.clone(), asker.clone(), udp));
        let serve_tcp = tokio::spawn(serve_tcp(shared, asker, tcp));
        Ok(Running {
            sandbox: sandbox.to_owned(),
            tasks: vec![serve_udp.abort_handle(), serve_tcp.abort_handle()],
        })
    }
}

impl Shared {
    /// The answer to `query` from `asker`: the directory's, the resolvers', or SERVFAIL.
    async fn answer(&self, asker: &str, query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
        let reply = {
            let directory = self.directory.read().expect("DNS lock poisoned");
            answer::reply(&directory, asker, query)
        };
        let reply = match reply {
            Reply::Forward => {
                let resolvers = self
                    .own_resolvers
                    .read()
                    .expect("DNS lock poisoned")
                    .get(asker)
                    .cloned()
                    .unwrap_or_else(|| self.resolvers.clone());
                match forward::forward(&resolvers, query, over_tcp).await {
                    Some(answer) => Reply::Answer(answer),
                    None => answer::failure(query, ResponseCode::ServFail),
                }
            }
            reply => reply,
        };
        match reply {
            Reply::Answer(bytes) => Some(bytes),
            _ => None,
        }
    }
}

async fn serve_udp(shared: Arc<Shared>, asker: String, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let mut query = vec![0; MAX_UDP_QUERY];
    loop {
        let (len, from) = match socket.recv_from(&mut query).await {
            Ok(received) => received,
            Err(e) => {
                warn!(container = %asker, "the embedded DNS stopped reading: {e}");
                return;
            }
        };
        let (shared, asker, socket) = (shared.clone(), asker.clone(), socket.clone());
        let query = query[..len].to_vec();
        // Each query on its own: a slow resolver holds up only its own.
        tokio::spawn(async move {
            if let Some(answer) = shared.answer(&asker, &query, false).await {
                let _ = socket.send_to(&answer, from).await;
            }
        });
    }
}

async fn serve_tcp(shared: Arc<Shared>, asker: String, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(shared.clone(), asker.clone(), stream));
    }
}

/// Queries on one TCP connection, each with its two-byte length, until the client closes.
async fn serve_connection(shared: Arc<Shared>, asker: String, mut stream: TcpStream) {
    while let Ok(len) = stream.read_u16().await {
        let mut query = vec![0; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(answer) = shared.answer(&asker, &query, true).await else {
            return;
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}
