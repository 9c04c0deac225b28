//! `shutdown broker|namesrv`: RocketMQ has no remote shutdown request, so, like `mqshutdown`, this
//! signals local server processes. Only processes of the current user whose executable name is
//! exactly `tern-broker` or `tern-namesrv` get SIGTERM (the servers stop gracefully on it); `--pid`
//! narrows that to one process.

use std::os::unix::fs::MetadataExt;

use serde_json::json;

use crate::admin::AdminError;
use crate::cli::Server;
use crate::output::{Report, Table};

impl Server {
    /// The process name (`/proc/<pid>/comm`) of this server's binary.
    pub fn process_name(self) -> &'static str {
        match self {
            Server::Broker => "tern-broker",
            Server::Namesrv => "tern-namesrv",
        }
    }
}

/// Pids of the current user's processes named `name`, ascending.
fn find_processes(name: &str) -> Vec<i32> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let owner = e.metadata().ok()?.uid();
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (owner == uid && comm.trim_end() == name && pid != std::process::id() as i32)
                .then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends SIGTERM to every local `server` process, or only to `only` when given (only lists them
/// when `dry_run`).
pub fn shutdown(server: Server, only: Option<i32>, dry_run: bool) -> Result<Report, AdminError> {
    let name = server.process_name();
    let mut pids = find_processes(name);
    if let Some(pid) = only {
        pids.retain(|p| *p == pid);
    }
    if pids.is_empty() {
        let which = only.map_or_else(String::new, |p| format!(" with pid {p}"));
        return Err(AdminError::NotFound(format!(
            "no {name} process{which} is running"
        )));
    }
    let mut table = Table::new(&["Pid", "Process", "Action"]);
    for pid in &pids {
        let action = if dry_run {
            "would signal".to_string()
        } else {
            // SAFETY: kill has no memory-safety preconditions; a vanished pid gives ESRCH.
            let rc = unsafe { libc::kill(*pid, libc::SIGTERM) };
            if rc == 0 {
                "SIGTERM sent".to_string()
            } else {
                format!("failed: {}", std::io::Error::last_os_error())
            }
        };
        table.push([pid.to_string(), name.to_string(), action]);
    }
    Ok(Report {
        text: table.render(),
        json: json!({ "process": name, "pids": pids, "signalled": !dry_run }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_exact_names() {
        assert!(find_processes("no-such-process-name").is_empty());
    }
}
