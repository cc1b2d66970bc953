//! Running external commands.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

pub fn command(program: impl AsRef<OsStr>, args: impl IntoIterator<Item: AsRef<OsStr>>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// `cmd` as a shell line, with the environment it sets in front, so a failed step can be
/// rerun by pasting it.
pub fn display(cmd: &Command) -> String {
    let env = cmd.get_envs().filter_map(|(key, value)| {
        let value = quote(&value?.to_string_lossy());
        Some(format!("{}={value}", key.to_string_lossy()))
    });
    let words = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|word| quote(&word.to_string_lossy()));
    env.chain(words).collect::<Vec<_>>().join(" ")
}

fn quote(word: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:@+,%".contains(&b);
    if !word.is_empty() && word.bytes().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints `cmd`, then runs it with the terminal as its stdio; fails unless it exits with 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("==> {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs a command silently and returns its stdout, or None if it cannot start or fails: to a
/// check, a tool that is absent and one that does not work are both "missing".
pub fn probe(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item: AsRef<OsStr>>,
) -> Option<String> {
    let output = command(program, args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
