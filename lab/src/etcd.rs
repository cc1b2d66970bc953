//! The lab's etcd: Debian's `etcd` (3.4), one process per member, all members one cluster.

use std::{path::Path, time::Duration};

use crate::{
    netns,
    record::{Member, Record},
};

/// How long `up` waits for every member to be healthy: a new cluster elects its leader within
/// about a second; the rest is room for a busy machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// etcd's command line for `member` of the lab in `record`.
pub fn args(record: &Record, member: &Member) -> Vec<String> {
    let cluster: Vec<String> = record
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect();
    [
        ("--name", member.name.clone()),
        ("--data-dir", member.data_dir.display().to_string()),
        ("--listen-client-urls", member.client_url()),
        ("--advertise-client-urls", member.client_url()),
        ("--listen-peer-urls", member.peer_url()),
        ("--initial-advertise-peer-urls", member.peer_url()),
        ("--initial-cluster", cluster.join(",")),
        ("--initial-cluster-state", "new".to_string()),
        // Unique per lab, so members of two labs could never join each other's cluster.
        (
            "--initial-cluster-token",
            format!("xnet-lab-{}", record.prefix),
        ),
        // etcd 3.4's default logger (capnslog) is deprecated and says so at every start.
        ("--logger", "zap".to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// Whether `member` answers `GET /health` with `"health":"true"` (it has a leader and its
/// cluster a quorum), asked from the namespace at `from` over the underlay.
pub fn healthy(member: &Member, from: &Path) -> bool {
    let url = format!("{}/health", member.client_url());
    netns::output_in(from, &["curl", "-s", "--max-time", "2", &url]).is_ok_and(|out| {
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(r#""health":"true""#)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Spec;

    #[test]
    fn every_member_knows_the_whole_cluster() {
        let record = Spec {
            etcd_members: 3,
            ..Spec::new("xl", "/bin")
        }
        .plan();
        let args = args(&record, &record.members[1]).join(" ");
        assert_eq!(
            args,
            "--name e2 --data-dir /run/xnet-lab/xl/e2/data \
             --listen-client-urls http://10.77.0.12:2379 \
             --advertise-client-urls http://10.77.0.12:2379 \
             --listen-peer-urls http://10.77.0.12:2380 \
             --initial-advertise-peer-urls http://10.77.0.12:2380 \
             --initial-cluster e1=http://10.77.0.11:2380,e2=http://10.77.0.12:2380,e3=http://10.77.0.13:2380 \
             --initial-cluster-state new --initial-cluster-token xnet-lab-xl --logger zap"
        );
    }
}
