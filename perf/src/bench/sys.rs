//! Running programs inside network namespaces, and the guards that undo what the bench made:
//! every namespace, process and pin is removed on drop, so a failed or interrupted run leaves
//! nothing behind.

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::OnceLock,
};

use anyhow::{Context as _, anyhow, bail, ensure};

/// Where the tools live: beside the bench binary (target/release).
pub fn tool(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_default()
    })
    .join(name)
}

/// `program args...` run in the network namespace pinned at `netns`. `nsenter --net` switches
/// only the network namespace, so the tools keep the root bpffs and sysfs.
pub fn in_netns(netns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg(program);
    cmd
}

/// [`in_netns`], on CPU `cpu` only (`taskset --cpu-list`; `nsenter` and the program inherit
/// the affinity).
pub fn in_netns_on_cpu(netns: &Path, cpu: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["--cpu-list", &cpu.to_string(), "nsenter"])
        .arg(format!("--net={}", netns.display()))
        .arg(program);
    cmd
}

/// Runs `work` on a thread of its own that has joined the network namespace pinned at
/// `netns`: the programs it starts run there without `nsenter`'s extra exec each, which
/// matters where exec time is what is measured.
pub fn on_netns_thread<T: Send>(
    netns: &Path,
    work: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let ns = fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: plain syscall on an open namespace file; it moves this thread only,
                // which ends with `work`.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("joining {}", netns.display()));
                }
                work()
            })
            .join()
            .map_err(|_| anyhow!("a thread in {} panicked", netns.display()))?
    })
}

/// Runs `cmd` to completion and returns its stdout; fails with its stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// `output` for a command line given as words.
pub fn sh(words: &[&str]) -> anyhow::Result<String> {
    output(Command::new(words[0]).args(&words[1..]))
}

/// Runs `cmd` and parses the last line of its stdout as a JSON report.
pub fn report<T: serde::de::DeserializeOwned>(cmd: &mut Command) -> anyhow::Result<T> {
    parse_last_line(&output(cmd)?)
}

fn parse_last_line<T: serde::de::DeserializeOwned>(stdout: &str) -> anyhow::Result<T> {
    let line = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow!("no report on stdout"))?;
    serde_json::from_str(line).with_context(|| format!("parsing report {line:?}"))
}

/// A tool that stays running while the bench measures (sink, hop, server). It is ready once
/// it prints `ready`; closing its stdin tells sinks and hops to finish; drop kills it.
pub struct Held {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Held {
    /// Starts `cmd` and waits until it says it is ready.
    pub fn start(what: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        let mut held = Self::spawn(what, cmd)?;
        let mut line = String::new();
        held.stdout.read_line(&mut line)?;
        if line.trim() != crate::READY {
            let err = held.stderr();
            bail!("{} did not come up: {err}", held.what);
        }
        Ok(held)
    }

    /// Starts `cmd` without waiting for it.
    pub fn spawn(what: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        let what = what.to_string();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self {
            what,
            child,
            stdin,
            stdout,
        })
    }

    /// Closes stdin, waits for the tool to exit, and parses its report.
    pub fn finish<T: serde::de::DeserializeOwned>(mut self) -> anyhow::Result<T> {
        drop(self.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest)?;
        let status = self.child.wait()?;
        if !status.success() {
            let err = self.stderr();
            bail!("{} failed ({status}): {err}", self.what);
        }
        parse_last_line(&rest)
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        err.trim().to_string()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Harmless when it already exited: the child is ours until waited for, so its PID
        // cannot have been reused.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace made with `ip netns add`, deleted on drop with whatever still runs in it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: String) -> anyhow::Result<Self> {
        sh(&["ip", "netns", "add", &name])?;
        let netns = Self { name };
        sh(&["ip", "-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_processes_in(&self.path());
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// SIGKILLs every process whose network namespace is the one pinned at `netns`: only
/// namespaces the bench created are passed here, so those processes are the bench's.
pub fn kill_processes_in(netns: &Path) {
    let Ok(target) = fs::metadata(netns).map(|m| (m.dev(), m.ino())) else {
        return;
    };
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let ns = fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| (m.dev(), m.ino()));
        if ns.ok() == Some(target) {
            // SAFETY: plain syscall; the PID was just read from /proc.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The machine's CPU time from `/proc/stat` at a start, to tell how many cores were busy
/// (not idle, not waiting for I/O) on average until [`BusyCpus::cores`].
pub struct BusyCpus {
    start: (u64, u64),
}

impl BusyCpus {
    pub fn start() -> anyhow::Result<Self> {
        Ok(Self {
            start: cpu_times()?,
        })
    }

    /// The cores busy on average since the start (0 to the number of CPUs).
    pub fn cores(&self) -> anyhow::Result<f64> {
        let (busy, total) = cpu_times()?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let total = total.saturating_sub(self.start.1).max(1) as f64;
        Ok(busy.saturating_sub(self.start.0) as f64 / total * cpus)
    }
}

/// (busy, total) jiffies of all CPUs: `/proc/stat`'s first line; idle and iowait are not busy.
fn cpu_times() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    ensure!(fields.len() >= 5, "short cpu line in /proc/stat");
    // user nice system idle iowait irq softirq steal (guest time is in user already).
    let total: u64 = fields.iter().take(8).sum();
    Ok((total - fields[3] - fields[4], total))
}
