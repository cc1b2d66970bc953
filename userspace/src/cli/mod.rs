//! The `xnet` command line: Docker's command names and flags, talking to xnetd over its socket.

mod args;
mod commands;
mod output;
mod process;

pub use args::Cli;
pub use commands::run;
