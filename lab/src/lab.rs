//! [`Lab`]: bringing a lab up, driving its nodes, and finding one another process brought up.

use std::{
    collections::HashMap,
    env,
    ffi::OsStr,
    fs, io,
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;

use crate::{
    etcd, netns,
    process::{self, Proc},
    record::{Host, Member, Record, Router, netns_path},
    teardown,
    topology::{ROUTER, RUN_DIR, SWITCH, Spec, UNDERLAY_PREFIX_LEN, UNDERLAY6_PREFIX_LEN},
    xnetd,
};

/// The bridge in the switch's namespace.
const BRIDGE: &str = "br0";
/// Present where br_netfilter is loaded.
const BR_NETFILTER_SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
const POLL: Duration = Duration::from_millis(100);

/// A lab of simulated hosts (see the crate's documentation).
pub struct Lab {
    record: Record,
    /// Daemons this process started, by node name: reaped when they end, so none lingers as
    /// a zombie while the lab lives on.
    children: HashMap<String, Child>,
    /// Whether dropping the lab takes it down: a lab this process brought up, not one it
    /// loaded from the record another process wrote.
    owned: bool,
}

impl Lab {
    /// Builds the lab `spec` describes and waits until every etcd member is healthy and every
    /// xnetd answers. Refused if a lab with the same prefix is up. On failure, whatever was
    /// made is removed again.
    pub fn up(spec: Spec) -> Result<Self> {
        spec.validate()?;
        for binary in ["xnetd", "xnet"] {
            let path = spec.bin_dir.join(binary);
            if !path.is_file() {
                bail!(
                    "no {binary} in {} (build xnet first)",
                    spec.bin_dir.display()
                );
            }
        }
        fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
        let dir = spec.dir();
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => bail!(
                "lab {} is already up ({}): take it down first (`lab down`)",
                spec.prefix,
                dir.display()
            ),
            result => result.with_context(|| format!("cannot create {}", dir.display()))?,
        }
        // From here on, dropping `lab` (a failed step below) takes down what was made.
        let mut lab = Self {
            record: spec.plan(),
            children: HashMap::new(),
            owned: true,
        };
        lab.record.save()?;
        lab.build_network()?;
        lab.start_members()?;
        lab.start_hosts()?;
        Ok(lab)
    }

    /// The lab with this prefix that some process brought up, if one is up. Dropping it leaves
    /// it running; [`Lab::down`] takes it down.
    pub fn load(prefix: &str) -> Result<Option<Self>> {
        let record = Record::load(&Path::new(RUN_DIR).join(prefix))?;
        Ok(record.map(|record| Self {
            record,
            children: HashMap::new(),
            owned: false,
        }))
    }

    /// Lets the lab outlive this value (and this process): a later [`Lab::load`] finds it.
    pub fn leave_running(mut self) {
        self.owned = false;
    }

    /// Takes the lab down: its daemons (those it recorded, if they still are those
    /// processes), whatever still runs in its namespaces, the namespaces, pins and
    /// directories.
    pub fn down(mut self) -> Result<()> {
        self.owned = false;
        teardown::teardown(&self.record, &mut self.children)
    }

    pub fn prefix(&self) -> &str {
        &self.record.prefix
    }

    /// The lab's directory (its record, each node's files).
    pub fn dir(&self) -> &Path {
        &self.record.dir
    }

    pub fn hosts(&self) -> &[Host] {
        &self.record.hosts
    }

    pub fn members(&self) -> &[Member] {
        &self.record.members
    }

    pub fn router(&self) -> &Router {
        &self.record.router
    }

    /// The switch's namespace (its bridge is `br0`).
    pub fn switch_netns(&self) -> PathBuf {
        netns_path(&self.record.switch)
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        let names = || listed(self.record.hosts.iter().map(|h| &h.name));
        self.record
            .hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| {
                format!(
                    "lab {} has no host {name} (hosts: {})",
                    self.prefix(),
                    names()
                )
            })
    }

    pub fn member(&self, name: &str) -> Result<&Member> {
        let names = || listed(self.record.members.iter().map(|m| &m.name));
        self.record
            .members
            .iter()
            .find(|m| m.name == name)
            .with_context(|| {
                format!(
                    "lab {} has no etcd member {name} (members: {})",
                    self.prefix(),
                    names()
                )
            })
    }

    /// Every member's client URL, `http://ADDRESS:2379`.
    pub fn etcd_urls(&self) -> Vec<String> {
        self.record.etcd_urls()
    }

    /// The xnetds' `--cluster-store`, `etcd://ADDRESS:2379,…`.
    pub fn cluster_store(&self) -> String {
        self.record.cluster_store()
    }

    /// The namespace of a node: a host (`h1`), an etcd member (`e1`), the router (`out`) or
    /// the switch (`sw`).
    pub fn netns_of(&self, node: &str) -> Result<PathBuf> {
        if let Ok(host) = self.host(node) {
            return Ok(host.netns_path());
        }
        if let Ok(member) = self.member(node) {
            return Ok(member.netns_path());
        }
        match node {
            ROUTER => Ok(self.record.router.netns_path()),
            SWITCH => Ok(self.switch_netns()),
            _ => bail!(
                "lab {} has no node {node} (nodes: {}, {ROUTER}, {SWITCH})",
                self.prefix(),
                listed(
                    (self.record.hosts.iter().map(|h| &h.name))
                        .chain(self.record.members.iter().map(|m| &m.name))
                )
            ),
        }
    }

    /// `program` to run inside `node`'s namespace, with the lab's bin directory first on PATH
    /// and, on a host, `XNET_HOST` set to its xnetd's socket: so `xnet …` there talks to that
    /// host's daemon.
    pub fn command(&self, node: &str, program: impl AsRef<OsStr>) -> Result<Command> {
        let mut cmd = netns::command_in(&self.netns_of(node)?, program);
        let path = env::var_os("PATH").unwrap_or_default();
        let path = env::join_paths(
            [self.record.bin_dir.clone()]
                .into_iter()
                .chain(env::split_paths(&path)),
        )
        .context("the lab's bin directory cannot be put on PATH")?;
        cmd.env("PATH", path);
        if let Ok(host) = self.host(node) {
            cmd.env("XNET_HOST", host.xnet_host());
        }
        Ok(cmd)
    }

    /// Runs `cmd[0] cmd[1..]` inside `node`'s namespace (as [`Lab::command`]).
    pub fn run(&self, node: &str, cmd: &[&str]) -> Result<Output> {
        let (program, args) = cmd.split_first().context("no command to run")?;
        self.command(node, program)?
            .args(args)
            .output()
            .with_context(|| format!("cannot run {program} on {node}"))
    }

    /// Runs the lab's `xnet ARGS` on `host`, against its xnetd.
    pub fn xnet(&self, host: &str, args: &[&str]) -> Result<Output> {
        let xnet = self.record.bin_dir.join("xnet");
        let xnet = xnet.to_str().context("the bin directory is not UTF-8")?;
        self.run(host, &[&[xnet], args].concat())
    }

    /// What the host's xnetd has logged, every run's lines.
    pub fn xnetd_log(&self, host: &str) -> Result<String> {
        let log = &self.host(host)?.log;
        fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))
    }

    pub fn etcd_log(&self, member: &str) -> Result<String> {
        let log = &self.member(member)?.log;
        fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))
    }

    /// Whether the xnetd the lab started on `host` still runs.
    pub fn xnetd_running(&self, host: &str) -> Result<bool> {
        Ok(self.host(host)?.xnetd.is_some_and(|p| p.is_running()))
    }

    /// Whether `host`'s xnetd accepts connections on its socket.
    pub fn xnetd_answers(&self, host: &str) -> Result<bool> {
        Ok(xnetd::answers(self.host(host)?))
    }

    /// Whether the etcd the lab started for `member` still runs.
    pub fn etcd_running(&self, member: &str) -> Result<bool> {
        Ok(self.member(member)?.etcd.is_some_and(|p| p.is_running()))
    }

    /// Whether `member` says it is healthy (`GET /health`, asked over the underlay from the
    /// router).
    pub fn etcd_healthy(&self, member: &str) -> Result<bool> {
        Ok(etcd::healthy(
            self.member(member)?,
            &self.record.router.netns_path(),
        ))
    }

    /// Stops `host`'s xnetd as an operator would (SIGTERM) and waits for it to end.
    pub fn stop_xnetd(&mut self, host: &str) -> Result<()> {
        self.end_xnetd(host, Signal::SIGTERM)
    }

    /// Kills `host`'s xnetd with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn kill_xnetd(&mut self, host: &str) -> Result<()> {
        self.end_xnetd(host, Signal::SIGKILL)
    }

    /// Starts `host`'s xnetd again (same arguments, log appended) and waits until it answers.
    pub fn start_xnetd(&mut self, host: &str) -> Result<()> {
        let index = self.host_index(host)?;
        self.spawn_xnetd(index)?;
        self.wait_xnetd(index)
    }

    /// Stops `member`'s etcd (SIGTERM) and waits for it to end; its data stays.
    pub fn stop_etcd(&mut self, member: &str) -> Result<()> {
        let index = self.member_index(member)?;
        let Some(etcd) = self.record.members[index].etcd.take() else {
            bail!("etcd member {member} is not running");
        };
        self.record.save()?;
        etcd.end(Signal::SIGTERM, self.children.remove(member))
    }

    /// Starts `member`'s etcd again on its data and waits until it is healthy (which needs a
    /// quorum of its cluster running).
    pub fn start_etcd(&mut self, member: &str) -> Result<()> {
        let index = self.member_index(member)?;
        self.spawn_etcd(index)?;
        self.wait_etcd(index, Instant::now() + etcd::READY_TIMEOUT)
    }

    fn host_index(&self, name: &str) -> Result<usize> {
        let host = self.host(name)?;
        Ok(self
            .record
            .hosts
            .iter()
            .position(|h| h.name == host.name)
            .expect("found"))
    }

    fn member_index(&self, name: &str) -> Result<usize> {
        let member = self.member(name)?;
        Ok(self
            .record
            .members
            .iter()
            .position(|m| m.name == member.name)
            .expect("found"))
    }

    /// The switch, then the router, the members and the hosts, each plugged into the switch.
    fn build_network(&mut self) -> Result<()> {
        let switch = self.record.switch.clone();
        self.add_netns(&switch)?;
        // A plain learning switch: no snooping, so multicast (IPv6 neighbour discovery above
        // all) reaches every port without a querier.
        netns::ip(
            &switch,
            &format!("link add {BRIDGE} type bridge mcast_snooping 0"),
        )?;
        netns::ip(&switch, &format!("link set {BRIDGE} up"))?;
        // Nor does it look at IP: once br_netfilter is loaded (Docker loads it) a new namespace
        // sends every bridged frame through the IP hooks, which took about 15% off the packet
        // rate between containers on two hosts here (the switch shares the hosts' CPUs).
        let no_netfilter = netns::output_in(
            &netns_path(&switch),
            &[
                "sysctl",
                "-q",
                "-w",
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
            ],
        )?;
        // Without br_netfilter loaded the keys do not exist, and there is nothing to turn off.
        if !no_netfilter.status.success() && Path::new(BR_NETFILTER_SYSCTL).exists() {
            bail!(
                "cannot turn br_netfilter off on the switch: {}",
                String::from_utf8_lossy(&no_netfilter.stderr).trim()
            );
        }

        let router = self.record.router.clone();
        self.add_node(&router.netns, ROUTER)?;
        for line in [
            format!("addr add {}/{UNDERLAY_PREFIX_LEN} dev eth0", router.address),
            format!(
                "addr add {}/{UNDERLAY6_PREFIX_LEN} dev eth0 nodad",
                router.address6
            ),
            format!("addr add {}/32 dev lo", router.outside),
            format!("addr add {}/128 dev lo", router.outside6),
        ] {
            netns::ip(&router.netns, &line)?;
        }
        // The router's frames carry full checksums, as frames from a wire do (as the
        // single-host tests' outside): a host's XDP program may forward them unchanged.
        let ethtool = netns::output_in(
            &router.netns_path(),
            &["ethtool", "-K", "eth0", "tx", "off"],
        )?;
        if !ethtool.status.success() {
            bail!(
                "ethtool -K eth0 tx off (router): {}",
                String::from_utf8_lossy(&ethtool.stderr).trim()
            );
        }

        for member in self.record.members.clone() {
            self.add_node(&member.netns, &member.name)?;
            let line = format!("addr add {}/{UNDERLAY_PREFIX_LEN} dev eth0", member.address);
            netns::ip(&member.netns, &line)?;
            fs::create_dir_all(&member.data_dir)
                .with_context(|| format!("cannot create {}", member.data_dir.display()))?;
        }
        for host in self.record.hosts.clone() {
            self.add_node(&host.netns, &host.name)?;
            for line in [
                format!("addr add {}/{UNDERLAY_PREFIX_LEN} dev eth0", host.address),
                format!(
                    "addr add {}/{UNDERLAY6_PREFIX_LEN} dev eth0 nodad",
                    host.address6
                ),
                format!("route add default via {}", router.address),
                format!("-6 route add default via {}", router.address6),
            ] {
                netns::ip(&host.netns, &line)?;
            }
            let dir = host.socket.parent().expect("a socket path has a directory");
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }

    /// A namespace plugged into the switch at `port` (named after the node).
    fn add_node(&mut self, ns: &str, port: &str) -> Result<()> {
        self.add_netns(ns)?;
        netns::plug(&self.record.switch, BRIDGE, port, ns)
    }

    /// Makes a namespace and records it at once, so that only namespaces the lab made are
    /// ever removed.
    fn add_netns(&mut self, name: &str) -> Result<()> {
        netns::add(name)?;
        self.record.namespaces.push(name.to_string());
        self.record.save()
    }

    fn start_members(&mut self) -> Result<()> {
        for index in 0..self.record.members.len() {
            self.spawn_etcd(index)?;
        }
        // One deadline for all: the members elect a leader together.
        let deadline = Instant::now() + etcd::READY_TIMEOUT;
        for index in 0..self.record.members.len() {
            self.wait_etcd(index, deadline)?;
        }
        Ok(())
    }

    fn start_hosts(&mut self) -> Result<()> {
        for index in 0..self.record.hosts.len() {
            self.spawn_xnetd(index)?;
        }
        for index in 0..self.record.hosts.len() {
            self.wait_xnetd(index)?;
        }
        Ok(())
    }

    fn spawn_etcd(&mut self, index: usize) -> Result<()> {
        let member = &self.record.members[index];
        if member.etcd.is_some_and(|p| p.is_running()) {
            bail!("etcd member {} is already running", member.name);
        }
        let args = etcd::args(&self.record, member);
        let child = process::spawn_in(&member.netns_path(), Path::new("etcd"), &args, &member.log)?;
        let proc = self.adopt(&member.name.clone(), child)?;
        self.record.members[index].etcd = Some(proc);
        self.record.save()
    }

    fn wait_etcd(&mut self, index: usize, deadline: Instant) -> Result<()> {
        let member = &self.record.members[index];
        let router = self.record.router.netns_path();
        loop {
            if etcd::healthy(member, &router) {
                return Ok(());
            }
            let ended = !member.etcd.is_some_and(|p| p.is_running());
            if ended || Instant::now() > deadline {
                let why = if ended { "ended" } else { "is not healthy" };
                bail!(
                    "etcd member {} {why}; its log ends:\n{}",
                    member.name,
                    process::log_tail(&member.log)
                );
            }
            thread::sleep(POLL);
        }
    }

    fn spawn_xnetd(&mut self, index: usize) -> Result<()> {
        let host = &self.record.hosts[index];
        if host.xnetd.is_some_and(|p| p.is_running()) {
            bail!("xnetd of host {} is already running", host.name);
        }
        let args = xnetd::args(&self.record, host);
        let program = self.record.bin_dir.join("xnetd");
        let child = process::spawn_in(&host.netns_path(), &program, &args, &host.log)?;
        let proc = self.adopt(&host.name.clone(), child)?;
        self.record.hosts[index].xnetd = Some(proc);
        self.record.save()
    }

    fn wait_xnetd(&mut self, index: usize) -> Result<()> {
        let host = &self.record.hosts[index];
        let deadline = Instant::now() + xnetd::READY_TIMEOUT;
        loop {
            if xnetd::answers(host) {
                return Ok(());
            }
            let ended = !host.xnetd.is_some_and(|p| p.is_running());
            if ended || Instant::now() > deadline {
                let why = if ended { "ended" } else { "does not answer" };
                bail!(
                    "xnetd of host {} {why}; its log ends:\n{}",
                    host.name,
                    process::log_tail(&host.log)
                );
            }
            thread::sleep(POLL);
        }
    }

    fn end_xnetd(&mut self, host: &str, signal: Signal) -> Result<()> {
        let index = self.host_index(host)?;
        let Some(xnetd) = self.record.hosts[index].xnetd.take() else {
            bail!("xnetd of host {host} is not running");
        };
        self.record.save()?;
        xnetd.end(signal, self.children.remove(host))
    }

    /// Keeps the handle of a daemon just started for `node` and returns its record (pid and
    /// start time).
    fn adopt(&mut self, node: &str, child: Child) -> Result<Proc> {
        let proc = Proc::of(child.id());
        self.children.insert(node.to_string(), child);
        proc
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned
            && let Err(error) = teardown::teardown(&self.record, &mut self.children)
        {
            // Drop cannot fail; the leak check of `cargo xtask test` catches what stays.
            eprintln!("lab {}: {error:#}", self.record.prefix);
        }
    }
}

fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}
