//! xnetd killed with SIGKILL at random points of mixed requests (`run -p`, `network create`
//! and `rm`, `connect`, `disconnect`, `rm`), and started again after each kill, as a crash and
//! a supervisor would. Afterwards every kernel object of the daemon's (veths, namespace pins,
//! link pins, map entries, routes, gateway addresses, reserved ports) belongs to a record of
//! its state, removing everything leaves nothing, and two containers made before the kills
//! never stopped reaching each other.
//!
//! The kill points come from a seeded generator; the seed is printed, and `XNET_CRASH_SEED`
//! replays a run.

use std::{
    collections::BTreeSet,
    fs,
    net::IpAddr,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aya::maps::{HashMap, Map, MapData};
use serde_json::Value;
use xnet::state::{DEFAULT_NETWORK, State};
use xnet_common::{Endpoint, Neighbor, NeighborKey};

use xnet_dockerlab::skip;

use crate::common::{Host, succeeded};

/// How many requests are interrupted (the issue asks for at least 50).
const KILLS: usize = 60;
/// At most this many containers (besides the two steady ones) and user networks at a time.
const CONTAINERS: usize = 5;
const NETWORKS: usize = 3;

#[test]
fn sigkill_mid_request_leaves_nothing_unowned_and_traffic_flowing() {
    if skip::unless_root() {
        return;
    }
    let seed = std::env::var("XNET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("XNET_CRASH_SEED={seed}");
    let mut random = XorShift(seed);
    // Another daemon on the machine, whose objects the crashing one must never touch.
    let bystander = Host::start();
    bystander.run_sleeper("other", &[]);
    let untouched = objects_of(&bystander);
    let mut host = Host::start();
    host.run_sleeper("steady-a", &[]);
    host.run_sleeper("steady-b", &[]);
    let steady_b = host.ip_of("steady-b");
    let ping = Command::new("nsenter")
        .arg(format!("--net={}", host.sandbox("steady-a")))
        .args(["ping", "-i", "0.05", "-W", "1", &steady_b])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // How long each kind of request takes here, so the kills land inside requests.
    let took = warm_up(&host);
    eprintln!("request durations: {took:?}");
    for serial in 0..KILLS {
        // One kill in six lands while the restarted daemon reconciles, before it serves.
        if random.below(6) == 0 {
            host.kill_daemon();
            host.spawn_daemon();
            thread::sleep(Duration::from_millis(random.below(60)));
            host.kill_daemon();
            host.start_daemon();
        }
        let (kind, args) = request(&state(&host), &mut random, serial);
        let mut request = host
            .xnet_command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let window = took[kind as usize].as_micros() as u64;
        thread::sleep(Duration::from_micros(random.below(window + window / 4 + 1)));
        host.kill_daemon();
        wait_briefly(&mut request, &args);
        host.start_daemon();
        check_everything_is_owned(&host);
    }
    let log = host.daemon_log();
    let interrupted = log
        .matches("removing what an interrupted request made")
        .count();
    assert!(
        interrupted >= 5,
        "too few kills landed inside a request ({interrupted}):\n{log}"
    );

    // What flowed before the kills still flows, and never stopped.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ping.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let summary = String::from_utf8(ping.wait_with_output().unwrap().stdout).unwrap();
    let (sent, received) = ping_counts(&summary);
    assert!(sent > 100, "the ping ran too briefly: {summary}");
    // The last echo may still be on its way when ping is interrupted.
    assert!(
        received + 1 >= sent,
        "steady-a lost pings to steady-b across the kills (seed {seed}): {summary}"
    );
    assert!(host.reaches(&host.sandbox("steady-a"), &steady_b));

    assert_eq!(
        objects_of(&bystander),
        untouched,
        "the other daemon's objects"
    );
    let gateway =
        bystander.inspect("other")["NetworkSettings"]["Networks"][DEFAULT_NETWORK]["Gateway"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(bystander.reaches(&bystander.sandbox("other"), &gateway));

    // Removing everything leaves nothing.
    let before = state(&host);
    for name in before.containers.keys() {
        host.ok(&["rm", "-f", name]);
    }
    for name in before.networks.keys().filter(|n| *n != DEFAULT_NETWORK) {
        host.ok(&["network", "rm", name]);
    }
    check_everything_is_owned(&host);
    let after = state(&host);
    assert!(after.containers.is_empty() && after.networks.len() == 1);
    assert!(host.host_links().iter().all(|l| !l.starts_with("xv")));
    assert_eq!(host.container_namespaces(), Vec::<String>::new());
    assert_eq!(host.endpoint_link_pins(), Vec::<String>::new());
}

/// The kinds of request in the mix.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Run,
    NetworkCreate,
    NetworkRm,
    Connect,
    Disconnect,
    Rm,
}

const KINDS: [Kind; 6] = [
    Kind::Run,
    Kind::NetworkCreate,
    Kind::NetworkRm,
    Kind::Connect,
    Kind::Disconnect,
    Kind::Rm,
];

/// Runs one request of each kind to completion (a network, a container on it with a published
/// port, connected to `bridge` and disconnected from its network, removed, and the network
/// removed) and returns how long each took, by kind.
fn warm_up(host: &Host) -> Vec<Duration> {
    let steps: [(Kind, &[&str]); 6] = [
        (Kind::NetworkCreate, &["network", "create", "warm"]),
        (
            Kind::Run,
            &[
                "run",
                "--name",
                "warm",
                "--network",
                "warm",
                "-p",
                "80",
                "--",
                "true",
            ],
        ),
        (
            Kind::Connect,
            &["network", "connect", DEFAULT_NETWORK, "warm"],
        ),
        (Kind::Disconnect, &["network", "disconnect", "warm", "warm"]),
        (Kind::Rm, &["rm", "-f", "warm"]),
        (Kind::NetworkRm, &["network", "rm", "warm"]),
    ];
    let mut took = vec![Duration::ZERO; KINDS.len()];
    for (kind, args) in steps {
        let started = Instant::now();
        host.ok(args);
        took[kind as usize] = started.elapsed();
    }
    took
}

/// A request that does real work on the daemon's current `state`: a new container with a
/// published port on one of its networks, a new network, removing a network no container
/// uses, connecting a container to a network it is not on, disconnecting one, removing one.
/// The containers made before the kills are never touched.
fn request(state: &State, random: &mut XorShift, serial: usize) -> (Kind, Vec<String>) {
    let containers: Vec<_> = state
        .containers
        .values()
        .filter(|c| !c.name.starts_with("steady"))
        .collect();
    let networks: Vec<&String> = state.networks.keys().collect();
    let pick = |random: &mut XorShift, n: usize| random.below(n as u64) as usize;
    loop {
        let kind = KINDS[pick(random, KINDS.len())];
        let args = match kind {
            Kind::Run if containers.len() < CONTAINERS => {
                let network = networks[pick(random, networks.len())];
                format!("run --name c{serial} --network {network} -p 80 -- true")
            }
            Kind::NetworkCreate if networks.len() <= NETWORKS => {
                format!("network create n{serial}")
            }
            Kind::NetworkRm => {
                let unused: Vec<_> = networks
                    .iter()
                    .filter(|n| **n != DEFAULT_NETWORK)
                    .filter(|n| state.endpoints_on(n).next().is_none())
                    .collect();
                if unused.is_empty() {
                    continue;
                }
                format!("network rm {}", unused[pick(random, unused.len())])
            }
            Kind::Connect | Kind::Disconnect | Kind::Rm if !containers.is_empty() => {
                let c = containers[pick(random, containers.len())];
                let on: Vec<&String> = c.endpoints.iter().map(|e| &e.network).collect();
                let off: Vec<_> = networks.iter().filter(|n| !on.contains(n)).collect();
                match kind {
                    Kind::Connect if !off.is_empty() => {
                        let network = off[pick(random, off.len())];
                        format!("network connect {network} {}", c.name)
                    }
                    Kind::Disconnect if !on.is_empty() => {
                        let network = on[pick(random, on.len())];
                        format!("network disconnect {network} {}", c.name)
                    }
                    Kind::Rm => format!("rm -f {}", c.name),
                    _ => continue,
                }
            }
            _ => continue,
        };
        return (kind, args.split(' ').map(String::from).collect());
    }
}

/// Waits for an interrupted request's CLI to give up (its connection died with the daemon).
fn wait_briefly(request: &mut Child, args: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while request.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "xnet {args:?} hangs");
        thread::sleep(Duration::from_millis(10));
    }
}

/// `ping`'s summary: packets sent and received.
fn ping_counts(summary: &str) -> (u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {summary}"));
    let number = |word: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let at = words.iter().position(|w| *w == word).unwrap();
        words[at - 1].parse().unwrap()
    };
    (number("packets"), number("received"))
}

/// The daemon's state file, as it was last written.
fn state(host: &Host) -> State {
    let text = fs::read_to_string(host.dir.join("state/state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every kernel object of the daemon's belongs to a record of its state, and no request is in
/// flight (the daemon is up and idle).
fn check_everything_is_owned(host: &Host) {
    let state = state(host);
    assert_eq!(state.in_flight, Vec::new(), "requests left in flight");
    let endpoints: Vec<_> = state
        .containers
        .values()
        .flat_map(|c| &c.endpoints)
        .collect();
    let veths: BTreeSet<String> = endpoints.iter().map(|e| e.host_ifname.clone()).collect();
    let ifindexes: BTreeSet<u32> = endpoints.iter().map(|e| e.host_ifindex).collect();

    let links: BTreeSet<String> = host
        .host_links()
        .into_iter()
        .filter(|l| l.starts_with("xv") || l.starts_with("xp"))
        .collect();
    assert_eq!(links, veths, "veths in the host namespace");

    let sandboxes: BTreeSet<String> = state
        .containers
        .values()
        .filter_map(|c| c.sandbox_key.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "default")
        .collect();
    let pinned: BTreeSet<String> = host.container_namespaces().into_iter().collect();
    assert_eq!(pinned, sandboxes, "namespace pins");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let netns_dir = host.netns_dir().display().to_string();
    for mount in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if let Some(name) = mount.strip_prefix(&format!("{netns_dir}/")) {
            assert!(
                name == "default" || sandboxes.contains(name),
                "namespace mount {mount} has no container"
            );
        }
    }

    let link_pins: BTreeSet<u32> = host
        .endpoint_link_pins()
        .iter()
        .map(|p| p.split('-').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(link_pins, ifindexes, "endpoint link pins");

    let maps = host.bpffs.join("maps");
    let map = |name: &str| Map::HashMap(MapData::from_pin(maps.join(name)).unwrap());
    let in_map: HashMap<_, u32, Endpoint> = HashMap::try_from(map("ENDPOINTS")).unwrap();
    let in_map: BTreeSet<u32> = in_map.keys().map(Result::unwrap).collect();
    assert_eq!(in_map, ifindexes, "ENDPOINTS");
    let neighbors: HashMap<_, NeighborKey, Neighbor> = HashMap::try_from(map("NEIGHBORS")).unwrap();
    let neighbors: BTreeSet<(u32, [u8; 4])> = neighbors
        .keys()
        .map(|k| k.unwrap())
        .map(|k| (k.network_id, k.ipv4))
        .collect();
    let recorded: BTreeSet<(u32, [u8; 4])> = endpoints
        .iter()
        .map(|e| (state.networks[&e.network].datapath_id, e.ipv4.octets()))
        .collect();
    assert_eq!(neighbors, recorded, "NEIGHBORS");

    let xv_routes: BTreeSet<String> = ["-4", "-6"]
        .iter()
        .flat_map(|family| json_lines(host, &["ip", "-j", family, "route", "show"]))
        .filter_map(|r| r["dev"].as_str().map(String::from))
        .filter(|dev| dev.starts_with("xv"))
        .collect();
    assert!(
        xv_routes.is_subset(&veths),
        "routes through unrecorded veths: {xv_routes:?}"
    );

    let gateways: BTreeSet<IpAddr> = state
        .networks
        .values()
        .flat_map(|n| n.subnets_and_gateways())
        .map(|(_, gateway)| gateway)
        .collect();
    let on_lo: BTreeSet<IpAddr> = json_lines(host, &["ip", "-j", "addr", "show", "dev", "lo"])
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .filter(|ip: &IpAddr| !ip.is_loopback())
        .collect();
    assert_eq!(on_lo, gateways, "addresses on the host's loopback");

    let published: BTreeSet<u16> = state
        .containers
        .values()
        .flat_map(|c| &c.ports)
        .flat_map(|m| m.host_ports.clone())
        .collect();
    let reserved = host.in_host(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"]);
    assert_eq!(
        reserved_ports(&String::from_utf8(reserved.stdout).unwrap()),
        published,
        "reserved ports"
    );
}

/// What a daemon has in the kernel, as names: its host namespace's links, its namespace pins
/// and its link pins.
fn objects_of(host: &Host) -> Vec<Vec<String>> {
    vec![
        host.host_links(),
        Host::entries(&host.netns_dir()),
        Host::entries(&host.bpffs.join("links")),
        Host::entries(&host.bpffs.join("maps")),
    ]
}

/// `ip -j …` in the host namespace, as a list of objects.
fn json_lines(host: &Host, cmd: &[&str]) -> Vec<Value> {
    let out = host.in_host(cmd);
    assert!(succeeded(&out), "{cmd:?}");
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
}

/// `ip_local_reserved_ports` ("8080,30000-30002") as ports.
fn reserved_ports(text: &str) -> BTreeSet<u16> {
    text.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
            None => r.parse().unwrap()..=r.parse().unwrap(),
        })
        .collect()
}

/// A small deterministic generator (xorshift64), so a failing seed can be replayed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn the_crash_tests_helpers_read_what_they_parse() {
    assert_eq!(
        ping_counts("10 packets transmitted, 9 received, 10% packet loss, time 450ms"),
        (10, 9)
    );
    assert_eq!(
        reserved_ports("8080,30000-30002\n"),
        BTreeSet::from([8080, 30000, 30001, 30002])
    );
    assert!(reserved_ports("\n").is_empty());
}
