//! Turning samples into results: median/min/max per side, the ratio, the table on stdout, the
//! JSON file and one SVG chart per result.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, anyhow, ensure};
use plotters::prelude::*;
use serde_json::{Value, json};

use super::{
    scenarios::{Better, Compare, Delivery},
    side::{Role, Side},
};

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
        format!(
            "{} [{}–{}]",
            number(self.median),
            number(self.min),
            number(self.max)
        )
    }
}

/// Three decimals, or three significant digits below 0.1 (1,000 packets/s is 0.00100 Mpps,
/// not 0.001).
fn number(v: f64) -> String {
    if v.abs() >= 0.1 || v == 0.0 || !v.is_finite() {
        return format!("{v:.3}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
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
    pub compare: Compare,
    pub rounds: usize,
    pub sides: Vec<SideResult>,
}

impl Row {
    fn role(&self, role: Role) -> Option<&SideResult> {
        self.sides.iter().find(|s| s.side.role() == role)
    }

    fn side(&self, side: Side) -> Option<&SideResult> {
        self.sides.iter().find(|s| s.side == side)
    }

    fn ratio_to(&self, role: Role) -> Option<f64> {
        Some(self.role(Role::Ours)?.summary.median / self.role(role)?.summary.median)
    }

    /// How xnet compares with `side` in the table: `1.23x`, or `45.6x faster` (`2.0x slower`).
    fn comparison(&self, side: Side) -> Option<String> {
        let ratio = self.role(Role::Ours)?.summary.median / self.side(side)?.summary.median;
        Some(match self.compare {
            Compare::Ratio => format!("{ratio:.2}x"),
            Compare::Faster if ratio <= 1.0 => format!("{:.1}x faster", 1.0 / ratio),
            Compare::Faster => format!("{ratio:.1}x slower"),
        })
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
            (Role::SecondBaseline, "second_baseline"),
            (Role::Docker, "docker"),
            (Role::Ceiling, "ceiling"),
            (Role::Reference, "reference"),
        ] {
            if let Some(s) = self.role(role) {
                v[key] = s.summary.json(s.side, s.frames);
            }
        }
        v["ratio"] = json!(self.ratio_to(Role::Baseline));
        for (role, key) in [
            (Role::SecondBaseline, "ratio_to_second_baseline"),
            (Role::Docker, "ratio_to_docker"),
            (Role::Ceiling, "ratio_to_ceiling"),
        ] {
            if let Some(r) = self.ratio_to(role) {
                v[key] = json!(r);
            }
        }
        if self.compare == Compare::Faster {
            for (role, key) in [
                (Role::Baseline, "times_faster"),
                (Role::SecondBaseline, "times_faster_than_second_baseline"),
                (Role::Docker, "times_faster_than_docker"),
            ] {
                if let Some(r) = self.ratio_to(role) {
                    v[key] = json!(1.0 / r);
                }
            }
        }
        v
    }
}

/// The tables: Markdown, so they can go into the README as printed. One table per baseline
/// (and way of comparing), with a column for each side its rows measured and a ratio column
/// for each side xnet is compared with.
pub fn table(rows: &[Row]) -> String {
    /// Rows that share a table: their baseline and how they compare with it.
    type Group<'a> = ((Option<Side>, Compare), Vec<&'a Row>);
    let mut groups: Vec<Group> = Vec::new();
    for row in rows {
        let key = (row.role(Role::Baseline).map(|s| s.side), row.compare);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    groups
        .iter()
        .map(|((baseline, compare), rows)| table_of(rows, *baseline, *compare))
        .collect::<Vec<_>>()
        .join("\n")
}

fn table_of(rows: &[&Row], baseline: Option<Side>, compare: Compare) -> String {
    let mut others: Vec<Side> = Vec::new();
    for side in rows.iter().flat_map(|r| &r.sides).map(|s| s.side) {
        if side.role() != Role::Ours && !others.contains(&side) {
            others.push(side);
        }
    }
    // Baselines first, then real Docker, the ceiling and the reference, whichever row
    // brought them in.
    others.sort_by_key(|side| side.role());
    // xnet is compared with every side but the reference.
    let compared = |side: Side| side.role() != Role::Reference;
    let counts_frames = rows
        .iter()
        .flat_map(|r| &r.sides)
        .any(|s| s.frames.is_some());
    let mut head = vec![
        "scenario".to_string(),
        "unit".into(),
        "better".into(),
        Side::Xnet.title().into(),
    ];
    for &side in &others {
        head.push(side.title().into());
        if compared(side) {
            head.push(match compare {
                Compare::Ratio => format!("xnet / {}", side.short()),
                Compare::Faster => format!("xnet vs {}", side.short()),
            });
        }
    }
    // Loss of xnet, the baseline and real Docker, where they count frames.
    let lossy: Vec<Side> = [Some(Side::Xnet), baseline, Some(Side::DockerReal)]
        .into_iter()
        .flatten()
        .filter(|side| {
            rows.iter()
                .any(|r| r.side(*side).is_some_and(|s| s.frames.is_some()))
        })
        .collect();
    if counts_frames && baseline.is_some() {
        let names: Vec<&str> = lossy.iter().map(|s| s.short()).collect();
        head.push(format!("loss {}", names.join(" / ")));
    }
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for row in rows {
        let cell = |side: Side| row.side(side).map_or("–".into(), |s| s.summary.cell());
        let lost = |side: Side| {
            row.side(side)
                .and_then(|s| s.frames)
                .map_or("–".into(), |d| format!("{:.1}%", 100.0 * d.loss()))
        };
        let mut cells = vec![
            row.scenario.clone(),
            row.unit.into(),
            match row.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            }
            .into(),
            cell(Side::Xnet),
        ];
        for &side in &others {
            cells.push(cell(side));
            if compared(side) {
                cells.push(row.comparison(side).unwrap_or_else(|| "–".into()));
            }
        }
        if counts_frames && baseline.is_some() {
            let losses: Vec<String> = lossy.iter().map(|side| lost(*side)).collect();
            cells.push(losses.join(" / "));
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
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
/// check that the file is usable by whatever consumes it. `with_docker`: the results that
/// must have real Docker's side.
pub fn verify_json(path: &Path, with_docker: &[String]) -> anyhow::Result<usize> {
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
        let scenario = object["scenario"].as_str().unwrap_or_default();
        let needs: &[&str] = if scenario.starts_with("bridge-pps") {
            &["ceiling"]
        } else if scenario.starts_with("publish-tcp") {
            &["second_baseline", "ratio_to_second_baseline"]
        } else if scenario.starts_with("publish-setup") {
            &["times_faster"]
        } else {
            &[]
        };
        for key in needs {
            ensure!(object.get(key).is_some(), "{key} missing in {object}");
        }
        if with_docker.iter().any(|name| name == scenario) {
            let ratio = object["ratio_to_docker"].as_f64();
            ensure!(
                object.get("docker").is_some() && ratio.is_some_and(|r| r.is_finite() && r > 0.0),
                "real Docker's side or its ratio missing in {object}"
            );
        }
    }
    for name in with_docker {
        ensure!(
            all.iter().any(|o| o["scenario"] == name.as_str()),
            "no result for {name}"
        );
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
            compare: Compare::Ratio,
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
    fn small_numbers_keep_three_significant_digits() {
        assert_eq!(number(0.871), "0.871");
        assert_eq!(number(25_835.0), "25835.000");
        assert_eq!(number(0.001_064), "0.00106");
        assert_eq!(number(0.021), "0.0210");
        assert_eq!(number(0.0), "0.000");
    }

    #[test]
    fn json_has_the_promised_keys_and_ratio() {
        let dir = std::env::temp_dir().join(format!("xnet-perf-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&[row()], &machine(0.0), &path).unwrap();
        assert_eq!(verify_json(&path, &[]).unwrap(), 1);
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
        assert!(
            table.starts_with(
                "| scenario | unit | better | xnet: median [min–max] | docker-bridge | \
                 xnet / bridge | ceiling (bare tcx peer hop) | xnet / ceiling | loss xnet / bridge |\n\
                 |---|---|---|---|---|---|---|---|---|\n"
            ),
            "{table}"
        );
        assert!(table.contains("| 2.00x |"), "{table}");
        assert!(table.contains("0.0% / 10.0%"), "{table}");
    }

    #[test]
    fn real_docker_gets_a_column_a_loss_and_a_ratio_of_its_own() {
        let mut with_docker = row();
        with_docker.sides.insert(
            2,
            SideResult {
                side: Side::DockerReal,
                summary: Summary::of(&[0.8, 0.8, 0.8]),
                frames: Some(Delivery {
                    sent: 100,
                    delivered: 80,
                }),
            },
        );
        let table = table(&[with_docker.clone()]);
        assert!(
            table.contains("| Docker 20.10 (bridge driver, -p, docker-proxy) | xnet / Docker |")
                && table.contains("| 2.75x |")
                && table.contains("| loss xnet / bridge / Docker |")
                && table.contains("| 0.0% / 10.0% / 20.0% |"),
            "{table}"
        );
        let dir = std::env::temp_dir().join(format!("xnet-perf-docker-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&[with_docker], &machine(0.0), &path).unwrap();
        let name = "bridge-pps/1flow".to_string();
        assert_eq!(verify_json(&path, std::slice::from_ref(&name)).unwrap(), 1);
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v[0]["docker"]["name"], "docker-real");
        assert!((v[0]["ratio_to_docker"].as_f64().unwrap() - 2.75).abs() < 1e-9);
        // A result that should have real Docker's side and has not fails the smoke check.
        write_json(&[row()], &machine(0.0), &path).unwrap();
        assert!(verify_json(&path, &[name]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn setup_row() -> Row {
        let side = |side, samples: &[f64]| SideResult {
            side,
            summary: Summary::of(samples),
            frames: None,
        };
        Row {
            scenario: "publish-setup/1000ports".into(),
            unit: "s",
            better: Better::Lower,
            compare: Compare::Faster,
            rounds: 1,
            sides: vec![
                side(Side::Xnet, &[0.01]),
                side(Side::IptablesBatch, &[0.5]),
                side(Side::IptablesPerRule, &[4.0]),
            ],
        }
    }

    #[test]
    fn durations_read_as_times_faster_against_both_baselines() {
        let both = table(&[row(), setup_row()]);
        let tables: Vec<&str> = both.split("\n\n").collect();
        assert_eq!(tables.len(), 2, "one table per baseline: {both}");
        assert!(
            tables[1].contains("| xnet vs batch |") && tables[1].contains("| xnet vs per rule |"),
            "{both}"
        );
        assert!(tables[1].contains("| 50.0x faster |"), "{both}");
        assert!(tables[1].contains("| 400.0x faster |"), "{both}");
        let v = setup_row().json(&machine(0.0));
        assert!((v["ratio"].as_f64().unwrap() - 0.02).abs() < 1e-9);
        assert!((v["times_faster"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!((v["ratio_to_second_baseline"].as_f64().unwrap() - 0.0025).abs() < 1e-9);
        assert!((v["times_faster_than_second_baseline"].as_f64().unwrap() - 400.0).abs() < 1e-6);
        assert_eq!(v["second_baseline"]["name"], "iptables-per-rule");
    }
}
