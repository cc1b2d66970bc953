//! Taking a lab down, from its record: every step is tried even when an earlier one failed,
//! so a half-built or half-broken lab goes as far as it can.

use std::{collections::HashMap, fs, io, path::PathBuf, process::Child};

use anyhow::{Result, bail};
use nix::sys::signal::Signal;

use crate::{
    netns,
    record::{Record, netns_path},
};

pub fn teardown(record: &Record, children: &mut HashMap<String, Child>) -> Result<()> {
    let mut problems = Vec::new();
    // xnetds first, while the cluster store still answers them; SIGTERM, so each leaves as an
    // operator's stop would.
    let daemons = (record.hosts.iter().map(|h| (&h.name, h.xnetd)))
        .chain(record.members.iter().map(|m| (&m.name, m.etcd)));
    for (node, proc) in daemons {
        if let Some(proc) = proc
            && let Err(e) = proc.end(Signal::SIGTERM, children.remove(node))
        {
            problems.push(format!("{node}: {e:#}"));
        }
    }
    // Started but never recorded (the record could not be written): ours all the same.
    for (_, mut child) in children.drain() {
        let _ = child.kill();
        let _ = child.wait();
    }

    // Then what ran inside the lab (containers of its xnetds, `lab exec` commands): in the
    // lab's namespaces and in the container namespaces its xnetds pinned under its directory.
    let mut namespaces: Vec<PathBuf> = record.namespaces.iter().map(|n| netns_path(n)).collect();
    let pins = netns::mounts_under(&record.dir);
    namespaces.extend(pins.iter().map(PathBuf::from));
    let namespaces: Vec<&std::path::Path> = namespaces.iter().map(PathBuf::as_path).collect();
    netns::kill_processes_in(&namespaces);
    for pin in &pins {
        if let Err(e) = netns::unmount(pin) {
            problems.push(format!("{e:#}"));
        }
    }
    // One that is gone already (a reboot, with /run on disk) is no problem.
    let made = record.namespaces.iter().rev();
    for name in made.filter(|name| netns_path(name).exists()) {
        if let Err(e) = netns::delete(name) {
            problems.push(format!("{e:#}"));
        }
    }

    let dirs = (record.hosts.iter().map(|h| &h.bpffs)).chain([&record.dir]);
    for dir in dirs {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                problems.push(format!("cannot remove {}: {e}", dir.display()));
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        bail!(
            "lab {} is not wholly down: {}",
            record.prefix,
            problems.join("; ")
        );
    }
    Ok(())
}
