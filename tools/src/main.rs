//! `tern`: the Tern admin CLI, mqadmin's everyday commands (see docs/admin-cli.md).
//!
//! Exit status: 0 on success, 1 when the command failed (the reason on stderr), 2 for a bad
//! command line (clap's usage error).

mod admin;
mod cli;
mod commands;
mod output;
mod shutdown;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::admin::{Admin, AdminError};
use crate::cli::{Cli, Command};
use crate::output::Report;

fn execute(cli: &Cli) -> Result<Report, AdminError> {
    if let Command::Shutdown {
        server,
        pid,
        dry_run,
    } = cli.command
    {
        return shutdown::shutdown(server, pid, dry_run);
    }
    let timeout = Duration::from_millis(cli.timeout_ms.max(1));
    tern_runtime::block_on("tern", async {
        // Made and dropped on the executor: the client's connections belong to it.
        let admin = Admin::new(&cli.namesrv_addr, timeout)?;
        commands::run(&admin, &cli.command).await
    })?
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(&cli) {
        Ok(report) => {
            let text = if cli.json {
                let mut s = serde_json::to_string_pretty(&report.json).unwrap_or_default();
                s.push('\n');
                s
            } else {
                report.text
            };
            // A closed stdout (e.g. `| head`) is not worth a panic.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tern: {e}");
            ExitCode::FAILURE
        }
    }
}
