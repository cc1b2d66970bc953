//! Each host's xnetd: the host's namespace, its own socket, state and pins, the underlay link
//! as uplink and cluster address, the lab's etcd as cluster store.

use std::{os::unix::net::UnixStream, time::Duration};

use crate::record::{Host, Record};

/// The host's link to the underlay, inside its namespace.
pub const UPLINK: &str = "eth0";

/// How long `up` and `start_xnetd` wait for the socket to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// xnetd's command line for `host` of the lab in `record`.
pub fn args(record: &Record, host: &Host) -> Vec<String> {
    let mut args: Vec<String> = [
        ("--socket", host.socket.display().to_string()),
        ("--state-dir", host.state_dir.display().to_string()),
        ("--bpffs", host.bpffs.display().to_string()),
        ("--uplink", UPLINK.to_string()),
        ("--cluster-store", record.cluster_store()),
        ("--cluster-advertise", UPLINK.to_string()),
        ("--cluster-host-name", host.name.clone()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect();
    args.extend(
        record
            .xnetd_args
            .iter()
            .map(|arg| arg.replace("{node}", &host.netns)),
    );
    args
}

/// Whether the host's xnetd accepts connections on its socket.
pub fn answers(host: &Host) -> bool {
    UnixStream::connect(&host.socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Spec;

    #[test]
    fn each_xnetd_has_its_own_paths_and_the_lab_s_cluster() {
        let record = Spec {
            hosts: 2,
            etcd_members: 3,
            xnetd_args: vec!["--log-level".into(), "debug".into(), "--tag={node}".into()],
            ..Spec::new("xl", "/bin")
        }
        .plan();
        assert_eq!(
            args(&record, &record.hosts[1]).join(" "),
            "--socket /run/xnet-lab/xl/h2/xnet.sock --state-dir /run/xnet-lab/xl/h2/state \
             --bpffs /sys/fs/bpf/xl-h2 --uplink eth0 \
             --cluster-store etcd://10.77.0.11:2379,10.77.0.12:2379,10.77.0.13:2379 \
             --cluster-advertise eth0 --cluster-host-name h2 --log-level debug --tag=xl-h2"
        );
    }
}
