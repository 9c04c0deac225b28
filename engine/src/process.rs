//! What the `tern-broker` and `tern-namesrv` processes share: graceful stop on SIGTERM/SIGINT
//! (logging set-up is in [`crate::logging`]).

use std::process::ExitCode;

use tern_net::transport::StopSignal;

/// `-p` and `-m`, as mqbroker and mqnamesrv take them (flattened into both binaries' arguments).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PrintArgs {
    /// Print the effective settings and exit (as `mqbroker -p` / `mqnamesrv -p`).
    #[arg(short = 'p', long = "print-config")]
    pub print_config: bool,
    /// Print the important settings and exit (as `-m`).
    #[arg(short = 'm', long = "print-important-config")]
    pub print_important: bool,
}

impl PrintArgs {
    /// Prints `all()` for `-p` or `important()` for `-m` and returns the exit code to end with;
    /// `None` when neither was given (the process goes on to serve).
    pub fn print(
        &self,
        all: impl FnOnce() -> String,
        important: impl FnOnce() -> String,
    ) -> Option<ExitCode> {
        let text = if self.print_config {
            all()
        } else if self.print_important {
            important()
        } else {
            return None;
        };
        print!("{text}");
        Some(ExitCode::SUCCESS)
    }
}

/// SIGTERM and SIGINT, blocked in every thread and collected by one waiter thread.
///
/// Create it with [`StopSignals::block`] before any executor thread exists, so that the signals
/// are blocked in every thread and only the waiter sees them.
pub struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks SIGTERM and SIGINT in this thread (and threads it starts later).
    pub fn block() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(StopSignals { set })
        }
    }

    /// Starts the waiter thread: the first SIGTERM or SIGINT triggers `stop`.
    pub fn stop_on_signal(self, stop: StopSignal) {
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is initialised; `sig` is a valid out pointer.
            unsafe { libc::sigwait(&self.set, &mut sig) };
            tracing::info!(signal = sig, "stopping");
            stop.stop();
        });
    }
}

/// A started server the process runs until SIGTERM/SIGINT.
pub trait Service {
    /// The error its final wait may report.
    type Error: std::fmt::Display;
    /// The address it accepts connections on.
    fn local_addr(&self) -> std::net::SocketAddr;
    /// The signal that makes it stop gracefully.
    fn stop_signal(&self) -> StopSignal;
    /// Waits until it has stopped.
    fn wait(self) -> Result<(), Self::Error>;
}

/// Runs a server process: blocks the stop signals before `start` creates any executor thread,
/// prints `<name> listening on <addr>` on stdout once serving (scripts and tests wait for that
/// line), stops gracefully on SIGTERM/SIGINT and returns the exit code, logging any failure.
pub fn serve<S: Service, E: std::fmt::Display>(
    name: &str,
    start: impl FnOnce() -> Result<S, E>,
) -> std::process::ExitCode {
    use std::io::Write;
    use std::process::ExitCode;
    let signals = match StopSignals::block() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = match start() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{name} listening on {}", service.local_addr());
    let _ = std::io::stdout().flush();
    signals.stop_on_signal(service.stop_signal());
    match service.wait() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

impl Service for crate::broker::Broker {
    type Error = crate::broker::BrokerError;
    fn local_addr(&self) -> std::net::SocketAddr {
        crate::broker::Broker::local_addr(self)
    }
    fn stop_signal(&self) -> StopSignal {
        crate::broker::Broker::stop_signal(self)
    }
    fn wait(self) -> Result<(), Self::Error> {
        self.run_until_stopped()
    }
}

impl Service for crate::namesrv::Namesrv {
    type Error = tern_net::transport::TransportError;
    fn local_addr(&self) -> std::net::SocketAddr {
        crate::namesrv::Namesrv::local_addr(self)
    }
    fn stop_signal(&self) -> StopSignal {
        crate::namesrv::Namesrv::stop_signal(self)
    }
    fn wait(self) -> Result<(), Self::Error> {
        self.join()
    }
}
