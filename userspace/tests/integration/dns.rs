//! The embedded DNS (127.0.0.11 in each container, Docker's address): names and aliases on
//! shared networks only, PTR, the default bridge without names, other names forwarded to a
//! stub resolver in the simulated outside (never from internal networks), resolv.conf with
//! `--dns-search` and `--dns-option` as `run` and `exec` see it, bad queries answered FORMERR
//! or ignored by a server that keeps serving, and servers back after xnetd is killed.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata::A},
};
use xnet::os::netns;
use xnet_dockerlab::skip;

use crate::common::{Host, succeeded};

/// The outside's address, where the stub resolver listens.
const RESOLVER: &str = "10.200.0.2";
/// The one name the stub resolver knows, and its address.
const OUTSIDE_NAME: &str = "outside.test.";
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// A resolver in a namespace: answers `OUTSIDE_NAME`, NXDOMAIN for the rest; stops on drop.
struct StubResolver {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StubResolver {
    fn start(netns_path: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (ready, started) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            netns::enter(&PathBuf::from(netns_path)).unwrap();
            let socket = UdpSocket::bind((RESOLVER, 53)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready.send(()).unwrap();
            let mut buf = [0u8; 4096];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.add_queries(request.queries.iter().cloned());
                let known = request.queries.first().is_some_and(|q| {
                    q.name().to_ascii() == OUTSIDE_NAME && q.query_type() == RecordType::A
                });
                if known {
                    let name = Name::from_ascii(OUTSIDE_NAME).unwrap();
                    response.add_answer(Record::from_rdata(name, 60, RData::A(A(OUTSIDE_IP))));
                } else {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = socket.send_to(&response.to_vec().unwrap(), from);
            }
        });
        started.recv().unwrap();
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StubResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `getent hosts NAME` in container `name`: the first address or name it printed.
fn getent(host: &Host, name: &str, what: &str) -> Option<String> {
    let out = host.xnet(&["exec", name, "--", "getent", "hosts", what]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // `ADDRESS NAME`: the name for an address asked, else the address.
    let column = usize::from(what.parse::<std::net::IpAddr>().is_ok());
    let found = text.split_whitespace().nth(column).map(str::to_string);
    found.filter(|_| succeeded(&out))
}

/// Sends `bytes` to the embedded DNS from inside `sandbox`; its answer, if any in 2 s.
fn ask_raw(sandbox: &str, bytes: Vec<u8>) -> Option<Vec<u8>> {
    netns::run_in(&PathBuf::from(sandbox), move || {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.send_to(&bytes, SocketAddr::from(([127, 0, 0, 11], 53)))?;
        let mut buf = [0u8; 4096];
        Ok(socket.recv(&mut buf).ok().map(|len| buf[..len].to_vec()))
    })
    .unwrap()
}

/// An A query for `name`.
fn a_query(name: &str) -> Vec<u8> {
    let mut query = Message::new(0x4242, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    query.to_vec().unwrap()
}

#[test]
fn containers_resolve_each_other_on_shared_networks_and_the_rest_through_the_host() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::without_daemon();
    host.add_uplink();
    let resolv_conf = host.dir.join("host-resolv.conf");
    std::fs::write(&resolv_conf, format!("nameserver {RESOLVER}\n")).unwrap();
    host.daemon_args.extend([
        "--resolv-conf".to_string(),
        resolv_conf.display().to_string(),
    ]);
    host.start_daemon();
    let _resolver = StubResolver::start(host.outside());

    host.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.78.0.0/24", "back"]);
    host.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.79.0.0/24",
        "sealed",
    ]);
    host.run_sleeper("a", &["--network", "front"]);
    host.run_sleeper("b", &["--network", "front", "--network-alias", "web"]);
    host.run_sleeper("c", &["--network", "back"]);
    host.run_sleeper("d", &["--network", "sealed"]);
    host.run_sleeper("e", &[]);
    host.run_sleeper("f", &[]);
    let b = host.ip_of("b");

    // Names and aliases on a shared network, also as NAME.NETWORK; PTR.
    assert_eq!(getent(&host, "a", "b").as_deref(), Some(b.as_str()));
    assert_eq!(getent(&host, "a", "WEB").as_deref(), Some(b.as_str()));
    assert_eq!(getent(&host, "a", "b.front").as_deref(), Some(b.as_str()));
    assert_eq!(getent(&host, "a", &b).as_deref(), Some("b"));
    // Not across networks, not on the default bridge.
    assert_eq!(getent(&host, "a", "c"), None);
    assert_eq!(getent(&host, "c", "b"), None);
    assert_eq!(getent(&host, "e", "f"), None);
    // Other names through the host's resolver, from the host's namespace; never from an
    // internal network.
    let outside = OUTSIDE_IP.to_string();
    assert_eq!(
        getent(&host, "a", "outside.test").as_deref(),
        Some(outside.as_str())
    );
    assert_eq!(
        getent(&host, "e", "outside.test").as_deref(),
        Some(outside.as_str())
    );
    assert_eq!(getent(&host, "d", "outside.test"), None);
    assert_eq!(getent(&host, "a", "nowhere.test"), None);
    // A container connected later with an alias is found by it on that network.
    host.ok(&["network", "connect", "--alias", "api", "back", "a"]);
    let a_on_back = {
        let inspect: serde_json::Value = serde_json::from_str(&host.ok(&["inspect", "a"])).unwrap();
        inspect[0]["NetworkSettings"]["Networks"]["back"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        getent(&host, "c", "api").as_deref(),
        Some(a_on_back.as_str())
    );

    // Bad queries: a header's worth of garbage gets FORMERR, less gets nothing; the server
    // keeps answering.
    let sandbox = host.sandbox("a");
    let mut garbage = vec![0xab; 40];
    garbage[2] = 0x01;
    let answer = ask_raw(&sandbox, garbage).expect("no answer to garbage");
    assert_eq!(answer[3] & 0x0f, 1, "not FORMERR: {answer:?}");
    assert_eq!(ask_raw(&sandbox, vec![1, 2, 3]), None);
    assert!(ask_raw(&sandbox, vec![0; 4000]).is_some_and(|a| a[3] & 0x0f == 1));
    let answer = Message::from_vec(&ask_raw(&sandbox, a_query("b.")).unwrap()).unwrap();
    assert_eq!(answer.metadata.id, 0x4242);
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].ttl, 600);

    // A daemon killed and started again serves the same names.
    host.kill_daemon();
    host.start_daemon();
    assert_eq!(getent(&host, "a", "b").as_deref(), Some(b.as_str()));
}

#[test]
fn resolv_conf_names_the_embedded_dns_with_the_containers_options() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    host.run_sleeper(
        "a",
        &[
            "--network",
            "front",
            "--dns-search",
            "corp.test",
            "--dns-option",
            "ndots:2",
            "--dns",
            "10.200.0.9",
        ],
    );
    let seen = host.ok(&["exec", "a", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        seen,
        "nameserver 127.0.0.11\nsearch corp.test\noptions ndots:2\n"
    );
    // Only the container's commands see it.
    assert_eq!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap(),
        host_resolv
    );
    let path = {
        let inspect: serde_json::Value = serde_json::from_str(&host.ok(&["inspect", "a"])).unwrap();
        inspect[0]["ResolvConfPath"].as_str().unwrap().to_string()
    };
    assert!(std::path::Path::new(&path).exists());
    // Bad flags are refused in one line, with nothing made.
    let err = host.fails(&["run", "--name", "x", "--dns", "nonsense", "--", "true"]);
    assert!(err.contains("invalid --dns \"nonsense\""), "{err}");
    let err = host.fails(&[
        "run",
        "--name",
        "x",
        "--network-alias",
        "bad!",
        "--",
        "true",
    ]);
    assert!(err.contains("invalid alias name"), "{err}");
    host.ok(&["rm", "-f", "a"]);
    assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
}
