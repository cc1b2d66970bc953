//! Publishing ports on each lab, as each side does it: xnet with its CLI (`xnet port add`),
//! Docker's rules with iptables, in one `iptables-restore` batch or one `iptables` exec per
//! rule, and real Docker with `docker run -p`. Each returns how long publishing took and a
//! guard that withdraws the ports (untimed) when dropped, also on failure.

use std::{
    fmt,
    net::Ipv4Addr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::ensure;

use super::{
    lab::{self, BRIDGE, BridgeLab, DockerLab, XnetLab},
    sys,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// `count` consecutive host ports from `host` published to as many container ports from
/// `container`: Docker's `-p HOST-END:CONTAINER-END/PROTO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub proto: Proto,
    pub host: u16,
    pub container: u16,
    pub count: u16,
}

impl Ports {
    /// The `-p` spec (`8080:80/tcp`, `10000-19999:10000-19999/udp`).
    pub fn spec(&self) -> String {
        format!(
            "{}:{}/{}",
            self.range(self.host),
            self.range(self.container),
            self.proto
        )
    }

    /// `count` ports from `first`, as specs write them: `80`, `80-81`.
    fn range(&self, first: u16) -> String {
        match self.count {
            1 => first.to_string(),
            n => format!("{first}-{}", first + (n - 1)),
        }
    }

    /// How `xnet port add` reports these ports: `80-81/tcp -> 0.0.0.0:8080-8081`.
    fn as_printed(&self) -> String {
        format!(
            "{}/{} -> 0.0.0.0:{}",
            self.range(self.container),
            self.proto,
            self.range(self.host)
        )
    }

    /// The host port whose rules iptables evaluates last: the range's last, as Docker
    /// installs a range port by port, in order.
    pub fn last_host_port(&self) -> u16 {
        self.host + (self.count - 1)
    }

    /// The rules dockerd 20.10 installs for these ports towards `ip` on the bridge network,
    /// port after port, each as `(table, rule)`: DNAT of the host port (nat `DOCKER`, reached
    /// from `PREROUTING` for local addresses), accepting the forwarded result (filter
    /// `DOCKER`, reached from `FORWARD` for everything going to the bridge), and masquerading
    /// of a container's connection to its own published port (nat `POSTROUTING`).
    fn docker_rules(&self, ip: Ipv4Addr) -> Vec<(&'static str, String)> {
        let p = self.proto;
        (0..self.count)
            .flat_map(|i| {
                let (host, port) = (self.host + i, self.container + i);
                [
                    (
                        "nat",
                        format!(
                            "-A DOCKER ! -i {BRIDGE} -p {p} -m {p} --dport {host} \
                             -j DNAT --to-destination {ip}:{port}"
                        ),
                    ),
                    (
                        "filter",
                        format!(
                            "-A DOCKER -d {ip}/32 ! -i {BRIDGE} -o {BRIDGE} -p {p} -m {p} \
                             --dport {port} -j ACCEPT"
                        ),
                    ),
                    (
                        "nat",
                        format!(
                            "-A POSTROUTING -s {ip}/32 -d {ip}/32 -p {p} -m {p} --dport {port} \
                             -j MASQUERADE"
                        ),
                    ),
                ]
            })
            .collect()
    }
}

/// How the iptables side installs its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// One `iptables-restore --noflush` for all: the fastest iptables can do.
    Batch,
    /// One `iptables -t TABLE -A ...` exec per rule, as dockerd 20.10 does.
    PerRule,
}

/// Published ports, withdrawn when dropped.
pub enum Published<'a> {
    Xnet {
        lab: &'a XnetLab,
        container: &'static str,
        spec: String,
    },
    /// Withdrawn by loading Docker's base rules again (the per-port rules are appended to
    /// them), which takes one `iptables-restore` however many rules there are.
    Iptables { host: &'a Path },
    /// Published by real Docker's B since its creation: nothing to withdraw.
    AtCreation,
    /// A container real Docker created with the ports published; removed with them.
    DockerContainer { lab: &'a DockerLab, name: String },
}

/// How many times [`Published::by_docker_run`] measures a pair that came out backwards.
const NOISY_ATTEMPTS: u32 = 3;

impl<'a> Published<'a> {
    /// Ports real Docker's B was created with (Docker cannot publish ports of a running
    /// container, so B publishes every port a scenario needs from the start).
    pub fn by_docker_at_creation(lab: &DockerLab, ports: Ports) -> anyhow::Result<Self> {
        ensure!(
            lab.publishes(&ports.spec()),
            "real Docker's B was not created with -p {}",
            ports.spec()
        );
        Ok(Self::AtCreation)
    }

    /// Publishes with real Docker, which publishes only when it creates a container: `docker
    /// run -d -p SPEC` of a new container on the lab's network. The time is what publishing
    /// added to `docker run`: that run's, from exec to exit, less the same `docker run`
    /// without `-p` just before (whose container is removed again, untimed). A pair in which
    /// the run with `-p` was the quicker (a few ports publish in less time than `docker run`
    /// varies by) is measured again, up to [`NOISY_ATTEMPTS`] times.
    pub fn by_docker_run(
        lab: &'a DockerLab,
        name: &str,
        ports: Ports,
    ) -> anyhow::Result<(Self, Duration)> {
        let mut attempt = 1;
        loop {
            let plain = format!("{name}-plain");
            let without = lab.run_container(&plain, &[]);
            let removed = lab.remove_container(&plain);
            let without = without?;
            removed?;
            // Before running it, so that a failed run's container goes too.
            let published = Self::DockerContainer {
                lab,
                name: name.to_string(),
            };
            let with = lab.run_container(name, &[ports.spec()])?;
            if with > without {
                return Ok((published, with - without));
            }
            ensure!(
                attempt < NOISY_ATTEMPTS,
                "docker run -p {} took {with:?}, less than without it ({without:?}), \
                 {NOISY_ATTEMPTS} times: too noisy to tell what publishing took",
                ports.spec()
            );
            // Dropping it removes the container, for the next attempt's name.
            drop(published);
            attempt += 1;
        }
    }

    /// Publishes with the real CLI, on the running `container`; the time is the CLI's, from
    /// exec to exit.
    pub fn by_xnet(
        lab: &'a XnetLab,
        container: &'static str,
        ports: Ports,
    ) -> anyhow::Result<(Self, Duration)> {
        let spec = ports.spec();
        let start = Instant::now();
        let printed = lab.xnet(&["port", "add", container, &spec]);
        let took = start.elapsed();
        // Also when `port add` failed: whatever it did publish goes.
        let published = Self::Xnet {
            lab,
            container,
            spec,
        };
        let printed = printed?;
        // The one mapping asked for, whole: anything else means xnet published something else.
        let expected = ports.as_printed();
        ensure!(
            printed.trim_end() == expected,
            "xnet port add printed {printed:?}, not {expected:?}"
        );
        Ok((published, took))
    }

    /// Installs Docker's rules for `ports` to container B of the bridge lab; the time is that
    /// of the iptables execs.
    pub fn by_iptables(
        lab: &'a BridgeLab,
        ports: Ports,
        install: Install,
    ) -> anyhow::Result<(Self, Duration)> {
        let host = lab.pair.host.as_path();
        let rules = ports.docker_rules(lab.pair.b.ip);
        // Before installing, so that a failure half-way is undone too.
        let published = Self::Iptables { host };
        let took = match install {
            Install::Batch => {
                let section = |table| {
                    let mut text = format!("*{table}\n");
                    for (_, rule) in rules.iter().filter(|(t, _)| *t == table) {
                        text += rule;
                        text += "\n";
                    }
                    text + "COMMIT\n"
                };
                lab::iptables_restore(host, &(section("filter") + &section("nat")), true)?
            }
            Install::PerRule => sys::on_netns_thread(host, || {
                let start = Instant::now();
                for (table, rule) in &rules {
                    sys::output(
                        Command::new("iptables")
                            .args(["-t", table])
                            .args(rule.split(' ')),
                    )?;
                }
                Ok(start.elapsed())
            })?,
        };
        Ok((published, took))
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        let result = match self {
            Published::Xnet {
                lab,
                container,
                spec,
            } => lab.xnet(&["port", "rm", container, spec]).map(drop),
            Published::Iptables { host } => lab::restore_docker_rules(host),
            Published::AtCreation => Ok(()),
            Published::DockerContainer { lab, name } => lab.remove_container(name),
        };
        if let Err(error) = result {
            eprintln!("warning: withdrawing published ports: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_the_last_port() {
        let one = Ports {
            proto: Proto::Tcp,
            host: 8080,
            container: 5201,
            count: 1,
        };
        assert_eq!(one.spec(), "8080:5201/tcp");
        assert_eq!(one.last_host_port(), 8080);
        let range = Ports {
            proto: Proto::Udp,
            host: 10_000,
            container: 10_000,
            count: 10_000,
        };
        assert_eq!(range.spec(), "10000-19999:10000-19999/udp");
        assert_eq!(range.last_host_port(), 19_999);
    }

    #[test]
    fn three_docker_rules_per_port_in_dockers_order() {
        let ports = Ports {
            proto: Proto::Udp,
            host: 9000,
            container: 90,
            count: 2,
        };
        let rules = ports.docker_rules(Ipv4Addr::new(172, 18, 0, 3));
        assert_eq!(rules.len(), 6);
        assert_eq!(
            rules[3],
            (
                "nat",
                "-A DOCKER ! -i br-bench -p udp -m udp --dport 9001 -j DNAT \
                 --to-destination 172.18.0.3:91"
                    .to_string()
            )
        );
        assert_eq!(
            rules[4].1,
            "-A DOCKER -d 172.18.0.3/32 ! -i br-bench -o br-bench -p udp -m udp --dport 91 -j ACCEPT"
        );
        assert_eq!(
            rules[5].1,
            "-A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p udp -m udp --dport 91 -j MASQUERADE"
        );
    }
}
