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

/// Frames in the first `BPF_PROG_TEST_RUN` call, which measures how long a frame takes.
const FIRST_CHUNK: u32 = 16_384;
/// How long each later call should keep the CPU. Every call sets up and tears down the kernel's
/// live-frame page pool, and the teardown sleeps (about 20 ms here, an RCU grace period): with
/// calls of a few milliseconds the generator sleeps most of the time and sends at a fraction
/// of what the CPU can do. Calls of 200 ms keep that under a tenth.
const CALL_TIME: Duration = Duration::from_millis(200);
/// With a rate, how much sending one call does; the pacing sleeps fill the rest.
const PACED_CALL_TIME: Duration = Duration::from_millis(50);

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
    /// Number of flows; flow i uses UDP ports SRC_PORT+i -> DST_PORT+i.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_FLOWS as i64))]
    pub flows: u16,
    /// UDP source port of flow 0.
    #[arg(long, default_value_t = frame::FIRST_SRC_PORT)]
    pub src_port: u16,
    /// UDP destination port of flow 0 (a published port, say).
    #[arg(long, default_value_t = frame::FIRST_DST_PORT)]
    pub dst_port: u16,
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
        src_port: args.src_port,
        dst_port: args.dst_port,
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
        // The kernel reports the mean time per repetition.
        pacer.sent(frames, result.duration);
    }
    Ok(pacer.report())
}

/// `struct xdp_md` for the run's context: the frame enters on `ifindex`, queue 0, and `XDP_TX`
/// sends it out of the same device. The kernel wants `data_end` to be the frame's length.
fn xdp_md(ifindex: u32, len: usize) -> Vec<u8> {
    let fields: [u32; 6] = [0, len as u32, 0, ifindex, 0, 0];
    fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

/// Splits the work into calls and, given a rate, sleeps between them to keep to it.
struct Pacer {
    start: Instant,
    sent: u64,
    count: Option<u64>,
    until: Option<Instant>,
    rate: Option<u64>,
    /// Frames the next call sends.
    chunk: u32,
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
            chunk: FIRST_CHUNK,
        }
    }

    fn next_chunk(&self) -> Option<u32> {
        let now = Instant::now();
        if self.until.is_some_and(|until| now >= until) {
            return None;
        }
        let left = self.count.map_or(u64::MAX, |count| count - self.sent);
        (left > 0).then(|| left.min(u64::from(self.chunk)) as u32)
    }

    /// Books a call that sent `frames` at `per_frame` each, sizes the next one, and sleeps as
    /// long as the rate asks.
    fn sent(&mut self, frames: u32, per_frame: Duration) {
        self.sent += u64::from(frames);
        let per_frame = per_frame.as_secs_f64().max(1e-9);
        let mut call = match self.rate {
            Some(rate) => (rate as f64 * PACED_CALL_TIME.as_secs_f64()).max(1.0),
            None => CALL_TIME.as_secs_f64() / per_frame,
        };
        if let Some(until) = self.until {
            // Do not overshoot the deadline by more than a call's setup.
            let left = until
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            call = call.min(left / per_frame + 1.0);
        }
        self.chunk = call.clamp(1.0, f64::from(u32::MAX)) as u32;
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
