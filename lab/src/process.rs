//! The lab's daemons: started inside a node's namespace, known afterwards by pid and start
//! time, so that a later process (`lab down`) signals only what the lab started, never a
//! process that got the same pid since.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde::{Deserialize, Serialize};

/// How long a daemon gets to exit after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// One process the lab started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Clock ticks after boot (`/proc/PID/stat`'s 22nd field): with the pid, names one process
    /// for the machine's uptime.
    pub start_time: u64,
}

impl Proc {
    /// The process `pid` as it is now.
    pub fn of(pid: u32) -> Result<Self> {
        let (_, start_time) = stat(pid).with_context(|| format!("process {pid} is gone"))?;
        Ok(Self { pid, start_time })
    }

    /// Whether the process is the one recorded and has not wholly ended: its main thread is
    /// not a zombie, or other threads of it still exit (and still hold its files: a daemon's
    /// socket is closed only when the last thread is gone).
    pub fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|(state, start)| {
            start == self.start_time && (state != 'Z' || threads(self.pid) > 1)
        })
    }

    /// Ends the process: `signal`, then SIGKILL if it still runs after [`GRACE`]. `child` is
    /// its handle when this process started it, to reap it. Nothing is sent if the pid now
    /// belongs to another process.
    pub fn end(&self, signal: Signal, mut child: Option<Child>) -> Result<()> {
        if !self.is_running() {
            // Ours but already ended: reaped here, so it does not linger as a zombie.
            if let Some(child) = &mut child {
                let _ = child.wait();
            }
            return Ok(());
        }
        let pid = Pid::from_raw(self.pid as i32);
        kill(pid, signal).with_context(|| format!("cannot signal process {}", self.pid))?;
        if self.wait_ended(child.as_mut(), GRACE) {
            return Ok(());
        }
        if self.is_running() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if self.wait_ended(child.as_mut(), GRACE) {
            bail!(
                "process {} did not end within {} s of {signal}; killed",
                self.pid,
                GRACE.as_secs()
            );
        }
        bail!("process {} does not end, even after SIGKILL", self.pid)
    }

    fn wait_ended(&self, mut child: Option<&mut Child>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let ended = match child.as_deref_mut() {
                Some(child) => child.try_wait().is_ok_and(|status| status.is_some()),
                None => !self.is_running(),
            };
            if ended {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }
}

/// The state letter and start time of process `pid`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// How many threads process `pid` has (a zombie main thread counts as one).
fn threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses, so fields are counted
    // from its last ')'. STATE is field 3, the start time field 22.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start_time))
}

/// Starts `program ARGS` in the network namespace at `netns` (with `nsenter --net`, which,
/// unlike `ip netns exec`, keeps the machine's mounts: the root bpffs above all), its output
/// appended to `log`.
pub fn spawn_in(netns: &Path, program: &Path, args: &[String], log: &Path) -> Result<Child> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// The last lines of a log, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_end_of_the_command_name() {
        let stat = "4242 (etcd (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 \
                    987654 123 45";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("4242 (etcd) Z 1"), None);
    }

    #[test]
    fn this_process_runs_and_its_record_names_it() {
        let me = Proc::of(std::process::id()).unwrap();
        assert!(me.is_running());
        let other = Proc {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_running(), "a reused pid is another process");
    }
}
