//! What a lab will be, from its [`Spec`] alone: node names, namespaces, addresses and paths.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Result, ensure};

use crate::record::{Host, Member, Record, Router};

/// Where labs keep their records and directories, one directory per lab prefix.
pub const RUN_DIR: &str = "/run/xnet-lab";
/// The names of the switch and the router among the lab's nodes (with `h1`…, `e1`…).
pub const SWITCH: &str = "sw";
pub const ROUTER: &str = "out";
/// Where the hosts' xnetds pin their maps and links: `<BPFFS>/<prefix>-<host>`.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The underlay's IPv4 subnet (a /24) and IPv6 prefix (a /64).
pub const UNDERLAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
pub const UNDERLAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0);
pub const UNDERLAY6_PREFIX_LEN: u8 = 64;
/// Beyond the router, as in the single-host tests' simulated outside.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
pub const OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 1);

/// Last address byte of the router, of member `e1` (then `e2` …) and of host `h1` (then `h2` …):
/// the members sit low, the hosts above them.
const ROUTER_HOST_PART: u8 = 1;
const FIRST_MEMBER_HOST_PART: u8 = 11;
const FIRST_HOST_HOST_PART: u8 = 101;
/// etcd advises clusters of at most 7 members (more only slow consensus down); 9 leaves room
/// to try that out. Hosts: as many as fit before the end of the /24.
pub const MAX_MEMBERS: usize = 9;
pub const MAX_HOSTS: usize = 99;

/// A prefix short enough that `<prefix>-<node>` stays a readable namespace name and the hosts'
/// socket paths stay far below the 108 bytes of a Unix socket address.
const MAX_PREFIX_LEN: usize = 24;

/// What [`crate::Lab::up`] builds.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the lab's namespaces (`<prefix>-h1`), pins and directory; unique on the machine.
    pub prefix: String,
    pub hosts: usize,
    pub etcd_members: usize,
    /// The directory holding `xnetd` and `xnet`.
    pub bin_dir: PathBuf,
    /// Appended to every xnetd's command line; `{node}` in an argument becomes the lab's
    /// namespace name of the host (`<prefix>-h1`), for what must differ per host (a Docker
    /// plugin's name, its engine's socket).
    pub xnetd_args: Vec<String>,
}

impl Spec {
    /// Three hosts and one etcd member.
    pub fn new(prefix: impl Into<String>, bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
            hosts: 3,
            etcd_members: 1,
            bin_dir: bin_dir.into(),
            xnetd_args: Vec::new(),
        }
    }

    /// As [`Spec::new`], with a prefix unique to this call in this process, `xt<pid>-l<n>`: the
    /// tests' convention, by which `cargo xtask test` finds what a test left behind and knows
    /// whose it is.
    pub fn for_test(bin_dir: impl Into<PathBuf>) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::new(format!("xt{}-l{n}", std::process::id()), bin_dir)
    }

    pub fn validate(&self) -> Result<()> {
        let prefix = &self.prefix;
        ensure!(
            !prefix.is_empty()
                && prefix.len() <= MAX_PREFIX_LEN
                && prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "lab prefix {prefix:?}: expected a lowercase letter, then up to {} of a-z, 0-9 and -",
            MAX_PREFIX_LEN - 1
        );
        ensure!(
            (1..=MAX_HOSTS).contains(&self.hosts),
            "a lab has 1 to {MAX_HOSTS} hosts, not {}",
            self.hosts
        );
        ensure!(
            (1..=MAX_MEMBERS).contains(&self.etcd_members),
            "a lab has 1 to {MAX_MEMBERS} etcd members, not {}",
            self.etcd_members
        );
        Ok(())
    }

    /// The lab's directory.
    pub fn dir(&self) -> PathBuf {
        Path::new(RUN_DIR).join(&self.prefix)
    }

    /// The lab as it will be once up: every node, nothing made yet.
    pub(crate) fn plan(&self) -> Record {
        let dir = self.dir();
        let netns = |node: &str| format!("{}-{node}", self.prefix);
        let members = (1..=self.etcd_members)
            .map(|n| {
                let name = format!("e{n}");
                Member {
                    netns: netns(&name),
                    address: underlay(FIRST_MEMBER_HOST_PART + n as u8 - 1),
                    data_dir: dir.join(&name).join("data"),
                    log: dir.join(&name).join("etcd.log"),
                    etcd: None,
                    name,
                }
            })
            .collect();
        let hosts = (1..=self.hosts)
            .map(|n| {
                let name = format!("h{n}");
                Host {
                    netns: netns(&name),
                    address: underlay(FIRST_HOST_HOST_PART + n as u8 - 1),
                    address6: underlay6(FIRST_HOST_HOST_PART + n as u8 - 1),
                    socket: dir.join(&name).join("xnet.sock"),
                    state_dir: dir.join(&name).join("state"),
                    bpffs: Path::new(BPFFS).join(netns(&name)),
                    log: dir.join(&name).join("xnetd.log"),
                    xnetd: None,
                    name,
                }
            })
            .collect();
        Record {
            prefix: self.prefix.clone(),
            dir,
            bin_dir: self.bin_dir.clone(),
            xnetd_args: self.xnetd_args.clone(),
            namespaces: Vec::new(),
            switch: netns(SWITCH),
            router: Router {
                netns: netns(ROUTER),
                address: underlay(ROUTER_HOST_PART),
                address6: underlay6(ROUTER_HOST_PART),
                outside: OUTSIDE,
                outside6: OUTSIDE6,
            },
            members,
            hosts,
        }
    }
}

/// The underlay address whose last byte is `host_part`.
fn underlay(host_part: u8) -> Ipv4Addr {
    let [a, b, c, _] = UNDERLAY.octets();
    Ipv4Addr::new(a, b, c, host_part)
}

/// The IPv6 twin of [`underlay`]: the same digits as its interface identifier (10.77.0.101
/// and fd00:77::101).
fn underlay6(host_part: u8) -> Ipv6Addr {
    let mut segments = UNDERLAY6.segments();
    segments[7] = u16::from_str_radix(&host_part.to_string(), 16).expect("3 decimal digits");
    Ipv6Addr::from(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hosts: usize, members: usize) -> Spec {
        Spec {
            hosts,
            etcd_members: members,
            ..Spec::new("xl", "/bin")
        }
    }

    #[test]
    fn members_sit_low_and_hosts_above_them() {
        let record = spec(3, 3).plan();
        let members: Vec<String> = record
            .members
            .iter()
            .map(|m| format!("{} {} {}", m.name, m.netns, m.address))
            .collect();
        assert_eq!(
            members,
            [
                "e1 xl-e1 10.77.0.11",
                "e2 xl-e2 10.77.0.12",
                "e3 xl-e3 10.77.0.13"
            ]
        );
        let hosts: Vec<String> = record
            .hosts
            .iter()
            .map(|h| format!("{} {} {} {}", h.name, h.netns, h.address, h.address6))
            .collect();
        assert_eq!(
            hosts,
            [
                "h1 xl-h1 10.77.0.101 fd00:77::101",
                "h2 xl-h2 10.77.0.102 fd00:77::102",
                "h3 xl-h3 10.77.0.103 fd00:77::103"
            ]
        );
        assert_eq!(record.router.address, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(record.router.address6.to_string(), "fd00:77::1");
        assert_eq!(record.switch, "xl-sw");
        assert_eq!(record.router.netns, "xl-out");
    }

    #[test]
    fn the_largest_lab_stays_inside_its_groups() {
        let record = spec(MAX_HOSTS, MAX_MEMBERS).plan();
        assert_eq!(record.members.last().unwrap().address.octets()[3], 19);
        let last = record.hosts.last().unwrap();
        assert_eq!(last.address.to_string(), "10.77.0.199");
        assert_eq!(last.address6.to_string(), "fd00:77::199");
    }

    #[test]
    fn each_host_has_its_own_socket_state_and_pins() {
        let record = spec(2, 1).plan();
        let h2 = &record.hosts[1];
        assert_eq!(h2.socket, Path::new("/run/xnet-lab/xl/h2/xnet.sock"));
        assert_eq!(h2.state_dir, Path::new("/run/xnet-lab/xl/h2/state"));
        assert_eq!(h2.bpffs, Path::new("/sys/fs/bpf/xl-h2"));
        assert_eq!(h2.xnet_host(), "unix:///run/xnet-lab/xl/h2/xnet.sock");
        assert_eq!(
            record.members[0].data_dir,
            Path::new("/run/xnet-lab/xl/e1/data")
        );
    }

    #[test]
    fn the_cluster_store_names_every_member() {
        let record = spec(1, 3).plan();
        assert_eq!(
            record.cluster_store(),
            "etcd://10.77.0.11:2379,10.77.0.12:2379,10.77.0.13:2379"
        );
        assert_eq!(record.members[1].peer_url(), "http://10.77.0.12:2380");
    }

    #[test]
    fn specs_are_checked() {
        assert!(spec(1, 1).validate().is_ok());
        assert!(Spec::for_test("/bin").validate().is_ok());
        for bad in [spec(0, 1), spec(1, 0), spec(MAX_HOSTS + 1, 1), spec(1, 10)] {
            assert!(bad.validate().is_err());
        }
        for prefix in ["", "Xl", "1x", "x l", "x/l", "a-very-long-prefix-for-a-lab"] {
            let bad = Spec::new(prefix, "/bin");
            assert!(bad.validate().is_err(), "{prefix:?} passed");
        }
    }

    #[test]
    fn test_prefixes_carry_the_pid_and_differ() {
        let (a, b) = (Spec::for_test("/bin"), Spec::for_test("/bin"));
        let pid = std::process::id();
        assert!(a.prefix.starts_with(&format!("xt{pid}-l")));
        assert_ne!(a.prefix, b.prefix);
    }
}
