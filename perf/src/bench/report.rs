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

/// The time now, as `2026-12-03 07:10 UTC` (`date -u`; empty if it cannot run).
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

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

    /// How `num` compares with `den` in the table: `1.23x`, or `45.6x faster` (`2.0x
    /// slower`); `–` where there is nothing to divide by (a count of 0).
    fn comparison(&self, num: Side, den: Side) -> Option<String> {
        let ratio = self.side(num)?.summary.median / self.side(den)?.summary.median;
        if !ratio.is_finite() {
            return Some("–".into());
        }
        Some(match self.compare {
            Compare::Ratio | Compare::Target(_) => format!("{ratio:.2}x"),
            Compare::Faster if ratio <= 1.0 => format!("{:.1}x faster", 1.0 / ratio),
            Compare::Faster => format!("{ratio:.1}x slower"),
        })
    }

    /// Whether xnet's median meets the row's target; None without one.
    fn met(&self) -> Option<bool> {
        let Compare::Target(Some(target)) = self.compare else {
            return None;
        };
        let median = self.role(Role::Ours)?.summary.median;
        Some(match self.better {
            Better::Higher => median >= f64::from(target),
            Better::Lower => median <= f64::from(target),
        })
    }

    /// Candidate / baseline for each candidate (none in rows with xnet), `None` where the
    /// baseline's median is 0.
    fn candidates(&self) -> impl Iterator<Item = (&SideResult, Option<f64>)> {
        let baseline = self.role(Role::Baseline).map(|b| b.summary.median);
        self.sides
            .iter()
            .filter(|s| s.side.role() == Role::Candidate)
            .map(move |s| {
                let ratio = baseline.map(|b| s.summary.median / b);
                (s, ratio.filter(|r| r.is_finite()))
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
        if let Compare::Target(target) = self.compare {
            v["target"] = json!(target);
            v["met"] = json!(self.met());
        } else if self.role(Role::Ours).is_some() {
            v["ratio"] = json!(self.ratio_to(Role::Baseline));
        }
        let candidates: Vec<Value> = self
            .candidates()
            .map(|(s, ratio)| {
                let mut c = s.summary.json(s.side, s.frames);
                c["ratio"] = json!(ratio);
                c
            })
            .collect();
        if !candidates.is_empty() {
            v["candidates"] = json!(candidates);
        }
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
    /// Rows that share a table: their baseline, their side of xnet (one baseline may serve
    /// two, as the kernel's macvlan serves xnet's macvlan and ipvlan) and how they compare
    /// (rows against targets share one, whatever their targets).
    type Group<'a> = (
        (Option<Side>, Option<Side>, std::mem::Discriminant<Compare>),
        Vec<&'a Row>,
    );
    let mut groups: Vec<Group> = Vec::new();
    for row in rows {
        let key = (
            row.role(Role::Baseline).map(|s| s.side),
            row.role(Role::Ours).map(|s| s.side),
            std::mem::discriminant(&row.compare),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    groups
        .iter()
        .map(|((baseline, _, _), rows)| match rows[0].compare {
            Compare::Target(_) => table_of_targets(rows),
            compare => table_of(rows, *baseline, compare),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows measured against targets: xnet's value, the target, whether it is met.
fn table_of_targets(rows: &[&Row]) -> String {
    let ours = rows
        .iter()
        .flat_map(|r| &r.sides)
        .map(|s| s.side)
        .find(|s| s.role() == Role::Ours);
    let title = ours.map_or("xnet", Side::title);
    let mut out = format!(
        "| scenario | unit | better | {title} | target | met |\n|---|---|---|---|---|---|\n"
    );
    for row in rows {
        let value = row
            .role(Role::Ours)
            .map_or("–".into(), |s| s.summary.cell());
        let (target, met) = match (row.compare, row.met()) {
            (Compare::Target(Some(target)), Some(met)) => {
                let bound = match row.better {
                    Better::Higher => "≥",
                    Better::Lower => "≤",
                };
                (format!("{bound} {target}"), if met { "yes" } else { "no" })
            }
            _ => ("–".into(), "–"),
        };
        let better = match row.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {better} | {value} | {target} | {met} |",
            row.scenario, row.unit
        );
    }
    out
}

fn table_of(rows: &[&Row], baseline: Option<Side>, compare: Compare) -> String {
    let mut sides: Vec<Side> = Vec::new();
    for side in rows.iter().flat_map(|r| &r.sides).map(|s| s.side) {
        if !sides.contains(&side) {
            sides.push(side);
        }
    }
    // xnet first, then the baselines, candidates, real Docker, the ceiling and the
    // reference, whichever row brought them in.
    sides.sort_by_key(|side| side.role());
    let ours = sides.iter().copied().find(|s| s.role() == Role::Ours);
    // The ratio column after a side's values: xnet / that side (every side but the
    // reference) where xnet is measured; otherwise candidate / baseline.
    let ratio_of = |side: Side| -> Option<(Side, Side)> {
        match (ours, side.role()) {
            (Some(_), Role::Ours | Role::Reference) => None,
            (Some(ours), _) => Some((ours, side)),
            (None, Role::Candidate) => Some((side, baseline?)),
            (None, _) => None,
        }
    };
    let counts_frames = rows
        .iter()
        .flat_map(|r| &r.sides)
        .any(|s| s.frames.is_some());
    let mut head = vec!["scenario".to_string(), "unit".into(), "better".into()];
    for &side in &sides {
        head.push(side.title().into());
        if let Some((num, den)) = ratio_of(side) {
            head.push(match compare {
                Compare::Ratio | Compare::Target(_) => format!("{} / {}", num.short(), den.short()),
                Compare::Faster => format!("{} vs {}", num.short(), den.short()),
            });
        }
    }
    // Loss of xnet, the baseline and real Docker (or of the baseline and the candidates),
    // where they count frames.
    let lossy: Vec<Side> = match ours {
        Some(ours) => vec![
            Some(ours),
            baseline,
            sides.iter().copied().find(|s| s.role() == Role::Docker),
        ],
        None => std::iter::once(baseline)
            .chain(
                sides
                    .iter()
                    .map(|s| Some(*s).filter(|s| s.role() == Role::Candidate)),
            )
            .collect(),
    }
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
        ];
        for &side in &sides {
            cells.push(cell(side));
            if let Some((num, den)) = ratio_of(side) {
                cells.push(row.comparison(num, den).unwrap_or_else(|| "–".into()));
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

/// Writes the tables as the README shows a run's results: a line saying what ran (`run`),
/// where and how quiet the machine was, then the tables exactly as printed.
pub fn write_markdown(
    rows: &[Row],
    machine: &Value,
    run: &str,
    rounds: usize,
    path: &Path,
) -> anyhow::Result<()> {
    let text = format!(
        "{run}, on {} vCPUs ({}), kernel {}, load average {:.2} before the run; median \
         [min–max] of {rounds} round(s), the sides alternated within each round.\n\n{}",
        machine["cpus"],
        machine["cpu_model"].as_str().unwrap_or("unknown"),
        machine["kernel"].as_str().unwrap_or("unknown"),
        machine["load_before"].as_f64().unwrap_or(0.0),
        table(rows)
    );
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
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
        for key in ["scenario", "unit", "rounds", "machine"] {
            ensure!(object.get(key).is_some(), "{key} missing in {object}");
        }
        if object.get("target").is_some() {
            // Against a target: xnet's value is all there is (met or not: the smoke run
            // checks that it was measured, not how fast).
            ensure!(
                object["ours"]["median"]
                    .as_f64()
                    .is_some_and(f64::is_finite)
                    && object.get("met").is_some(),
                "xnet's value or `met` missing in {object}"
            );
            continue;
        }
        ensure!(
            object.get("baseline").is_some(),
            "baseline missing in {object}"
        );
        if let Some(candidates) = object.get("candidates") {
            verify_candidates(object, candidates)?;
            continue;
        }
        for key in ["ours", "ratio"] {
            ensure!(object.get(key).is_some(), "{key} missing in {object}");
        }
        ensure!(
            ratio_is_good(object, "ratio", "baseline"),
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
            ensure!(
                object.get("docker").is_some()
                    && ratio_is_good(object, "ratio_to_docker", "docker"),
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

/// Whether `object`'s ratio `key` to side `of` is a number (0 where xnet counted none of
/// something, retransmissions say), or null because the side's median is 0 (nothing to
/// divide by).
fn ratio_is_good(object: &Value, key: &str, of: &str) -> bool {
    match object[key].as_f64() {
        Some(ratio) => ratio.is_finite() && ratio >= 0.0,
        None => object[key].is_null() && object[of]["median"].as_f64() == Some(0.0),
    }
}

/// A result that compares candidates with a baseline (no xnet side): every candidate has a
/// value and a ratio, which is a positive number unless the baseline's median is 0 (a count).
fn verify_candidates(object: &Value, candidates: &Value) -> anyhow::Result<()> {
    let candidates = candidates
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("no candidates in {object}"))?;
    let baseline_zero = object["baseline"]["median"].as_f64() == Some(0.0);
    for candidate in candidates {
        ensure!(
            candidate["median"].as_f64().is_some_and(f64::is_finite),
            "bad median in {candidate}"
        );
        let ratio = candidate.get("ratio").map(Value::as_f64);
        let good = match ratio {
            Some(Some(r)) => r.is_finite() && r >= 0.0,
            Some(None) => baseline_zero,
            None => false,
        };
        ensure!(good, "bad ratio in {candidate} of {object}");
    }
    Ok(())
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
            let color = if matches!(s.side.role(), Role::Ours | Role::Candidate) {
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
        let markdown = dir.join("results.md");
        let run = "`cargo xtask bench bridge-pps --rounds 3`, started 2026-12-03 07:10 UTC";
        write_markdown(&[row()], &machine(0.5), run, 3, &markdown).unwrap();
        let text = fs::read_to_string(&markdown).unwrap();
        assert!(
            text.starts_with(&format!("{run}, on "))
                && text.contains("load average 0.50 before the run; median [min–max] of 3")
                && text.ends_with(&table(&[row()])),
            "{text}"
        );
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

    fn overlay_row(scenario: &str, samples: [f64; 3]) -> Row {
        let side = |side, median: f64, delivered| SideResult {
            side,
            summary: Summary::of(&[median, median, median]),
            frames: Some(Delivery {
                sent: 100,
                delivered,
            }),
        };
        Row {
            scenario: scenario.into(),
            unit: "Mpps",
            better: Better::Higher,
            compare: Compare::Ratio,
            rounds: 3,
            sides: vec![
                side(Side::VxlanBridge, samples[0], 100),
                side(Side::VxlanTunnelKey, samples[1], 90),
                side(Side::VxlanAdjustRoom, samples[2], 100),
            ],
        }
    }

    #[test]
    fn candidates_are_compared_with_the_baseline() {
        let row = overlay_row("vxlan-mech-pps/1flow", [0.5, 0.6, 1.0]);
        let table = table(std::slice::from_ref(&row));
        assert!(
            table.starts_with(
                "| scenario | unit | better | A: bridge + vxlan device (Docker's overlay): \
                 median [min–max] | B: set_tunnel_key + collect_md vxlan device | B / A | \
                 C: adjust_room, decap at tcx | C / A | loss A / B / C |\n\
                 |---|---|---|---|---|---|---|---|---|\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 1.20x |")
                && table.contains("| 2.00x |")
                && table.contains("| 0.0% / 10.0% / 0.0% |"),
            "{table}"
        );
        let v = row.json(&machine(0.0));
        assert!(v.get("ours").is_none() && v.get("ratio").is_none(), "{v}");
        assert_eq!(v["baseline"]["name"], "vxlan-bridge");
        assert_eq!(v["candidates"][0]["name"], "vxlan-set-tunnel-key");
        assert!((v["candidates"][1]["ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9);
        assert!((v["candidates"][0]["loss"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        // A count the baseline never saw (retransmits): no ratio, and still a valid result.
        let zero = overlay_row("vxlan-mech-tcp/1stream/lost", [0.0, 0.0, 0.3]);
        assert!(table_of_one(&zero).contains("| – |"));
        let dir = std::env::temp_dir().join(format!("xnet-perf-overlay-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&[row, zero], &machine(0.0), &path).unwrap();
        assert_eq!(verify_json(&path, &[]).unwrap(), 2);
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert!(v[1]["candidates"][0]["ratio"].is_null());
        // A candidate without a value fails the smoke check.
        let mut broken = v.clone();
        broken[0]["candidates"][0]["median"] = Value::Null;
        fs::write(&path, broken.to_string()).unwrap();
        assert!(verify_json(&path, &[]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn target_row(suffix: &str, median: f64, target: Option<u32>) -> Row {
        Row {
            scenario: format!("overlay-scale/100endpoints-2hosts{suffix}"),
            unit: "ms",
            better: Better::Lower,
            compare: Compare::Target(target),
            rounds: 1,
            sides: vec![SideResult {
                side: Side::XnetCluster,
                summary: Summary::of(&[median]),
                frames: None,
            }],
        }
    }

    #[test]
    fn rows_against_targets_share_a_table_and_say_whether_they_are_met() {
        let rows = [
            target_row("/change-p99", 12.0, Some(100)),
            target_row("/all-in-map", 12.0, Some(10)),
            target_row("/rss", 97.0, None),
        ];
        let table = table(&rows);
        assert_eq!(table.matches("| scenario |").count(), 1, "{table}");
        assert!(
            table.contains("/change-p99 | ms | lower | 12.000 [12.000–12.000] | ≤ 100 | yes |")
                && table
                    .contains("/all-in-map | ms | lower | 12.000 [12.000–12.000] | ≤ 10 | no |")
                && table.contains("/rss | ms | lower | 97.000 [97.000–97.000] | – | – |"),
            "{table}"
        );
        let dir = std::env::temp_dir().join(format!("xnet-perf-targets-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&rows, &machine(0.0), &path).unwrap();
        assert_eq!(verify_json(&path, &[]).unwrap(), 3);
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            (v[0]["target"].as_u64(), v[0]["met"].as_bool()),
            (Some(100), Some(true))
        );
        assert_eq!(v[1]["met"].as_bool(), Some(false));
        assert!(v[2]["target"].is_null() && v[2]["met"].is_null());
        assert!(v[0].get("ratio").is_none() && v[0].get("baseline").is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overlay_rows_compare_xnet_with_the_rebuilt_and_the_real_overlay() {
        let side = |side, median: f64, delivered: Option<u64>| SideResult {
            side,
            summary: Summary::of(&[median]),
            frames: delivered.map(|delivered| Delivery {
                sent: 100,
                delivered,
            }),
        };
        let row = |scenario: &str, unit, values: [f64; 3], frames: bool| Row {
            scenario: scenario.into(),
            unit,
            better: Better::Higher,
            compare: Compare::Ratio,
            rounds: 1,
            sides: vec![
                side(Side::XnetOverlay, values[0], frames.then_some(100)),
                side(Side::DockerOverlay, values[1], frames.then_some(100)),
                side(Side::DockerRealOverlay, values[2], frames.then_some(95)),
            ],
        };
        let pps = row("overlay-pps/1flow", "Mpps", [1.5, 0.5, 0.3], true);
        // A count the baseline never saw: no ratio to it, and still a valid result.
        let retransmitted = row(
            "overlay-tcp/1stream/retransmitted",
            "% of segments",
            [0.01, 0.0, 0.02],
            false,
        );
        let table = table(std::slice::from_ref(&pps));
        assert!(
            table.starts_with(
                "| scenario | unit | better | xnet: median [min–max] | A: Docker's overlay \
                 rebuilt (bridge + vxlan device) | xnet / A | Docker 20.10 (swarm, overlay \
                 driver) | xnet / Docker | loss xnet / A / Docker |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 3.00x |")
                && table.contains("| 5.00x |")
                && table.contains("| 0.0% / 0.0% / 5.0% |"),
            "{table}"
        );
        let dir = std::env::temp_dir().join(format!("xnet-perf-cross-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_json(&[pps, retransmitted], &machine(0.0), &path).unwrap();
        let names = ["overlay-pps/1flow", "overlay-tcp/1stream/retransmitted"].map(String::from);
        assert_eq!(verify_json(&path, &names).unwrap(), 2);
        let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v[0]["docker"]["name"], "docker-real-overlay");
        assert!((v[0]["ratio_to_docker"].as_f64().unwrap() - 5.0).abs() < 1e-9);
        assert!(v[1]["ratio"].is_null());
        // A null ratio to a side that counted something is an error.
        let mut broken = v.clone();
        broken[1]["ratio_to_docker"] = Value::Null;
        fs::write(&path, broken.to_string()).unwrap();
        assert!(verify_json(&path, &names).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn table_of_one(row: &Row) -> String {
        table(std::slice::from_ref(row))
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
