//! The sides a benchmark compares, and the role each plays in the report.

/// What is being compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The real xnetd and CLI.
    Xnet,
    /// The real xnetd as one host of a simulated cluster (`overlay-scale`): measured against
    /// targets, not against another side.
    XnetCluster,
    /// Linux bridge + br_netfilter + Docker's iptables rules.
    DockerBridge,
    /// tcx ingress + `bpf_redirect_peer` to a fixed ifindex: xnet's mechanism, no lookups.
    PeerHop,
    /// XDP_REDIRECT between the host-side veths, for reference.
    XdpHop,
    /// Published ports as Docker publishes them: its iptables DNAT rules on the bridge lab.
    DockerDnat,
    /// Published ports served by a userland proxy on the bridge lab's host, as docker-proxy
    /// serves them.
    UserlandProxy,
    /// Docker's rules for published ports installed with one `iptables-restore` batch.
    IptablesBatch,
    /// The same rules installed with one `iptables` exec per rule, as dockerd 20.10 does.
    IptablesPerRule,
    /// The outside's frames dropped by an XDP program on the uplink: what sending them costs,
    /// the ceiling of any published-port path measured with the generator on the same machine.
    UplinkDrop,
    /// Real Docker: a private engine of the machine's installation with Docker's default
    /// networking (its bridge driver and iptables rules, `-p` with docker-proxy on), where
    /// one can run.
    DockerReal,
    /// VXLAN between two hosts as Docker's overlay does it (A): a per-network namespace with a
    /// bridge and a vxlan device, static FDB and neighbour entries.
    VxlanBridge,
    /// VXLAN by `bpf_skb_set_tunnel_key` and a collect_md vxlan device (B, as Cilium).
    VxlanTunnelKey,
    /// VXLAN with outer headers written after `bpf_skb_adjust_room`, decapsulated at the
    /// underlay's tcx hook (C, as Calico's eBPF dataplane).
    VxlanAdjustRoom,
    /// C, decapsulated at the underlay's XDP hook instead.
    VxlanAdjustRoomXdp,
    /// The real xnetd and CLI on two simulated hosts of a cluster (xnet-lab: etcd, a switch
    /// between the hosts), a container on each, on one overlay network.
    XnetOverlay,
    /// Docker's overlay datapath rebuilt (A of the VXLAN mechanisms) between two hosts on a
    /// switch, as xnet's are.
    DockerOverlay,
    /// Real Docker's overlay: two private engines of the machine's installation in a swarm,
    /// on a switch as xnet's hosts are, a container of each on an attachable overlay network.
    DockerRealOverlay,
    /// xnet's encrypted overlay (`--opt encrypted`, issue #14) on the hosts of
    /// [`Side::XnetOverlay`], a container of each host on it.
    XnetEncryptedOverlay,
    /// xnet's plain overlay on the same hosts: what encryption is compared with.
    XnetPlainOverlay,
    /// Real Docker's encrypted overlay (`--opt encrypted`) on the swarm of
    /// [`Side::DockerRealOverlay`]: kernel IPsec, which this machine's kernel lacks.
    DockerRealEncryptedOverlay,
    /// A container on an xnet macvlan network (issue #15), reached from the LAN.
    XnetMacvlan,
    /// A container on an xnet ipvlan network (l2), reached from the LAN.
    XnetIpvlan,
    /// The kernel's macvlan driver in bridge mode, what Docker's macvlan driver builds (this
    /// kernel has no ipvlan module: the ipvlan rows compare with it too).
    KernelMacvlan,
    /// The real xnetd and CLI with `xnet monitor --type drop` attached, during a storm of
    /// dropped frames (`monitor-cost`).
    XnetMonitored,
    /// The same storm with no monitor attached.
    XnetUnmonitored,
    /// `xnet-cni` against the xnet lab's daemon (`cni-add`).
    XnetCni,
    /// The reference CNI plugins, `bridge` + `host-local` chained with `portmap`.
    ReferenceCni,
    /// Real Docker's embedded DNS, on its lab's user-defined network (`dns-qps`).
    DockerDns,
}

/// How a side enters the report; the tables' columns follow this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Ours,
    Baseline,
    /// One of several mechanisms compared with the baseline, none of them xnet's: the table
    /// gives candidate / baseline for each.
    Candidate,
    /// Another baseline xnet is compared with, in a ratio of its own.
    SecondBaseline,
    /// Real Docker, what users of Docker run today: compared in a ratio of its own.
    Docker,
    Ceiling,
    Reference,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Xnet => "xnet",
            Side::XnetCluster => "xnet-cluster",
            Side::DockerBridge => "docker-bridge",
            Side::PeerHop => "bare-tcx-peer-hop",
            Side::XdpHop => "bare-xdp-redirect-hop",
            Side::DockerDnat => "iptables-dnat",
            Side::UserlandProxy => "userland-proxy",
            Side::IptablesBatch => "iptables-restore-batch",
            Side::IptablesPerRule => "iptables-per-rule",
            Side::UplinkDrop => "bare-xdp-drop-on-uplink",
            Side::DockerReal => "docker-real",
            Side::VxlanBridge => "vxlan-bridge",
            Side::VxlanTunnelKey => "vxlan-set-tunnel-key",
            Side::VxlanAdjustRoom => "vxlan-adjust-room",
            Side::VxlanAdjustRoomXdp => "vxlan-adjust-room-xdp",
            Side::XnetOverlay => "xnet-overlay",
            Side::DockerOverlay => "docker-overlay",
            Side::DockerRealOverlay => "docker-real-overlay",
            Side::XnetEncryptedOverlay => "xnet-encrypted-overlay",
            Side::XnetPlainOverlay => "xnet-plain-overlay",
            Side::DockerRealEncryptedOverlay => "docker-real-encrypted-overlay",
            Side::XnetMacvlan => "xnet-macvlan",
            Side::XnetIpvlan => "xnet-ipvlan",
            Side::KernelMacvlan => "kernel-macvlan",
            Side::XnetMonitored => "xnet-monitored",
            Side::XnetUnmonitored => "xnet-unmonitored",
            Side::XnetCni => "xnet-cni",
            Side::ReferenceCni => "reference-cni",
            Side::DockerDns => "docker-dns",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Side::Xnet
            | Side::XnetCluster
            | Side::XnetOverlay
            | Side::XnetEncryptedOverlay
            | Side::XnetMacvlan
            | Side::XnetIpvlan
            | Side::XnetMonitored
            | Side::XnetCni => Role::Ours,
            Side::KernelMacvlan | Side::XnetUnmonitored | Side::ReferenceCni | Side::DockerDns => {
                Role::Baseline
            }
            Side::XnetPlainOverlay => Role::Baseline,
            Side::DockerBridge
            | Side::DockerDnat
            | Side::IptablesBatch
            | Side::VxlanBridge
            | Side::DockerOverlay => Role::Baseline,
            Side::VxlanTunnelKey | Side::VxlanAdjustRoom | Side::VxlanAdjustRoomXdp => {
                Role::Candidate
            }
            Side::UserlandProxy | Side::IptablesPerRule => Role::SecondBaseline,
            Side::PeerHop | Side::UplinkDrop => Role::Ceiling,
            Side::XdpHop => Role::Reference,
            Side::DockerReal | Side::DockerRealOverlay | Side::DockerRealEncryptedOverlay => {
                Role::Docker
            }
        }
    }

    /// Its column in the table.
    pub fn title(self) -> &'static str {
        match self {
            Side::Xnet | Side::XnetOverlay => "xnet: median [min–max]",
            Side::XnetCluster => "xnet, one host of the cluster: median [min–max]",
            Side::DockerBridge => "docker-bridge",
            Side::PeerHop => "ceiling (bare tcx peer hop)",
            Side::XdpHop => "bare XDP_REDIRECT hop",
            Side::DockerDnat => "iptables DNAT (Docker's rules)",
            Side::UserlandProxy => "userland proxy (as docker-proxy)",
            Side::IptablesBatch => "iptables-restore, one batch",
            Side::IptablesPerRule => "iptables, one exec per rule",
            Side::UplinkDrop => "ceiling (XDP drop on the uplink)",
            Side::DockerReal => "Docker 20.10 (bridge driver, -p, docker-proxy)",
            Side::VxlanBridge => "A: bridge + vxlan device (Docker's overlay): median [min–max]",
            Side::VxlanTunnelKey => "B: set_tunnel_key + collect_md vxlan device",
            Side::VxlanAdjustRoom => "C: adjust_room, decap at tcx",
            Side::VxlanAdjustRoomXdp => "C-xdp: adjust_room, decap at XDP",
            Side::DockerOverlay => "A: Docker's overlay rebuilt (bridge + vxlan device)",
            Side::DockerRealOverlay => "Docker 20.10 (swarm, overlay driver)",
            Side::XnetEncryptedOverlay => "xnet, encrypted overlay: median [min–max]",
            Side::XnetPlainOverlay => "xnet, plain overlay (same hosts)",
            Side::DockerRealEncryptedOverlay => "Docker 20.10 (swarm, overlay --opt encrypted)",
            Side::XnetMacvlan => "xnet macvlan: median [min–max]",
            Side::XnetIpvlan => "xnet ipvlan: median [min–max]",
            Side::KernelMacvlan => "kernel macvlan, bridge mode (Docker's macvlan; no ipvlan here)",
            Side::XnetMonitored => "xnet, monitor attached, drop storm: median [min–max]",
            Side::XnetUnmonitored => "xnet, no monitor, drop storm",
            Side::XnetCni => "xnet-cni: median [min–max]",
            Side::ReferenceCni => "bridge + host-local + portmap (reference plugins)",
            Side::DockerDns => "Docker 20.10's embedded DNS (user-defined network)",
        }
    }

    /// How the table's ratio columns name it.
    pub fn short(self) -> &'static str {
        match self {
            Side::Xnet
            | Side::XnetCluster
            | Side::XnetOverlay
            | Side::XnetMacvlan
            | Side::XnetIpvlan => "xnet",
            Side::KernelMacvlan => "kernel macvlan",
            Side::XnetMonitored => "monitored",
            Side::XnetUnmonitored => "unmonitored",
            Side::XnetCni => "xnet-cni",
            Side::ReferenceCni => "reference",
            Side::DockerDns => "Docker's DNS",
            Side::XnetEncryptedOverlay => "encrypted",
            Side::XnetPlainOverlay => "plain",
            Side::DockerBridge => "bridge",
            Side::PeerHop => "ceiling",
            Side::XdpHop => "XDP hop",
            Side::DockerDnat => "DNAT",
            Side::UserlandProxy => "proxy",
            Side::IptablesBatch => "batch",
            Side::IptablesPerRule => "per rule",
            Side::UplinkDrop => "ceiling",
            Side::DockerReal | Side::DockerRealOverlay | Side::DockerRealEncryptedOverlay => {
                "Docker"
            }
            Side::VxlanBridge | Side::DockerOverlay => "A",
            Side::VxlanTunnelKey => "B",
            Side::VxlanAdjustRoom => "C",
            Side::VxlanAdjustRoomXdp => "C-xdp",
        }
    }
}
