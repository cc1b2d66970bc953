//! Parse-level tests of the command line: Docker's spellings, refusals, defaults.

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("xnet").chain(args.iter().copied()))
}

#[test]
fn run_takes_dockers_flags_and_the_command_after_them() {
    let cli = parse(&[
        "run",
        "--name",
        "web",
        "--network",
        "n1",
        "--ip",
        "10.1.0.5",
        "--ip6",
        "fd00:1::5",
        "-d",
        "--",
        "sleep",
        "-x",
        "9",
    ])
    .unwrap();
    let Command::Run(run) = cli.command else {
        panic!("not run")
    };
    assert_eq!(run.name, "web");
    assert_eq!(run.network, "n1");
    assert_eq!(run.ip.as_deref(), Some("10.1.0.5"));
    assert_eq!(run.ip6.as_deref(), Some("fd00:1::5"));
    assert!(run.detach);
    assert_eq!(run.command, ["sleep", "-x", "9"]);
}

#[test]
fn run_defaults_to_the_bridge_network() {
    let Command::Run(run) = parse(&["run", "--name", "a", "--", "true"])
        .unwrap()
        .command
    else {
        panic!("not run")
    };
    assert_eq!(run.network, "bridge");
    assert!(!run.detach);
}

#[test]
fn run_needs_a_name_and_a_command() {
    assert!(parse(&["run", "--", "true"]).is_err());
    assert!(parse(&["run", "--name", "a"]).is_err());
    assert!(parse(&["run", "--name", "a", "-d", "--rm", "--", "true"]).is_err());
}

#[test]
fn network_create_uses_dockers_flags() {
    let cli = parse(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.9.0.0/24",
        "--gateway",
        "10.9.0.254",
        "n9",
    ])
    .unwrap();
    let Command::Network(NetworkCommand::Create(c)) = cli.command else {
        panic!()
    };
    assert_eq!(c.driver, "bridge");
    assert_eq!(c.subnet, ["10.9.0.0/24"]);
    assert_eq!(c.gateway, ["10.9.0.254"]);
    assert!(!c.ipv6);
    assert_eq!(c.name, "n9");
    assert!(parse(&["network", "create"]).is_err());
    let cli = parse(&[
        "network",
        "create",
        "--internal",
        "--ip-range",
        "10.9.0.128/25",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "--opt",
        "com.docker.network.driver.mtu=1400",
        "n9",
    ])
    .unwrap();
    let Command::Network(NetworkCommand::Create(c)) = cli.command else {
        panic!()
    };
    assert!(c.internal);
    assert_eq!(c.ip_range, ["10.9.0.128/25"]);
    assert_eq!(
        c.opt,
        [
            (
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string()
            ),
            (
                "com.docker.network.driver.mtu".to_string(),
                "1400".to_string()
            )
        ]
    );
    // A key alone has an empty value, as Docker's `--opt encrypted`; a value alone is refused.
    let cli = parse(&["network", "create", "--opt", "encrypted", "n9"]).unwrap();
    let Command::Network(NetworkCommand::Create(c)) = cli.command else {
        panic!()
    };
    assert_eq!(c.opt, [("encrypted".to_string(), String::new())]);
    assert!(parse(&["network", "create", "-o", "=novalue", "n9"]).is_err());
}

#[test]
fn network_create_takes_ipv6_and_repeated_addressing_flags() {
    let cli = parse(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.9.0.0/24",
        "--subnet",
        "fd00:9::/64",
        "--gateway",
        "fd00:9::fe",
        "--ip-range",
        "10.9.0.128/25",
        "--ip-range",
        "fd00:9::/120",
        "n9",
    ])
    .unwrap();
    let Command::Network(NetworkCommand::Create(c)) = cli.command else {
        panic!()
    };
    assert!(c.ipv6);
    assert_eq!(c.subnet, ["10.9.0.0/24", "fd00:9::/64"]);
    assert_eq!(c.gateway, ["fd00:9::fe"]);
    assert_eq!(c.ip_range, ["10.9.0.128/25", "fd00:9::/120"]);
    let Command::Network(NetworkCommand::Create(c)) =
        parse(&["network", "create", "n9"]).unwrap().command
    else {
        panic!()
    };
    assert!(c.subnet.is_empty() && c.gateway.is_empty() && c.ip_range.is_empty());
}

#[test]
fn connect_attach_and_detach_parse() {
    let cli = parse(&[
        "network",
        "connect",
        "--ip",
        "10.1.0.9",
        "--ip6",
        "fd00:1::9",
        "n1",
        "web",
    ])
    .unwrap();
    let Command::Network(NetworkCommand::Connect(c)) = cli.command else {
        panic!()
    };
    assert_eq!(
        (c.network.as_str(), c.container.as_str(), c.ip.as_deref()),
        ("n1", "web", Some("10.1.0.9"))
    );
    assert_eq!(c.ip6.as_deref(), Some("fd00:1::9"));
    assert!(parse(&["network", "disconnect", "n1"]).is_err());
    let Command::Attach(a) = parse(&["attach", "--name", "d", "--pid", "42"])
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(
        (
            a.pid,
            a.netns.as_deref(),
            a.network.as_str(),
            a.ip6.as_deref()
        ),
        (Some(42), None, "bridge", None)
    );
    let Command::Attach(a) = parse(&["attach", "--name", "d", "--pid", "42", "--ip6", "fd00::7"])
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(a.ip6.as_deref(), Some("fd00::7"));
    // Exactly one of --netns and --pid.
    assert!(parse(&["attach", "--name", "d"]).is_err());
    assert!(parse(&["attach", "--name", "d", "--pid", "1", "--netns", "/x"]).is_err());
    assert!(parse(&["detach", "d"]).is_ok());
}

#[test]
fn port_lists_or_takes_add_and_rm() {
    let Command::Port(p) = parse(&["port", "web", "80/udp"]).unwrap().command else {
        panic!()
    };
    assert!(p.action.is_none());
    assert_eq!(
        (p.name.as_deref(), p.port.as_deref()),
        (Some("web"), Some("80/udp"))
    );
    let Command::Port(p) = parse(&["port", "add", "web", "8080:80"]).unwrap().command else {
        panic!()
    };
    let Some(PortCommand::Add(add)) = p.action else {
        panic!()
    };
    assert_eq!(
        (add.name.as_str(), add.specs),
        ("web", vec!["8080:80".to_string()])
    );
    let Command::Port(p) = parse(&["port", "rm", "web", "80", "127.0.0.1::81"])
        .unwrap()
        .command
    else {
        panic!()
    };
    let Some(PortCommand::Rm(rm)) = p.action else {
        panic!()
    };
    assert_eq!((rm.name.as_str(), rm.specs.len()), ("web", 2));
    assert!(parse(&["port"]).is_err());
    assert!(parse(&["port", "add", "web"]).is_err());
    let Command::Run(run) = parse(&[
        "run", "--name", "a", "-p", "80", "--expose", "8080:80", "--", "true",
    ])
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(
        (run.publish, run.expose),
        (vec!["80".to_string()], vec!["8080:80".to_string()])
    );
}

#[test]
fn host_comes_from_flag_or_default_and_formats_parse() {
    assert_eq!(
        parse(&["ps"]).unwrap().host,
        format!("unix://{DEFAULT_SOCKET}")
    );
    let cli = parse(&[
        "--host",
        "unix:///tmp/x.sock",
        "network",
        "ls",
        "--format",
        "json",
    ])
    .unwrap();
    assert_eq!(cli.host, "unix:///tmp/x.sock");
    let Command::Network(NetworkCommand::Ls(f)) = cli.command else {
        panic!()
    };
    assert_eq!(f.format, Format::Json);
    assert!(parse(&["ps", "--format", "yaml"]).is_err());
}

#[test]
fn rm_and_inspect_take_several_names() {
    let Command::Rm(rm) = parse(&["rm", "-f", "a", "b"]).unwrap().command else {
        panic!()
    };
    assert!(rm.force);
    assert_eq!(rm.names, ["a", "b"]);
    assert!(parse(&["rm"]).is_err());
    assert!(parse(&["network", "inspect"]).is_err());
}

/// The command a line parses to, with `container X` resolved to `X`, in Debug form: two
/// spellings mean the same when these are equal.
fn meaning(line: &str) -> String {
    let cli =
        parse(&line.split(' ').collect::<Vec<_>>()).unwrap_or_else(|e| panic!("xnet {line}: {e}"));
    let command = match cli.command {
        Command::Container(cmd) => cmd.into(),
        cmd => cmd,
    };
    format!("{command:?}")
}

#[test]
fn dockers_spellings_mean_what_xnets_do() {
    // (Docker's spelling, xnet's canonical one)
    let cases = [
        (
            "run --name web --net=host -d -- sleep 600",
            "run --name web --network host -d -- sleep 600",
        ),
        (
            "run --name web --net n1 -- true",
            "run --name web --network n1 -- true",
        ),
        (
            "run --name web --network=n1 -- true",
            "run --name web --network n1 -- true",
        ),
        (
            "run --name web --detach --publish 8080:80 --publish=90 -- true",
            "run --name web -d -p 8080:80 -p 90 -- true",
        ),
        (
            "run --name web -dp8080:80 -- true",
            "run --name web -d -p 8080:80 -- true",
        ),
        // Without `--` the command starts at its first word, as after Docker's IMAGE; its
        // own flags stay its own.
        (
            "run --name web -d sleep -d 600",
            "run --name web -d -- sleep -d 600",
        ),
        (
            "network create --driver=bridge --opt com.docker.network.driver.mtu=1400 n",
            "network create -d bridge -o com.docker.network.driver.mtu=1400 n",
        ),
        ("network list --format=json", "network ls --format json"),
        ("network remove a b", "network rm a b"),
        ("rm --force a", "rm -f a"),
        ("ps -a", "ps"),
        ("ps --all --format json", "ps --format json"),
        ("stats -a --no-stream", "stats"),
        (
            "stats --all --no-stream --format json",
            "stats --format json",
        ),
        ("-H unix:///x.sock ps", "--host unix:///x.sock ps"),
        // Docker's `container` management command.
        (
            "container run --name web --net host -- true",
            "run --name web --network host -- true",
        ),
        ("container exec web -- ip a", "exec web -- ip a"),
        ("container ls -a", "ps"),
        ("container list", "ps"),
        ("container ps --format json", "ps --format json"),
        ("container inspect a b", "inspect a b"),
        ("container rm -f a", "rm -f a"),
        ("container remove a", "rm a"),
        ("container stats --no-stream", "stats"),
        ("container port web 80", "port web 80"),
        ("container port add web 8080:80", "port add web 8080:80"),
    ];
    for (docker, xnet) in cases {
        assert_eq!(meaning(docker), meaning(xnet), "{docker:?} vs {xnet:?}");
    }
}

#[test]
fn unknown_flags_before_the_command_are_errors_not_the_command() {
    for line in [
        "run --name web --bogus -- true",
        "run --name web --net=host --bogus sleep 600",
        "run --name web -it -- sh",
        "run --name web --hostname h -- true",
        "exec --bogus web -- true",
        "exec web -it -- sh",
        "ps -q",
        "network rm -f n",
        "container attach web",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let err = parse(&args).expect_err(line);
        assert!(
            matches!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument | clap::error::ErrorKind::InvalidSubcommand
            ),
            "xnet {line}: {err}"
        );
    }
}
