//! xnetd's log: levels, JSON lines, one span per API request, lines naming their object.

use std::process::Command;

use serde_json::Value;

use xnet_dockerlab::skip;

use crate::common::{Host, XNETD};

#[test]
fn json_log_lines_carry_the_request_span_and_name_the_object() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start_with(&["--log-format", "json", "--log-level", "debug"]);
    host.run_sleeper("web", &[]);
    let lines: Vec<Value> = host
        .daemon_log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let created = lines
        .iter()
        .find(|l| l["fields"]["message"] == "container created")
        .unwrap_or_else(|| panic!("no `container created` line: {lines:?}"));
    assert_eq!(created["level"], "INFO", "{created}");
    assert_eq!(created["fields"]["container"], "web", "{created}");
    assert_eq!(created["fields"]["network"], "bridge", "{created}");
    assert!(
        created["fields"]["interface"]
            .as_str()
            .is_some_and(|i| i.starts_with("xv")),
        "{created}"
    );
    let span = &created["span"];
    assert_eq!(span["name"], "request", "{created}");
    assert_eq!(span["method"], "POST", "{created}");
    assert_eq!(span["path"], "/containers", "{created}");
    let id = span["id"].as_u64().expect("a request id");
    // The same request's end, at debug level, in the same span.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "request done"
                && l["span"]["id"].as_u64() == Some(id)
                && l["fields"]["status"] == 200),
        "no `request done` for request {id}: {lines:?}"
    );
}

#[test]
fn the_log_level_filters_and_a_bad_one_is_refused_in_one_line() {
    if skip::unless_root() {
        return;
    }
    let quiet = Host::start_with(&["--log-level", "warn"]);
    quiet.run_sleeper("web", &[]);
    let log = quiet.daemon_log();
    assert!(!log.contains("container created"), "{log}");

    let out = Command::new(XNETD)
        .args(["--log-level", "xnet=loud"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("invalid log level or filter"), "{stderr}");
}
