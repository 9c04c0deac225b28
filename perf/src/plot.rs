//! `--plot FILE.svg`: the latency percentile plot of a run, HdrHistogram's classic chart.
//!
//! The x axis is the percentile on a "nines" scale, `1 / (1 - percentile)` on a log axis, so
//! 0%, 90%, 99%, 99.9% … are evenly spaced and the tail is readable; the y axis is latency in
//! milliseconds. The curve has one point per step of the histogram's quantile iteration (the same
//! points as the `.hgrm` file of `--hist-out`), cut at 99.9999%.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Why the plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    /// The file asked for.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// Highest x plotted: 1 / (1 - 99.9999%).
const MAX_NINES: f64 = 1e6;
/// Image size in pixels.
const SIZE: (u32, u32) = (900, 520);

/// The curve's points: (`1 / (1 - quantile)`, latency in ms), from a microsecond histogram.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 {
            MAX_NINES
        } else {
            (1.0 / (1.0 - q)).min(MAX_NINES)
        };
        points.push((x, v.value_iterated_to() as f64 / 1000.0));
        if x >= MAX_NINES {
            break;
        }
    }
    points
}

/// The percentile label of an x position (`99.9%`).
fn percentile_label(x: f64) -> String {
    let pct = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{pct:.digits$}%")
}

/// Draws the percentile plot of `h` (microseconds) titled `title` into the SVG file `path`.
pub fn write_percentile_svg(path: &Path, title: &str, h: &Histogram<u64>) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let points = percentile_points(h);
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let x_end = points.last().map_or(10.0, |p| p.0).max(10.0);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_end).log_scale(), 0.0..top)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_rise_along_the_nines_and_the_file_is_svg() {
        let mut h = crate::latency::new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let points = percentile_points(&h);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.first().map(|p| p.0), Some(1.0));
        let max_ms = points.last().unwrap().1;
        assert!((9.9..=10.1).contains(&max_ms), "{max_ms}");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        write_percentile_svg(&path, "send latency", &h).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("<polyline") && svg.contains("send latency"));
    }
}
