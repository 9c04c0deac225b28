//! The Prometheus text exposition format (version 0.0.4), written into a `String`.
//!
//! Each family is `# HELP name text`, `# TYPE name kind`, then one sample line per label set:
//! `name{label="value",…} number`. Histograms add `_bucket{le="…"}` (cumulative), `_sum` and
//! `_count` lines. Label values are escaped (`\\`, `\"`, `\n`).

use std::fmt::Write;

use super::histogram::{Snapshot, BUCKETS_MICROS};

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family with one sample per label set.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, v) in samples {
            self.sample(name, labels, v);
        }
    }

    /// A counter family with fractional values (e.g. seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, help, "counter");
        for (labels, v) in samples {
            self.sample(name, labels, v);
        }
    }

    /// A gauge family with one sample per label set.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, v) in samples {
            self.sample(name, labels, v);
        }
    }

    /// A histogram family (seconds) with one unlabelled series.
    pub fn histogram(&mut self, name: &str, help: &str, s: &Snapshot) {
        self.header(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS_MICROS.iter().zip(&s.counts) {
            cumulative += count;
            let le = format!("{}", *bound as f64 / 1e6);
            self.sample(&bucket, &[("le", &le)], cumulative);
        }
        self.sample(&bucket, &[("le", "+Inf")], s.count());
        self.sample(&format!("{name}_sum"), &[], s.sum_micros as f64 / 1e6);
        self.sample(&format!("{name}_count"), &[], s.count());
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_exact_families() {
        let mut e = Exposition::new();
        e.counter(
            "tern_x_total",
            "Things.",
            &[(&[("topic", "a\"b\\c\nd")], 3), (&[], 4)],
        );
        e.gauge("tern_g", "A gauge.", &[(&[("core", "0")], 0.5)]);
        assert_eq!(
            e.finish(),
            "# HELP tern_x_total Things.\n# TYPE tern_x_total counter\n\
             tern_x_total{topic=\"a\\\"b\\\\c\\nd\"} 3\ntern_x_total 4\n\
             # HELP tern_g A gauge.\n# TYPE tern_g gauge\ntern_g{core=\"0\"} 0.5\n"
        );
    }

    #[test]
    fn histogram_is_cumulative_with_inf_sum_and_count() {
        let mut s = Snapshot::default();
        s.counts[0] = 1;
        s.counts[2] = 2;
        s.counts[BUCKETS_MICROS.len()] = 1;
        s.sum_micros = 1_500_000;
        let mut e = Exposition::new();
        e.histogram("tern_h_seconds", "H.", &s);
        let text = e.finish();
        assert!(text.contains("tern_h_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("tern_h_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("tern_h_seconds_bucket{le=\"0.0005\"} 3\n"));
        assert!(text.contains("tern_h_seconds_bucket{le=\"10\"} 3\n"));
        assert!(text.contains("tern_h_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("tern_h_seconds_sum 1.5\n"));
        assert!(text.contains("tern_h_seconds_count 4\n"));
    }
}
