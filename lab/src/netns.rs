//! Namespaces, links and addresses, through `ip` and `nsenter`; and what is left inside a
//! namespace when the lab goes.

use std::{
    ffi::OsStr,
    fs,
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};
use nix::{
    mount::{MntFlags, umount2},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Runs a setup command that must succeed; its error names the command and what it said.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip -n NS WORDS…`, WORDS given as one line.
pub fn ip(ns: &str, line: &str) -> Result<()> {
    let mut args = vec!["-n", ns];
    args.extend(line.split(' '));
    run("ip", &args)
}

/// A command run inside the namespace at `netns` (`nsenter --net`: only the network namespace
/// changes).
pub fn command_in(netns: &Path, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg(program);
    cmd
}

/// Runs `cmd[0] cmd[1..]` inside the namespace at `netns` and returns its output.
pub fn output_in(netns: &Path, cmd: &[&str]) -> Result<Output> {
    let (program, args) = cmd.split_first().context("no command to run")?;
    command_in(netns, program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} in {}", netns.display()))
}

/// Makes the namespace `name` with loopback up.
pub fn add(name: &str) -> Result<()> {
    run("ip", &["netns", "add", name])?;
    ip(name, "link set lo up")
}

pub fn delete(name: &str) -> Result<()> {
    run("ip", &["netns", "del", name])
}

/// A veth from the switch (end `port`, on `bridge`) to `eth0` in namespace `ns`, both up.
/// Made inside the switch's namespace and moved at once: nothing passes through the machine's
/// own namespace, where names could collide with another lab's.
pub fn plug(switch: &str, bridge: &str, port: &str, ns: &str) -> Result<()> {
    ip(
        switch,
        &format!("link add {port} type veth peer name eth0 netns {ns}"),
    )?;
    ip(switch, &format!("link set {port} master {bridge} up"))?;
    ip(ns, "link set eth0 up")
}

/// The identity of the namespace at `path` (a pin or /proc/PID/ns/net).
fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// SIGKILLs every process whose network namespace is one of those at `netns`; returns how
/// many. Used after the lab's own daemons have ended, for what ran inside the lab: containers
/// its xnetds started, commands run with `lab exec`.
pub fn kill_processes_in(netns: &[&Path]) -> usize {
    let targets: Vec<(u64, u64)> = netns.iter().filter_map(|p| identity(p)).collect();
    if targets.is_empty() {
        return 0;
    }
    let me = std::process::id();
    let mut killed = 0;
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let inside = identity(&entry.path().join("ns/net")).is_some_and(|id| targets.contains(&id));
        if inside && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    killed
}

/// The mount points under `dir` (the namespace pins of the hosts' containers), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // Field 5 is the mount point.
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    points
}

pub fn unmount(point: &str) -> Result<()> {
    umount2(point, MntFlags::MNT_DETACH).with_context(|| format!("cannot unmount {point}"))
}
