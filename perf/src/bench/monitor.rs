//! What `xnet monitor` costs the datapath (issue #16): A's packet rate to B on xnet's lab
//! while A also sends a storm of frames the datapath drops (a forged source address,
//! `spoofed-ip`), with `xnet monitor --type drop` attached, against the same storm with no
//! monitor. Every dropped frame then asks for an event; the rate limit (xnetd's default, 1000
//! per second per CPU) turns away all but a few, and the daemon reads and streams those.

use std::{
    net::Ipv4Addr,
    process::{Child, Stdio},
    thread,
    time::Duration,
};

use super::{
    lab::Lab,
    scenarios::{Case, Effort, HIGHER_MPPS, Sample, packet_rate},
    side::Side,
    sys::{self, Held},
};

const SIDES: &[Side] = &[Side::XnetMonitored, Side::XnetUnmonitored];
/// The storm's rate: frames per second A sends with a forged source, all dropped.
const STORM_PPS: u64 = 200_000;
/// A source address that is not A's (A's network is 10.x; this is TEST-NET-1).
const FORGED_SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
/// How long the monitor may take to attach before the measurement starts.
const ATTACH_TIME: Duration = Duration::from_millis(500);

pub fn monitor_cost(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "monitor-cost/drop-storm".into(),
        sides: SIDES,
        metrics: HIGHER_MPPS,
        measure: Box::new(measure),
    }]
}

/// `xnet monitor` running, its output discarded; killed on drop.
struct Attached(Child);

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(lab: &Lab, side: Side, effort: &Effort) -> anyhow::Result<Sample> {
    let xnet = lab.xnet();
    let pair = &xnet.pair;
    let _monitor = match side {
        Side::XnetMonitored => {
            let child = xnet
                .xnet_command(&["monitor", "--type", "drop", "--format", "json"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            thread::sleep(ATTACH_TIME);
            Some(Attached(child))
        }
        _ => None,
    };
    // Until dropped after the measurement: an hour is far longer than any.
    let _storm = Held::spawn(
        "the drop storm's xnet-gen",
        sys::in_netns(&pair.a.netns, sys::tool("xnet-gen"))
            .args(["--dev", "eth0", "--size", "64", "--duration", "3600"])
            .args(["--rate", &STORM_PPS.to_string()])
            .args(["--src-mac", &pair.a.mac.to_string()])
            .args(["--dst-mac", &pair.b.mac.to_string()])
            .args(["--src-ip", &FORGED_SOURCE.to_string()])
            .args(["--dst-ip", &pair.b.ip.to_string()]),
    )?;
    packet_rate(pair, Side::Xnet, 1, effort.frames)
}
