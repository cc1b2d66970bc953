//! `xnet-sink`: counts (and drops) the UDP frames that arrive at a container, at TC ingress for
//! frames that come as skbs (bridged, or redirected with `bpf_redirect_peer`, which skips the
//! XDP hook) or at XDP for frames that come by `XDP_REDIRECT`. It attaches, prints `ready`,
//! and when its stdin closes reports what arrived.

use anyhow::anyhow;
use aya::maps::PerCpuArray;
use clap::Args;
use serde::{Deserialize, Serialize};
use xnet_perf_ebpf::{MAP_SINK, PROG_SINK_TC, PROG_SINK_XDP, SinkCounters};

use crate::ebpf::{self, Hook};

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Device the frames arrive on.
    #[arg(long, default_value = "eth0")]
    pub dev: String,
    #[arg(long, value_enum, default_value_t = Hook::Tc)]
    pub hook: Hook,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SinkReport {
    pub packets: u64,
    pub bytes: u64,
    /// From the first frame to the last stamped one, as the kernel's clock saw them.
    pub seconds: f64,
    /// Delivered frames per second over that time (0 until a CPU saw 257 frames).
    pub pps: f64,
}

pub fn main(args: &SinkArgs) -> anyhow::Result<()> {
    let mut ebpf = ebpf::load(&[])?;
    let program = match args.hook {
        Hook::Tc => PROG_SINK_TC,
        Hook::Xdp => PROG_SINK_XDP,
    };
    ebpf::attach(&mut ebpf, program, args.hook, &args.dev)?;
    crate::announce_ready_and_hold()?;
    std::thread::sleep(ebpf::SETTLE);
    let counters: PerCpuArray<_, SinkCounters> = PerCpuArray::try_from(
        ebpf.map(MAP_SINK)
            .ok_or_else(|| anyhow!("map {MAP_SINK} missing"))?,
    )?;
    let per_cpu = counters.get(&0, 0)?;
    crate::print_report(&summarize(per_cpu.iter()))
}

/// Adds up the per-CPU counters. The rate spans from the earliest first stamp to the latest
/// stamp, and counts the frames up to each CPU's last stamp.
fn summarize<'a>(per_cpu: impl Iterator<Item = &'a SinkCounters>) -> SinkReport {
    let (mut packets, mut bytes, mut stamped, mut first, mut last) = (0, 0, 0, u64::MAX, 0);
    for c in per_cpu.filter(|c| c.packets > 0) {
        packets += c.packets;
        bytes += c.bytes;
        stamped += c.packets_at_last;
        first = first.min(c.first_ns);
        last = last.max(c.last_ns);
    }
    let seconds = last.saturating_sub(first) as f64 / 1e9;
    let pps = if stamped > 1 && seconds > 0.0 {
        (stamped - 1) as f64 / seconds
    } else {
        0.0
    };
    SinkReport {
        packets,
        bytes,
        seconds,
        pps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_all_cpus_and_ignores_idle_ones() {
        let cpus = [
            SinkCounters {
                packets: 520,
                bytes: 31_200,
                first_ns: 1_000,
                last_ns: 500_000_000,
                packets_at_last: 501,
            },
            SinkCounters::default(),
            SinkCounters {
                packets: 500,
                bytes: 30_000,
                first_ns: 2_000,
                last_ns: 1_000_001_000,
                packets_at_last: 500,
            },
        ];
        let report = summarize(cpus.iter());
        assert_eq!(report.packets, 1020);
        assert_eq!(report.bytes, 61_200);
        assert!((report.seconds - 1.0).abs() < 1e-9);
        assert!((report.pps - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn nothing_arrived_is_zero_not_nan() {
        let report = summarize([SinkCounters::default()].iter());
        assert_eq!((report.packets, report.pps), (0, 0.0));
    }
}
