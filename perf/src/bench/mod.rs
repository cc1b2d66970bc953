//! `xnet-bench` (run by `cargo xtask bench`): builds the labs, runs each selected scenario's
//! cases with the sides alternated within every round (xnet, bridge, Docker, ceiling, ... then
//! again), and reports median/min/max per side and the ratio ours / baseline.

mod cluster;
mod cni;
mod container;
mod cross_host;
mod dns;
mod lab;
mod lan;
mod lan_lab;
mod monitor;
mod overlay;
mod ports;
mod publish;
mod report;
mod scale;
mod scenarios;
mod side;
mod synthetic_cluster;
mod sys;
mod uplink;
mod vxlan;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use lab::Lab;
use report::{Row, SideResult, Summary};
use scenarios::{Case, Delivery, Effort, Frames, Sample, Scenario};
use side::{Role, Side};

/// Every scenario by name, in the order they run.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("bridge-pps", scenarios::bridge_pps),
    ("bridge-tcp", scenarios::bridge_tcp),
    ("bridge-rr", scenarios::bridge_rr),
    ("publish-pps", publish::publish_pps),
    ("publish-tcp", publish::publish_tcp),
    ("publish-rr", publish::publish_rr),
    ("publish-setup", publish::publish_setup),
    ("vxlan-mech-pps", vxlan::vxlan_mech_pps),
    ("vxlan-mech-tcp", vxlan::vxlan_mech_tcp),
    ("vxlan-mech-rr", vxlan::vxlan_mech_rr),
    ("overlay-pps", cross_host::overlay_pps),
    ("overlay-tcp", cross_host::overlay_tcp),
    ("overlay-rr", cross_host::overlay_rr),
    ("overlay-encrypted-tcp", cross_host::overlay_encrypted_tcp),
    ("overlay-encrypted-rr", cross_host::overlay_encrypted_rr),
    (
        "overlay-encrypted-pings",
        cross_host::overlay_encrypted_pings,
    ),
    ("overlay-scale", scale::overlay_scale),
    ("macvlan-pps", lan::macvlan_pps),
    ("macvlan-tcp", lan::macvlan_tcp),
    ("macvlan-rr", lan::macvlan_rr),
    ("ipvlan-pps", lan::ipvlan_pps),
    ("ipvlan-tcp", lan::ipvlan_tcp),
    ("monitor-cost", monitor::monitor_cost),
    ("dns-qps", dns::dns_qps),
    ("cni-add", cni::cni_add),
    ("cni-publish-pps", cni::cni_publish_pps),
];

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmark xnet against Docker's datapath, published ports and overlay networks \
             (rebuilt, and real Docker where installed), side by side; the VXLAN mechanisms \
             against Docker's overlay datapath; and xnet's control plane in a simulated \
             cluster against the targets of issue #13"
)]
pub struct BenchArgs {
    /// Scenarios to run (default: all): bridge-pps, bridge-tcp, bridge-rr, publish-pps,
    /// publish-tcp, publish-rr, publish-setup, vxlan-mech-pps, vxlan-mech-tcp, vxlan-mech-rr,
    /// overlay-pps, overlay-tcp, overlay-rr, overlay-encrypted-tcp, overlay-encrypted-rr,
    /// overlay-encrypted-pings, overlay-scale, macvlan-pps, macvlan-tcp, macvlan-rr,
    /// ipvlan-pps, ipvlan-tcp, monitor-cost, dns-qps, cni-add, cni-publish-pps.
    pub scenarios: Vec<String>,
    /// One round of short measurements.
    #[arg(long)]
    pub quick: bool,
    /// CI check: one round at tiny counts (100 published ports instead of 10,000; 2,000
    /// endpoints of 20 hosts instead of 100,000 of 1,000); fails unless frames arrive,
    /// iperf3 moves data, every endpoint reaches the map and the JSON is complete (with real
    /// Docker's side wherever the machine can run it).
    #[arg(long, conflicts_with = "quick")]
    pub smoke: bool,
    /// Rounds (default: 3; 1 with --quick or --smoke).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Where to write the JSON results (default: OUT_DIR/results.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where xnetd and xnet are (default: beside this program, i.e. target/release).
    #[arg(long)]
    pub xnet_bin_dir: Option<PathBuf>,
    /// Directory for the JSON and the SVG charts.
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
}

impl BenchArgs {
    fn effort(&self) -> Effort {
        let (rounds, effort) = if self.smoke {
            (
                1,
                Effort {
                    rounds: 1,
                    frames: Frames::Count(20_000),
                    tcp_seconds: 1,
                    rr_seconds: 0.5,
                    many_ports: 100,
                    per_rule_ports: 10,
                    docker_setup_ports: 20,
                    smoke: true,
                    cluster: scale::SMOKE_SIZE,
                    change_time: Duration::from_secs(2),
                },
            )
        } else if self.quick {
            (
                1,
                Effort {
                    rounds: 1,
                    frames: Frames::Seconds(1.0),
                    tcp_seconds: 2,
                    rr_seconds: 2.0,
                    many_ports: MANY_PORTS,
                    per_rule_ports: PER_RULE_PORTS,
                    docker_setup_ports: DOCKER_SETUP_PORTS,
                    smoke: false,
                    cluster: scale::ISSUE_SIZE,
                    change_time: Duration::from_secs(5),
                },
            )
        } else {
            (
                3,
                Effort {
                    rounds: 3,
                    frames: Frames::Seconds(2.0),
                    tcp_seconds: 5,
                    rr_seconds: 5.0,
                    many_ports: MANY_PORTS,
                    per_rule_ports: PER_RULE_PORTS,
                    docker_setup_ports: DOCKER_SETUP_PORTS,
                    smoke: false,
                    cluster: scale::ISSUE_SIZE,
                    change_time: Duration::from_secs(20),
                },
            )
        };
        Effort {
            rounds: self.rounds.unwrap_or(rounds).max(1),
            ..effort
        }
    }

    /// The arguments of `cargo xtask bench` that make this run again (paths left out).
    fn command_line(&self, effort: &Effort) -> String {
        let mut words = self.scenarios.clone();
        if self.smoke {
            words.push("--smoke".into());
        } else if self.quick {
            words.push("--quick".into());
        }
        if self.rounds.is_some() {
            words.push(format!("--rounds {}", effort.rounds));
        }
        words.join(" ")
    }

    fn cases(&self, effort: &Effort) -> anyhow::Result<Vec<Case>> {
        for wanted in &self.scenarios {
            if !SCENARIOS.iter().any(|(name, _)| name == wanted) {
                let known: Vec<_> = SCENARIOS.iter().map(|(name, _)| *name).collect();
                bail!("unknown scenario {wanted}; known: {}", known.join(", "));
            }
        }
        Ok(SCENARIOS
            .iter()
            .filter(|(name, _)| {
                self.scenarios.is_empty() || self.scenarios.iter().any(|w| w == name)
            })
            .flat_map(|(_, cases)| cases(effort))
            .collect())
    }
}

/// Ports published in the many-ports cases: a big range, as issue #5 asks.
const MANY_PORTS: u16 = 10_000;
/// Ports in the setup case that also installs iptables rules one exec at a time: with 10,000
/// ports (30,000 execs) one round of that would take minutes.
const PER_RULE_PORTS: u16 = 1_000;
/// Ports in the setup case that also publishes with real Docker: it starts two docker-proxy
/// processes per port (IPv4 and IPv6), and publishing 100 ports took 5 s here.
const DOCKER_SETUP_PORTS: u16 = 100;

/// A 1-minute load average above this before the run means the machine is not quiet.
const BUSY_LOAD: f64 = 0.5;

/// Set by SIGINT/SIGTERM. The signal also reaches the tools (same process group), so the
/// measurement under way fails; the flag then stops the run and the guards clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn main(args: &BenchArgs) -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let effort = args.effort();
    let cases = args.cases(&effort)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| args.out_dir.join("results.json"));

    let started = report::utc_now();
    let load = report::load_average();
    if load > BUSY_LOAD {
        eprintln!(
            "warning: load average {load:.2} before the run: something else is using the CPUs, \
             and the numbers will show it"
        );
    }
    let run_id = format!("xb{}", std::process::id());
    let sides: Vec<Side> = cases.iter().flat_map(|c| c.sides.iter().copied()).collect();
    eprintln!(
        "setting up the labs of {} in namespaces {run_id}-*",
        labs_of(&sides)
    );
    let xnet_bin_dir = args
        .xnet_bin_dir
        .clone()
        .unwrap_or_else(|| sys::tool("").to_path_buf());
    let lab = Lab::up(
        &run_id,
        &xnet_bin_dir,
        &publish::docker_published(),
        &sides,
        effort.cluster,
    )?;
    if let Some(docker) = &lab.docker {
        eprintln!("real Docker: private engine {}", docker.version()?);
    }
    if let Some(swarm) = &lab.swarm {
        eprintln!(
            "real Docker's overlay: two private engines {}",
            swarm.version()?
        );
    }
    // The results that must have real Docker's side, for the smoke check.
    let with_docker: Vec<String> = cases
        .iter()
        .filter(|case| {
            let docker = |side: &&Side| side.role() == Role::Docker;
            case.sides
                .iter()
                .filter(docker)
                .any(|side| lab.measures(*side))
        })
        .flat_map(|case| {
            case.metrics
                .iter()
                .map(|metric| format!("{}{}", case.name, metric.suffix))
        })
        .collect();
    let rows = measure_all(&lab, &cases, &effort)?;
    drop(lab);

    let machine = report::machine(load);
    println!("{}", report::table(&rows));
    println!("machine: {machine}");
    report::write_json(&rows, &machine, &json)?;
    let markdown = args.out_dir.join("results.md");
    let run = format!(
        "`cargo xtask bench {}`, started {started}",
        args.command_line(&effort)
    );
    report::write_markdown(&rows, &machine, &run, effort.rounds, &markdown)?;
    for row in &rows {
        report::write_svg(row, &args.out_dir)?;
    }
    println!(
        "wrote {}, {} (for the README) and {} SVG charts in {}",
        json.display(),
        markdown.display(),
        rows.len(),
        args.out_dir.display()
    );
    if args.smoke {
        let objects = report::verify_json(&json, &with_docker)?;
        println!("smoke: every scenario delivered, {objects} JSON objects complete");
    }
    Ok(())
}

/// What the setup builds, for its progress line.
fn labs_of(sides: &[Side]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for side in sides {
        let name = match side {
            Side::Xnet
            | Side::XnetMonitored
            | Side::XnetUnmonitored
            | Side::XnetCni
            | Side::ReferenceCni => "xnet",
            Side::XnetCluster => "a simulated cluster (etcd and one xnetd)",
            Side::DockerReal | Side::DockerDns => "real Docker",
            Side::VxlanBridge
            | Side::VxlanTunnelKey
            | Side::VxlanAdjustRoom
            | Side::VxlanAdjustRoomXdp => "the VXLAN mechanisms (two hosts each)",
            Side::XnetOverlay | Side::XnetEncryptedOverlay | Side::XnetPlainOverlay => {
                "xnet's cluster of two hosts"
            }
            Side::DockerOverlay => "Docker's overlay rebuilt on two hosts",
            Side::DockerRealOverlay | Side::DockerRealEncryptedOverlay => {
                "real Docker's swarm of two engines"
            }
            Side::XnetMacvlan | Side::XnetIpvlan | Side::KernelMacvlan => {
                "a LAN with xnet's macvlan and ipvlan networks and the kernel's macvlan"
            }
            _ => "the Docker-like bridge",
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

fn measure_all(lab: &Lab, cases: &[Case], effort: &Effort) -> anyhow::Result<Vec<Row>> {
    let measured = |case: &Case| -> Vec<Side> {
        let sides = case.sides.iter().copied();
        sides.filter(|side| lab.measures(*side)).collect()
    };
    let total: usize = cases
        .iter()
        .map(|c| measured(c).len() * effort.rounds)
        .sum();
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut rows = Vec::new();
    for case in cases {
        let sides = measured(case);
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sides.len()];
        for round in 1..=effort.rounds {
            for (side, taken) in sides.iter().zip(&mut samples) {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    bail!("interrupted");
                }
                progress.set_message(format!(
                    "{} {} (round {round}/{})",
                    case.name,
                    side.label(),
                    effort.rounds
                ));
                let sample = (case.measure)(lab, *side, effort)
                    .with_context(|| format!("{} on {}", case.name, side.label()))?;
                let line = format!(
                    "{} {} round {round}: {}",
                    case.name,
                    side.label(),
                    describe(case, &sample)
                );
                // Without a terminal the bar is hidden and would swallow the line; CI logs
                // want it.
                if progress.is_hidden() {
                    eprintln!("{line}");
                } else {
                    progress.println(line);
                }
                taken.push(sample);
                progress.inc(1);
            }
        }
        rows.extend(rows_of(case, &sides, &samples, effort.rounds));
    }
    progress.finish_and_clear();
    Ok(rows)
}

fn describe(case: &Case, sample: &Sample) -> String {
    let values: Vec<String> = case
        .metrics
        .iter()
        .zip(&sample.values)
        .map(|(m, v)| format!("{v:.3} {}", m.unit))
        .collect();
    match sample.frames {
        Some(d) => format!(
            "{} ({} of {} frames delivered)",
            values.join(", "),
            d.delivered,
            d.sent
        ),
        None => values.join(", "),
    }
}

/// One row per metric of the case, from the samples of the `sides` measured.
fn rows_of(case: &Case, sides: &[Side], samples: &[Vec<Sample>], rounds: usize) -> Vec<Row> {
    case.metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| Row {
            scenario: format!("{}{}", case.name, metric.suffix),
            unit: metric.unit,
            better: metric.better,
            compare: metric.compare,
            rounds,
            sides: sides
                .iter()
                .zip(samples)
                .map(|(side, taken)| SideResult {
                    side: *side,
                    summary: Summary::of(&taken.iter().map(|s| s.values[m]).collect::<Vec<_>>()),
                    frames: taken.iter().map(|s| s.frames).sum::<Option<Delivery>>(),
                })
                .collect(),
        })
        .collect()
}
