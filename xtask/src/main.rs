//! `cargo xtask <task>`: one entry point for preparing a machine, building, running, linting
//! and testing xnet, so that CI and developers run the same steps.

mod cmd;
mod setup;

use std::{
    env, fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

/// Where xnetd listens unless given --socket.
const DEFAULT_SOCKET: &str = "/run/xnet/xnet.sock";
/// Name prefixes of the network namespaces and bpffs pins that tests create, which is how
/// leftovers are told apart from what else runs on the machine.
const TEST_NETNS_PREFIX: &str = "xt";
const TEST_PIN_PREFIX: &str = "xnet-test-";
/// The same for the benchmarks (perf/).
const BENCH_NETNS_PREFIX: &str = "xb";
const BENCH_PIN_PREFIX: &str = "xnet-bench-";
/// Crates that only build for the BPF target: left out of host builds, lints and tests.
const EBPF_CRATES: &[&str] = &["xnet-ebpf", "xnet-perf-ebpf"];

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "xnet developer tasks")]
enum Task {
    /// Check the kernel, tools and toolchain without changing anything
    Doctor,
    /// Install what is missing, then build xnet and xnetd (release)
    Build,
    /// Build, then run xnetd in the foreground
    Run {
        /// Arguments for xnetd, e.g. --socket PATH
        #[arg(last = true)]
        xnetd_args: Vec<String>,
    },
    /// Install what is missing, then check formatting and run clippy (host and eBPF crates)
    Lint,
    /// Lint, run the tests and a smoke run of the benchmarks, then fail if they left network
    /// namespaces or bpffs pins behind
    Test {
        /// Arguments for cargo test, e.g. a test name filter
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Build (release), then benchmark xnet against Docker's bridge datapath (see perf/README.md)
    Bench {
        /// Scenarios to run (default: all): bridge-pps, bridge-tcp, bridge-rr
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
        Task::Build => build(),
        Task::Run { xnetd_args } => run(&xnetd_args),
        Task::Lint => setup::ensure_installed().and_then(|()| lint()),
        Task::Test { cargo_test_args } => test(&cargo_test_args),
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

    println!("xnetd's socket: {}", socket(xnetd_args));
    println!("try it (as root, in another shell):");
    println!("  {xnet} network ls");
    println!("  {xnet} run --name web -d -- sleep infinity");
    println!("  {xnet} run --name client -- ping -c 3 <web's IP, from `{xnet} inspect web`>");
    println!("as Docker's network driver: cargo xtask run -- --docker-plugin xnet, then");
    println!("  docker network create -d xnet --ipam-driver xnet mynet");
    println!("  docker run -d --network mynet -p 8080:80 IMAGE");

    let mut xnetd = Command::new(release.join("xnetd"));
    xnetd.args(xnetd_args);
    println!("==> {}", cmd::display(&xnetd));
    // exec: xnetd replaces this process, so Ctrl-C reaches it alone and its exit status is ours.
    Err(xnetd.exec()).context("run: cannot start xnetd")
}

/// The socket xnetd will listen on: its last --socket argument, as for any clap parser.
fn socket(xnetd_args: &[String]) -> &str {
    let mut socket = DEFAULT_SOCKET;
    let mut args = xnetd_args.iter();
    while let Some(arg) = args.next() {
        if let Some(path) = arg.strip_prefix("--socket=") {
            socket = path;
        } else if arg == "--socket"
            && let Some(path) = args.next()
        {
            socket = path;
        }
    }
    socket
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
    .context("lint: clippy (eBPF)")
}

fn exclude_ebpf_crates() -> impl Iterator<Item = &'static str> {
    EBPF_CRATES.iter().flat_map(|name| ["--exclude", name])
}

fn test(cargo_test_args: &[String]) -> Result<()> {
    setup::ensure_installed()?;
    lint()?;
    let tested = cmd::run(
        cargo(&["test", "--workspace"])
            .args(exclude_ebpf_crates())
            .args(cargo_test_args),
    )
    .context("test")
    .and_then(|()| bench_smoke().context("test: benchmark smoke run"));
    // Also after failed tests: that is when their cleanup is most likely to have been skipped.
    let clean = check_leaks().context("test: leak check");
    tested.and(clean)
}

/// Every benchmark scenario once at tiny counts, with the debug binaries `cargo test` just
/// built: checks that frames arrive and the JSON is complete, not how fast anything is.
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

/// What the tests' and benchmarks' private Docker engines (xnet-dockerlab) and plugins may
/// leave: their exec roots, directories, cgroups, plugin sockets and dockerd processes.
fn docker_lab_leftovers() -> Vec<String> {
    let entries = |dir: &str, prefix: &str| -> Vec<String> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .map(|p| p.display().to_string())
            .collect()
    };
    let mut leaked: Vec<String> = [
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
            .chain(["/sys/fs/cgroup".to_string()])
            .flat_map(|hierarchy| entries(&hierarchy, "xnet-dockerlab-")),
    )
    .map(|path| format!("Docker test engine leftover {path}"))
    .collect();
    for pid in entries("/proc", "") {
        let cmdline = fs::read(format!("{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with("dockerd ") && cmdline.contains("--exec-root /run/xdl-") {
            leaked.push(format!("Docker test engine still running: {pid}"));
        }
    }
    leaked
}

/// Tests must remove their namespaces and pins even when they fail: leftovers break later
/// runs and clutter the machine.
fn check_leaks() -> Result<()> {
    let netns = cmd::probe("ip", ["netns", "list"]).context("`ip netns list` failed")?;
    // Lines look like "xt-a1b2 (id: 3)".
    let mut leaked: Vec<String> = netns
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(TEST_NETNS_PREFIX) || name.starts_with(BENCH_NETNS_PREFIX))
        .map(|name| format!("network namespace {name}"))
        .collect();
    let pins =
        fs::read_dir(setup::BPFFS).with_context(|| format!("cannot list {}", setup::BPFFS))?;
    for pin in pins {
        let path = pin?.path();
        if path.file_name().is_some_and(|name| {
            let name = name.to_string_lossy();
            name.starts_with(TEST_PIN_PREFIX) || name.starts_with(BENCH_PIN_PREFIX)
        }) {
            leaked.push(format!("bpffs pin {}", path.display()));
        }
    }
    leaked.extend(docker_lab_leftovers());
    if leaked.is_empty() {
        println!("no leaked network namespaces, bpffs pins or Docker test engines");
        return Ok(());
    }
    for leak in &leaked {
        println!("leaked: {leak}");
    }
    bail!("the tests left {} thing(s) behind", leaked.len())
}
