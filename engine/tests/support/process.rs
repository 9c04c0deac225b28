//! The real `tern-broker` and `tern-namesrv` binaries as child processes of a test: started, their
//! address read from the "listening on ADDR" line they print, signalled, and always killed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use super::ports::loopback;

/// The broker binary cargo built for these tests.
pub const BROKER: &str = env!("CARGO_BIN_EXE_tern-broker");
/// The nameserver binary cargo built for these tests.
pub const NAMESRV: &str = env!("CARGO_BIN_EXE_tern-namesrv");

/// A server process, killed (SIGKILL) and reaped on drop, so a failing test leaves nothing
/// running. Its stderr goes to a file ([`Server::log`]) that is printed when the test panics.
pub struct Server {
    pub child: Child,
    /// The address from the process's "listening on ADDR" line.
    pub addr: SocketAddr,
    /// That first stdout line, trimmed.
    pub banner: String,
    /// Where the process's stderr goes.
    pub stderr: PathBuf,
    /// Held open so that later writes to stdout never fail.
    _stdout: BufReader<ChildStdout>,
    /// The directory of `stderr` when the server owns it (see [`Server::start`]).
    _log_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `bin args` with `RUST_LOG=warn` and stderr to `<dir>/<name>.stderr`; returns once
    /// it has printed its listening address.
    pub fn spawn<I, S>(bin: &str, args: I, dir: &Path, name: &str) -> Server
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let stderr = dir.join(format!("{name}.stderr"));
        Server::launch(command(bin, args), stderr, None)
    }

    /// [`Server::spawn`] with stderr to a file in a temporary directory the server owns.
    pub fn start<I, S>(bin: &str, args: I) -> Server
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let dir = tempfile::tempdir().expect("log dir");
        let stderr = dir.path().join("server.stderr");
        Server::launch(command(bin, args), stderr, Some(dir))
    }

    /// Runs `cmd` with stdout piped here and stderr to the file `stderr`; returns once the first
    /// stdout line has named the address. Panics, showing the log, when it does not.
    pub fn with_command(cmd: Command, stderr: PathBuf) -> Server {
        Server::launch(cmd, stderr, None)
    }

    fn launch(mut cmd: Command, stderr: PathBuf, log_dir: Option<tempfile::TempDir>) -> Server {
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let Some(addr) = line.trim().rsplit(' ').next().and_then(|a| a.parse().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            panic!("no address in {line:?}; stderr:\n{log}");
        };
        Server {
            child,
            addr,
            banner: line.trim().to_string(),
            stderr,
            _stdout: stdout,
            _log_dir: log_dir,
        }
    }

    /// `127.0.0.1:<port>` of [`Server::addr`], as clients are given it.
    pub fn loopback(&self) -> String {
        loopback(self.addr)
    }

    /// What the process has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; asserts a clean (zero) exit.
    pub fn sigterm(&mut self) {
        // SAFETY: kill on our own child's pid.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM not delivered");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "exit status {status:?}");
    }

    /// Kills the process (SIGKILL, as `kill -9`) and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Asserts the process has logged no panic (whether or not it still runs).
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "panic logged: {log}");
    }

    /// Asserts the process is running and has logged no panic.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "server exited; stderr: {}",
            self.log()
        );
        self.assert_no_panic();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} stderr ---\n{}", self.stderr.display(), self.log());
        }
    }
}

/// `bin args` with `RUST_LOG=warn`.
pub fn command<I, S>(bin: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.args(args).env("RUST_LOG", "warn");
    cmd
}

/// A `tern-namesrv` on an ephemeral loopback port (`--listen 127.0.0.1:0`), logging to a file
/// of its own.
pub fn namesrv() -> Server {
    Server::start(NAMESRV, ["--listen", "127.0.0.1:0"])
}

/// A nameserver and a broker registered with it, logging to `<dir>/namesrv.stderr` and
/// `<dir>/broker.stderr`; the broker stores under `<dir>/store` and gets `--set` for each of
/// `settings` (`key=value`).
pub fn namesrv_and_broker(dir: &Path, settings: &[&str]) -> (Server, Server) {
    let namesrv = Server::spawn(NAMESRV, ["--listen", "127.0.0.1:0"], dir, "namesrv");
    let args = settings.iter().fold(
        BrokerArgs::new(&namesrv.loopback(), &dir.join("store")),
        |a, s| a.set(*s),
    );
    let broker = Server::spawn(BROKER, args.to_vec(), dir, "broker");
    (namesrv, broker)
}

/// The command line of a test broker: nameserver `-n`, port 0 (or [`BrokerArgs::port`]) on
/// 127.0.0.1, a store root, 4 MiB commit-log files (or [`BrokerArgs::commit_log`]), then the
/// flags and `--set` entries added, in order. Cores are the binary's default unless set.
pub struct BrokerArgs {
    namesrv: String,
    store: String,
    port: u16,
    cores: Option<usize>,
    commit_log: u64,
    rest: Vec<String>,
}

impl BrokerArgs {
    pub fn new(namesrv: &str, store: &Path) -> BrokerArgs {
        BrokerArgs {
            namesrv: namesrv.into(),
            store: store.display().to_string(),
            port: 0,
            cores: None,
            commit_log: 4 << 20,
            rest: Vec::new(),
        }
    }

    /// `--cores n`.
    pub fn cores(mut self, n: usize) -> BrokerArgs {
        self.cores = Some(n);
        self
    }

    /// `--listen-port port` instead of 0.
    pub fn port(mut self, port: u16) -> BrokerArgs {
        self.port = port;
        self
    }

    /// `--mapped-file-size-commit-log bytes` instead of 4 MiB.
    pub fn commit_log(mut self, bytes: u64) -> BrokerArgs {
        self.commit_log = bytes;
        self
    }

    /// `name value`, e.g. `("--broker-name", "broker-a")`.
    pub fn flag(mut self, name: &str, value: impl ToString) -> BrokerArgs {
        self.rest.push(name.into());
        self.rest.push(value.to_string());
        self
    }

    /// `--set key=value`.
    pub fn set(self, key_value: impl ToString) -> BrokerArgs {
        self.flag("--set", key_value)
    }

    pub fn to_vec(&self) -> Vec<String> {
        let mut args = vec![
            "-n".to_string(),
            self.namesrv.clone(),
            "--listen-port".into(),
            self.port.to_string(),
            "--broker-ip".into(),
            "127.0.0.1".into(),
        ];
        if let Some(n) = self.cores {
            args.extend(["--cores".into(), n.to_string()]);
        }
        args.extend([
            "--store-path-root-dir".into(),
            self.store.clone(),
            "--mapped-file-size-commit-log".into(),
            self.commit_log.to_string(),
        ]);
        args.extend(self.rest.iter().cloned());
        args
    }

    /// Starts [`BROKER`] with these arguments (see [`Server::start`]).
    pub fn start(&self) -> Server {
        Server::start(BROKER, self.to_vec())
    }
}
