//! Tests that need root or a Docker engine, where they are missing: the first line of each
//! such test is `if skip::unless_root() { return; }` (or `unless_docker`), so that `cargo test`
//! as a normal user runs the pure tests and passes, and says which tests it skipped.
//!
//! With `XNET_TESTS_NO_SKIP=1` (`cargo xtask test` sets it) a missing precondition fails the
//! test instead: where everything should be there, a skipped test is a test that did not run.

use std::io::Write as _;

use crate::Engine;

/// The environment variable that turns skips into failures.
pub const NO_SKIP: &str = "XNET_TESTS_NO_SKIP";

/// Whether the calling test must return at once because the process is not root (the tests
/// need CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN); it then says `skipped: needs root`.
pub fn unless_root() -> bool {
    skip_unless(nix::unistd::geteuid().is_root(), || "root".to_string())
}

/// As [`unless_root`], for tests that also start a private Docker engine
/// (`skipped: needs a Docker engine (why)`).
pub fn unless_docker() -> bool {
    unless_root() || {
        let missing = Engine::unavailable();
        skip_unless(missing.is_none(), || {
            format!("a Docker engine ({})", missing.unwrap_or_default())
        })
    }
}

/// True, after saying so, if the test must be skipped; panics instead when skips are
/// forbidden.
fn skip_unless(present: bool, needs: impl FnOnce() -> String) -> bool {
    if present {
        return false;
    }
    let thread = std::thread::current();
    // libtest names each test's thread after the test.
    let test = thread.name().unwrap_or("a test");
    if std::env::var_os(NO_SKIP).is_some_and(|v| v == "1") {
        panic!("{test} needs {}, and {NO_SKIP}=1 forbids skipping", needs());
    }
    // Straight to stderr: libtest captures what print! and eprint! write, and shows it only
    // for failed tests.
    let line = format!("{test}: skipped: needs {}\n", needs());
    let _ = std::io::stderr().write_all(line.as_bytes());
    true
}
