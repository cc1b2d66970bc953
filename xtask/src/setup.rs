//! What xnet needs from the machine, as one table: `ensure_installed` installs the entries it
//! can, `doctor` reports on all of them, so the two cannot disagree about what is needed.

use std::{
    env, fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context as _, Result, anyhow, ensure};

use crate::cmd;

/// Debian packages: LLVM 22 and the libraries bpf-linker links against, then the tools the
/// integration tests drive (busybox-static provides the programs of their container images;
/// curl is the HTTP client of the Docker tests: busybox's wget crashes on the host's NSS),
/// tcpdump (the encrypted overlay's capture of the underlay), the benchmarks' baseline needs (iptables, for Docker's rules), the cluster store of
/// multi-host networks (etcd, 3.4 in Debian 12), what the etcd client crate's build needs
/// (protoc), and podman with the reference CNI plugins (the CNI plugin's test with a real
/// runtime).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "ethtool",
    "iputils-ping",
    "iperf3",
    "tcpdump",
    "util-linux",
    "busybox-static",
    "jq",
    "iptables",
    "curl",
    "etcd-server",
    "protobuf-compiler",
    "podman",
    "containernetworking-plugins",
];

/// Programs the tests run, and the package that provides each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("iperf3", "iperf3"),
    ("tcpdump", "tcpdump"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("curl", "curl"),
    ("etcd", "etcd-server"),
    ("protoc", "protobuf-compiler"),
    ("ss", "iproute2"),
    ("bridge", "iproute2"),
    ("iptables-restore", "iptables"),
    ("podman", "podman"),
];

/// rust-src because the eBPF crate is built with `-Z build-std=core`; rustfmt and clippy for lint.
const RUST_COMPONENTS: &[&str] = &["rust-src", "rustfmt", "clippy"];

/// rustc 1.95 emits LLVM 22 bitcode, so bpf-linker must be built against LLVM 22 to read it.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// tcx links, which the datapath attaches with, arrived in Linux 6.6.
const MIN_KERNEL: (u32, u32) = (6, 6);

/// Kernel options and the values that satisfy them.
const KERNEL_CONFIG: &[(&str, &[&str])] = &[
    ("CONFIG_BPF_SYSCALL", &["y"]),
    ("CONFIG_BPF_JIT", &["y"]),
    ("CONFIG_NET_XGRESS", &["y"]),
    ("CONFIG_VETH", &["y"]),
    ("CONFIG_NET_CLS_BPF", &["y", "m"]),
    ("CONFIG_DEBUG_INFO_BTF", &["y"]),
];

pub const BPFFS: &str = "/sys/fs/bpf";
const BTF: &str = "/sys/kernel/btf/vmlinux";

const ROOT_HINT: &str = "rerun as root: xnet needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN";
const BY_SETUP: &str = " (`cargo xtask build` does this)";

struct Requirement {
    what: String,
    /// Ok when present; otherwise what is wrong, in a few words.
    check: Box<dyn Fn() -> Result<(), String>>,
    /// None for what xtask must not change (the kernel, the user it runs as): doctor reports
    /// those, setup leaves them alone.
    install: Option<Box<dyn Fn() -> Result<()>>>,
    /// How to fix it by hand.
    hint: String,
}

impl Requirement {
    fn manual(
        what: impl Into<String>,
        hint: impl Into<String>,
        check: impl Fn() -> Result<(), String> + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            check: Box::new(check),
            install: None,
            hint: hint.into(),
        }
    }

    fn installable(
        what: impl Into<String>,
        hint: impl Into<String>,
        check: impl Fn() -> Result<(), String> + 'static,
        install: impl Fn() -> Result<()> + 'static,
    ) -> Self {
        Self {
            install: Some(Box::new(install)),
            ..Self::manual(what, hint, check)
        }
    }

    /// A requirement fixed by one command: the hint shows it, setup runs it.
    fn fixed_by(
        what: impl Into<String>,
        check: impl Fn() -> Result<(), String> + 'static,
        fix: impl Fn() -> Command + 'static,
    ) -> Self {
        let hint = cmd::display(&fix());
        Self::installable(what, hint, check, move || cmd::run(&mut fix()))
    }
}

/// In doctor's order; setup installs in the same order, so apt's LLVM comes before bpf-linker.
fn requirements() -> Vec<Requirement> {
    let mut table = vec![
        Requirement::manual("root", ROOT_HINT, check_root),
        Requirement::manual(
            format!("kernel >= {}.{} (tcx links)", MIN_KERNEL.0, MIN_KERNEL.1),
            "boot a newer kernel",
            check_kernel,
        ),
        Requirement::manual(
            format!("kernel BTF at {BTF}"),
            "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            || {
                Path::new(BTF)
                    .exists()
                    .then_some(())
                    .ok_or_else(|| "absent".into())
            },
        ),
    ];
    table.extend(KERNEL_CONFIG.iter().map(|&(option, accepted)| {
        Requirement::manual(
            format!("kernel {option}"),
            format!(
                "boot a kernel built with {option}={}",
                accepted.join(" or ")
            ),
            move || check_config(option, accepted),
        )
    }));
    table.push(Requirement::fixed_by(
        format!("bpffs at {BPFFS}"),
        check_bpffs,
        || cmd::command("mount", ["-t", "bpf", "bpf", BPFFS]),
    ));
    table.push(Requirement::installable(
        "apt packages",
        format!("apt-get install {}", APT_PACKAGES.join(" ")),
        || match missing_packages().as_slice() {
            [] => Ok(()),
            missing => Err(format!("missing {}", missing.join(" "))),
        },
        install_packages,
    ));
    table.extend(TOOLS.iter().map(|&(tool, package)| {
        Requirement::manual(
            format!("tool {tool}"),
            format!("apt-get install {package}{BY_SETUP}"),
            move || {
                on_path(tool)
                    .then_some(())
                    .ok_or_else(|| "not on PATH".into())
            },
        )
    }));
    table.extend(RUST_COMPONENTS.iter().map(|&component| {
        Requirement::fixed_by(
            format!("rustup component {component}"),
            move || check_component(component),
            move || cmd::command("rustup", ["component", "add", component]),
        )
    }));
    table.push(Requirement::installable(
        format!("bpf-linker {BPF_LINKER_VERSION}"),
        cmd::display(&bpf_linker_install(true)),
        check_bpf_linker,
        install_bpf_linker,
    ));
    table
}

/// Installs whatever is missing; prints one line per requirement and changes nothing when all
/// is present.
pub fn ensure_installed() -> Result<()> {
    check_root().map_err(|detail| anyhow!("setup: not root ({detail}); {ROOT_HINT}"))?;
    for requirement in requirements() {
        let Requirement {
            what,
            check,
            install: Some(install),
            ..
        } = requirement
        else {
            continue;
        };
        match check() {
            Ok(()) => println!("[setup] {what}: present"),
            Err(detail) => {
                println!("[setup] {what}: {detail}; installing ...");
                install().with_context(|| format!("setup: {what}"))?;
                check().map_err(|detail| {
                    anyhow!("setup: {what}: installed, but the check still fails: {detail}")
                })?;
            }
        }
    }
    Ok(())
}

/// Reports every requirement without changing anything; fails if any is missing.
pub fn doctor() -> Result<()> {
    let mut missing = 0;
    for Requirement {
        what,
        check,
        install,
        hint,
    } in requirements()
    {
        match check() {
            Ok(()) => println!("ok   {what}"),
            Err(detail) => {
                missing += 1;
                let by_setup = if install.is_some() { BY_SETUP } else { "" };
                println!("MISSING {what} ({detail}): {hint}{by_setup}");
            }
        }
    }
    ensure!(missing == 0, "doctor: {missing} requirement(s) missing");
    Ok(())
}

fn check_root() -> Result<(), String> {
    match cmd::probe("id", ["-u"]).as_deref().map(str::trim) {
        Some("0") => Ok(()),
        Some(uid) => Err(format!("running as uid {uid}")),
        None => Err("`id -u` failed".into()),
    }
}

fn check_kernel() -> Result<(), String> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| format!("cannot read the kernel release: {e}"))?;
    let release = release.trim();
    // "6.18.44-fc" -> (6, 18); anything unparsable counts as too old.
    let mut numbers = release.split(['.', '-']).map(|n| n.parse().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (version >= MIN_KERNEL)
        .then_some(())
        .ok_or_else(|| format!("running {release}"))
}

fn check_config(option: &str, accepted: &[&str]) -> Result<(), String> {
    // Read once: doctor asks for one option at a time.
    static CONFIG: OnceLock<Option<String>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| cmd::probe("zcat", ["/proc/config.gz"]))
        .as_deref()
        .ok_or("cannot read /proc/config.gz")?;
    match config
        .lines()
        .find_map(|line| line.strip_prefix(option)?.strip_prefix('='))
    {
        Some(value) if accepted.contains(&value) => Ok(()),
        Some(value) => Err(format!("{option}={value}")),
        None => Err("not set".into()),
    }
}

fn check_bpffs() -> Result<(), String> {
    let mounts = fs::read_to_string("/proc/self/mounts")
        .map_err(|e| format!("cannot read /proc/self/mounts: {e}"))?;
    // Each line: source, mount point, fstype, ...
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(BPFFS) && fields.next() == Some("bpf")
    });
    mounted.then_some(()).ok_or_else(|| "not mounted".into())
}

fn missing_packages() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            !cmd::probe("dpkg-query", ["-W", "-f=${Status}", package])
                .is_some_and(|status| status.contains("install ok installed"))
        })
        .collect()
}

/// How long apt-get waits for another apt (an unattended upgrade, a second setup) to finish
/// instead of failing at once on the dpkg lock.
const APT_LOCK_WAIT: &str = "DPkg::Lock::Timeout=600";

fn install_packages() -> Result<()> {
    let missing = missing_packages();
    cmd::run(&mut cmd::command(
        "apt-get",
        ["-o", APT_LOCK_WAIT, "update"],
    ))?;
    cmd::run(
        cmd::command("apt-get", ["-o", APT_LOCK_WAIT, "install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn on_path(program: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn check_component(component: &str) -> Result<(), String> {
    let installed = cmd::probe("rustup", ["component", "list", "--installed"])
        .ok_or("`rustup component list --installed` failed")?;
    // Lines look like "rust-src" or "rustfmt-x86_64-unknown-linux-gnu".
    installed
        .lines()
        .any(|line| line.starts_with(component))
        .then_some(())
        .ok_or_else(|| "not installed".into())
}

fn check_bpf_linker() -> Result<(), String> {
    // Also where `cargo install` puts it, which a root shell's PATH may lack (cargo, through
    // rustup, adds it to the PATH of the builds it runs).
    let installed = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(env::var_os("HOME")?).join(".cargo")))
        .map(|home| home.join("bin/bpf-linker"));
    let version = [Some(PathBuf::from("bpf-linker")), installed]
        .into_iter()
        .flatten()
        .find_map(|linker| cmd::probe(linker, ["--version"]))
        .ok_or("not found")?;
    let version = version.trim();
    version
        .contains(BPF_LINKER_VERSION)
        .then_some(())
        .ok_or_else(|| format!("found `{version}`"))
}

fn bpf_linker_install(locked: bool) -> Command {
    let mut cargo = cmd::command("cargo", ["install"]);
    cargo.arg(format!("bpf-linker@{BPF_LINKER_VERSION}"));
    if locked {
        cargo.arg("--locked");
    }
    cargo
        .args(["--no-default-features", "--features", "llvm-22"])
        // Debian keeps LLVM 22 under its own prefix; without this the build fails with
        // "unable to find library -lLLVM".
        .env("LLVM_PREFIX", LLVM_PREFIX);
    cargo
}

fn install_bpf_linker() -> Result<()> {
    // --locked builds the dependency versions bpf-linker was released with; should one of them
    // not build with this toolchain, the newest compatible versions may.
    if cmd::run(&mut bpf_linker_install(true)).is_ok() {
        return Ok(());
    }
    println!("[setup] bpf-linker: the --locked build failed; retrying without --locked");
    cmd::run(&mut bpf_linker_install(false))
}
