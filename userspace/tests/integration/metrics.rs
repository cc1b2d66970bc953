//! Prometheus metrics (`xnetd --metrics-addr`): off unless asked, scraped with curl as
//! Prometheus would, counters that move with real traffic.

use std::process::Command;

use xnet_dockerlab::skip;

use crate::common::{Host, XNETD};

const ADDRESS: &str = "127.0.0.1:9323";

/// One scrape of `host`'s metrics.
fn scrape(host: &Host) -> String {
    let out = host.in_host(&["curl", "-sf", &format!("http://{ADDRESS}/metrics")]);
    assert!(
        out.status.success(),
        "scraping failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the series named `name` whose labels include all of `labels` (`key="value"`).
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.iter().all(|l| series_labels.contains(l))
        })
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn metrics_are_off_unless_asked_and_follow_the_traffic() {
    if skip::unless_root() {
        return;
    }
    let plain = Host::start();
    let out = plain.in_host(&["curl", "-s", &format!("http://{ADDRESS}/metrics")]);
    assert!(
        !out.status.success(),
        "metrics served without --metrics-addr"
    );
    drop(plain);

    let host = Host::start_with(&["--metrics-addr", ADDRESS]);
    host.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.78.0.0/24", "back"]);
    host.run_sleeper("a", &["--network", "front"]);
    host.run_sleeper("b", &["--network", "front"]);
    host.run_sleeper("c", &["--network", "back"]);
    let (sa, b, c) = (host.sandbox("a"), host.ip_of("b"), host.ip_of("c"));

    let before = scrape(&host);
    assert!(before.ends_with("# EOF\n"), "not OpenMetrics:\n{before}");
    let a_tx = ["container=\"a\"", "network=\"front\"", "direction=\"tx\""];
    let b_rx = ["container=\"b\"", "network=\"front\"", "direction=\"rx\""];
    let other_network = ["reason=\"other-network\""];
    let packets = |text: &str, labels: &[&str]| {
        value(text, "xnet_endpoint_packets_total", labels)
            .unwrap_or_else(|| panic!("no packet counter {labels:?}:\n{text}"))
    };
    let dropped = |text: &str| {
        value(text, "xnet_drops_total", &other_network)
            .unwrap_or_else(|| panic!("no other-network drops:\n{text}"))
    };

    assert!(host.reaches(&sa, &b));
    let pinged = host.in_container(&sa, &["ping", "-c", "3", "-i", "0.2", &b]);
    assert!(pinged.status.success());
    assert!(host.cannot_reach(&sa, &c));
    let after = scrape(&host);
    assert!(packets(&after, &a_tx) >= packets(&before, &a_tx) + 3.0);
    assert!(packets(&after, &b_rx) >= packets(&before, &b_rx) + 3.0);
    let bytes = value(&after, "xnet_endpoint_bytes_total", &a_tx).expect("a byte counter");
    assert!(bytes >= 3.0 * 84.0, "{bytes} bytes for three pings or more");
    // Two pings across networks, each dropped as isolation says.
    assert!(dropped(&after) >= dropped(&before) + 2.0, "{after}");

    // Fill levels: three containers' endpoints, against the map's capacity.
    let endpoints = ["map=\"ENDPOINTS\""];
    assert_eq!(value(&after, "xnet_map_entries", &endpoints), Some(3.0));
    assert_eq!(value(&after, "xnet_map_capacity", &endpoints), Some(4096.0));
    assert!(value(&after, "xnet_map_capacity", &["map=\"NAT_FLOWS\""]).is_some());
    // The API's latencies, by route pattern (not by name).
    let created = [r#"route="/containers""#, r#"method="POST""#];
    assert_eq!(
        value(&after, "xnet_api_request_duration_seconds_count", &created),
        Some(3.0)
    );
    assert!(!after.contains("route=\"/containers/a\""), "{after}");
    // No cluster, no cluster series.
    assert!(!after.contains("xnet_cluster_store_up"), "{after}");

    // A container leaving takes its series with it.
    host.ok(&["rm", "-f", "c"]);
    let gone = scrape(&host);
    assert!(!gone.contains("container=\"c\""), "{gone}");
    assert_eq!(value(&gone, "xnet_map_entries", &endpoints), Some(2.0));
}

#[test]
fn a_taken_metrics_address_stops_xnetd_in_one_line() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start_with(&["--metrics-addr", ADDRESS]);
    let second = host.dir.join("second");
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", host.ns))
        .arg(XNETD)
        .args(["--metrics-addr", ADDRESS, "--socket"])
        .arg(second.join("xnet.sock"))
        .arg("--state-dir")
        .arg(second.join("state"))
        .arg("--bpffs")
        .arg(host.bpffs.join("second"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("binding --metrics-addr 127.0.0.1:9323"),
        "{stderr}"
    );
    assert!(
        !second.exists(),
        "the refused daemon made {}",
        second.display()
    );
    assert!(!host.bpffs.join("second").exists());
    // The first one still serves.
    assert!(scrape(&host).contains("xnet_map_entries"));
}
