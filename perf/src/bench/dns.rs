//! The embedded DNS (issue #16): A asks its 127.0.0.11 for B's name, a few queries in flight,
//! on xnet's network and on a user-defined network of real Docker (Docker's embedded DNS,
//! which dockerd serves inside each container's namespace behind iptables rules).

use super::{
    lab::Lab,
    scenarios::{Case, Effort, Metric, Sample, rate_and_latency},
    side::Side,
    sys,
};
use crate::dnsq::DnsqReport;

const SIDES: &[Side] = &[Side::Xnet, Side::DockerDns];
/// Queries A keeps in flight.
const IN_FLIGHT: u16 = 8;

const DNS_METRICS: &[Metric] = &rate_and_latency("queries/s");

pub fn dns_qps(_: &Effort) -> Vec<Case> {
    vec![Case {
        name: "dns-qps/8in-flight".into(),
        sides: SIDES,
        metrics: DNS_METRICS,
        measure: Box::new(measure),
    }]
}

fn measure(lab: &Lab, side: Side, effort: &Effort) -> anyhow::Result<Sample> {
    // Docker's names for the containers differ from xnet's (see `lab`).
    let (pair, name) = match side {
        Side::DockerDns => (&lab.docker().pair, lab.docker().name_of_b()),
        _ => (&lab.xnet().pair, "b"),
    };
    let report: DnsqReport = sys::report(
        sys::in_netns(&pair.a.netns, sys::tool("xnet-dnsq"))
            .args(["--name", name, "--in-flight", &IN_FLIGHT.to_string()])
            .args(["--duration", &effort.rr_seconds.to_string()]),
    )?;
    Ok(Sample {
        values: vec![report.qps, report.p50_us, report.p99_us],
        frames: None,
    })
}
