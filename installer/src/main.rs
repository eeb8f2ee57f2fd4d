//! `ccgate`: the installer CLI (see the library for the commands).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ccgate_installer::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ccgate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    match runtime.block_on(ccgate_installer::cli::run(cli, &mut out)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ccgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
