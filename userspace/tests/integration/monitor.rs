//! `xnet monitor`: drops and traced frames streamed as they happen, filtered by type,
//! container and network; a flood rate-limited with the loss counted; the datapath's switch
//! (`MONITOR`, read from its pin) on only while a monitor is attached, and off again after
//! xnetd is killed with monitors attached and restarted.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    sync::mpsc::{Receiver, channel},
    thread,
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData};
use serde_json::Value;
use xnet_common::{MAP_MONITOR, MONITOR_DROPS, MONITOR_TRACE, MonitorConfig};
use xnet_dockerlab::skip;

use crate::common::{Host, succeeded};

/// A running `xnet monitor --format json …`, its lines as they come; killed on drop.
struct Monitor {
    child: Child,
    lines: Receiver<Value>,
    seen: Vec<Value>,
}

impl Monitor {
    fn start(host: &Host, args: &[&str]) -> Self {
        let mut full = vec!["monitor", "--format", "json"];
        full.extend_from_slice(args);
        let mut child = host
            .xnet_command(&full)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first event (seen so far or arriving within 5 s) that `matches`.
    fn find(&mut self, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(found) = self.seen.iter().find(|v| matches(v)) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(value) => self.seen.push(value),
                Err(_) => return None,
            }
        }
    }

    /// Every event of the last `wait`.
    fn collect(&mut self, wait: Duration) -> &[Value] {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(value) => self.seen.push(value),
                Err(_) => break,
            }
        }
        &self.seen
    }

    /// Whether the stream ended by itself (the daemon went), within 5 s.
    fn ends(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the datapath's programs are asked to report (`MONITOR`, from its pin).
fn monitor_kinds(host: &Host) -> u32 {
    let pin = host.bpffs.join("maps").join(MAP_MONITOR);
    let map = MapData::from_pin(&pin).unwrap();
    let array: Array<MapData, MonitorConfig> = Array::try_from(Map::Array(map)).unwrap();
    array.get(&0, 0).unwrap().kinds
}

/// Waits up to 5 s for the programs to be asked for `kinds`.
fn kinds_become(host: &Host, kinds: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if monitor_kinds(host) == kinds {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn event(kind: &str, reason: Option<&str>) -> impl Fn(&Value) -> bool {
    let kind = kind.to_string();
    let reason = reason.map(str::to_string);
    move |v: &Value| {
        v["type"] == kind.as_str() && reason.as_ref().is_none_or(|r| v["reason"] == r.as_str())
    }
}

#[test]
fn drops_and_traced_frames_stream_with_their_reason_addresses_and_container() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.78.0.0/24", "back"]);
    host.run_sleeper("a", &["--network", "front"]);
    host.run_sleeper("b", &["--network", "front"]);
    host.run_sleeper("c", &["--network", "back"]);
    let (sa, a, b, c) = (
        host.sandbox("a"),
        host.ip_of("a"),
        host.ip_of("b"),
        host.ip_of("c"),
    );
    assert_eq!(monitor_kinds(&host), 0, "events asked for with no monitor");

    let mut drops_of_a = Monitor::start(&host, &["--type", "drop", "--container", "a"]);
    let mut on_back = Monitor::start(&host, &["--type", "drop", "--network", "back"]);
    let mut traced = Monitor::start(&host, &["--type", "trace", "--container", "a"]);
    assert!(kinds_become(&host, MONITOR_DROPS | MONITOR_TRACE));

    // A ping across networks: an `other-network` drop with both addresses.
    assert!(host.cannot_reach(&sa, &c));
    let across = drops_of_a
        .find(event("drop", Some("other-network")))
        .expect("no other-network drop");
    assert_eq!(across["source"], a.as_str(), "{across}");
    assert_eq!(across["destination"], c.as_str(), "{across}");
    assert_eq!(across["protocol"], "icmp", "{across}");
    assert_eq!(across["icmp_type"], 8, "{across}");
    assert_eq!(across["container"], "a", "{across}");
    assert_eq!(across["network"], "front", "{across}");
    assert!(
        across["interface"].as_str().unwrap().starts_with("xv"),
        "{across}"
    );
    // Traced: what a sent, as it arrived, including to its own network.
    assert!(host.reaches(&sa, &b));
    let sent = traced
        .find(|v| v["type"] == "from-container" && v["destination"] == b.as_str())
        .expect("no from-container event for a ping to b");
    assert_eq!(sent["source"], a.as_str(), "{sent}");

    // A forged source address: the anti-spoofing drop, naming the forged address.
    let forged = "10.77.0.99";
    let out = host.in_container(
        &sa,
        &["ip", "addr", "add", &format!("{forged}/24"), "dev", "eth0"],
    );
    assert!(succeeded(&out));
    let out = host.in_container(
        &sa,
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", forged, &b],
    );
    assert!(!succeeded(&out), "a forged source got through");
    let spoofed = drops_of_a
        .find(event("drop", Some("spoofed-ip")))
        .expect("no spoofed-ip drop");
    assert_eq!(spoofed["source"], forged, "{spoofed}");

    // The filters: a's drops only, and nothing of a's in the monitor of network back.
    let seen = drops_of_a.collect(Duration::from_millis(300));
    assert!(
        seen.iter()
            .all(|v| v["type"] == "drop" && v["container"] == "a")
    );
    let seen = on_back.collect(Duration::from_millis(300));
    assert!(seen.iter().all(|v| v["network"] == "back"), "{seen:?}");

    // Monitors leaving switch the events off; the last one leaving, all of them.
    drop(traced);
    assert!(kinds_become(&host, MONITOR_DROPS));
    drop(drops_of_a);
    drop(on_back);
    assert!(kinds_become(&host, 0));

    let err = host.fails(&["monitor", "--container", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
    assert_eq!(monitor_kinds(&host), 0);
}

#[test]
fn a_flood_of_drops_is_rate_limited_and_a_killed_daemon_leaves_no_events_asked_for() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start_with(&["--monitor-rate", "5"]);
    host.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.78.0.0/24", "back"]);
    host.run_sleeper("a", &["--network", "front"]);
    host.run_sleeper("c", &["--network", "back"]);
    let (sa, c) = (host.sandbox("a"), host.ip_of("c"));
    let mut monitor = Monitor::start(&host, &["--type", "drop"]);
    assert!(kinds_become(&host, MONITOR_DROPS));

    // 300 drops in a fraction of a second, at most 5 events per second on each CPU.
    let out = host.in_container(&sa, &["ping", "-f", "-c", "300", "-w", "2", "-q", &c]);
    assert!(!succeeded(&out), "the flood got through");
    let lost = monitor
        .find(event("lost", None))
        .expect("no lost line for a flood over the limit");
    assert!(lost["count"].as_u64().unwrap() > 0, "{lost}");
    let drops = monitor
        .collect(Duration::from_millis(500))
        .iter()
        .filter(|v| v["type"] == "drop")
        .count();
    let cpus = thread::available_parallelism().unwrap().get();
    assert!(drops > 0, "no drop event at all");
    // The flood took under 3 s: 3 windows on each CPU at most.
    assert!(
        drops <= 5 * 3 * cpus,
        "{drops} drop events passed the limit"
    );

    // Killed with a monitor attached, the daemon leaves the switch on; its stream ends, and
    // the next start turns the switch off.
    host.kill_daemon();
    assert!(monitor.ends(), "the monitor outlived its daemon");
    assert_eq!(monitor_kinds(&host), MONITOR_DROPS);
    host.start_daemon();
    assert!(kinds_become(&host, 0));
}
