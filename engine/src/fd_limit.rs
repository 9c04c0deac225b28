//! The process's open-file limit: a broker holding 1,000 client connections plus its CommitLog,
//! ConsumeQueue and index files needs more descriptors than the common soft limit of 1,024, so the
//! binaries raise the soft `RLIMIT_NOFILE` toward [`WANTED_OPEN_FILES`] at start, never above the
//! hard limit (which only root may raise).

/// Descriptors the binaries ask for at start.
pub const WANTED_OPEN_FILES: u64 = 65_536;

/// What [`raise_soft_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// Soft limit before.
    pub before: u64,
    /// Soft limit now.
    pub now: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft open-file limit to `min(wanted, hard)` when it is lower; never lowers it.
pub fn raise_soft_limit(wanted: u64) -> std::io::Result<OpenFileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // `rlim_t` is u64 on Linux/glibc but not on every platform the libc crate serves.
    #[allow(clippy::unnecessary_cast)]
    let (before, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    let target = wanted.min(hard);
    if before >= target {
        return Ok(OpenFileLimit {
            before,
            now: before,
            hard,
        });
    }
    lim.rlim_cur = target as libc::rlim_t;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OpenFileLimit {
        before,
        now: target,
        hard,
    })
}

/// [`raise_soft_limit`] to [`WANTED_OPEN_FILES`], with a log line saying what happened.
pub fn raise_and_log() {
    match raise_soft_limit(WANTED_OPEN_FILES) {
        Ok(l) if l.now > l.before => tracing::info!(
            before = l.before,
            now = l.now,
            hard = l.hard,
            "raised the open-file soft limit"
        ),
        Ok(l) if l.now < WANTED_OPEN_FILES => tracing::warn!(
            soft = l.now,
            hard = l.hard,
            "open-file limit below {WANTED_OPEN_FILES}; connections may be refused (raise the hard limit)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read or raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_stays_under_the_hard_limit() {
        let first = raise_soft_limit(WANTED_OPEN_FILES).unwrap();
        assert!(first.now >= first.before);
        assert!(first.now <= first.hard);
        let again = raise_soft_limit(1).unwrap();
        assert_eq!(again.now, again.before, "asking for less changes nothing");
        assert_eq!(again.now, first.now);
    }
}
