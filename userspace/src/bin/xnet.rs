//! `xnet`: the command line client of xnetd.

use clap::{Parser as _, error::ErrorKind};
use xnet::cli::{Cli, run};

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|err| usage_error(err));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // One line, the whole cause chain: "Error: network foo not found".
            eprintln!("Error: {err:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Exits for a command line clap did not accept. Help and version are printed as clap prints
/// them; a mistake is one line on stderr, as every other xnet error: clap's message and tips
/// without the usage block (`--help` has it), with clap's exit code (2).
fn usage_error(err: clap::Error) -> ! {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    eprintln!("{}", one_line(&err.render().to_string()));
    std::process::exit(err.exit_code());
}

/// clap's rendered error, "error: MESSAGE\n\n  tip: TIP\n\nUsage: ...\n\nFor more information,
/// try '--help'.\n" (usage and pointer not always there; a message may span lines, as a list of
/// missing arguments), as "error: MESSAGE; tip: TIP".
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            line.push_str(if part.starts_with("tip:") { "; " } else { " " });
        }
        line.push_str(part);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unexpected argument '--netwrk' found\n\n  tip: a similar argument \
                        exists: '--network'\n  tip: to pass '--netwrk' as a value, use '-- \
                        --netwrk'\n\nUsage: xnet run [OPTIONS] --name <NAME> <COMMAND>...\n\nFor \
                        more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: unexpected argument '--netwrk' found; tip: a similar argument exists: \
             '--network'; tip: to pass '--netwrk' as a value, use '-- --netwrk'"
        );
        let rendered = "error: the following required arguments were not provided:\n  --name \
                        <NAME>\n  <COMMAND>...\n\nUsage: xnet run --name <NAME> <COMMAND>...\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --name <NAME> <COMMAND>..."
        );
        let rendered = "error: invalid value 'yaml' for '--format <FORMAT>'\n  [possible values: \
                        table, json]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: invalid value 'yaml' for '--format <FORMAT>' [possible values: table, json]"
        );
    }
}
