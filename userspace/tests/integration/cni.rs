//! `xnet-cni` driven as cnitool drives a plugin: the environment plus a network
//! configuration on stdin, for every command and every version: pods (namespaces of the
//! test's own) attached with an asked address, a published port and an alias, reaching each
//! other and not another network; CHECK, DEL (twice), GC, STATUS; the spec's errors.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use xnet_dockerlab::skip;

use crate::common::{Host, succeeded};

const CNI: &str = env!("CARGO_BIN_EXE_xnet-cni");
const VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// Runs the plugin with `command` and these environment variables, `conf` on stdin: its exit
/// success and its stdout as JSON (null when empty).
fn cni(command: &str, env: &[(&str, &str)], conf: &Value) -> (bool, Value) {
    let mut child = Command::new(CNI)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/nonexistent")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = match stdout.trim() {
        "" => Value::Null,
        text => serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    };
    (out.status.success(), json)
}

fn conf(host: &Host, version: &str, network: &str, runtime: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": network,
        "type": "xnet",
        "socket": host.socket().display().to_string(),
        "runtimeConfig": runtime,
    })
}

fn pod_env<'a>(id: &'a str, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
    ]
}

#[test]
fn pods_are_attached_published_checked_and_removed_in_every_version() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.88.0.0/24", "podnet"]);
    host.ok(&["network", "create", "--subnet", "10.89.0.0/24", "other"]);
    host.run_sleeper("stranger", &["--network", "other"]);
    let stranger = host.ip_of("stranger");

    let (ok, version) = cni("VERSION", &[], &json!({"cniVersion": "1.1.0"}));
    assert!(ok);
    assert_eq!(version["supportedVersions"], json!(VERSIONS));

    for (n, version) in VERSIONS.into_iter().enumerate() {
        let (pod1, pod2) = (
            host.foreign_netns(&format!("pod{n}a")),
            host.foreign_netns(&format!("pod{n}b")),
        );
        let (id1, id2) = (format!("c{n}aaaa"), format!("c{n}bbbb"));
        let asked = format!("10.88.0.{}", 50 + n);
        let host_port = (8080 + n).to_string();
        let mac = format!("02:11:22:33:44:5{n}");
        let runtime = json!({
            "portMappings": [{"hostPort": 8080 + n, "containerPort": 80, "protocol": "tcp"}],
            "ips": [format!("{asked}/24")],
            "mac": mac,
            "aliases": {"podnet": ["svc"]},
        });
        let (ok, result) = cni(
            "ADD",
            &pod_env(&id1, &pod1),
            &conf(&host, version, "podnet", runtime),
        );
        assert!(ok, "{version}: {result}");
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["interfaces"][0]["name"], "eth0", "{result}");
        assert_eq!(result["interfaces"][0]["sandbox"], pod1.as_str());
        assert_eq!(result["interfaces"][0]["mac"], mac.as_str());
        let link = host.in_container(&pod1, &["ip", "-o", "link", "show", "eth0"]);
        assert!(
            String::from_utf8_lossy(&link.stdout).contains(&mac),
            "{link:?}"
        );
        assert_eq!(result["ips"][0]["address"], format!("{asked}/24"));
        assert_eq!(result["ips"][0]["gateway"], "10.88.0.1");
        assert_eq!(result["ips"][0]["interface"], 0);
        assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(
            result["dns"]["nameservers"],
            json!(["127.0.0.11"]),
            "{result}"
        );
        match version {
            "0.4.0" => assert_eq!(result["ips"][0]["version"], "4", "{result}"),
            _ => assert!(result["ips"][0].get("version").is_none(), "{result}"),
        }
        let (ok, second) = cni(
            "ADD",
            &pod_env(&id2, &pod2),
            &conf(&host, version, "podnet", json!({})),
        );
        assert!(ok, "{second}");
        // The pods reach each other, by address and in the datapath, and not another network.
        assert!(host.reaches(&pod2, &asked));
        assert!(host.cannot_reach(&pod1, &stranger));
        // The port is published as `-p` would publish it.
        let name = format!("cni-{id1}-eth0");
        let ports = host.ok(&["port", &name]);
        assert!(
            ports.contains(&format!("80/tcp -> 0.0.0.0:{host_port}")),
            "{ports}"
        );
        // CHECK, then DEL twice (the second finds nothing and succeeds).
        let env = pod_env(&id1, &pod1);
        let (ok, checked) = cni("CHECK", &env, &conf(&host, version, "podnet", json!({})));
        assert!(ok, "{checked}");
        for _ in 0..2 {
            let (ok, deleted) = cni("DEL", &env, &conf(&host, version, "podnet", json!({})));
            assert!(ok, "{deleted}");
        }
        let (ok, error) = cni("CHECK", &env, &conf(&host, version, "podnet", json!({})));
        assert!(!ok);
        assert_eq!(error["code"], 100, "{error}");
        assert!(host.fails(&["port", &name]).contains("No such container"));
        let (ok, _) = cni(
            "DEL",
            &pod_env(&id2, &pod2),
            &conf(&host, version, "podnet", json!({})),
        );
        assert!(ok);
    }

    // A network the configuration describes is made on the first ADD, with its subnet,
    // ICC and MTU, then used as it is.
    let (fresh1, fresh2) = (host.foreign_netns("fresh1"), host.foreign_netns("fresh2"));
    let described = |id: &str, netns: &str| {
        let mut conf = conf(&host, "1.0.0", "fresh", json!({}));
        for (key, value) in [
            ("subnet", json!("10.87.0.0/24")),
            ("icc", json!(false)),
            ("mtu", json!(1400)),
        ] {
            conf[key] = value;
        }
        cni("ADD", &pod_env(id, netns), &conf)
    };
    for (id, netns) in [("fresh1", &fresh1), ("fresh2", &fresh2)] {
        let (ok, result) = described(id, netns);
        assert!(ok, "{result}");
        assert!(
            result["ips"][0]["address"]
                .as_str()
                .unwrap()
                .starts_with("10.87.0."),
            "{result}"
        );
    }
    let fresh: Value = serde_json::from_str(&host.ok(&["network", "inspect", "fresh"])).unwrap();
    assert_eq!(fresh[0]["IPAM"]["Config"][0]["Subnet"], "10.87.0.0/24");
    assert_eq!(
        fresh[0]["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    assert_eq!(fresh[0]["Options"]["com.docker.network.driver.mtu"], "1400");
    // ICC off: the two pods do not reach each other.
    let fresh2_ip = {
        let inspect: Value =
            serde_json::from_str(&host.ok(&["inspect", "cni-fresh2-eth0"])).unwrap();
        inspect[0]["NetworkSettings"]["Networks"]["fresh"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(host.cannot_reach(&fresh1, &fresh2_ip));

    // GC keeps what the runtime lists and removes the network's other attachments.
    let (keep, drop) = (host.foreign_netns("keep"), host.foreign_netns("drop"));
    for (id, netns) in [("keeper", &keep), ("dropped", &drop)] {
        let (ok, result) = cni(
            "ADD",
            &pod_env(id, netns),
            &conf(&host, "1.1.0", "podnet", json!({})),
        );
        assert!(ok, "{result}");
    }
    let mut gc = conf(&host, "1.1.0", "podnet", json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keeper", "ifname": "eth0"}]);
    let (ok, result) = cni("GC", &[], &gc);
    assert!(ok, "{result}");
    let names = host.ok(&["ps", "-a"]);
    assert!(names.contains("cni-keeper-eth0"), "{names}");
    assert!(!names.contains("cni-dropped-eth0"), "{names}");
    assert!(
        names.contains("stranger"),
        "GC removed what is not CNI's: {names}"
    );

    // STATUS: the network there or not.
    let (ok, _) = cni("STATUS", &[], &conf(&host, "1.1.0", "podnet", json!({})));
    assert!(ok);
    let (ok, error) = cni("STATUS", &[], &conf(&host, "1.1.0", "nope", json!({})));
    assert!(!ok);
    assert_eq!(error["code"], 50, "{error}");
}

#[test]
fn bad_invocations_get_the_specs_errors_and_change_nothing() {
    if skip::unless_root() {
        return;
    }
    let mut host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.88.0.0/24", "podnet"]);
    let pod = host.foreign_netns("pod");
    let env = pod_env("bad", &pod);
    let error_of = |command: &str, env: &[(&str, &str)], conf: &Value| {
        let (ok, error) = cni(command, env, conf);
        assert!(!ok, "{command} succeeded: {error}");
        assert!(
            error["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        error["code"].as_u64().unwrap()
    };
    let good = conf(&host, "1.0.0", "podnet", json!({}));
    // An unsupported version, undecodable input, a missing variable, an unknown command.
    let mut old = good.clone();
    old["cniVersion"] = json!("0.3.1");
    assert_eq!(error_of("ADD", &env, &old), 1);
    let (ok, error) = {
        let mut child = Command::new(CNI)
            .env("CNI_COMMAND", "ADD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"{not json").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert!(!ok);
    assert_eq!(error["code"], 6, "{error}");
    assert_eq!(error_of("ADD", &[("CNI_CONTAINERID", "bad")], &good), 4);
    assert_eq!(error_of("FROB", &env, &good), 4);
    // xnetd refuses: an unknown network, an address outside the subnet, a taken port.
    assert_eq!(
        error_of("ADD", &env, &conf(&host, "1.0.0", "nope", json!({}))),
        100
    );
    let outside = json!({"ips": ["10.99.0.5/24"]});
    assert_eq!(
        error_of("ADD", &env, &conf(&host, "1.0.0", "podnet", outside)),
        100
    );
    let multicast = json!({"mac": "01:00:5e:00:00:01"});
    assert_eq!(
        error_of("ADD", &env, &conf(&host, "1.0.0", "podnet", multicast)),
        100
    );
    let no_daemon = json!({"cniVersion": "1.0.0", "name": "podnet", "type": "xnet",
                           "socket": "/nonexistent/xnet.sock"});
    assert_eq!(error_of("DEL", &env, &no_daemon), 11);
    // Nothing of the failed ADDs is left: no container, no interface in the pod.
    assert!(!host.ok(&["ps", "-a"]).contains("cni-bad"));
    let links = host.in_container(&pod, &["ip", "-o", "link", "show"]);
    assert!(succeeded(&links));
    assert_eq!(String::from_utf8_lossy(&links.stdout).lines().count(), 1);
}

/// Real podman (Debian's, CNI backend) with storage, configuration and plugins of the test's
/// own; its containers removed on drop.
struct Podman {
    dir: std::path::PathBuf,
    containers: Vec<String>,
}

impl Podman {
    /// Podman set up for network `xnetnet`, a conflist with the `xnet` plugin attaching to
    /// xnet network `podnet`, and an image `xnet-busybox` imported from a busybox rootfs
    /// (there is no registry here).
    fn new(host: &Host) -> Self {
        let dir = host.dir.join("podman");
        for sub in ["rootfs/bin", "cni-bin", "cni-conf"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(CNI, dir.join("cni-bin/xnet")).unwrap();
        // This machine's root lacks CAP_SYS_RESOURCE: podman's default limits (nofile
        // 1048576) cannot be set, so its containers get lower ones.
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [network]\nnetwork_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n\
                 network_config_dir = \"{}\"\n",
                dir.join("cni-bin").display(),
                dir.join("cni-conf").display()
            ),
        )
        .unwrap();
        let conflist = json!({
            "cniVersion": "0.4.0",
            "name": "xnetnet",
            "plugins": [{
                "type": "xnet",
                "network": "podnet",
                "socket": format!("unix://{}", host.socket().display()),
                "capabilities": {"portMappings": true, "ips": true, "aliases": true},
            }],
        });
        std::fs::write(dir.join("cni-conf/xnetnet.conflist"), conflist.to_string()).unwrap();
        std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "httpd", "wget", "ping", "cat"] {
            std::os::unix::fs::symlink("busybox", dir.join("rootfs/bin").join(applet)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        let packed = Command::new("tar")
            .arg("-C")
            .arg(dir.join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(packed.success());
        let podman = Self {
            dir,
            containers: Vec::new(),
        };
        podman.ok(&["import", &tar.display().to_string(), "xnet-busybox"]);
        podman
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn run(&mut self, name: &str, extra: &[&str], command: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push("xnet-busybox");
        args.extend_from_slice(command);
        self.containers.push(name.to_string());
        self.ok(&args);
    }

    /// Runs `command` in container `name`; whether it succeeded.
    fn exec(&self, name: &str, command: &[&str]) -> bool {
        let mut args = vec!["exec", name];
        args.extend_from_slice(command);
        self.command(&args).output().unwrap().status.success()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.command(&["rm", "-f", "-t", "0", name]).output();
        }
    }
}

#[test]
fn podman_runs_containers_on_an_xnet_network_through_the_plugin() {
    if skip::unless_root() {
        return;
    }
    let host = Host::start();
    host.ok(&["network", "create", "--subnet", "10.88.0.0/24", "podnet"]);
    host.ok(&["network", "create", "--subnet", "10.89.0.0/24", "other"]);
    host.run_sleeper("stranger", &["--network", "other"]);
    let stranger = host.ip_of("stranger");
    let mut podman = Podman::new(&host);
    podman.run(
        "web",
        &["--network", "xnetnet", "-p", "8080:80"],
        &["httpd", "-f", "-p", "80"],
    );
    podman.run("client", &["--network", "xnetnet"], &["sleep", "600"]);
    // Both are xnet containers on podnet, named after podman's container ids.
    let listed = host.ok(&["ps"]);
    assert_eq!(listed.matches("podnet").count(), 2, "{listed}");
    let web_ip = podman.ok(&[
        "inspect",
        "--format",
        "{{(index .NetworkSettings.Networks \"xnetnet\").IPAddress}}",
        "web",
    ]);
    let web_ip = web_ip.trim();
    assert!(web_ip.starts_with("10.88.0."), "{web_ip}");
    // The client reaches the server, by its name through the embedded DNS (podman wrote
    // the result's 127.0.0.11 into its resolv.conf) and by address; nobody reaches another
    // network.
    let resolv_conf = podman.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv_conf.starts_with("nameserver 127.0.0.11\n"),
        "{resolv_conf}"
    );
    let url = format!("http://{web_ip}:80/");
    // busybox's wget fails on httpd's 404 for `/`, but only after a connection: ask for a
    // page that exists.
    assert!(podman.exec("web", &["sh", "-c", "echo hello > /index.html"]));
    assert!(podman.exec("client", &["wget", "-q", "-O", "-", &url]));
    assert!(podman.exec("client", &["wget", "-q", "-O", "-", "http://web:80/"]));
    assert!(!podman.exec("client", &["ping", "-c", "1", "-W", "1", &stranger]));
    // The published port, from the host, as -p would publish it.
    let out = host.in_host(&["curl", "-sf", "--max-time", "3", "http://127.0.0.1:8080/"]);
    assert!(succeeded(&out), "the published port does not answer");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    // podman rm: DEL; nothing of xnet's left.
    podman.ok(&["rm", "-f", "-t", "0", "web", "client"]);
    podman.containers.clear();
    assert!(!host.ok(&["ps", "-a"]).contains("cni-"));
}
