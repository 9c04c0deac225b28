//! The start/stop scripts (`scripts/mqnamesrv`, `scripts/mqbroker`, `scripts/mqshutdown`) drive
//! the real binaries: background start with pid files and logs under the log folder, refusal to
//! start twice, and a graceful SIGTERM stop that the script waits for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

fn run(name: &str, args: &[&str], logs: &Path) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tern-broker"))
        .parent()
        .unwrap();
    Command::new(script(name))
        .args(args)
        .env("TERN_BIN_DIR", bin_dir)
        .env("TERN_LOG_DIR", logs)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn pid(logs: &Path, name: &str) -> i32 {
    std::fs::read_to_string(logs.join(format!("{name}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The `host:port` from the script's "… listening on ADDR (pid …)" line.
fn listening(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text
        .split(" listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {text}"));
    addr.replace("0.0.0.0", "127.0.0.1")
}

#[test]
fn scripts_start_refuse_twice_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let kv = dir.path().join("kv.json");
    let store = dir.path().join("store");

    let out = run(
        "mqnamesrv",
        &[
            "--listen",
            "127.0.0.1:0",
            "--kv-config-path",
            kv.to_str().unwrap(),
        ],
        &logs,
    );
    assert!(out.status.success(), "{out:?}");
    let ns_addr = listening(&out);
    let ns_pid = pid(&logs, "namesrv");
    assert!(alive(ns_pid));

    let again = run("mqnamesrv", &["--listen", "127.0.0.1:0"], &logs);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    assert_eq!(pid(&logs, "namesrv"), ns_pid, "pid file kept");

    let out = run(
        "mqbroker",
        &[
            "-n",
            &ns_addr,
            "--listen-port",
            "0",
            "--broker-ip",
            "127.0.0.1",
            "--cores",
            "1",
            "--store-path-root-dir",
            store.to_str().unwrap(),
        ],
        &logs,
    );
    assert!(out.status.success(), "{out:?}");
    let broker_pid = pid(&logs, "broker");
    assert!(alive(broker_pid));
    // The broker is reachable on the port it printed.
    std::net::TcpStream::connect(listening(&out)).unwrap();

    let out = run("mqshutdown", &["broker"], &logs);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !alive(broker_pid),
        "mqshutdown returned before the broker exited"
    );
    assert!(!logs.join("broker.pid").exists());
    // A graceful stop: the stores were flushed and closed (a clean shutdown leaves no abort file).
    assert!(!store.join("core-0").join("abort").exists());

    let out = run("mqshutdown", &["namesrv"], &logs);
    assert!(out.status.success(), "{out:?}");
    assert!(!alive(ns_pid));
    assert!(!logs.join("namesrv.pid").exists());

    // Both wrote their daily log file into the log folder.
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for prefix in ["broker.log.", "namesrv.log.", "broker.out", "namesrv.out"] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "{prefix}: {names:?}"
        );
    }

    let out = run("mqshutdown", &["nothing"], &logs);
    assert_eq!(out.status.code(), Some(2));
}
