//! Turning samples into results: median/min/max per side, the ratio, the table on stdout, the
//! JSON file and one SVG chart per result.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, anyhow, ensure};
use plotters::prelude::*;
use serde_json::{Value, json};

use super::scenarios::{Better, Delivery, Role, Side};

/// The 1-minute load average (0 when unreadable).
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The machine a run measured, as the JSON and README report it, with the load average seen
/// before the run (how quiet it was).
pub fn machine(load_before: f64) -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "kernel": kernel.trim(),
        "load_before": load_before,
    })
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            samples: samples.to_vec(),
        }
    }

    fn json(&self, side: Side, frames: Option<Delivery>) -> Value {
        let mut v = json!({
            "name": side.label(),
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "samples": self.samples,
        });
        if let Some(d) = frames {
            v["sent"] = json!(d.sent);
            v["delivered"] = json!(d.delivered);
            v["loss"] = json!(d.loss());
        }
        v
    }

    fn cell(&self) -> String {
        format!("{:.3} [{:.3}–{:.3}]", self.median, self.min, self.max)
    }
}

/// One side's results for one metric.
#[derive(Debug, Clone)]
pub struct SideResult {
    pub side: Side,
    pub summary: Summary,
    /// Frames sent and delivered over all rounds, where counted.
    pub frames: Option<Delivery>,
}

/// One metric of one case: a line of the table, an object of the JSON, a chart.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub unit: &'static str,
    pub better: Better,
    pub rounds: usize,
    pub sides: Vec<SideResult>,
}

impl Row {
    fn role(&self, role: Role) -> Option<&SideResult> {
        self.sides.iter().find(|s| s.side.role() == role)
    }

    fn ratio_to(&self, role: Role) -> Option<f64> {
        Some(self.role(Role::Ours)?.summary.median / self.role(role)?.summary.median)
    }

    pub fn json(&self, machine: &Value) -> Value {
        let mut v = json!({
            "scenario": self.scenario,
            "unit": self.unit,
            "better": match self.better { Better::Higher => "higher", Better::Lower => "lower" },
            "rounds": self.rounds,
            "machine": machine,
        });
        for (role, key) in [
            (Role::Ours, "ours"),
            (Role::Baseline, "baseline"),
            (Role::Ceiling, "ceiling"),
            (Role::Reference, "reference"),
        ] {
            if let Some(s) = self.role(role) {
                v[key] = s.summary.json(s.side, s.frames);
            }
        }
        v["ratio"] = json!(self.ratio_to(Role::Baseline));
        if let Some(r) = self.ratio_to(Role::Ceiling) {
            v["ratio_to_ceiling"] = json!(r);
        }
        v
    }
}

/// The table: Markdown, so it can go into the README as printed.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | unit | better | xnet: median [min–max] | docker-bridge | xnet / bridge | \
         ceiling (bare tcx peer hop) | xnet / ceiling | bare XDP_REDIRECT hop | loss xnet / bridge |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let cell = |role| row.role(role).map_or("–".into(), |s| s.summary.cell());
        let ratio = |role| {
            row.ratio_to(role)
                .map_or("–".into(), |r| format!("{r:.2}x"))
        };
        let lost = |role| {
            row.role(role)
                .and_then(|s| s.frames)
                .map_or("–".into(), |d| format!("{:.1}%", 100.0 * d.loss()))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            row.scenario,
            row.unit,
            match row.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            },
            cell(Role::Ours),
            cell(Role::Baseline),
            ratio(Role::Baseline),
            cell(Role::Ceiling),
            ratio(Role::Ceiling),
            cell(Role::Reference),
            lost(Role::Ours),
            lost(Role::Baseline),
        );
    }
    out
}

/// Writes all rows as a JSON array.
pub fn write_json(rows: &[Row], machine: &Value, path: &Path) -> anyhow::Result<()> {
    let all: Vec<Value> = rows.iter().map(|r| r.json(machine)).collect();
    fs::write(path, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads the JSON back and checks every object has what the issue promises: the smoke run's
/// check that the file is usable by whatever consumes it.
pub fn verify_json(path: &Path) -> anyhow::Result<usize> {
    let all: Value = serde_json::from_str(&fs::read_to_string(path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let all = all.as_array().ok_or_else(|| anyhow!("not a JSON array"))?;
    ensure!(!all.is_empty(), "no results");
    for object in all {
        for key in [
            "scenario", "unit", "ours", "baseline", "ratio", "rounds", "machine",
        ] {
            ensure!(object.get(key).is_some(), "{key} missing in {object}");
        }
        let ratio = object["ratio"].as_f64();
        ensure!(
            ratio.is_some_and(|r| r.is_finite() && r > 0.0),
            "bad ratio in {object}"
        );
        if object["scenario"]
            .as_str()
            .is_some_and(|s| s.starts_with("bridge-pps"))
        {
            ensure!(
                object.get("ceiling").is_some(),
                "ceiling missing in {object}"
            );
        }
    }
    Ok(all.len())
}

/// One bar chart per row: median per side, with a whisker from min to max.
pub fn write_svg(row: &Row, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(format!("{}.svg", row.scenario.replace('/', "_")));
    let root = SVGBackend::new(&path, (720, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let top = row
        .sides
        .iter()
        .map(|s| s.summary.max)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.15;
    let n = row.sides.len() as u32;
    let better = match row.better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} ({better})", row.scenario), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0u32..n).into_segmented(), 0.0..top)
        .map_err(plot_error)?;
    let labels: Vec<&str> = row.sides.iter().map(|s| s.side.label()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .y_desc(row.unit)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).copied().unwrap_or("").into(),
            _ => String::new(),
        })
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(row.sides.iter().zip(0u32..).map(|(s, i)| {
            let color = if s.side.role() == Role::Ours {
                BLUE
            } else {
                RGBColor(150, 150, 150)
            };
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), s.summary.median),
                ],
                color.mix(0.8).filled(),
            );
            bar.set_margin(0, 0, 20, 20);
            bar
        }))
        .map_err(plot_error)?;
    chart
        .draw_series(row.sides.iter().zip(0u32..).map(|(s, i)| {
            PathElement::new(
                [
                    (SegmentValue::CenterOf(i), s.summary.min),
                    (SegmentValue::CenterOf(i), s.summary.max),
                ],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            scenario: "bridge-pps/1flow".into(),
            unit: "Mpps",
            better: Better::Higher,
            rounds: 3,
            sides: vec![
                SideResult {
                    side: Side::Xnet,
                    summary: Summary::of(&[2.0, 2.4, 2.2]),
                    frames: Some(Delivery {
                        sent: 100,
                        delivered: 100,
                    }),
                },
                SideResult {
                    side: Side::DockerBridge,
                    summary: Summary::of(&[1.0, 1.2, 1.1]),
                    frames: Some(Delivery {
                        sent: 100,
                        delivered: 90,
                    }),
                },
                SideResult {
                    side: Side::PeerHop,
                    summary: Summary::of(&[2.2, 2.2, 2.2]),
                    frames: Some(Delivery {
                        sent: 100,
                        delivered: 100,
                    }),
                },
            ],
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.max), (1.0, 3.0));
    }

    #[test]
    fn json_has_the_promised_keys_and_ratio() {
        let dir = std::env::temp_dir().join(format!("xnet-perf-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&[row()], &machine(0.0), &path).unwrap();
        assert_eq!(verify_json(&path).unwrap(), 1);
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert!((v[0]["ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9);
        assert!((v[0]["ratio_to_ceiling"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        assert!((v[0]["baseline"]["loss"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        write_svg(&row(), &dir).unwrap();
        let svg = fs::read_to_string(dir.join("bridge-pps_1flow.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("docker-bridge"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_shows_ratio_and_loss() {
        let table = table(&[row()]);
        assert!(table.contains("| 2.00x |"), "{table}");
        assert!(table.contains("0.0% / 10.0%"), "{table}");
    }
}
