//! `cargo xtask <task>`: one entry point for preparing a machine, building, running, linting
//! and testing xnet, so that CI and developers run the same steps.

mod cmd;
mod imports;
mod lab;
mod setup;
mod test;

use std::{
    env,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;

/// Crates that only build for the BPF target: left out of host builds, lints and tests.
const EBPF_CRATES: &[&str] = &["xnet-ebpf", "xnet-perf-ebpf"];
/// Source trees that must have no import cycle between their modules.
const ACYCLIC_TREES: &[&str] = &["userspace/src", "ebpf/src", "perf/src", "lab/src"];

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "xnet developer tasks")]
enum Task {
    /// Check the kernel, tools and toolchain without changing anything
    Doctor,
    /// Install what is missing (apt packages, rustup components, bpf-linker, bpffs), nothing
    /// else
    Setup,
    /// Install what is missing, then build xnet and xnetd (release)
    Build,
    /// Build, then run xnetd in the foreground
    Run {
        /// Arguments for xnetd, e.g. --socket PATH
        #[arg(last = true)]
        xnetd_args: Vec<String>,
    },
    /// Install what is missing, then check formatting, run clippy (host and eBPF crates) and
    /// check that no module imports from one that imports from it
    Lint,
    /// Install what is missing; lint and run every tier, or run one tier; then fail if the tests
    /// left network namespaces, bpffs pins or Docker engines behind
    Test {
        /// Only this tier (default: lint, then every tier)
        tier: Option<test::Tier>,
        /// Arguments for cargo test: a test name filter, then `--` and the test binaries'
        /// own, e.g. `-- ports:: -- --nocapture`
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Simulated hosts on this machine, each with its own xnetd, and an etcd cluster, on one
    /// underlay (see README, "Lab")
    Lab {
        #[command(subcommand)]
        command: lab::Command,
    },
    /// Build (release), then benchmark xnet against Docker's datapaths, the VXLAN mechanisms,
    /// and xnet's control plane in a simulated cluster (see perf/README.md)
    Bench {
        /// Scenarios to run (default: all): bridge-pps, bridge-tcp, bridge-rr, publish-pps,
        /// publish-tcp, publish-rr, publish-setup, vxlan-mech-pps, vxlan-mech-tcp,
        /// vxlan-mech-rr, overlay-pps, overlay-tcp, overlay-rr, overlay-encrypted-tcp,
        /// overlay-encrypted-rr, overlay-encrypted-pings, overlay-scale
        scenarios: Vec<String>,
        /// One round of short measurements
        #[arg(long)]
        quick: bool,
        /// Rounds per scenario (default 3, or 1 with --quick)
        #[arg(long)]
        rounds: Option<usize>,
        /// JSON results file (default: target/bench/results.json)
        #[arg(long)]
        json: Option<String>,
    },
}

fn main() -> ExitCode {
    let result = match Task::parse() {
        Task::Doctor => setup::doctor(),
        Task::Setup => setup::ensure_installed(),
        Task::Build => build(),
        Task::Run { xnetd_args } => run(&xnetd_args),
        Task::Lint => setup::ensure_installed().and_then(|()| lint()),
        Task::Test {
            tier,
            cargo_test_args,
        } => test::test(tier, &cargo_test_args),
        Task::Lab { command } => lab::lab(command),
        Task::Bench {
            scenarios,
            quick,
            rounds,
            json,
        } => bench(&scenarios, quick, rounds, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line naming the failed step; the commands' own output above has the details.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the workspace root")
}

/// Cargo, started in the workspace root whichever directory xtask was started from.
fn cargo(args: &[&str]) -> Command {
    let mut cargo = cmd::command("cargo", args);
    cargo.current_dir(workspace_root());
    cargo
}

fn build() -> Result<()> {
    setup::ensure_installed()?;
    build_release(&["xnet"]).context("build")
}

/// Builds the binaries of `packages` in release mode (callers install prerequisites first).
fn build_release(packages: &[&str]) -> Result<()> {
    let mut args = vec!["build", "--release", "--bins"];
    for package in packages {
        args.extend(["--package", package]);
    }
    cmd::run(&mut cargo(&args))
}

/// Cargo's target directory: as for cargo, which runs the builds in the workspace root, a
/// relative CARGO_TARGET_DIR is relative to the workspace root.
fn target_dir() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    workspace_root().join(target)
}

fn run(xnetd_args: &[String]) -> Result<()> {
    build()?;
    let release = target_dir().join("release");
    let cwd = env::current_dir().context("run: cannot read the current directory")?;
    let xnet = release.join("xnet");
    let xnet = xnet.strip_prefix(&cwd).unwrap_or(&xnet).display();

    // xnetd logs the socket it serves on; its default is xnet's too.
    println!(
        "try it (as root, in another shell; add --host unix://PATH if xnetd has --socket PATH):"
    );
    println!("  {xnet} network ls");
    println!("  {xnet} run --name web -d -- sleep infinity");
    println!("  {xnet} run --name client -- ping -c 3 <web's IP, from `{xnet} inspect web`>");
    println!("as Docker's network driver: cargo xtask run -- --docker-plugin xnet, then");
    println!("  docker network create -d xnet mynet");
    println!("  docker run -d --network mynet -p 8080:80 IMAGE");

    let mut xnetd = Command::new(release.join("xnetd"));
    xnetd.args(xnetd_args);
    println!("==> {}", cmd::display(&xnetd));
    // exec: xnetd replaces this process, so Ctrl-C reaches it alone and its exit status is ours.
    Err(xnetd.exec()).context("run: cannot start xnetd")
}

fn lint() -> Result<()> {
    cmd::run(&mut cargo(&["fmt", "--all", "--", "--check"])).context("lint: rustfmt")?;
    cmd::run(
        cargo(&["clippy", "--workspace", "--all-targets"])
            .args(exclude_ebpf_crates())
            .args(["--", "-D", "warnings"]),
    )
    .context("lint: clippy")?;
    // The eBPF crates only build for the BPF target, whose core is compiled from rust-src;
    // RUSTC_BOOTSTRAP lets the stable toolchain accept -Z build-std.
    cmd::run(
        cargo(&[
            "clippy",
            "--package",
            "xnet-ebpf",
            "--package",
            "xnet-perf-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .env("RUSTC_BOOTSTRAP", "1"),
    )
    .context("lint: clippy (eBPF)")?;
    import_cycles()
}

fn import_cycles() -> Result<()> {
    let mut cycles = 0;
    for tree in ACYCLIC_TREES {
        let found = imports::cycles_in(&workspace_root().join(tree))
            .with_context(|| format!("lint: reading {tree}"))?;
        for cycle in &found {
            println!("import cycle in {tree}/{cycle}");
        }
        cycles += found.len();
    }
    ensure!(cycles == 0, "lint: {cycles} import cycle(s)");
    println!("no import cycles in {}", ACYCLIC_TREES.join(", "));
    Ok(())
}

fn exclude_ebpf_crates() -> impl Iterator<Item = &'static str> {
    EBPF_CRATES.iter().flat_map(|name| ["--exclude", name])
}

fn bench(
    scenarios: &[String],
    quick: bool,
    rounds: Option<usize>,
    json: Option<String>,
) -> Result<()> {
    setup::ensure_installed()?;
    build_release(&["xnet", "xnet-perf"]).context("bench: build")?;
    let mut bench = cmd::command(target_dir().join("release/xnet-bench"), scenarios);
    bench
        .arg("--out-dir")
        .arg(target_dir().join("bench"))
        .current_dir(workspace_root());
    if quick {
        bench.arg("--quick");
    }
    if let Some(rounds) = rounds {
        bench.arg("--rounds").arg(rounds.to_string());
    }
    if let Some(json) = json {
        // The bench runs in the workspace root; a relative path means one from here.
        let cwd = env::current_dir().context("bench: cannot read the current directory")?;
        bench.arg("--json").arg(cwd.join(json));
    }
    cmd::run(&mut bench).context("bench")
}
