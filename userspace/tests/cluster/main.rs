//! Clusters of simulated hosts (xnet-lab: host namespaces with their own xnetd, etcd members
//! in namespaces, a switch between them): overlay networks made on one host are every host's,
//! names, VNIs and addresses stay unique when hosts act at the same moment, a dead host leaves
//! within its lease's TTL, a restarted one keeps its lease, and a store that does not answer
//! refuses overlay changes and nothing else. Need root.

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    thread,
    time::{Duration, Instant},
};

mod docker;
mod encrypted;
mod overlay;

use serde_json::Value;
use xnet::{
    cluster::{
        config::{Advertise, ClusterConfig},
        endpoints::AddressRequest,
        records::{EndpointRecord, HostRecord},
        store::{LEASE_TTL_SECONDS, Store},
    },
    os::netns,
    state::{
        IpConfig, Mac,
        host_key::{HOST_KEY_FILE, HostKey},
    },
};
use xnet_dockerlab::skip;
use xnet_lab::{Lab, Spec, eventually};

const XNETD: &str = env!("CARGO_BIN_EXE_xnetd");

fn lab(hosts: usize, etcd_members: usize) -> Lab {
    lab_with(hosts, etcd_members, &[])
}

/// A lab whose xnetds get `xnetd_args` too.
fn lab_with(hosts: usize, etcd_members: usize, xnetd_args: &[&str]) -> Lab {
    let bin_dir = Path::new(XNETD).parent().unwrap().to_path_buf();
    Lab::up(Spec {
        hosts,
        etcd_members,
        xnetd_args: xnetd_args.iter().map(|a| a.to_string()).collect(),
        ..Spec::for_test(bin_dir)
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// `xnet ARGS` on `host`, which must succeed; its stdout.
fn ok(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = lab.xnet(host, args).unwrap();
    assert!(
        out.status.success(),
        "{host}: xnet {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.xnetd_log(host).unwrap_or_default()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `xnet ARGS` on `host`, which must fail with one line; that line.
fn fails(lab: &Lab, host: &str, args: &[&str]) -> String {
    one_line_failure(&lab.xnet(host, args).unwrap(), args)
}

fn one_line_failure(out: &Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert!(!out.status.success(), "xnet {args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "xnet {args:?}: {stderr:?}");
    stderr
}

/// `network inspect NAME` on `host`, if it knows the network.
fn inspect(lab: &Lab, host: &str, name: &str) -> Option<Value> {
    let out = lab.xnet(host, &["network", "inspect", name]).unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone())
}

/// Runs async `work` on a thread of its own inside the namespace at `netns` (where the lab's
/// etcd is reachable), as a host's xnetd would.
fn in_netns<T: Send + 'static>(
    netns: PathBuf,
    work: impl AsyncFnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        netns::enter(&netns).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work())
    })
}

/// A connection to the lab's store, as host `name` with `address` would make it.
async fn store_of(lab_urls: Vec<String>, name: &str, address: Ipv4Addr) -> Store {
    let config = ClusterConfig {
        endpoints: lab_urls,
        advertise: Advertise::Address(address),
        host_name: name.into(),
        vxlan_port: None,
    };
    Store::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn overlay_networks_made_on_one_host_are_every_hosts() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(3, 1);
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "ov1"],
    );
    for host in ["h1", "h2", "h3"] {
        let seen = eventually(Duration::from_secs(5), || {
            inspect(&lab, host, "ov1").is_some()
        });
        assert!(seen, "{host} does not list ov1");
        let net = inspect(&lab, host, "ov1").unwrap();
        assert_eq!(net["Driver"], "overlay", "{host}: {net}");
        assert_eq!(net["Scope"], "global", "{host}: {net}");
        assert_eq!(net["Attachable"], true, "{host}: {net}");
        assert_eq!(
            net["Options"]["com.docker.network.driver.overlay.vxlanid_list"], "4096",
            "{host}: {net}"
        );
        assert_eq!(
            net["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24",
            "{host}: {net}"
        );
    }
    let vni = "com.docker.network.driver.overlay.vxlanid_list=5000";
    ok(
        &lab,
        "h2",
        &["network", "create", "-d", "overlay", "-o", vni, "ov2"],
    );
    assert!(eventually(Duration::from_secs(5), || inspect(
        &lab, "h3", "ov2"
    )
    .is_some()));
    let err = fails(&lab, "h3", &["network", "create", "-d", "overlay", "ov1"]);
    assert!(
        err.contains("network with name ov1 already exists"),
        "{err}"
    );
    let err = fails(
        &lab,
        "h3",
        &["network", "create", "-d", "overlay", "-o", vni, "ov3"],
    );
    assert!(err.contains("VXLAN id 5000 is already used"), "{err}");
    let err = fails(
        &lab,
        "h1",
        &["run", "--name", "c", "--network", "ov2", "--", "true"],
    );
    assert!(err.contains("network ov2 not manually attachable"), "{err}");

    ok(&lab, "h3", &["network", "rm", "ov2"]);
    for host in ["h1", "h2", "h3"] {
        let gone = eventually(Duration::from_secs(5), || {
            inspect(&lab, host, "ov2").is_none()
        });
        assert!(gone, "{host} still lists ov2");
    }
}

#[test]
fn hosts_creating_at_the_same_moment_never_share_a_name_or_a_vni() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(3, 1);
    // The same name from every host at once: exactly one wins.
    let racers: Vec<_> = ["h1", "h2", "h3"]
        .iter()
        .map(|host| {
            lab.command(host, "xnet")
                .unwrap()
                .args(["network", "create", "-d", "overlay", "same"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let won = racers
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().status.success())
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "one network per name");
    // Different names at once: every VNI differs.
    let creators: Vec<_> = (0..9)
        .map(|i| {
            let host = format!("h{}", i % 3 + 1);
            lab.command(&host, "xnet")
                .unwrap()
                .args(["network", "create", "-d", "overlay", &format!("n{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for creator in creators {
        let out = creator.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every host lists all nine, each with a VNI and a subnet of its own.
    let nets: Vec<Value> = (0..9)
        .map(|i| {
            let name = format!("n{i}");
            let listed = eventually(Duration::from_secs(5), || {
                inspect(&lab, "h1", &name).is_some()
            });
            assert!(listed, "h1 lacks {name}:\n{}", lab.xnetd_log("h1").unwrap());
            inspect(&lab, "h1", &name).unwrap()
        })
        .collect();
    let vnis: BTreeSet<String> = nets
        .iter()
        .map(|n| n["Options"]["com.docker.network.driver.overlay.vxlanid_list"].to_string())
        .collect();
    let subnets: BTreeSet<String> = nets
        .iter()
        .map(|n| n["IPAM"]["Config"][0]["Subnet"].to_string())
        .collect();
    assert_eq!(subnets.len(), 9, "{subnets:?}");
    assert_eq!(vnis.len(), 9, "{vnis:?}");
}

#[test]
fn three_hosts_registering_a_hundred_endpoints_each_at_once_get_three_hundred_addresses() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(3, 1);
    let config: IpConfig<ipnet::Ipv4Net> = IpConfig {
        subnet: "10.55.0.0/16".parse().unwrap(),
        gateway: "10.55.0.1".parse().unwrap(),
        ip_range: None,
    };
    let claimers: Vec<_> = lab
        .hosts()
        .iter()
        .map(|host| {
            let (urls, name, address) = (lab.etcd_urls(), host.name.clone(), host.address);
            in_netns(host.netns_path(), async move || {
                let mut store = store_of(urls, &name, address).await;
                let record = HostRecord {
                    id: format!("claims-{name}"),
                    name: name.clone(),
                    address,
                    public_key: String::new(),
                };
                let lease = store.join(&record, None).await.unwrap();
                let mut claimed = Vec::new();
                for i in 0..100 {
                    let mut record = EndpointRecord {
                        id: format!("{name}-{i}"),
                        network: "claims".into(),
                        host: record.id.clone(),
                        container: format!("c{i}"),
                        ipv4: Ipv4Addr::UNSPECIFIED,
                        ipv6: None,
                        mac: Mac::random().unwrap(),
                    };
                    let request = AddressRequest {
                        ipv4: &config,
                        ipv6: None,
                        requested4: None,
                        requested6: None,
                    };
                    store
                        .register_endpoint(&mut record, request, lease)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    claimed.push(record.ipv4);
                }
                claimed
            })
        })
        .collect();
    let all: Vec<Ipv4Addr> = claimers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let distinct: BTreeSet<Ipv4Addr> = all.iter().copied().collect();
    assert_eq!(all.len(), 300);
    assert_eq!(distinct.len(), 300, "an address was handed out twice");
    assert!(!distinct.contains(&config.gateway));
}

#[test]
fn each_host_publishes_its_own_public_key_and_keeps_the_private_one() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(2, 1);
    let h1 = lab.host("h1").unwrap();
    let (urls, address) = (lab.etcd_urls(), h1.address);
    let published = move || -> Vec<HostRecord> {
        let urls = urls.clone();
        in_netns(h1.netns_path(), async move || {
            store_of(urls, "observer", address)
                .await
                .hosts()
                .await
                .unwrap()
        })
        .join()
        .unwrap()
    };
    assert!(eventually(Duration::from_secs(5), || published().len() == 2));
    let records = published();
    for host in lab.hosts() {
        let file = host.state_dir.join(HOST_KEY_FILE);
        let private = std::fs::read_to_string(&file).unwrap();
        let key = HostKey::load_or_create(&host.state_dir).unwrap();
        let record = records.iter().find(|r| r.name == host.name).unwrap();
        assert_eq!(record.public_key, key.public_base64(), "{}", host.name);
        // Only the public half leaves the host.
        let all = serde_json::to_string(&records).unwrap();
        assert!(!all.contains(private.trim()), "{}'s private key", host.name);
    }
    assert_ne!(records[0].public_key, records[1].public_key);
}

#[test]
fn a_dead_host_leaves_within_the_lease_ttl_and_a_restarted_one_keeps_its_lease() {
    if skip::unless_root() {
        return;
    }
    let mut lab = lab(3, 1);
    let hosts = |lab: &Lab| -> BTreeSet<String> {
        let h1 = lab.host("h1").unwrap();
        let (urls, address) = (lab.etcd_urls(), h1.address);
        in_netns(h1.netns_path(), async move || {
            let mut store = store_of(urls, "observer", address).await;
            store
                .hosts()
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        })
        .join()
        .unwrap()
    };
    assert!(eventually(Duration::from_secs(5), || hosts(&lab).len() == 3));

    // Restarted after a SIGKILL: the same lease, so the others never see it leave.
    let lease = |lab: &Lab| -> Value {
        let state =
            std::fs::read_to_string(lab.host("h2").unwrap().state_dir.join("state.json")).unwrap();
        serde_json::from_str::<Value>(&state).unwrap()["cluster"]["lease"].clone()
    };
    let before = lease(&lab);
    assert!(before.is_i64(), "{before}");
    lab.kill_xnetd("h2").unwrap();
    lab.start_xnetd("h2").unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        lab.xnetd_log("h2")
            .unwrap()
            .matches("joined the cluster")
            .count()
            >= 2
    }));
    assert_eq!(lease(&lab), before, "h2 took a new lease");
    assert_eq!(hosts(&lab).len(), 3);

    // Dead for good: gone once its lease runs out, and not much later.
    lab.kill_xnetd("h3").unwrap();
    let killed = Instant::now();
    let ttl = Duration::from_secs(LEASE_TTL_SECONDS as u64);
    assert!(
        eventually(ttl + Duration::from_secs(5), || !hosts(&lab).contains("h3")),
        "h3 is still a member {:?} after its death",
        killed.elapsed()
    );
    let gone_after = killed.elapsed();
    assert!(
        gone_after > ttl / 2,
        "h3 left after {gone_after:?}, before its lease could expire"
    );
    assert_eq!(hosts(&lab), BTreeSet::from(["h1".into(), "h2".into()]));
}

#[test]
fn a_store_that_does_not_answer_refuses_overlay_changes_and_nothing_else() {
    if skip::unless_root() {
        return;
    }
    let mut lab = lab(2, 1);
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "ov1"],
    );
    assert!(eventually(Duration::from_secs(5), || inspect(
        &lab, "h2", "ov1"
    )
    .is_some()));
    lab.stop_etcd("e1").unwrap();

    let err = fails(&lab, "h1", &["network", "create", "-d", "overlay", "ov2"]);
    assert!(
        err.contains("the cluster store") && err.contains("does not answer"),
        "{err}"
    );
    let err = fails(&lab, "h2", &["network", "rm", "ov1"]);
    assert!(err.contains("does not answer"), "{err}");
    // Everything else works: bridge networks, and what the hosts know of the cluster.
    ok(&lab, "h2", &["network", "create", "local"]);
    ok(
        &lab,
        "h2",
        &["run", "--name", "c", "--network", "local", "--", "true"],
    );
    assert!(inspect(&lab, "h1", "ov1").is_some() && inspect(&lab, "h2", "ov1").is_some());

    lab.start_etcd("e1").unwrap();
    assert!(
        eventually(Duration::from_secs(15), || {
            lab.xnet("h1", &["network", "create", "-d", "overlay", "ov2"])
                .unwrap()
                .status
                .success()
        }),
        "h1 never got back to the store:\n{}",
        lab.xnetd_log("h1").unwrap()
    );
    assert!(eventually(Duration::from_secs(10), || inspect(
        &lab, "h2", "ov2"
    )
    .is_some()));
}

#[test]
fn a_three_member_store_losing_one_member_changes_nothing() {
    if skip::unless_root() {
        return;
    }
    let mut lab = lab(2, 3);
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "before"],
    );
    lab.stop_etcd("e1").unwrap();
    // A host whose member went away connects to the next one at once; a request in that
    // moment may be refused, so a user sees at most a retry.
    assert!(
        eventually(Duration::from_secs(3), || {
            lab.xnet("h2", &["network", "create", "-d", "overlay", "after"])
                .unwrap()
                .status
                .success()
        }),
        "h2:\n{}",
        lab.xnetd_log("h2").unwrap()
    );
    for name in ["before", "after"] {
        assert!(
            eventually(Duration::from_secs(10), || inspect(&lab, "h1", name)
                .is_some()),
            "h1 lacks {name}"
        );
    }
}

#[test]
fn a_network_of_the_cluster_that_clashes_with_a_hosts_own_is_left_out_there() {
    if skip::unless_root() {
        return;
    }
    let lab = lab(2, 1);
    // h2 has a network of its own where the overlay's default subnet would be.
    ok(
        &lab,
        "h2",
        &["network", "create", "--subnet", "10.0.0.0/24", "mine"],
    );
    ok(
        &lab,
        "h1",
        &["network", "create", "-d", "overlay", "--attachable", "ov"],
    );
    let net = inspect(&lab, "h1", "ov").unwrap();
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24", "{net}");
    assert!(
        eventually(Duration::from_secs(5), || {
            lab.xnetd_log("h2")
                .unwrap()
                .contains("clashes with this host's network mine")
        }),
        "{}",
        lab.xnetd_log("h2").unwrap()
    );
    assert!(inspect(&lab, "h2", "ov").is_none());
    // The others of the cluster still reach h2.
    ok(
        &lab,
        "h1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.9.0.0/24",
            "ov2",
        ],
    );
    assert!(eventually(Duration::from_secs(5), || inspect(
        &lab, "h2", "ov2"
    )
    .is_some()));
}

/// The overlay networks `host` lists, by name and id.
fn overlays(lab: &Lab, host: &str) -> BTreeSet<(String, String)> {
    ok(lab, host, &["network", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|n| n["Driver"] == "overlay")
        .map(|n| (n["Name"].to_string(), n["ID"].to_string()))
        .collect()
}

#[test]
fn a_host_killed_while_creating_overlays_agrees_with_the_cluster_after_its_restart() {
    if skip::unless_root() {
        return;
    }
    let mut lab = lab(2, 1);
    for (i, delay_ms) in [0u64, 5, 10, 15, 20, 30, 40, 60].into_iter().enumerate() {
        let mut create = lab
            .command("h1", "xnet")
            .unwrap()
            .args(["network", "create", "-d", "overlay", &format!("k{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(delay_ms));
        lab.kill_xnetd("h1").unwrap();
        create.wait().unwrap();
        lab.start_xnetd("h1").unwrap();
    }
    // Whatever reached the store is every host's, and nothing else is anyone's.
    let agreed = eventually(Duration::from_secs(10), || {
        overlays(&lab, "h1") == overlays(&lab, "h2")
    });
    assert!(
        agreed,
        "h1 {:?} and h2 {:?} disagree:\n{}",
        overlays(&lab, "h1"),
        overlays(&lab, "h2"),
        lab.xnetd_log("h1").unwrap()
    );
    assert!(
        !overlays(&lab, "h1").is_empty(),
        "no create got through: the kills came too early to test anything"
    );
    // h1's loopback holds exactly its networks' gateways: nothing a killed create added.
    let state =
        std::fs::read_to_string(lab.host("h1").unwrap().state_dir.join("state.json")).unwrap();
    let state: xnet::state::State = serde_json::from_str(&state).unwrap();
    assert!(state.in_flight.is_empty(), "{:?}", state.in_flight);
    let gateways: BTreeSet<String> = state
        .networks
        .values()
        .flat_map(|n| n.subnets_and_gateways())
        .map(|(_, gateway)| gateway.to_string())
        .collect();
    let out = lab
        .run("h1", &["ip", "-j", "addr", "show", "dev", "lo"])
        .unwrap();
    let on_lo: BTreeSet<String> = serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(String::from))
        .filter(|ip| ip != "127.0.0.1" && ip != "::1")
        .collect();
    assert_eq!(on_lo, gateways);
}
