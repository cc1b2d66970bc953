//! Starting commands inside a container's network namespace (as `nsenter --net`): the command
//! keeps the host's filesystem, like a Docker container with a bind-mounted root would see its
//! own files, except `/etc/resolv.conf`. A container that has a resolv.conf of its own (naming
//! the embedded DNS) gets a mount namespace of its own with that file bound over
//! `/etc/resolv.conf`, privately: `run` makes it, and `exec` makes another with the same
//! binding, so both see the same file (the daemon keeps no mount namespace per container).

use std::{
    ffi::{CStr, CString},
    fs::File,
    os::{
        fd::AsRawFd as _,
        unix::{ffi::OsStrExt as _, process::CommandExt as _},
    },
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;

/// What a container's resolv.conf is bound over.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How the command's life relates to the CLI's.
pub enum Mode {
    /// Inherits the terminal; the CLI waits for it.
    Foreground,
    /// Own session, no terminal, output discarded; the CLI returns at once.
    Detached,
}

/// Spawns `command` in the network namespace pinned at `netns`, with `resolv_conf` as its
/// `/etc/resolv.conf` when given.
pub fn spawn_in(
    netns: &Path,
    resolv_conf: Option<&Path>,
    command: &[String],
    mode: Mode,
) -> std::io::Result<Child> {
    let ns = File::open(netns)?;
    let binding = resolv_conf
        .map(|source| {
            let source = CString::new(source.as_os_str().as_bytes())?;
            // The file the path names, not a symlink (a bind follows it anyway).
            let target = std::fs::canonicalize(RESOLV_CONF)?;
            Ok::<_, std::io::Error>((source, CString::new(target.as_os_str().as_bytes())?))
        })
        .transpose()?;
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
    // async-signal-safe syscalls setns(2), unshare(2), mount(2) and setsid(2), on strings
    // made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((source, target)) = &binding {
                bind_privately(source, target)?;
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

/// A mount namespace of the calling process's own, its mounts private (nothing it binds
/// reaches the host's), with `source` bound over `target`. For `pre_exec`: raw syscalls only.
unsafe fn bind_privately(source: &CStr, target: &CStr) -> std::io::Result<()> {
    let check = |ret: libc::c_int| match ret {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    };
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))
    }
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
