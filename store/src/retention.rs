//! Retention policy: when CommitLog segments may be deleted, and which ones.
//!
//! This module only decides; [`crate::store::MessageStore::run_retention`] acts (deletes the chosen
//! segments, then advances ConsumeQueue minimum offsets and drops Index files below the new
//! CommitLog minimum). Time and disk usage are injected through [`Clock`] and [`DiskUsageProbe`]
//! so behaviour is deterministic under test.
//!
//! The rules follow RocketMQ's `CleanCommitLogService`:
//! - A deletion pass runs when the local hour is one of `deleteWhen` ("04", "03;04"), or when the
//!   disk is fuller than `diskMaxUsedSpaceRatio`, or fuller than the forced-clean ratio.
//! - A pass removes segments oldest first, never the newest (active) segment, at most
//!   `delete_batch_max` per pass, stopping at the first segment younger than `fileReservedTime`
//!   unless the disk is past the forced-clean ratio (then age is ignored).
//! - Past the warning ratio the store is marked disk-full and refuses writes until a later pass
//!   sees usage back under it.
//!
//! The two emergency ratios are clamped as RocketMQ clamps them: warning to [0.35, 0.90] and
//! forced clean to [0.30, 0.85].

use std::ffi::CString;
use std::path::Path;

/// Errors in a retention configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    /// A `deleteWhen` entry is not an hour 0..=23.
    #[error("deleteWhen entry {0:?} is not an hour between 0 and 23")]
    BadDeleteHour(String),
    /// A ratio given in percent is outside 0..=100.
    #[error("{name} = {value} is not a percentage between 0 and 100")]
    BadRatio {
        /// The setting's RocketMQ name.
        name: &'static str,
        /// The rejected value.
        value: u32,
    },
}

/// The source of wall-clock time for retention decisions.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// The local hour of day, 0..=23.
    fn local_hour(&self) -> u8;
}

/// Reports how full the filesystem holding a path is.
pub trait DiskUsageProbe {
    /// Used fraction (0.0..=1.0) of the filesystem holding `path`, or `None` if unknown.
    fn used_ratio(&self, path: &Path) -> Option<f64>;
}

/// The real clock: system time and the process's local time zone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn local_hour(&self) -> u8 {
        let secs: libc::time_t = (self.now_millis() / 1000) as libc::time_t;
        // SAFETY: `tm` is a plain C struct for which all-zero is a valid value, and localtime_r
        // only writes into it.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the duration of the call.
        let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
        if ok {
            u8::try_from(tm.tm_hour).unwrap_or(0)
        } else {
            0
        }
    }
}

/// The real probe: `statvfs` on the path, used = (total - free) / total as RocketMQ computes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatvfsProbe;

impl DiskUsageProbe for StatvfsProbe {
    fn used_ratio(&self, path: &Path) -> Option<f64> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: all-zero is a valid statvfs value; statvfs only writes into it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let total = st.f_blocks as f64 * st.f_frsize as f64;
        let free = st.f_bfree as f64 * st.f_frsize as f64;
        if total <= 0.0 {
            return None;
        }
        Some(((total - free) / total).clamp(0.0, 1.0))
    }
}

/// A probe that reads a used-space percentage (e.g. `93.5`) from a file, falling back to
/// [`StatvfsProbe`] while the file is missing or unparsable: lets an operator or a test pretend
/// the disk is full (`diskUsageOverrideFile`).
#[derive(Clone, Debug)]
pub struct FileOverrideProbe {
    /// The file holding the percentage.
    pub path: std::path::PathBuf,
}

impl DiskUsageProbe for FileOverrideProbe {
    fn used_ratio(&self, path: &Path) -> Option<f64> {
        let pretend = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite());
        match pretend {
            Some(p) => Some((p / 100.0).clamp(0.0, 1.0)),
            None => StatvfsProbe.used_ratio(path),
        }
    }
}

/// A validated retention configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    delete_hours: Vec<u8>,
    reserved_ms: i64,
    max_used_ratio: f64,
    warning_ratio: f64,
    clean_forcibly_ratio: f64,
    delete_batch_max: usize,
}

impl RetentionPolicy {
    /// Builds a policy from RocketMQ's settings: `delete_when` ("04", "03;04"),
    /// `file_reserved_hours` (fileReservedTime), and the three disk ratios in percent
    /// (diskMaxUsedSpaceRatio, diskSpaceWarningLevelRatio, diskSpaceCleanForciblyRatio).
    /// `delete_batch_max` (deleteFileBatchMax) bounds segments removed per pass (at least 1).
    pub fn new(
        delete_when: &str,
        file_reserved_hours: u32,
        disk_max_used_percent: u32,
        warning_percent: u32,
        clean_forcibly_percent: u32,
        delete_batch_max: usize,
    ) -> Result<Self, RetentionError> {
        let delete_hours = parse_delete_when(delete_when)?;
        let pct = |name: &'static str, value: u32| {
            if value > 100 {
                Err(RetentionError::BadRatio { name, value })
            } else {
                Ok(f64::from(value) / 100.0)
            }
        };
        Ok(RetentionPolicy {
            delete_hours,
            reserved_ms: i64::from(file_reserved_hours) * 3_600_000,
            max_used_ratio: pct("diskMaxUsedSpaceRatio", disk_max_used_percent)?,
            warning_ratio: pct("diskSpaceWarningLevelRatio", warning_percent)?.clamp(0.35, 0.90),
            clean_forcibly_ratio: pct("diskSpaceCleanForciblyRatio", clean_forcibly_percent)?
                .clamp(0.30, 0.85),
            delete_batch_max: delete_batch_max.max(1),
        })
    }

    /// Decides what a pass does at `local_hour` with the disk `used_ratio` (`None` = unknown,
    /// which, as in RocketMQ, counts as "reclaim space").
    pub fn evaluate(&self, local_hour: u8, used_ratio: Option<f64>) -> RetentionDecision {
        let time_up = self.delete_hours.contains(&local_hour);
        let (space_low, forced, disk_full) = match used_ratio {
            None => (true, false, false),
            Some(r) => (
                r > self.max_used_ratio,
                r > self.clean_forcibly_ratio,
                r > self.warning_ratio,
            ),
        };
        RetentionDecision {
            delete: time_up || space_low || forced || disk_full,
            ignore_age: forced || disk_full,
            disk_full,
        }
    }

    /// Chooses segments to delete from `segments` (oldest first, each with its last-modified
    /// time), given `decision` at `now_ms`. Never returns the last (active) segment; returns a
    /// prefix of the list so the CommitLog stays contiguous.
    pub fn select_segments(
        &self,
        segments: &[SegmentAge],
        decision: RetentionDecision,
        now_ms: i64,
    ) -> Vec<SegmentAge> {
        if !decision.delete {
            return Vec::new();
        }
        let deletable = segments.len().saturating_sub(1);
        segments
            .iter()
            .take(deletable)
            .take_while(|s| decision.ignore_age || now_ms >= s.modified_ms + self.reserved_ms)
            .take(self.delete_batch_max)
            .copied()
            .collect()
    }
}

/// One CommitLog segment as retention sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentAge {
    /// Physical offset of the segment's first byte (its file name).
    pub base_offset: u64,
    /// Last modification time, ms since the epoch.
    pub modified_ms: i64,
}

/// The outcome of [`RetentionPolicy::evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionDecision {
    /// Whether this pass deletes anything at all.
    pub delete: bool,
    /// Whether segments are deleted regardless of `fileReservedTime` (forced clean).
    pub ignore_age: bool,
    /// Whether the disk is past the warning ratio: writes must be refused.
    pub disk_full: bool,
}

/// Parses `deleteWhen`: hours separated by `;`, e.g. "04" or "03;04". Empty entries are skipped.
fn parse_delete_when(s: &str) -> Result<Vec<u8>, RetentionError> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u8>() {
            Ok(h) if h < 24 => Ok(h),
            _ => Err(RetentionError::BadDeleteHour(p.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn policy() -> RetentionPolicy {
        RetentionPolicy::new("03;04", 72, 75, 90, 85, 10).unwrap()
    }

    fn segs(ages_h: &[i64], now: i64) -> Vec<SegmentAge> {
        ages_h
            .iter()
            .enumerate()
            .map(|(i, a)| SegmentAge {
                base_offset: i as u64 * 1024,
                modified_ms: now - a * HOUR,
            })
            .collect()
    }

    #[test]
    fn parses_delete_when() {
        assert_eq!(parse_delete_when("04").unwrap(), vec![4]);
        assert_eq!(parse_delete_when("03;04").unwrap(), vec![3, 4]);
        assert_eq!(parse_delete_when("").unwrap(), Vec::<u8>::new());
        assert_eq!(
            parse_delete_when("03;24"),
            Err(RetentionError::BadDeleteHour("24".into()))
        );
        assert!(RetentionPolicy::new("x", 1, 75, 90, 85, 1).is_err());
        assert!(RetentionPolicy::new("04", 1, 101, 90, 85, 1).is_err());
    }

    #[test]
    fn evaluates_time_and_space() {
        let p = policy();
        let quiet = p.evaluate(12, Some(0.5));
        assert!(!quiet.delete && !quiet.disk_full);
        let hour = p.evaluate(4, Some(0.5));
        assert!(hour.delete && !hour.ignore_age && !hour.disk_full);
        let space = p.evaluate(12, Some(0.80));
        assert!(space.delete && !space.ignore_age);
        let forced = p.evaluate(12, Some(0.86));
        assert!(forced.delete && forced.ignore_age && !forced.disk_full);
        let full = p.evaluate(12, Some(0.95));
        assert!(full.delete && full.ignore_age && full.disk_full);
        assert!(p.evaluate(12, None).delete);
    }

    #[test]
    fn ratios_are_clamped_like_rocketmq() {
        let p = RetentionPolicy::new("04", 72, 75, 99, 99, 10).unwrap();
        assert!(p.evaluate(12, Some(0.91)).disk_full);
        assert!(p.evaluate(12, Some(0.86)).ignore_age);
    }

    #[test]
    fn selects_expired_prefix_never_the_active_segment() {
        let p = policy();
        let now = 1_000 * HOUR;
        let all = segs(&[100, 80, 10, 90, 1], now);
        let d = p.evaluate(4, Some(0.1));
        let chosen = p.select_segments(&all, d, now);
        assert_eq!(
            chosen,
            all[..2].to_vec(),
            "stops at the first young segment"
        );
        let forced = p.evaluate(12, Some(0.95));
        assert_eq!(p.select_segments(&all, forced, now), all[..4].to_vec());
        let none = p.evaluate(12, Some(0.1));
        assert!(p.select_segments(&all, none, now).is_empty());
        let single = segs(&[500], now);
        assert!(p.select_segments(&single, forced, now).is_empty());
    }

    #[test]
    fn batch_max_bounds_a_pass() {
        let p = RetentionPolicy::new("04", 1, 75, 90, 85, 2).unwrap();
        let now = 1_000 * HOUR;
        let all = segs(&[9, 9, 9, 9, 9], now);
        assert_eq!(
            p.select_segments(&all, p.evaluate(4, Some(0.1)), now).len(),
            2
        );
    }

    #[test]
    fn system_probe_and_clock_answer() {
        let dir = tempfile::tempdir().unwrap();
        let r = StatvfsProbe.used_ratio(dir.path()).unwrap();
        assert!((0.0..=1.0).contains(&r));
        assert!(StatvfsProbe.used_ratio(Path::new("/no/such/dir")).is_none());
        assert!(SystemClock.local_hour() < 24);
        assert!(SystemClock.now_millis() > 1_600_000_000_000);
    }

    #[test]
    fn override_file_replaces_the_filesystem_figure() {
        let dir = tempfile::tempdir().unwrap();
        let probe = FileOverrideProbe {
            path: dir.path().join("usage"),
        };
        assert!(
            probe.used_ratio(dir.path()).is_some(),
            "falls back to statvfs"
        );
        std::fs::write(&probe.path, "93.5\n").unwrap();
        assert_eq!(probe.used_ratio(dir.path()), Some(0.935));
        std::fs::write(&probe.path, "150").unwrap();
        assert_eq!(probe.used_ratio(dir.path()), Some(1.0));
    }
}
