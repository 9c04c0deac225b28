//! Calendar fields of a UTC instant, for the places that print one: index file names
//! (`yyyyMMddHHmmssSSS`) and the admin CLI's timestamps. No time-zone database: UTC only.

/// The UTC calendar fields of an instant given in milliseconds since the Unix epoch (negative
/// instants are before 1970, proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcFields {
    /// Year, e.g. 2024.
    pub year: i64,
    /// Month, 1..=12.
    pub month: i64,
    /// Day of the month, 1..=31.
    pub day: i64,
    /// Hour, 0..=23.
    pub hour: i64,
    /// Minute, 0..=59.
    pub minute: i64,
    /// Second, 0..=59.
    pub second: i64,
    /// Millisecond, 0..=999.
    pub millis: i64,
}

impl UtcFields {
    /// The fields of `epoch_ms`.
    pub fn from_epoch_millis(epoch_ms: i64) -> Self {
        let days = epoch_ms.div_euclid(86_400_000);
        let in_day = epoch_ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        UtcFields {
            year,
            month,
            day,
            hour: in_day / 3_600_000,
            minute: in_day / 60_000 % 60,
            second: in_day / 1000 % 60,
            millis: in_day % 1000,
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let f = UtcFields::from_epoch_millis(0);
        assert_eq!((f.year, f.month, f.day, f.hour), (1970, 1, 1, 0));
        // 2000-02-29 23:59:59.999 (a leap day of a century leap year).
        let f = UtcFields::from_epoch_millis(951_868_799_999);
        assert_eq!(
            (f.year, f.month, f.day, f.hour, f.minute, f.second, f.millis),
            (2000, 2, 29, 23, 59, 59, 999)
        );
        // One millisecond before the epoch.
        let f = UtcFields::from_epoch_millis(-1);
        assert_eq!((f.year, f.month, f.day, f.millis), (1969, 12, 31, 999));
    }
}
