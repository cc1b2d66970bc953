//! Running external commands.

use std::{
    ffi::OsStr,
    io::{self, BufRead as _, BufReader},
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

/// As [`run`], also returning what the command wrote to stdout and stderr (shown as it comes,
/// in the order it was written).
pub fn run_and_keep(mut cmd: Command) -> Result<String> {
    let line = display(&cmd);
    println!("==> {line}");
    let (reader, writer) = io::pipe().context("cannot make a pipe")?;
    let mut child = cmd
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    // The command keeps copies of the pipe's write end: without dropping it, no end of file.
    drop(cmd);
    let mut output = String::new();
    for text in BufReader::new(reader).split(b'\n') {
        let text = text.with_context(|| format!("reading the output of `{line}`"))?;
        let text = String::from_utf8_lossy(&text);
        println!("{text}");
        output.push_str(&text);
        output.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(output)
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
