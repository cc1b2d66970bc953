//! Encrypted overlays (`--opt encrypted`) across simulated hosts: real traffic (ping, TCP,
//! UDP) between three hosts, and a packet capture of the underlay that finds a marker sent
//! between containers in clear on a plain overlay and never on the encrypted one; attacks on
//! the underlay (cleartext VXLAN with the network's VNI, a replayed sealed datagram, one from
//! a host that is no member) dropped and counted; a host's xnetd killed (its worker with it)
//! and restarted, on either side, with nothing in clear meanwhile and traffic back after; and
//! WireGuard's rekey (every two minutes) under a TCP stream that never stalls.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, ChildStderr, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;
use xnet_dockerlab::skip;
use xnet_lab::{Lab, eventually};

use crate::{
    in_netns, inspect, lab, lab_with, ok,
    overlay::{
        address, cannot_reach, drops, in_container, iperf, reaches, run_sleeper, send_from,
        send_to_port, spawn_in, vxlan_frame,
    },
    store_of,
};

/// The encryption workers' UDP port.
const SEALED_PORT: u16 = 51820;
/// What the containers send, to be looked for on the underlay: `ping -p` fills the payload
/// with it.
const MARKER: &[u8] = b"xnetMARK";
const MARKER_HEX: &str = "786e65744d41524b";

/// Creates overlay `name` on `host`, `--opt encrypted` if `encrypted`.
fn create_overlay(lab: &Lab, host: &str, name: &str, encrypted: bool) {
    let mut args = vec!["network", "create", "-d", "overlay", "--attachable"];
    if encrypted {
        args.extend(["--opt", "encrypted"]);
    }
    args.push(name);
    ok(lab, host, &args);
}

/// A lab of two hosts with the encrypted overlay `enc`, container `a` on h1 and `b` on h2,
/// which reach each other; and b's address.
fn encrypted_pair() -> (Lab, String) {
    let lab = lab(2, 1);
    create_overlay(&lab, "h1", "enc", true);
    run_sleeper(&lab, "h1", "a", "enc");
    run_sleeper(&lab, "h2", "b", "enc");
    let b4 = address(&lab, "h2", "b", "IPAddress");
    assert!(reaches(&lab, "h1", "a", &b4));
    (lab, b4)
}

/// The MTU of container `name`'s interface on `host`, as `ip link` shows it (`/sys` in the
/// container is still the host's).
fn container_mtu(lab: &Lab, host: &str, name: &str) -> u32 {
    let args = ["exec", name, "--", "ip", "-o", "link", "show", "eth0"];
    let out = lab.xnet(host, &args).unwrap();
    let link = String::from_utf8_lossy(&out.stdout);
    let mtu = link.split_whitespace().skip_while(|w| *w != "mtu").nth(1);
    mtu.and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no MTU for {name}: {link}"))
}

/// `count` pings carrying [`MARKER`] from container `name` of `host` to `ip`, 100 ms apart;
/// whether any was answered.
fn marked_pings(lab: &Lab, host: &str, name: &str, ip: &str, count: u32) -> bool {
    let count = count.to_string();
    let ping = [
        "ping", "-c", &count, "-i", "0.1", "-W", "1", "-p", MARKER_HEX, ip,
    ];
    in_container(lab, host, name, &ping)
}

/// tcpdump on a node's underlay interface (eth0), writing each packet to a pcap file as it
/// sees it. Stopped (by the PID it was started with) when its packets are read, or dropped.
struct Capture {
    child: Child,
    path: PathBuf,
    /// Kept open: tcpdump reports on it as it exits.
    _stderr: BufReader<ChildStderr>,
}

impl Capture {
    /// Starts a capture of what matches `filter` on `node`'s eth0; returns once it listens.
    fn start(lab: &Lab, node: &str, filter: &[&str]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = lab.dir().join(format!("underlay-{node}-{n}.pcap"));
        let mut child = lab
            .command(node, "tcpdump")
            .unwrap()
            // Immediate mode: packets reach the file as they come, not when a ring block fills
            // (a short capture would otherwise end with its packets unread).
            .args(["-i", "eth0", "-n", "--immediate-mode", "-U", "-w"])
            .arg(&path)
            .args(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        while !said.contains("listening on") {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("tcpdump on {node} did not start: {said}");
            }
            said.push_str(&line);
        }
        Self {
            child,
            path,
            _stderr: stderr,
        }
    }

    /// Stops the capture; the frames it caught, each from its Ethernet header on.
    fn frames(mut self) -> Vec<Vec<u8>> {
        self.stop();
        let pcap = std::fs::read(&self.path).unwrap();
        assert!(
            pcap.len() >= 24,
            "no pcap header in {}",
            self.path.display()
        );
        let mut frames = Vec::new();
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
            let start = at + 16;
            frames.push(pcap[start..(start + len).min(pcap.len())].to_vec());
            at = start + len;
        }
        frames
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM: tcpdump closes the file whole.
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many of `frames` hold [`MARKER`].
fn marked(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| f.windows(MARKER.len()).any(|w| w == MARKER))
        .count()
}

/// The UDP payloads of `frames` (IPv4) from `source` to port `port`.
fn udp_payloads(frames: &[Vec<u8>], source: Ipv4Addr, port: u16) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter_map(|f| {
            let ip = f.get(14..)?;
            let header = usize::from(ip.first()? & 0x0f) * 4;
            let udp = ip.get(header..)?;
            let from = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
            let to_port = u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?);
            (ip[9] == 17 && from == source && to_port == port)
                .then(|| udp.get(8..).map(<[u8]>::to_vec))?
        })
        .collect()
}

#[test]
fn an_encrypted_overlay_carries_traffic_between_three_hosts_and_never_in_clear() {
    if skip::unless_root() {
        return;
    }
    let lab = lab_with(3, 1, &["--metrics-addr", METRICS]);
    create_overlay(&lab, "h1", "enc", true);
    create_overlay(&lab, "h1", "plain", false);
    run_sleeper(&lab, "h1", "a", "enc");
    run_sleeper(&lab, "h1", "a2", "enc");
    run_sleeper(&lab, "h2", "b", "enc");
    run_sleeper(&lab, "h3", "c", "enc");
    run_sleeper(&lab, "h1", "pa", "plain");
    run_sleeper(&lab, "h2", "pb", "plain");
    // Every host shows it encrypted, as Docker does (`--opt encrypted`: an empty value), and
    // its MTU leaves room for the encryption too: 1500 - 50 (VXLAN) - 60 (WireGuard).
    for host in ["h1", "h2", "h3"] {
        let net = inspect(&lab, host, "enc").unwrap();
        assert_eq!(net["Options"]["encrypted"], "", "{host}: {net}");
    }
    assert_eq!(container_mtu(&lab, "h1", "a"), 1390);
    assert_eq!(container_mtu(&lab, "h2", "b"), 1390);
    assert_eq!(container_mtu(&lab, "h1", "pa"), 1450);
    // And says it encrypts to the two other hosts (only xnet's encrypted networks say so).
    assert!(eventually(Duration::from_secs(10), || encryption(
        &lab, "h1", "enc"
    )
    .starts_with("encrypting: WireGuard to 2 other host(s)")));
    assert_eq!(
        inspect(&lab, "h1", "plain").unwrap().get("Encryption"),
        None
    );
    // Between hosts, every pair; on one host too.
    let b4 = address(&lab, "h2", "b", "IPAddress");
    let c4 = address(&lab, "h3", "c", "IPAddress");
    assert!(reaches(
        &lab,
        "h1",
        "a",
        &address(&lab, "h1", "a2", "IPAddress")
    ));
    assert!(reaches(&lab, "h1", "a", &b4));
    assert!(reaches(&lab, "h1", "a", &c4));
    assert!(reaches(&lab, "h3", "c", &b4));
    iperf(&lab, ("h1", "a"), ("h2", "b"), &b4, false);
    iperf(
        &lab,
        ("h3", "c"),
        ("h1", "a"),
        &address(&lab, "h1", "a", "IPAddress"),
        true,
    );
    // The marker crosses the underlay in clear on the plain overlay (so the capture would see
    // it), and never on the encrypted one, where only sealed datagrams cross.
    let pb4 = address(&lab, "h2", "pb", "IPAddress");
    let capture = Capture::start(&lab, "h2", &["udp"]);
    assert!(marked_pings(&lab, "h1", "pa", &pb4, 3));
    let plain = capture.frames();
    assert!(
        marked(&plain) >= 3,
        "the marker in clear: {} frames",
        marked(&plain)
    );
    let capture = Capture::start(&lab, "h2", &["udp"]);
    assert!(marked_pings(&lab, "h1", "a", &b4, 3));
    let encrypted = capture.frames();
    assert_eq!(marked(&encrypted), 0, "the marker crossed in clear");
    let h1 = lab.host("h1").unwrap().address;
    assert!(
        udp_payloads(&encrypted, h1, SEALED_PORT).len() >= 3,
        "sealed datagrams from h1"
    );
    assert!(
        udp_payloads(&encrypted, h1, 4789).is_empty(),
        "VXLAN in clear from h1"
    );
    // The metrics show the cluster: the store up, two keyed peers, packets sealed.
    let metrics = scrape(&lab, "h1");
    assert!(metrics.contains("\nxnet_cluster_store_up 1\n"), "{metrics}");
    let keyed_peers = metrics
        .lines()
        .filter(|l| l.starts_with("xnet_overlay_peer{") && l.contains("encryption=\"keyed\""))
        .count();
    assert_eq!(keyed_peers, 2, "{metrics}");
    let sealed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xnet_encryption_sealed_packets_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(sealed.is_some_and(|n| n >= 3), "{metrics}");
}

/// Where the encrypted lab's xnetds serve their metrics, each in its own namespace.
const METRICS: &str = "127.0.0.1:9323";

/// One scrape of `host`'s metrics.
fn scrape(lab: &Lab, host: &str) -> String {
    let url = format!("http://{METRICS}/metrics");
    let out = lab.run(host, &["curl", "-sf", &url]).unwrap();
    assert!(out.status.success(), "scraping {host}'s metrics failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn attacks_on_an_encrypted_overlays_underlay_are_dropped_and_counted() {
    if skip::unless_root() {
        return;
    }
    let (lab, b4) = encrypted_pair();
    let (h1, h2) = (
        lab.host("h1").unwrap().address,
        lab.host("h2").unwrap().address,
    );
    // A sealed datagram of h1's, caught on the way.
    let capture = Capture::start(&lab, "h2", &["udp", "port", "51820"]);
    assert!(reaches(&lab, "h1", "a", &b4));
    let sealed: Vec<Vec<u8>> = udp_payloads(&capture.frames(), h1, SEALED_PORT)
        .into_iter()
        // A data message (type 4), not a handshake.
        .filter(|p| p.len() > 32 && p[0] == 4)
        .collect();
    let sealed = sealed
        .last()
        .expect("a sealed data message from h1")
        .clone();
    // Replayed from h1's own address: the session refuses its counter.
    let before = drops(&lab, "h2", "encrypted-rejected");
    send_to_port(&lab, "h1", (h2, SEALED_PORT), sealed.clone());
    assert!(eventually(Duration::from_secs(3), || drops(
        &lab,
        "h2",
        "encrypted-rejected"
    ) >= before + 3));
    // The same from a node of the underlay that is no member (the router).
    let before = drops(&lab, "h2", "encrypted-from-stranger");
    send_to_port(&lab, "out", (h2, SEALED_PORT), sealed);
    assert!(eventually(Duration::from_secs(3), || drops(
        &lab,
        "h2",
        "encrypted-from-stranger"
    ) >= before + 3));
    // Cleartext VXLAN with its VNI, from a live host of the cluster and an endpoint's own
    // source, is dropped on arrival.
    let vni: u32 = inspect(&lab, "h2", "enc").unwrap()["Options"]
        ["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let a4: Ipv4Addr = address(&lab, "h1", "a", "IPAddress").parse().unwrap();
    let before = drops(&lab, "h2", "cleartext-vxlan");
    let frame = vxlan_frame(vni, [0x02, 1, 2, 3, 4, 5], a4, b4.parse().unwrap());
    send_from(&lab, "h1", h2, frame);
    assert!(eventually(Duration::from_secs(3), || drops(
        &lab,
        "h2",
        "cleartext-vxlan"
    ) > before));
    // None of it got in the way.
    assert!(reaches(&lab, "h1", "a", &b4));
}

#[test]
fn an_encrypted_overlay_fails_closed_while_a_hosts_worker_is_dead_and_resumes_after() {
    if skip::unless_root() {
        return;
    }
    let (mut lab, b4) = encrypted_pair();
    let capture = Capture::start(&lab, "h2", &["udp"]);
    // h1's xnetd, and its encryption worker, die (SIGKILL): the datapath keeps running, and
    // a's pings to b are dropped, never sent in clear.
    lab.kill_xnetd("h1").unwrap();
    assert!(
        cannot_reach(&lab, "h1", "a", &b4),
        "b answered while h1 could not encrypt"
    );
    assert!(!marked_pings(&lab, "h1", "a", &b4, 3));
    // It starts again, with a new worker and new sessions: traffic resumes.
    lab.start_xnetd("h1").unwrap();
    assert!(reaches(&lab, "h1", "a", &b4), "not back after h1's restart");
    // The other side restarts: its peers handshake with it again.
    lab.kill_xnetd("h2").unwrap();
    lab.start_xnetd("h2").unwrap();
    assert!(reaches(&lab, "h1", "a", &b4), "not back after h2's restart");
    assert!(marked_pings(&lab, "h1", "a", &b4, 3));
    let frames = capture.frames();
    assert_eq!(marked(&frames), 0, "the marker crossed in clear");
    let h1 = lab.host("h1").unwrap().address;
    assert!(udp_payloads(&frames, h1, 4789).is_empty(), "VXLAN in clear");
    assert!(
        !udp_payloads(&frames, h1, SEALED_PORT).is_empty(),
        "nothing captured"
    );
}

/// Handshakes `host`'s encryption worker has completed.
fn handshakes(lab: &Lab, host: &str) -> u64 {
    let stats: Value =
        serde_json::from_str(&ok(lab, host, &["stats", "--format", "json"])).unwrap();
    stats["encryption"]["handshakes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no encryption stats on {host}: {stats}"))
}

/// WireGuard makes a new session key every two minutes under traffic (REKEY_AFTER_TIME): a
/// TCP stream across the rekey gets a new handshake and never stalls, and TCP delivers all it
/// sent. (Slow by nature: 130 seconds.)
#[test]
fn keys_rotate_under_a_tcp_stream_that_never_stalls() {
    if skip::unless_root() {
        return;
    }
    let (lab, b4) = encrypted_pair();
    let before = handshakes(&lab, "h1");
    assert!(before >= 1, "the first handshake");
    // One test and the server ends; the client starts once it listens (a client refused by
    // a server still starting would not be retried against a one-shot server safely).
    let mut server = spawn_in(&lab, "h2", "b", &["iperf3", "-s", "-1"]);
    let listening = ["exec", "b", "--", "ss", "-Hltn", "sport = :5201"];
    assert!(
        eventually(Duration::from_secs(30), || {
            !lab.xnet("h2", &listening).unwrap().stdout.is_empty()
        }),
        "iperf3's server did not start"
    );
    let client = [
        "exec", "a", "--", "iperf3", "-c", &b4, "-t", "130", "-b", "50M", "-J",
    ];
    let run = lab.xnet("h1", &client).unwrap();
    let report: Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("iperf3: {e}: {}", String::from_utf8_lossy(&run.stderr)));
    let _ = server.wait();
    assert!(report.get("error").is_none(), "iperf3: {}", report["error"]);
    let intervals = report["intervals"].as_array().expect("iperf3 intervals");
    assert!(intervals.len() >= 125, "{} intervals", intervals.len());
    for (second, interval) in intervals.iter().enumerate() {
        let bytes = interval["sum"]["bytes"].as_u64().unwrap();
        assert!(bytes > 0, "the stream stalled in second {second}");
    }
    let sent = report["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap();
    assert!(
        received * 100 >= sent * 99,
        "received {received} of {sent} bytes"
    );
    assert!(
        handshakes(&lab, "h1") > before,
        "no new handshake after 130 s of traffic"
    );
}

/// What `inspect` on `host` says of network `name`'s encryption.
fn encryption(lab: &Lab, host: &str, name: &str) -> String {
    let net = inspect(lab, host, name).unwrap();
    net["Encryption"].as_str().unwrap_or_default().to_string()
}

/// Rewrites `host`'s record in the store, under its own lease, with `public_key`.
fn publish_key(lab: &Lab, host: &str, public_key: String) {
    let state = lab.host(host).unwrap().state_dir.join("state.json");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    let (id, lease) = (
        state["cluster"]["host_id"].as_str().unwrap().to_string(),
        state["cluster"]["lease"].as_i64().unwrap(),
    );
    let h1 = lab.host("h1").unwrap();
    let (urls, address) = (lab.etcd_urls(), h1.address);
    in_netns(h1.netns_path(), async move || {
        let mut store = store_of(urls, "observer", address).await;
        let mut record = store
            .hosts()
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.id == id)
            .unwrap();
        record.public_key = public_key;
        store.join(&record, Some(lease)).await.unwrap();
    })
    .join()
    .unwrap();
}

/// A member that published no usable key (an older xnetd) gets nothing of an encrypted
/// network: what would go to it is dropped and counted, `inspect` names it, and once it
/// publishes one the traffic flows.
#[test]
fn a_host_without_a_public_key_gets_nothing_in_clear_and_inspect_says_so() {
    if skip::unless_root() {
        return;
    }
    let (lab, b4) = encrypted_pair();
    let key = lab
        .host("h2")
        .map(|h| xnet::state::host_key::HostKey::load_or_create(&h.state_dir).unwrap())
        .unwrap()
        .public_base64();
    publish_key(&lab, "h2", String::new());
    assert!(
        eventually(Duration::from_secs(10), || encryption(&lab, "h1", "enc")
            .starts_with("not encrypting to h2 (")),
        "{}",
        encryption(&lab, "h1", "enc")
    );
    let before = drops(&lab, "h1", "unencrypted");
    assert!(cannot_reach(&lab, "h1", "a", &b4));
    assert!(drops(&lab, "h1", "unencrypted") > before);
    publish_key(&lab, "h2", key);
    assert!(reaches(&lab, "h1", "a", &b4), "not back with h2's key");
    assert!(encryption(&lab, "h1", "enc").starts_with("encrypting"));
}
