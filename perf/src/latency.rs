//! Latency histograms (microseconds) and their two text renderings: the percentile summary printed
//! at the end of a run and HdrHistogram's classic percentile-distribution (`.hgrm`) file.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Highest latency a histogram tracks: one hour in microseconds (larger values saturate).
pub const MAX_TRACKABLE_US: u64 = 3_600_000_000;
/// Significant decimal digits kept.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// The quantiles of the end-of-run summary, with their labels.
pub const SUMMARY_QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

/// An empty histogram of microsecond latencies, 1 µs to [`MAX_TRACKABLE_US`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Fixed bounds that are statically valid: creation cannot fail.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGNIFICANT_DIGITS)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Writes one line per [`SUMMARY_QUANTILES`] entry, `<label> <value> ms` with the label padded to 7
/// columns and the value in milliseconds with 3 decimals, preceded by a title line.
pub fn write_summary(out: &mut impl Write, title: &str, h: &Histogram<u64>) -> io::Result<()> {
    writeln!(
        out,
        "{title} latency (ms), {} samples, mean {:.3}:",
        h.len(),
        h.mean() / 1000.0
    )?;
    for (label, q) in SUMMARY_QUANTILES {
        let us = if q >= 1.0 {
            h.max()
        } else {
            h.value_at_quantile(q)
        };
        writeln!(out, "  {label:<7} {:>12.3} ms", us as f64 / 1000.0)?;
    }
    Ok(())
}

/// Writes `h` as HdrHistogram's percentile distribution text (what Java's
/// `outputPercentileDistribution(out, 5, 1000.0)` prints): values in milliseconds, five ticks per
/// half distance, then the mean/max/bucket footer. Plotters such as HdrHistogram's
/// `plotFiles.html` read it.
///
/// | part | layout |
/// |---|---|
/// | header | `%12s %14s %10s %14s` of Value, Percentile, TotalCount, 1/(1-Percentile), blank line |
/// | row | `%12.3f %2.12f %10d %14.2f` (the last row, percentile 1, has no 4th column) |
/// | footer | `#[Mean    = %12.3f, StdDeviation   = %12.3f]`, `#[Max     = %12.3f, Total count    = %12d]`, `#[Buckets = %12d, SubBuckets     = %12d]` |
pub fn write_hgrm(out: &mut impl Write, h: &Histogram<u64>) -> io::Result<()> {
    const SCALE: f64 = 1000.0;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / SCALE;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            writeln!(
                out,
                "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(out, "{value:>12.3} {q:>2.12} {total:>10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )
}

/// HdrHistogram's sub-bucket count for `sigfig` digits: the power of two covering `2 * 10^sigfig`.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        h
    }

    #[test]
    fn summary_has_every_percentile_line() {
        let mut out = Vec::new();
        write_summary(&mut out, "send", &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        for (label, _) in SUMMARY_QUANTILES {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(label)),
                "{text}"
            );
        }
        // p50 of 10..=10000 µs is 5 ms and max 10 ms, to the histogram's 3 significant digits
        // (values print as the highest equivalent of their bucket).
        assert!(text.contains("p50            5.003 ms"), "{text}");
        assert!(text.contains("max           10.007 ms"), "{text}");
    }

    #[test]
    fn hgrm_matches_the_classic_layout() {
        let mut h = new_histogram();
        h.record(1000).unwrap();
        let mut out = Vec::new();
        write_hgrm(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "       Value     Percentile TotalCount 1/(1-Percentile)\n\
                        \n       1.000 0.000000000000          1           1.00\n\
                        \x20      1.000 1.000000000000          1\n\
                        #[Mean    =        1.000, StdDeviation   =        0.000]\n\
                        #[Max     =        1.000, Total count    =            1]\n";
        assert!(text.starts_with(expected), "{text}");
        assert!(text.ends_with("SubBuckets     =         2048]\n"), "{text}");
    }

    #[test]
    fn hgrm_rows_are_cumulative_and_end_at_the_total() {
        let mut out = Vec::new();
        write_hgrm(&mut out, &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let counts: Vec<u64> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(counts.last(), Some(&1000));
    }
}
