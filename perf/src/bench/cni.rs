//! The CNI plugin (issue #16) against the reference plugins podman and Kubernetes use,
//! `bridge` (with `host-local` addresses) chained with `portmap` (iptables), invoked as a
//! runtime invokes them:
//!
//! - `cni-add`: ADD then DEL of many pods (namespaces of the bench's own), each with one
//!   published port: the time per pod;
//! - `cni-publish-pps`: 64-byte UDP from the outside to a pod's published port, through the
//!   host's uplink: xnet-cni's pod on the xnet lab, the reference plugins' pod on the bridge
//!   lab's host (its uplink, portmap's DNAT rules).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{
    lab::Lab,
    scenarios::{
        Better, Case, Compare, Effort, GroOn, HIGHER_MPPS, Metric, Sample, Sender, send_and_count,
    },
    side::Side,
    sys::{self, Netns},
    uplink::{UPLINK, Uplink},
};

const SIDES: &[Side] = &[Side::XnetCni, Side::ReferenceCni];
/// Where Debian's reference plugins are.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
/// The reference side's pod subnet (xnet's pods go on the xnet lab's network).
const REFERENCE_SUBNET: &str = "10.66.0.0/16";
/// The first pod's published host port; the others follow.
const FIRST_HOST_PORT: u16 = 30000;

const PER_POD: &[Metric] = &[Metric {
    suffix: "",
    unit: "ms per pod",
    better: Better::Lower,
    compare: Compare::Ratio,
}];

pub fn cni_add(effort: &Effort) -> Vec<Case> {
    let pods = if effort.smoke { 5 } else { 100 };
    vec![Case {
        name: format!("cni-add/{pods}pods"),
        sides: SIDES,
        metrics: PER_POD,
        measure: Box::new(move |lab, side, _| measure(lab, side, pods)),
    }]
}

/// One CNI plugin invocation: `command` with `conf` on stdin, in `netns` when given (the
/// reference plugins make the bridge and the rules in the namespace they run in); the
/// result.
fn invoke(
    plugin: &Path,
    netns: Option<&Path>,
    command: &str,
    pod: (&str, &Path),
    conf: &Value,
) -> anyhow::Result<Value> {
    let mut cmd = match netns {
        Some(netns) => sys::in_netns(netns, plugin),
        None => Command::new(plugin),
    };
    let mut child = cmd
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", pod.0)
        .env("CNI_NETNS", pod.1)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", REFERENCE_PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", plugin.display()))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{} {command}: {stdout} {}",
        plugin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_str(stdout.trim()).unwrap_or(Value::Null))
}

/// The reference plugin `conf` names (its `type`), run in the namespace `host`.
fn reference(
    host: &Path,
    command: &str,
    pod: (&str, &Path),
    conf: &Value,
) -> anyhow::Result<Value> {
    let plugin = Path::new(REFERENCE_PLUGINS).join(conf["type"].as_str().unwrap_or_default());
    invoke(&plugin, Some(host), command, pod, conf)
}

/// How one side adds and deletes a pod.
enum Plugins {
    Xnet {
        plugin: PathBuf,
        conf: Value,
    },
    /// The reference chain, run in the host namespace `host`.
    Reference {
        host: PathBuf,
        data_dir: PathBuf,
    },
}

impl Plugins {
    /// Pod `index`'s published port: TCP 80 on a host port of its own, or for the packet
    /// rate UDP [`PPS_PORT`] on the same host port.
    fn port_mapping(index: u16) -> Value {
        let mapping = match index {
            PPS_POD => json!({"hostPort": PPS_PORT, "containerPort": PPS_PORT, "protocol": "udp"}),
            _ => {
                json!({"hostPort": FIRST_HOST_PORT + index, "containerPort": 80, "protocol": "tcp"})
            }
        };
        json!({"portMappings": [mapping]})
    }

    fn add(&self, index: u16, pod: (&str, &Path)) -> anyhow::Result<()> {
        match self {
            Plugins::Xnet { plugin, conf } => {
                let mut conf = conf.clone();
                conf["runtimeConfig"] = Self::port_mapping(index);
                invoke(plugin, None, "ADD", pod, &conf).map(drop)
            }
            Plugins::Reference { host, data_dir } => {
                let (bridge, mut portmap) = self.reference_confs(data_dir, index);
                portmap["prevResult"] = reference(host, "ADD", pod, &bridge)?;
                reference(host, "ADD", pod, &portmap).map(drop)
            }
        }
    }

    fn del(&self, index: u16, pod: (&str, &Path)) -> anyhow::Result<()> {
        match self {
            Plugins::Xnet { plugin, conf } => invoke(plugin, None, "DEL", pod, conf).map(drop),
            Plugins::Reference { host, data_dir } => {
                // A chain is deleted in reverse.
                let (bridge, portmap) = self.reference_confs(data_dir, index);
                reference(host, "DEL", pod, &portmap)?;
                reference(host, "DEL", pod, &bridge).map(drop)
            }
        }
    }

    /// The reference chain's two configurations, as a runtime derives them from the
    /// conflist.
    fn reference_confs(&self, data_dir: &Path, index: u16) -> (Value, Value) {
        let bridge = json!({
            "cniVersion": "1.0.0",
            "name": "bench-reference",
            "type": "bridge",
            "bridge": "cni-bench0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": REFERENCE_SUBNET,
                     "dataDir": data_dir.display().to_string()},
        });
        let portmap = json!({
            "cniVersion": "1.0.0",
            "name": "bench-reference",
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": Self::port_mapping(index),
        });
        (bridge, portmap)
    }
}

/// The plugins of `side`, the reference ones run in the namespace `host`.
fn plugins(lab: &Lab, side: Side, host: PathBuf) -> Plugins {
    match side {
        Side::XnetCni => Plugins::Xnet {
            plugin: sys::tool("xnet-cni"),
            conf: json!({
                "cniVersion": "1.0.0",
                "name": "bench",
                "type": "xnet",
                "socket": lab.xnet().socket().display().to_string(),
            }),
        },
        _ => Plugins::Reference {
            host,
            data_dir: std::env::temp_dir().join(format!("xnet-bench-{}-host-local", lab.run_id())),
        },
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        if let Plugins::Reference { data_dir, .. } = self {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
}

fn measure(lab: &Lab, side: Side, pods: u16) -> anyhow::Result<Sample> {
    let run_id = lab.run_id();
    // The reference plugins' pods get a host namespace of their own (their bridge, their
    // rules); xnet-cni's go to the xnet lab's daemon.
    let host = Netns::create(format!("{run_id}-cni-ref"))?;
    let plugins = plugins(lab, side, host.path());
    let namespaces: Vec<Netns> = (0..pods)
        .map(|i| Netns::create(format!("{run_id}-pod{i}")))
        .collect::<anyhow::Result<_>>()?;
    let ids: Vec<String> = (0..pods).map(|i| format!("{run_id}pod{i}")).collect();
    let started = Instant::now();
    for (i, (netns, id)) in namespaces.iter().zip(&ids).enumerate() {
        plugins.add(i as u16, (id, &netns.path()))?;
    }
    for (i, (netns, id)) in namespaces.iter().zip(&ids).enumerate() {
        plugins.del(i as u16, (id, &netns.path()))?;
    }
    let per_pod = started.elapsed().as_secs_f64() * 1000.0 / f64::from(pods);
    Ok(Sample {
        values: vec![per_pod],
        frames: None,
    })
}

/// The pod index of the packet-rate case, and the UDP port its pod publishes.
const PPS_POD: u16 = u16::MAX;
const PPS_PORT: u16 = 10_000;

pub fn cni_publish_pps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "cni-publish-pps/1port".into(),
        sides: SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(publish_pps),
    }]
}

fn publish_pps(lab: &Lab, side: Side, effort: &Effort) -> anyhow::Result<Sample> {
    // xnet-cni's pod on the xnet lab; the reference pod on a host of its own with an uplink
    // like the xnet lab's (no other rules in its way).
    let reference = match side {
        Side::XnetCni => None,
        _ => {
            let host = Netns::create(format!("{}-cni-ref", lab.run_id()))?;
            let uplink = Uplink::up(&host, format!("{}-cni-ref-ext", lab.run_id()))?;
            Some((uplink, host))
        }
    };
    let (host, uplink): (PathBuf, &Uplink) = match &reference {
        None => (lab.xnet().pair.host.clone(), &lab.xnet().uplink),
        Some((uplink, host)) => (host.path(), uplink),
    };
    let plugins = plugins(lab, side, host.clone());
    let pod = Netns::create(format!("{}-cni-pps-{}", lab.run_id(), side.label()))?;
    let id = format!("{}pps", lab.run_id());
    plugins.add(PPS_POD, (&id, &pod.path()))?;
    let measured = (|| {
        let _gro = GroOn::new(&host, vec![UPLINK])?;
        let sender = Sender::from_outside(uplink, PPS_PORT);
        send_and_count(&sender, (&pod.path(), "eth0"), "tc", effort.frames)
    })();
    plugins.del(PPS_POD, (&id, &pod.path()))?;
    measured
}
