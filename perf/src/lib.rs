//! xnet's benchmark tools and the driver behind `cargo xtask bench`.
//!
//! The tools, each a small binary over a module here:
//!
//! - [`generator`] (`xnet-gen`): XDP live-frame traffic generator, run inside a container's
//!   namespace, transmitting UDP frames into its veth;
//! - [`sink`] (`xnet-sink`): counts the frames that arrive at the receiving container;
//! - [`hop`] (`xnet-hop`): the bare one-hop forwarders the datapath is compared with;
//! - [`rr`] (`xnet-rr`): TCP request/response (ping-pong) client and server;
//! - [`proxy`] (`xnet-proxy`): a userland TCP proxy like docker-proxy, a baseline for
//!   published ports;
//! - [`vxlan`] (`xnet-vxlan`): one VXLAN mechanism's programs in one simulated host, for the
//!   `vxlan-mech-*` scenarios;
//! - [`dnsq`] (`xnet-dnsq`): DNS query load against a container's embedded DNS.
//!
//! [`bench`] (`xnet-bench`) sets up xnet and the Docker-like bridge side by side, runs the
//! scenarios, and reports.

pub mod bench;
pub mod dnsq;
pub mod ebpf;
pub mod frame;
pub mod generator;
pub mod hop;
pub mod proxy;
pub mod rr;
pub mod sink;
pub mod vxlan;

use std::io::{BufRead as _, Write as _};

/// Tells the driver that a tool that stays attached is in place, then blocks until the driver
/// closes our stdin (or exits, which closes it too).
pub fn announce_ready_and_hold() -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", READY)?;
    stdout.flush()?;
    drop(stdout);
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line)? != 0 {
        line.clear();
    }
    Ok(())
}

/// The line a tool prints on stdout once it is attached or listening.
pub const READY: &str = "ready";

/// Prints a report as one line of JSON on stdout, for the driver to parse.
pub fn print_report(report: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}
