//! A simulated host for integration tests: its own network namespace with a real xnetd inside
//! (started with `nsenter --net`, which keeps the root bpffs), private socket, state and pin
//! paths, and a `Drop` that removes everything it made even when the test panics. Hosts never
//! share a name, a path or a pin, so tests run in parallel.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
pub use xnet_lab::eventually;

pub const XNET: &str = env!("CARGO_BIN_EXE_xnet");
pub const XNETD: &str = env!("CARGO_BIN_EXE_xnetd");

pub struct Host {
    /// Name of the host's network namespace under /run/netns.
    pub ns: String,
    pub dir: PathBuf,
    pub bpffs: PathBuf,
    daemon: Option<Child>,
    /// Background commands a test started (servers); killed on drop.
    background: Vec<Child>,
    /// Namespaces made by the test itself (stand-ins for other runtimes' containers).
    foreign: Vec<String>,
    /// Extra xnetd arguments, for its next start.
    pub daemon_args: Vec<String>,
}

impl Host {
    /// A host with a running daemon.
    pub fn start() -> Self {
        let mut host = Self::without_daemon();
        host.start_daemon();
        host
    }

    /// A host whose daemon was started with these extra arguments.
    pub fn start_with(args: &[&str]) -> Self {
        let mut host = Self::without_daemon();
        host.daemon_args.extend(args.iter().map(|a| a.to_string()));
        host.start_daemon();
        host
    }

    /// A host whose daemon has an uplink to a simulated outside: a namespace `<ns>-ext`
    /// ("the internet") behind the veth `uplink0`. The outside answers on 10.200.0.2 and
    /// fd00:200::2 (its end of the link) and 10.201.0.1 and fd00:201::1 (one routed hop away);
    /// the host is 10.200.0.1 and fd00:200::1 and routes everything there by default. Its
    /// frames carry real checksums (tx offload off), as on a wire.
    pub fn with_uplink() -> Self {
        let mut host = Self::without_daemon();
        host.add_uplink();
        host.start_daemon();
        host
    }

    /// Gives the host the uplink `with_uplink` describes (before its daemon starts).
    pub fn add_uplink(&mut self) {
        self.foreign_netns("ext");
        self.plumb_uplink();
        self.daemon_args
            .extend(["--uplink".into(), "uplink0".into()]);
    }

    /// Deletes the uplink and makes it again, as after a driver reload: a new device under
    /// the same name, which the daemon's pinned links of the old one no longer reach.
    pub fn recreate_uplink(&self) {
        sh(&["ip", "-n", &self.ns, "link", "del", "uplink0"]);
        self.plumb_uplink();
    }

    /// The veth pair `uplink0` - `ext0` into the outside, its addresses and routes.
    fn plumb_uplink(&self) {
        let ext_name = format!("{}-ext", self.ns);
        let ns = self.ns.clone();
        sh(&[
            "ip", "-n", &ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "ext0",
            "netns", &ext_name,
        ]);
        // `ip -n NS ...` commands, in order.
        for (ns, cmd) in [
            (&ns, "addr add 10.200.0.1/24 dev uplink0"),
            (&ns, "link set uplink0 up"),
            (&ns, "route add default via 10.200.0.2"),
            (&ext_name, "addr add 10.200.0.2/24 dev ext0"),
            (&ext_name, "addr replace 10.201.0.1/32 dev lo"),
            (&ext_name, "link set ext0 up"),
            (&ns, "addr add fd00:200::1/64 dev uplink0 nodad"),
            (&ns, "-6 route add default via fd00:200::2"),
            (&ext_name, "addr add fd00:200::2/64 dev ext0 nodad"),
            (&ext_name, "addr replace fd00:201::1/128 dev lo"),
        ] {
            let mut args = vec!["ip", "-n", ns.as_str()];
            args.extend(cmd.split(' '));
            sh(&args);
        }
        sh(&[
            "ip", "netns", "exec", &ext_name, "ethtool", "-K", "ext0", "tx", "off",
        ]);
    }

    /// The simulated outside of a host made by `with_uplink`.
    pub fn outside(&self) -> String {
        format!("/run/netns/{}-ext", self.ns)
    }

    /// A host namespace with loopback up and no daemon yet.
    pub fn without_daemon() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "xt{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("xnet-test-{ns}"));
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/xnet-test-{ns}"));
        let host = Self {
            ns,
            dir,
            bpffs,
            daemon: None,
            background: Vec::new(),
            foreign: Vec::new(),
            daemon_args: Vec::new(),
        };
        fs::create_dir_all(&host.dir).unwrap();
        sh(&["ip", "netns", "add", &host.ns]);
        sh(&["ip", "-n", &host.ns, "link", "set", "lo", "up"]);
        host
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("xnet.sock")
    }

    pub fn start_daemon(&mut self) {
        self.spawn_daemon();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            let exited = self.daemon.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!("xnetd did not come up:\n{}", self.daemon_log());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the daemon without waiting for it to serve. Its log goes on after the previous
    /// run's, so a test sees every run's lines.
    pub fn spawn_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("xnetd.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(XNETD)
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--bpffs")
            .arg(&self.bpffs)
            .args(&self.daemon_args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// Kills the daemon with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn kill_daemon(&mut self) {
        let mut child = self.daemon.take().expect("daemon not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Stops the daemon as an operator would (SIGTERM) and waits for it.
    pub fn stop_daemon(&mut self) {
        let mut child = self.daemon.take().expect("daemon not running");
        terminate(&mut child);
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "xnetd exited with {status}:\n{}",
            self.daemon_log()
        );
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.join("xnetd.log")).unwrap_or_default()
    }

    /// Runs the CLI against this host's daemon.
    pub fn xnet(&self, args: &[&str]) -> Output {
        self.xnet_command(args).output().unwrap()
    }

    /// The CLI against this host's daemon, to run or spawn.
    pub fn xnet_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(XNET);
        command
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs the CLI and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.xnet(args);
        assert!(
            out.status.success(),
            "xnet {args:?} failed ({}): {}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI and insists it fails with exactly one line on stderr; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.xnet(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            !out.status.success(),
            "xnet {args:?} succeeded unexpectedly"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "xnet {args:?}: not one line: {stderr:?}"
        );
        stderr.trim_end().to_string()
    }

    /// `xnet inspect NAME` as JSON (the first element).
    pub fn inspect(&self, name: &str) -> Value {
        let all: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        all[0].clone()
    }

    pub fn ip_of(&self, container: &str) -> String {
        let c = self.inspect(container);
        let nets = c["NetworkSettings"]["Networks"].as_object().unwrap();
        nets.values().next().unwrap()["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn sandbox(&self, container: &str) -> String {
        self.inspect(container)["NetworkSettings"]["SandboxKey"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Starts a detached container that just sleeps.
    pub fn run_sleeper(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["run", "--name", name, "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sleep", "600"]);
        self.ok(&args);
    }

    /// Runs a command in the namespace at `container_sandbox` directly (works while xnetd is
    /// down).
    pub fn in_container(&self, container_sandbox: &str, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={container_sandbox}"))
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Whether `ip` answers pings from the namespace at `sandbox`, retrying for a few seconds:
    /// a busy machine (benchmarks, parallel tests) can delay the first answer past a timeout.
    pub fn reaches(&self, sandbox: &str, ip: &str) -> bool {
        eventually(Duration::from_secs(5), || {
            succeeded(&self.in_container(sandbox, &["ping", "-c", "1", "-W", "1", ip]))
        })
    }

    /// Whether two pings from the namespace at `sandbox` to `ip` both go unanswered.
    pub fn cannot_reach(&self, sandbox: &str, ip: &str) -> bool {
        !succeeded(&self.in_container(sandbox, &["ping", "-c", "2", "-i", "0.2", "-W", "1", ip]))
    }

    /// Runs a command in the host namespace.
    pub fn in_host(&self, cmd: &[&str]) -> Output {
        self.in_container(&self.host_netns(), cmd)
    }

    /// Starts a background command in a namespace (`--net=PATH`), e.g. a server; killed on drop.
    pub fn spawn_in(&mut self, netns: &str, cmd: &[&str]) {
        let child = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.background.push(child);
    }

    /// A namespace that some other runtime could have made (loopback up); removed on drop.
    /// Returns its path.
    pub fn foreign_netns(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        self.foreign.push(name.clone());
        format!("/run/netns/{name}")
    }

    pub fn host_netns(&self) -> String {
        format!("/run/netns/{}", self.ns)
    }

    /// Links in the host namespace other than loopback.
    pub fn host_links(&self) -> Vec<String> {
        let out = self.in_host(&["ip", "-o", "link", "show"]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap().to_string())
            .filter(|name| name != "lo")
            .collect()
    }

    /// Files under a directory (empty when it does not exist).
    pub fn entries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The daemon's pinned tcx links of container endpoints (`<ifindex>-ingress|egress`), not
    /// those of the uplink or the host's socket hooks.
    pub fn endpoint_link_pins(&self) -> Vec<String> {
        Self::entries(&self.bpffs.join("links"))
            .into_iter()
            .filter(|name| name.starts_with(|c: char| c.is_ascii_digit()))
            .collect()
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// Container namespaces the daemon has pinned (not its pin of the host's own, `default`).
    pub fn container_namespaces(&self) -> Vec<String> {
        Self::entries(&self.netns_dir())
            .into_iter()
            .filter(|name| name != "default")
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for mut child in self.background.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.daemon.take() {
            terminate(&mut child);
            let _ = child.wait();
        }
        // Processes left in our container namespaces are ours (started by `xnet run -d`).
        for name in self.container_namespaces() {
            kill_processes_in(&self.netns_dir().join(name));
        }
        for name in Self::entries(&self.netns_dir()) {
            let _ = nix::mount::umount2(
                &self.netns_dir().join(name),
                nix::mount::MntFlags::MNT_DETACH,
            );
        }
        for name in self.foreign.iter().chain([&self.ns]) {
            kill_processes_in(Path::new(&format!("/run/netns/{name}")));
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        let _ = fs::remove_dir_all(&self.bpffs);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn terminate(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
}

/// SIGKILLs every process whose network namespace is the one pinned at `netns`.
fn kill_processes_in(netns: &Path) {
    let Ok(target) = fs::metadata(netns).map(|m| (m.dev(), m.ino())) else {
        return;
    };
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let ns = fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| (m.dev(), m.ino()));
        if ns.ok() == Some(target) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs a setup command that must succeed.
pub fn sh(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn succeeded(out: &Output) -> bool {
    out.status.success()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON document a background command (a one-shot `iperf3 -s -1 -J` server) writes to
/// `path` when it ends, waiting a few seconds for it.
pub fn json_report(path: &Path) -> Option<Value> {
    let mut report = None;
    eventually(Duration::from_secs(5), || {
        report = fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        report.is_some()
    });
    report
}
