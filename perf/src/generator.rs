//! `xnet-gen`: sends UDP frames into a veth from inside a container's namespace with XDP live
//! frames (`BPF_PROG_TEST_RUN` + `BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel runs the generator
//! program once per frame and transmits what it returns `XDP_TX` for out of the device named in
//! the run's context. The rate the generator reports is only what it offered; delivery is
//! counted by `xnet-sink`.

use std::{
    net::Ipv4Addr,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, ensure};
use aya::{
    maps::Array,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};
use clap::Args;
use serde::{Deserialize, Serialize};
use xnet_perf_ebpf::{FlowHeaders, GLOBAL_FLOWS, MAP_FLOWS, MAX_FLOWS, PROG_GENERATOR};

use crate::{
    ebpf,
    frame::{self, Endpoints, Mac},
};

/// Frames per `BPF_PROG_TEST_RUN` call: small enough to stop close to a deadline and to pace a
/// rate, large enough that the syscall costs nothing.
const CHUNK: u32 = 16_384;

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Device to transmit on (its peer receives the frames).
    #[arg(long, default_value = "eth0")]
    pub dev: String,
    /// Source MAC: the sending container's own.
    #[arg(long)]
    pub src_mac: Mac,
    /// Destination MAC: the receiving container's.
    #[arg(long)]
    pub dst_mac: Mac,
    #[arg(long)]
    pub src_ip: Ipv4Addr,
    #[arg(long)]
    pub dst_ip: Ipv4Addr,
    /// Frame size in bytes, FCS included (64 = the smallest Ethernet frame).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Number of flows; flow i uses UDP ports 10000+i -> 20000+i.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_FLOWS as i64))]
    pub flows: u16,
    /// Frames to send.
    #[arg(
        long,
        conflicts_with = "duration",
        required_unless_present = "duration"
    )]
    pub count: Option<u64>,
    /// Seconds to send for.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Frames per second at most (default: as fast as the CPU goes).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Frames the kernel builds and transmits per batch (1..=256).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GenReport {
    /// Frames handed to the device.
    pub sent: u64,
    pub seconds: f64,
    /// `sent / seconds`: offered load, not delivery.
    pub pps: f64,
}

pub fn main(args: &GenArgs) -> anyhow::Result<()> {
    let report = run(args)?;
    crate::print_report(&report)
}

pub fn run(args: &GenArgs) -> anyhow::Result<GenReport> {
    let ends = Endpoints {
        src_mac: args.src_mac,
        dst_mac: args.dst_mac,
        src_ip: args.src_ip,
        dst_ip: args.dst_ip,
    };
    let headers = (0..args.flows)
        .map(|flow| frame::flow_headers(&ends, flow, args.size))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ebpf = ebpf::load(&[(GLOBAL_FLOWS, u32::from(args.flows))])?;
    let mut flows: Array<_, FlowHeaders> = Array::try_from(
        ebpf.map_mut(MAP_FLOWS)
            .ok_or_else(|| anyhow!("map {MAP_FLOWS} missing"))?,
    )?;
    for (index, h) in (0u32..).zip(&headers) {
        flows.set(index, h, 0).context("writing FLOWS")?;
    }
    let program: &mut Xdp = ebpf
        .program_mut(PROG_GENERATOR)
        .ok_or_else(|| anyhow!("program {PROG_GENERATOR} missing"))?
        .try_into()?;
    program.load()?;
    let data = frame::frame(&headers[0], args.size);
    let ctx = xdp_md(ebpf::ifindex(&args.dev)?, data.len());
    let mut pacer = Pacer::new(args);
    while let Some(frames) = pacer.next_chunk() {
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(&data),
                ctx_in: Some(&ctx),
                repeat: frames,
                attrs: TestRunAttrs::new().xdp_live_frames(args.batch),
                ..Default::default()
            })
            .context("BPF_PROG_TEST_RUN with live frames (kernel >= 5.18 needed)")?;
        ensure!(
            result.return_value == 0,
            "live-frame run returned {}",
            result.return_value
        );
        pacer.sent(frames);
    }
    Ok(pacer.report())
}

/// `struct xdp_md` for the run's context: the frame enters on `ifindex`, queue 0, and `XDP_TX`
/// sends it out of the same device. The kernel wants `data_end` to be the frame's length.
fn xdp_md(ifindex: u32, len: usize) -> Vec<u8> {
    let fields: [u32; 6] = [0, len as u32, 0, ifindex, 0, 0];
    fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

/// Splits the work into chunks and, given a rate, sleeps between them to keep to it.
struct Pacer {
    start: Instant,
    sent: u64,
    count: Option<u64>,
    until: Option<Instant>,
    rate: Option<u64>,
}

impl Pacer {
    fn new(args: &GenArgs) -> Self {
        let start = Instant::now();
        Self {
            start,
            sent: 0,
            count: args.count,
            until: args.duration.map(|s| start + Duration::from_secs_f64(s)),
            rate: args.rate,
        }
    }

    fn next_chunk(&self) -> Option<u32> {
        if self.until.is_some_and(|until| Instant::now() >= until) {
            return None;
        }
        let left = self.count.map_or(u64::MAX, |count| count - self.sent);
        // At a set rate, chunks of about a millisecond keep the pacing smooth.
        let chunk = self.rate.map_or(CHUNK, |rate| {
            (rate / 1000).clamp(1, u64::from(CHUNK)) as u32
        });
        (left > 0).then(|| left.min(u64::from(chunk)) as u32)
    }

    fn sent(&mut self, frames: u32) {
        self.sent += u64::from(frames);
        if let Some(rate) = self.rate {
            let due = self.start + Duration::from_secs_f64(self.sent as f64 / rate as f64);
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }

    fn report(&self) -> GenReport {
        let seconds = self.start.elapsed().as_secs_f64();
        GenReport {
            sent: self.sent,
            seconds,
            pps: self.sent as f64 / seconds,
        }
    }
}
