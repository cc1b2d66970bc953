//! A private Docker engine for xnet's integration tests and benchmarks.
//!
//! The machine's own engine (and its containers, networks and firewall rules) is never
//! touched: each [`Engine`] is a `dockerd` of the machine's installation started inside a
//! network namespace of the caller's, with its own data root, exec root (so its own
//! containerd), API socket and cgroup parent. Only the legacy plugin directory
//! `/run/docker/plugins` is shared by every engine on the host, which is why xnet's tests give
//! each plugin a unique name.
//!
//! Images come from nowhere (the machine has no registry): [`Engine::busybox_image`] builds one
//! `FROM scratch` with the host's static busybox, which brings sh, ping, nc, wget and httpd.
//!
//! Engines in namespaces that reach one another (a shared underlay) can form a swarm
//! ([`Engine::init_swarm`], [`Engine::join_swarm`]): the way to Docker's overlay networks,
//! which need one.
//!
//! [`skip`] is how tests that need root or a Docker engine skip where they are missing.

pub mod skip;

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// The static busybox Debian's busybox-static installs (xtask's packages include it).
const BUSYBOX: &str = "/bin/busybox";
/// The test image's tag inside each private engine.
pub const BUSYBOX_IMAGE: &str = "xnet-test/busybox:latest";
/// Swarm's cluster management port (Docker's default).
const SWARM_PORT: u16 = 2377;

/// How the private engine networks its own containers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Docker's defaults: the `bridge` driver with `docker0`, iptables rules (in the engine's
    /// namespace), masquerade, IP forwarding and the userland proxy. Off: no default bridge
    /// and no iptables at all, for engines whose containers use xnet's driver only.
    pub docker_networking: bool,
    /// `--live-restore`: containers keep running while dockerd is down.
    pub live_restore: bool,
}

/// A running private `dockerd`; stopped, with its containers, mounts and files, on drop.
pub struct Engine {
    netns: PathBuf,
    /// Config, data root, socket and log.
    dir: PathBuf,
    /// Kept short: containerd's shim sockets live under it, and Unix socket paths are short.
    exec_root: PathBuf,
    cgroup_parent: String,
    options: Options,
    daemon: Option<Child>,
}

impl Engine {
    /// Why no private engine can run here, if it can't (`dockerd` or `docker` missing).
    pub fn unavailable() -> Option<String> {
        for tool in ["dockerd", "docker"] {
            let ran = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !ran.is_ok_and(|s| s.success()) {
                return Some(format!(
                    "`{tool} --version` does not run: no Docker engine installed"
                ));
            }
        }
        if !Path::new(BUSYBOX).exists() {
            return Some(format!("{BUSYBOX} is missing (Debian's busybox-static)"));
        }
        None
    }

    /// Starts an engine inside the network namespace at `netns`; `tag` (short, unique on the
    /// host) names its directories and cgroup.
    pub fn start(netns: &Path, tag: &str, options: Options) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("xnet-dockerlab-{tag}"));
        fs::create_dir_all(dir.join("root"))
            .with_context(|| format!("creating {}", dir.display()))?;
        // An empty configuration: the machine's /etc/docker/daemon.json (data root, storage
        // driver, MTU) is for the machine's engine, and dockerd refuses a setting given both
        // there and as a flag.
        fs::write(dir.join("daemon.json"), "{}")?;
        let mut engine = Self {
            netns: netns.to_owned(),
            exec_root: PathBuf::from(format!("/run/xdl-{tag}")),
            cgroup_parent: format!("xnet-dockerlab-{tag}"),
            dir,
            options,
            daemon: None,
        };
        engine.start_daemon()?;
        Ok(engine)
    }

    /// `unix://…` of the engine's API, for `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// A `docker` command against this engine.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(self.host()).stdin(Stdio::null());
        cmd.env("DOCKER_BUILDKIT", "0");
        cmd
    }

    /// Runs `docker ARGS` against this engine.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("running the docker CLI")
    }

    /// Runs `docker ARGS`, which must succeed; its standard output, trimmed.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args);
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The network namespace of a running container, for `nsenter --net`.
    pub fn netns_of(&self, container: &str) -> anyhow::Result<PathBuf> {
        let pid = self.run(&["inspect", "--format", "{{.State.Pid}}", container])?;
        if pid == "0" {
            bail!("container {container} is not running");
        }
        Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// Where libnetwork pins the network namespaces it makes: the containers' and, for overlay
    /// networks, each network's sandbox (`1-<network id>`, holding its bridge, vxlan device and
    /// the host-side ends of the containers' veths).
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// Makes this engine the manager of a new swarm (`docker swarm init`), reached by the
    /// others and sending VXLAN from `advertise`, an address of its namespace; returns the
    /// token workers join with.
    pub fn init_swarm(&self, advertise: Ipv4Addr) -> anyhow::Result<String> {
        let listen = format!("{advertise}:{SWARM_PORT}");
        let advertise = advertise.to_string();
        self.run(&[
            "swarm",
            "init",
            "--advertise-addr",
            &advertise,
            "--listen-addr",
            &listen,
        ])?;
        self.run(&["swarm", "join-token", "--quiet", "worker"])
    }

    /// Joins the swarm whose manager advertises `manager` as a worker, advertising
    /// `advertise` (`docker swarm join`).
    pub fn join_swarm(
        &self,
        token: &str,
        advertise: Ipv4Addr,
        manager: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let listen = format!("{advertise}:{SWARM_PORT}");
        let advertise = advertise.to_string();
        let manager = format!("{manager}:{SWARM_PORT}");
        self.run(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            &advertise,
            "--listen-addr",
            &listen,
            &manager,
        ])
        .map(drop)
    }

    /// Builds (once per engine) the test image, `FROM scratch` with busybox and its applets;
    /// returns its tag.
    pub fn busybox_image(&self) -> anyhow::Result<&'static str> {
        if self.run(&["image", "inspect", BUSYBOX_IMAGE]).is_ok() {
            return Ok(BUSYBOX_IMAGE);
        }
        let context = self.dir.join("image");
        fs::create_dir_all(&context)?;
        fs::copy(BUSYBOX, context.join("busybox")).with_context(|| format!("copying {BUSYBOX}"))?;
        fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\"]\n",
        )?;
        let context = context.to_string_lossy().into_owned();
        self.run(&["build", "-q", "-t", BUSYBOX_IMAGE, &context])?;
        Ok(BUSYBOX_IMAGE)
    }

    /// Stops dockerd as an operator would (SIGTERM); without live restore it stops the
    /// containers first.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut daemon) = self.daemon.take() else {
            bail!("dockerd is not running");
        };
        signal(&daemon, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
        while daemon.try_wait()?.is_none() {
            if Instant::now() > deadline {
                signal(&daemon, nix::sys::signal::Signal::SIGKILL);
                daemon.wait()?;
                bail!("dockerd did not stop within 40 s:\n{}", self.log_tail());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Starts dockerd again after [`Engine::stop`], on the same data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.start_daemon()
    }

    /// The end of dockerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn start_daemon(&mut self) -> anyhow::Result<()> {
        let log = fs::File::create(self.dir.join("dockerd.log"))?;
        let mut cmd = Command::new("nsenter");
        // `nsenter --net`, not `ip netns exec`: the latter gives the process a mount namespace
        // of its own, and the sandboxes dockerd bind-mounts must be visible to xnetd.
        cmd.arg(format!("--net={}", self.netns.display()))
            .arg("dockerd")
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--data-root")
            .arg(self.dir.join("root"))
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .arg("-H")
            .arg(self.host())
            // vfs: no overlay mounts of its own to leak, and no dependency on the machine's.
            .arg("--storage-driver=vfs")
            .arg(format!("--cgroup-parent={}", self.cgroup_parent));
        if !self.options.docker_networking {
            cmd.args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ]);
        }
        if self.options.live_restore {
            cmd.arg("--live-restore");
        }
        let mut daemon = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = self
                .command()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            if daemon.try_wait()?.is_some() || Instant::now() > deadline {
                signal(&daemon, nix::sys::signal::Signal::SIGKILL);
                let _ = daemon.wait();
                bail!("the private dockerd did not come up:\n{}", self.log_tail());
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.daemon = Some(daemon);
        Ok(())
    }

    /// Every process in the engine's cgroup (its containers' processes), whatever became of
    /// dockerd.
    fn kill_containers(&self) {
        let marker = format!("/{}/", self.cgroup_parent);
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cgroups.contains(&marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Unmounts what dockerd and containerd left under the engine's directories (sandbox
    /// namespaces, shm, rootfs), deepest first.
    fn unmount_leftovers(&self) {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| {
                Path::new(p).starts_with(&self.dir) || Path::new(p).starts_with(&self.exec_root)
            })
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            // Through the engine first, so drivers (xnet's plugin) see their Leave and
            // DeleteEndpoint calls while they still run.
            if let Ok(ids) = self.run(&["ps", "-aq"]) {
                for id in ids.split_whitespace() {
                    let _ = self.output(&["rm", "-f", id]);
                }
            }
            let _ = self.output(&["network", "prune", "-f"]);
            let _ = self.stop();
        }
        self.kill_containers();
        self.unmount_leftovers();
        let _ = fs::remove_dir_all(&self.exec_root);
        let _ = fs::remove_dir_all(&self.dir);
        // The cgroup parent's directory, empty now: one per hierarchy under cgroup v1, one in
        // all under v2.
        let root = Path::new("/sys/fs/cgroup");
        let hierarchies = fs::read_dir(root).into_iter().flatten().flatten();
        for dir in hierarchies.map(|h| h.path()).chain([root.to_owned()]) {
            let _ = fs::remove_dir(dir.join(&self.cgroup_parent));
        }
    }
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
}
