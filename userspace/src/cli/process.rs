//! Starting commands inside a container's network namespace. Only the network namespace is
//! switched (as `nsenter --net`): the command keeps the host's filesystem, like a Docker
//! container with a bind-mounted root would see its own files.

use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;

/// How the command's life relates to the CLI's.
pub enum Mode {
    /// Inherits the terminal; the CLI waits for it.
    Foreground,
    /// Own session, no terminal, output discarded; the CLI returns at once.
    Detached,
}

/// Spawns `command` in the network namespace pinned at `netns`.
pub fn spawn_in(netns: &Path, command: &[String], mode: Mode) -> std::io::Result<Child> {
    let ns = File::open(netns)?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Mode::Detached = mode {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let ns_fd = ns.as_raw_fd();
    let detached = matches!(mode, Mode::Detached);
    // SAFETY: the closure runs in the forked child before exec and only makes the raw
    // async-signal-safe syscalls setns(2) and setsid(2).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if detached && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(ns);
    child
}

/// Waits for a foreground command and turns its end into a shell-style exit code.
pub fn wait_exit_code(mut child: Child) -> anyhow::Result<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    let status = child.wait().context("waiting for the command")?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The exit code a shell uses when a command cannot be started (Docker's too): 127 when it
/// does not exist, 126 when it cannot be executed.
pub fn spawn_failure_code(err: &std::io::Error) -> i32 {
    match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}
