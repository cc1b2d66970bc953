//! The bench driver behind `cargo xtask bench`; see `xnet_perf::bench`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    match xnet_perf::bench::main(&xnet_perf::bench::BenchArgs::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
