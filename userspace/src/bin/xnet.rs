//! `xnet`: the command line client of xnetd.

use clap::Parser as _;
use xnet::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
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
