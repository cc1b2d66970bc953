//! `cargo xtask lab up|exec|status|down`: a lab of simulated hosts (xnet-lab) on this machine,
//! from the command line. One at a time, under a fixed prefix, so each command finds the lab
//! the last `up` made, from any shell.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use xnet_lab::{
    Lab, Spec,
    topology::{UNDERLAY, UNDERLAY_PREFIX_LEN, UNDERLAY6, UNDERLAY6_PREFIX_LEN},
};

use crate::{build_release, setup, target_dir};

/// The command line's lab: namespaces `xl-h1`, …, record in /run/xnet-lab/xl (tests use
/// their own prefixes, `xt<pid>-l<n>`, and never meet it).
const PREFIX: &str = "xl";

#[derive(Subcommand)]
pub enum Command {
    /// Install what is missing, build (release), then bring up hosts with an xnetd each and
    /// an etcd cluster, on one underlay
    Up {
        /// Simulated hosts, h1, h2, … (default 3)
        #[arg(long)]
        hosts: Option<usize>,
        /// etcd members, e1, e2, … (default 1)
        #[arg(long)]
        etcd_members: Option<usize>,
        /// More arguments for every xnetd, e.g. `-- --log-level debug`
        #[arg(last = true)]
        xnetd_args: Vec<String>,
    },
    /// Run a command inside a node's network namespace: a host (h1, …; with XNET_HOST set to
    /// its xnetd and the release binaries first on PATH), an etcd member (e1, …), the router
    /// (out) or the switch (sw)
    Exec {
        node: String,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show each host's xnetd and each etcd member; fail if any is down
    Status,
    /// Stop the lab's processes, remove its namespaces, pins and directories
    Down,
}

pub fn lab(command: Command) -> Result<()> {
    match command {
        Command::Up {
            hosts,
            etcd_members,
            xnetd_args,
        } => up(hosts, etcd_members, xnetd_args),
        Command::Exec { node, command } => exec(&node, &command),
        Command::Status => status(),
        Command::Down => down(),
    }
}

fn up(hosts: Option<usize>, etcd_members: Option<usize>, xnetd_args: Vec<String>) -> Result<()> {
    let mut spec = Spec::new(PREFIX, target_dir().join("release"));
    spec.hosts = hosts.unwrap_or(spec.hosts);
    spec.etcd_members = etcd_members.unwrap_or(spec.etcd_members);
    spec.xnetd_args = xnetd_args;
    // Before installing and building, which take a while: these refusals take none.
    spec.validate().context("lab up")?;
    if Lab::load(PREFIX)?.is_some() {
        bail!("lab up: lab {PREFIX} is already up; run `cargo xtask lab down` first");
    }
    setup::ensure_installed()?;
    build_release(&["xnet"]).context("lab up: build")?;
    println!(
        "==> lab {PREFIX}: {} host(s), {} etcd member(s)",
        spec.hosts, spec.etcd_members
    );
    let lab = Lab::up(spec).context("lab up")?;
    print_summary(&lab);
    lab.leave_running();
    Ok(())
}

fn print_summary(lab: &Lab) {
    let router = lab.router();
    println!("lab {} is up ({}):", lab.prefix(), lab.dir().display());
    println!(
        "  underlay {UNDERLAY}/{UNDERLAY_PREFIX_LEN} and {UNDERLAY6}/{UNDERLAY6_PREFIX_LEN}, \
         a bridge in namespace {}",
        lab.switch_netns().display()
    );
    println!(
        "  router   out  {} {}  (the hosts' default route; {} and {} beyond it)",
        router.address, router.address6, router.outside, router.outside6
    );
    for member in lab.members() {
        println!(
            "  etcd     {:<4} {}  log {}",
            member.name,
            member.client_url(),
            member.log.display()
        );
    }
    for host in lab.hosts() {
        println!(
            "  host     {:<4} {} {}  {}  log {}",
            host.name,
            host.address,
            host.address6,
            host.xnet_host(),
            host.log.display()
        );
    }
    println!(
        "  every xnetd: --uplink eth0 --cluster-store {}",
        lab.cluster_store()
    );
    let (h1, last) = (
        &lab.hosts()[0],
        lab.hosts().last().expect("a lab has hosts"),
    );
    let e1 = &lab.members()[0];
    println!("try it:");
    println!("  cargo xtask lab exec {} -- xnet network ls", h1.name);
    println!(
        "  cargo xtask lab exec {} -- ping -c 1 {}",
        last.name, h1.address
    );
    println!(
        "  cargo xtask lab exec {} -- curl -s {}/health",
        e1.name,
        e1.client_url()
    );
    println!("  cargo xtask lab status");
    println!("  cargo xtask lab down");
}

/// The command line's lab, which must be up.
fn the_lab() -> Result<Lab> {
    Lab::load(PREFIX)?.with_context(|| format!("no lab {PREFIX} is up (`cargo xtask lab up`)"))
}

fn exec(node: &str, command: &[String]) -> Result<()> {
    let lab = the_lab().context("lab exec")?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let mut cmd = lab.command(node, program).context("lab exec")?;
    // exec: the command replaces xtask, so the terminal, signals and exit code are its own.
    Err(cmd.args(args).exec()).context("lab exec: cannot start nsenter")
}

fn status() -> Result<()> {
    let lab = the_lab().context("lab status")?;
    println!("lab {} ({}):", lab.prefix(), lab.dir().display());
    let mut down = 0;
    for host in lab.hosts() {
        let running = lab.xnetd_running(&host.name)?;
        let answers = lab.xnetd_answers(&host.name)?;
        let state = match (host.pid(), running, answers) {
            (Some(pid), true, true) => format!("xnetd {pid} answers on {}", host.xnet_host()),
            (Some(pid), true, false) => format!("xnetd {pid} runs but does not answer"),
            _ => "xnetd is not running".to_string(),
        };
        let ok = running && answers;
        down += usize::from(!ok);
        let log = (!ok).then(|| format!(" (log {})", host.log.display()));
        println!(
            "  host {:<4} {:<13} {state}{}",
            host.name,
            host.address,
            log.unwrap_or_default()
        );
    }
    for member in lab.members() {
        let running = lab.etcd_running(&member.name)?;
        let healthy = lab.etcd_healthy(&member.name)?;
        let state = match (member.pid(), running, healthy) {
            (Some(pid), true, true) => format!("etcd {pid} is healthy"),
            (Some(pid), true, false) => format!("etcd {pid} runs but is not healthy"),
            _ => "etcd is not running".to_string(),
        };
        let ok = running && healthy;
        down += usize::from(!ok);
        let log = (!ok).then(|| format!(" (log {})", member.log.display()));
        println!(
            "  etcd {:<4} {:<24} {state}{}",
            member.name,
            member.client_url(),
            log.unwrap_or_default()
        );
    }
    if down > 0 {
        bail!("lab status: {down} daemon(s) down or not answering");
    }
    Ok(())
}

fn down() -> Result<()> {
    let Some(lab) = Lab::load(PREFIX)? else {
        println!("no lab {PREFIX} is up");
        return Ok(());
    };
    lab.down().context("lab down")?;
    println!("lab {PREFIX} is down");
    Ok(())
}
