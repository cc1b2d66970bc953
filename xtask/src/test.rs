//! `cargo xtask test [TIER]`: the test tiers, the run of every test as an unprivileged user,
//! and the check for what tests leave behind.

use std::{collections::BTreeMap, env, fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail, ensure};
use clap::ValueEnum;

use crate::{cargo, cmd, exclude_ebpf_crates, lint, setup, target_dir, workspace_root};

/// Name prefixes of the network namespaces and bpffs pins that tests create, which is how
/// leftovers are told apart from what else runs on the machine. A test's lab (xnet-lab,
/// `Spec::for_test`) names its namespaces, pins and directory `xt<pid>-l<n>…`.
const TEST_NETNS_PREFIX: &str = "xt";
const TEST_PIN_PREFIX: &str = "xnet-test-";
/// The same for the benchmarks (perf/); the bench's lab of simulated hosts (xnet-lab) is
/// `xb<pid>-ov…`.
const BENCH_NETNS_PREFIX: &str = "xb";
const BENCH_PIN_PREFIX: &str = "xnet-bench-";

/// Set for the tests xtask runs as root: a test that needs root or a Docker engine and finds
/// it missing fails instead of skipping (xnet_dockerlab::skip::NO_SKIP).
const NO_SKIP: &str = "XNET_TESTS_NO_SKIP";
/// Cargo configuration that runs test binaries as nobody, as `cargo test` by a normal user
/// would (cargo itself stays root: the toolchain lives under /root).
const AS_NOBODY: &str = r#"target.'cfg(unix)'.runner = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]"#;
/// What a test that needs root says as nobody (xnet_dockerlab::skip).
const SKIPPED: &str = ": skipped: needs ";

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Tier {
    /// The unit tests of every host crate, as nobody; then every other test as nobody, where
    /// they must pass and those that need root must say `skipped: needs root`
    Unit,
    /// The kernel programs under BPF_PROG_TEST_RUN, userspace/tests/datapath (root)
    Datapath,
    /// Real xnetds in network namespaces, userspace/tests/integration; clusters of simulated
    /// hosts with etcd, userspace/tests/cluster and lab/tests (root)
    Integration,
    /// xnetd as the plugin of private Docker engines, userspace/tests/docker and
    /// dockerlab/tests (root, a Docker engine)
    Docker,
    /// Every benchmark scenario once at tiny counts (root)
    BenchSmoke,
}

impl Tier {
    fn name(self) -> String {
        self.to_possible_value()
            .expect("no tier is skipped")
            .get_name()
            .to_string()
    }

    fn run(self, cargo_test_args: &[String]) -> Result<()> {
        match self {
            Self::Unit => {
                cmd::run(&mut as_nobody(&["--lib", "--bins"], cargo_test_args))?;
                tests_skip_as_nobody()
            }
            Self::Datapath => cmd::run(&mut as_root(&["--test", "datapath"], cargo_test_args)),
            Self::Integration => cmd::run(&mut as_root(
                &[
                    "--test",
                    "integration",
                    "--test",
                    "cluster",
                    "--test",
                    "lab",
                ],
                cargo_test_args,
            )),
            Self::Docker => cmd::run(&mut as_root(
                &["--test", "docker", "--test", "engine"],
                cargo_test_args,
            )),
            Self::BenchSmoke => bench_smoke(),
        }
    }
}

/// Installs what is missing, then runs `tier`, or lints and runs every tier; then, for tiers
/// that make namespaces, pins or Docker engines, fails if any was left behind.
pub fn test(tier: Option<Tier>, cargo_test_args: &[String]) -> Result<()> {
    if tier == Some(Tier::BenchSmoke) && !cargo_test_args.is_empty() {
        bail!("test bench-smoke: takes no cargo test arguments");
    }
    setup::ensure_installed()?;
    let tiers = match tier {
        Some(tier) => vec![tier],
        None => {
            lint()?;
            Tier::value_variants().to_vec()
        }
    };
    let tested = tiers.iter().try_for_each(|&tier| {
        tier.run(cargo_test_args)
            .with_context(|| format!("test {}", tier.name()))
    });
    if tiers == [Tier::Unit] {
        // As nobody, no test can make anything.
        return tested;
    }
    // Also after failed tests: that is when their cleanup is most likely to have been skipped.
    let clean = check_leaks().context("test: leak check");
    tested.and(clean)
}

/// `cargo test` of the host crates' `targets`, as root, where no test may skip.
fn as_root(targets: &[&str], cargo_test_args: &[String]) -> Command {
    let mut cargo = cargo(&["test", "--workspace"]);
    cargo
        .args(exclude_ebpf_crates())
        .args(targets)
        .args(cargo_test_args)
        .env(NO_SKIP, "1");
    cargo
}

/// `cargo test` of the host crates' `targets`, the tests running as nobody.
fn as_nobody(targets: &[&str], cargo_test_args: &[String]) -> Command {
    let mut cargo = cargo(&["--config", AS_NOBODY, "test", "--workspace"]);
    cargo
        .args(exclude_ebpf_crates())
        .args(targets)
        .args(cargo_test_args)
        .env_remove(NO_SKIP);
    cargo
}

/// Every test outside the unit tests, as nobody: `cargo test` by a normal user. They must pass,
/// those that need root by saying they skip.
fn tests_skip_as_nobody() -> Result<()> {
    let output =
        cmd::run_and_keep(as_nobody(&["--test", "*"], &[])).context("the tests as nobody")?;
    let (skipped, ran) = skipped_and_ran(&output);
    ensure!(
        !skipped.is_empty(),
        "no test said `skipped: needs root` as nobody: is xnet_dockerlab::skip broken?"
    );
    println!(
        "as nobody: {} tests skipped (need root), {} ran: {}",
        skipped.len(),
        ran.len(),
        ran.join(", ")
    );
    Ok(())
}

/// In `cargo test`'s output, the tests that skipped and those that ran and passed, each as
/// `TARGET TEST`.
fn skipped_and_ran(output: &str) -> (Vec<String>, Vec<String>) {
    let mut target = "";
    let (mut skipped, mut ran) = (Vec::new(), Vec::new());
    // libtest writes "test NAME ... " and the result separately: another test's skip line can
    // come between them, and the result then stands alone on the next line.
    let mut pending = None;
    for line in output.lines() {
        if let Some(running) = line.trim_start().strip_prefix("Running ") {
            // "Running tests/datapath/main.rs (target/debug/deps/datapath-…)"
            target = running.split(" (").next().unwrap_or(running);
            continue;
        }
        let (test, rest) = match line
            .strip_prefix("test ")
            .and_then(|l| l.split_once(" ... "))
        {
            Some((test, rest)) => (Some(test), rest),
            None => (None, line),
        };
        if let Some((skip, _)) = rest.split_once(SKIPPED) {
            skipped.push(format!("{target} {skip}"));
        }
        let passed = match (test, rest) {
            (Some(test), "ok") => Some(test),
            (None, "ok") => pending.take(),
            (Some(test), _) => {
                pending = Some(test);
                None
            }
            (None, _) => None,
        };
        // A test's skip line comes before its result.
        if let Some(test) = passed.map(|test| format!("{target} {test}"))
            && !skipped.contains(&test)
        {
            ran.push(test);
        }
    }
    (skipped, ran)
}

/// Every benchmark scenario once at tiny counts, with debug binaries: checks that frames
/// arrive and the JSON is complete, not how fast anything is.
fn bench_smoke() -> Result<()> {
    // `cargo test` builds the test harnesses, not necessarily the tools themselves.
    cmd::run(&mut cargo(&[
        "build",
        "--package",
        "xnet",
        "--package",
        "xnet-perf",
        "--bins",
    ]))?;
    let out = target_dir().join("bench-smoke");
    cmd::run(
        cmd::command(
            target_dir().join("debug/xnet-bench"),
            ["--smoke", "--out-dir"],
        )
        .arg(&out)
        .current_dir(workspace_root()),
    )
}

/// The entries of `dir` whose names start with `prefix`, as (path, name).
fn entries(dir: &str, prefix: &str) -> Vec<(String, String)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix)
                .then(|| (e.path().display().to_string(), name))
        })
        .collect()
}

/// Every process, as (`/proc/PID`, its command line with spaces between the arguments).
fn processes() -> Vec<(String, String)> {
    entries("/proc", "")
        .into_iter()
        .filter(|(_, name)| name.starts_with(|c: char| c.is_ascii_digit()))
        .map(|(proc, _)| {
            let cmdline = fs::read(format!("{proc}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (proc, cmdline)
        })
        .collect()
}

/// What the tests' and benchmarks' labs (xnet-lab; `overlay-scale` runs on one) may leave
/// besides their namespaces, which the namespace check finds by prefix: their directories
/// under /run/xnet-lab and the etcd and xnetd processes they started (whose command lines
/// name those directories); each with the name that tells whose it is. Their hosts' pins are
/// found with the other pins.
fn lab_leftovers() -> Vec<(String, String)> {
    let mut leaked = Vec::new();
    let processes = processes();
    for prefix in [TEST_NETNS_PREFIX, BENCH_NETNS_PREFIX] {
        leaked.extend(
            entries(xnet_lab::RUN_DIR, prefix)
                .into_iter()
                .map(|(path, name)| (format!("lab directory {path}"), name)),
        );
        let lab_dir = format!("{}/{prefix}", xnet_lab::RUN_DIR);
        for (proc, cmdline) in &processes {
            if let Some((_, rest)) = cmdline.split_once(&lab_dir) {
                let program = cmdline.split(' ').next().unwrap_or_default();
                let lab = rest.split(['/', ' ']).next().unwrap_or_default();
                leaked.push((
                    format!("lab process still running: {proc} ({program})"),
                    format!("{prefix}{lab}"),
                ));
            }
        }
    }
    leaked
}

/// What the tests' and benchmarks' private Docker engines (xnet-dockerlab) and plugins may
/// leave: their exec roots, directories, cgroups, plugin sockets and dockerd processes; each
/// with the name that tells whose it is.
fn docker_lab_leftovers() -> Vec<(String, String)> {
    let mut leaked: Vec<(String, String)> = [
        ("/run", "xdl-"),
        ("/run/docker/plugins", "xnet-xt"),
        ("/run/docker/plugins", "xnet-xb"),
    ]
    .into_iter()
    .flat_map(|(dir, prefix)| entries(dir, prefix))
    .chain(entries(
        &env::temp_dir().to_string_lossy(),
        "xnet-dockerlab-",
    ))
    // An engine's cgroup parent: in every hierarchy under cgroup v1, once under v2.
    .chain(
        entries("/sys/fs/cgroup", "")
            .into_iter()
            .map(|(path, _)| path)
            .chain(["/sys/fs/cgroup".to_string()])
            .flat_map(|hierarchy| entries(&hierarchy, "xnet-dockerlab-")),
    )
    .map(|(path, name)| (format!("Docker test engine leftover {path}"), name))
    .collect();
    for (proc, cmdline) in processes() {
        if cmdline.starts_with("dockerd ")
            && let Some((_, exec_root)) = cmdline.split_once("--exec-root /run/xdl-")
        {
            let tag = exec_root.split(' ').next().unwrap_or_default().to_string();
            leaked.push((format!("Docker test engine still running: {proc}"), tag));
        }
    }
    leaked
}

/// Tests must remove their namespaces and pins even when they fail: leftovers break later
/// runs and clutter the machine. What a process that still runs made (another test run's, on
/// a shared machine) is not counted: the names carry the pid of the test that made them.
fn check_leaks() -> Result<()> {
    let netns = cmd::probe("ip", ["netns", "list"]).context("`ip netns list` failed")?;
    // Lines look like "xt1234-5 (id: 3)".
    let mut found: Vec<(String, String)> = netns
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(TEST_NETNS_PREFIX) || name.starts_with(BENCH_NETNS_PREFIX))
        .map(|name| (format!("network namespace {name}"), name.to_string()))
        .collect();
    let pins =
        fs::read_dir(setup::BPFFS).with_context(|| format!("cannot list {}", setup::BPFFS))?;
    for pin in pins {
        let pin = pin?;
        let name = pin.file_name().to_string_lossy().into_owned();
        // A lab's hosts pin under their namespace's name (`xt…-h1`, `xb…-scale-h1`).
        let lab = name.starts_with(TEST_NETNS_PREFIX) || name.starts_with(BENCH_NETNS_PREFIX);
        if lab || name.starts_with(TEST_PIN_PREFIX) || name.starts_with(BENCH_PIN_PREFIX) {
            found.push((format!("bpffs pin {}", pin.path().display()), name));
        }
    }
    found.extend(lab_leftovers());
    found.extend(docker_lab_leftovers());
    let mut in_use: BTreeMap<&str, usize> = BTreeMap::new();
    let mut leaked = 0;
    for (what, name) in &found {
        match maker(name).filter(|pid| Path::new("/proc").join(pid).exists()) {
            Some(pid) => *in_use.entry(pid).or_default() += 1,
            None => {
                println!("leaked: {what}");
                leaked += 1;
            }
        }
    }
    for (pid, count) in in_use {
        println!("not counted: {count} test object(s) of process {pid}, which still runs");
    }
    ensure!(leaked == 0, "the tests left {leaked} thing(s) behind");
    println!("no leaked network namespaces, bpffs pins, test labs or Docker test engines");
    Ok(())
}

/// The pid of the test or benchmark that made the object named `name`: its first number
/// (`xt1234-5`, `xt1234-l0-h1`, `xnet-test-dp-1234-0`, `xdl-t1234`, `xnet-bench-xb1234`).
fn maker(name: &str) -> Option<&str> {
    let start = name.find(|c: char| c.is_ascii_digit())?;
    let digits = &name[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    Some(&digits[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_and_ran_tests_are_told_apart_by_target() {
        let output = "\
     Running tests/datapath/main.rs (target/debug/deps/datapath-1)
running 3 tests
arp: skipped: needs root
test arp ... ipv6::nd: skipped: needs root
ok
test ipv6::nd ... ok
test pure ... ipv6::ra: skipped: needs root
ok
test ipv6::ra ... ok
     Running tests/integration/main.rs (target/debug/deps/integration-2)
test arp ... ok
test errors::boot ... errors::boot: skipped: needs a Docker engine (none here)
ok
";
        let (skipped, ran) = skipped_and_ran(output);
        assert_eq!(
            skipped,
            [
                "tests/datapath/main.rs arp",
                "tests/datapath/main.rs ipv6::nd",
                "tests/datapath/main.rs ipv6::ra",
                "tests/integration/main.rs errors::boot"
            ]
        );
        assert_eq!(
            ran,
            [
                "tests/datapath/main.rs pure",
                "tests/integration/main.rs arp"
            ]
        );
    }

    #[test]
    fn test_objects_name_their_maker() {
        assert_eq!(maker("xt1234-5"), Some("1234"));
        assert_eq!(maker("xtdl1234"), Some("1234"));
        assert_eq!(maker("xt1234-l0-h1"), Some("1234"));
        assert_eq!(maker("xnet-test-dp-1234-0"), Some("1234"));
        assert_eq!(maker("xnet-dockerlab-t1234"), Some("1234"));
        assert_eq!(maker("xnet-bench-xb1234"), Some("1234"));
        assert_eq!(maker("xnet-test-"), None);
    }
}
