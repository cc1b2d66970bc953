//! `overlay-scale` (issue #13): the control plane at cluster size, simulated. One real xnetd
//! in a cluster of synthetic hosts and endpoints ([`super::cluster`]), against the issue's
//! targets: every endpoint in its map within 10 s of its start; a change of the store in its
//! map within 100 ms (p99) at 100 changes per second; and its memory, reported.

use super::{
    lab::Lab,
    scenarios::{Better, Case, Compare, Effort, Metric, Sample},
    side::Side,
    synthetic_cluster::ClusterSize,
};

const METRICS: &[Metric] = &[
    Metric {
        suffix: "/all-in-map",
        unit: "s",
        better: Better::Lower,
        compare: Compare::Target(Some(10)),
    },
    Metric {
        suffix: "/change-p50",
        unit: "ms",
        better: Better::Lower,
        compare: Compare::Target(None),
    },
    Metric {
        suffix: "/change-p99",
        unit: "ms",
        better: Better::Lower,
        compare: Compare::Target(Some(100)),
    },
    Metric {
        suffix: "/rss",
        unit: "MiB",
        better: Better::Lower,
        compare: Compare::Target(None),
    },
    Metric {
        suffix: "/peak-rss",
        unit: "MiB",
        better: Better::Lower,
        compare: Compare::Target(None),
    },
];

/// The cluster the issue asks for, and the smoke run's.
pub const ISSUE_SIZE: ClusterSize = ClusterSize {
    hosts: 1_000,
    endpoints: 100_000,
};
/// More endpoints than one page of a listing (1,000), so the smoke run reads in pages.
pub const SMOKE_SIZE: ClusterSize = ClusterSize {
    hosts: 20,
    endpoints: 2_000,
};

pub fn overlay_scale(effort: &Effort) -> Vec<Case> {
    vec![Case {
        name: format!(
            "overlay-scale/{}endpoints-{}hosts",
            effort.cluster.endpoints, effort.cluster.hosts
        ),
        sides: &[Side::XnetCluster],
        metrics: METRICS,
        measure: Box::new(|lab: &Lab, _, effort: &Effort| {
            let round = lab.cluster().round(effort.change_time)?;
            let percentile = |q: f64| {
                let n = round.propagation.len();
                // Nearest rank.
                let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
                round
                    .propagation
                    .get(rank - 1)
                    .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
            };
            anyhow::ensure!(!round.propagation.is_empty(), "no change was measured");
            Ok(Sample {
                values: vec![
                    round.fill.as_secs_f64(),
                    percentile(0.50),
                    percentile(0.99),
                    round.rss as f64 / MIB,
                    round.peak_rss as f64 / MIB,
                ],
                frames: None,
            })
        }),
    }]
}

const MIB: f64 = 1024.0 * 1024.0;
