//! `--plot FILE.svg`: the latency histogram of a workload (log-scale counts, like
//! the investigation's Figure 1) above a timeline of drops and slow transactions.
//!
//! Drawn with `plotters`' SVG backend, which writes `<text>` elements and so needs
//! no font files.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

/// One histogram bucket: latencies in `[lo_us, hi_us)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotBucket {
    /// Lower bound, µs.
    pub lo_us: u64,
    /// Upper bound, µs.
    pub hi_us: u64,
    /// Transactions in the bucket.
    pub count: u64,
}

/// A labelled series of event times on the timeline (seconds since the start).
#[derive(Clone, Debug, Default)]
pub struct TimelineSeries {
    /// Legend label (`macvtap drops`).
    pub label: String,
    /// Event times, seconds since the start of the session.
    pub times_s: Vec<f64>,
}

/// What the plot shows.
#[derive(Clone, Debug, Default)]
pub struct LatencyPlot {
    /// Caption.
    pub title: String,
    /// Latency histogram buckets (empty buckets may be left out).
    pub buckets: Vec<PlotBucket>,
    /// Vertical markers on the histogram (e.g. 200 ms and 400 ms), µs.
    pub markers_us: Vec<u64>,
    /// Length of the timeline, seconds.
    pub duration_s: f64,
    /// Event series drawn on the timeline, counted per bin.
    pub timeline: Vec<TimelineSeries>,
    /// Windows shaded on the timeline (a relay's stalls), seconds since the start.
    pub stalls: Vec<(f64, f64)>,
}

/// What `--plot` draws for a finished session: the latency histogram of its
/// first `tcp_rr` workload with its thresholds marked, above a timeline of
/// that workload's slow transactions (from `slow[].start_ns`) and of the
/// series a script reported under `timeline` (`report("timeline", #{"macvtap
/// drops": [ts_ns, ..]})`: CLOCK_MONOTONIC ns, as events' `ts_ns`), with the
/// windows reported under `stalls` (`#{dev: [[start_ns, end_ns], ..]}`, what
/// `lab().stalls` gives) shaded. `None` when the session ran no `tcp_rr`.
pub fn plot_of(summary: &crate::output::Summary, title: &str) -> Option<LatencyPlot> {
    use crate::workload::WorkloadResult;
    let (name, rr) = summary.workloads.iter().find_map(|(n, r)| match r {
        WorkloadResult::TcpRr(rr) => Some((n, rr)),
        WorkloadResult::Exec(_) => None,
    })?;
    let t0 = summary.monotonic_start_ns;
    let seconds = |ns: u64| ns.saturating_sub(t0) as f64 / 1e9;
    let mut timeline = Vec::new();
    let json = serde_json::to_value(rr).unwrap_or_default();
    if let Some(slow) = json.get("slow").and_then(|v| v.as_array()) {
        let first = rr.thresholds.first().map_or(0, |t| t.at_us / 1000);
        timeline.push(TimelineSeries {
            label: format!("transactions of {name} ≥ {first} ms, by their start"),
            times_s: slow
                .iter()
                .filter_map(|t| t.get("start_ns")?.as_u64())
                .map(seconds)
                .collect(),
        });
    }
    if let Some(series) = summary.reports.get("timeline").and_then(|v| v.as_object()) {
        for (label, times) in series {
            timeline.push(TimelineSeries {
                label: label.clone(),
                times_s: times
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t.as_u64()).map(seconds).collect())
                    .unwrap_or_default(),
            });
        }
    }
    // `report("stalls", #{dev: [[start_ns, end_ns, ..], ..]})`: lab().stalls
    let mut stalls = Vec::new();
    if let Some(devs) = summary.reports.get("stalls").and_then(|v| v.as_object()) {
        for w in devs.values().filter_map(|v| v.as_array()).flatten() {
            if let (Some(s), Some(e)) = (
                w.get(0).and_then(|v| v.as_u64()),
                w.get(1).and_then(|v| v.as_u64()),
            ) {
                // a lab up before the session may have stalled before it
                if e > t0 {
                    stalls.push((seconds(s), seconds(e)));
                }
            }
        }
    }
    Some(LatencyPlot {
        stalls,
        title: format!(
            "{title}: {name}, {} streams, {} transactions",
            rr.streams, rr.transactions
        ),
        buckets: rr
            .buckets
            .iter()
            .map(|b| PlotBucket {
                lo_us: b.lo_us,
                hi_us: b.hi_us,
                count: b.count,
            })
            .collect(),
        markers_us: rr.thresholds.iter().map(|t| t.at_us).collect(),
        duration_s: summary.duration_s,
        timeline,
    })
}

/// Plotting failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// Why.
    pub message: String,
}

/// Timeline bins per second.
const BINS_PER_S: f64 = 10.0;
const SERIES_COLORS: [RGBColor; 4] = [RED, BLUE, RGBColor(0, 140, 0), MAGENTA];

/// Writes `plot` to `path` as SVG.
///
/// ```no_run
/// use vprobe_engine::output::svg::{write_svg, LatencyPlot, PlotBucket};
/// let plot = LatencyPlot {
///     title: "tcp_rr".into(),
///     buckets: vec![PlotBucket { lo_us: 64, hi_us: 128, count: 1000 }],
///     markers_us: vec![200_000],
///     duration_s: 10.0,
///     timeline: vec![],
///     stalls: vec![],
/// };
/// write_svg("latency.svg".as_ref(), &plot)?;
/// # Ok::<(), vprobe_engine::output::svg::PlotError>(())
/// ```
pub fn write_svg(path: &Path, plot: &LatencyPlot) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let svg = render_svg(plot).map_err(|e| err(&e))?;
    std::fs::write(path, svg).map_err(|e| err(&e))
}

/// `plot` as an SVG document.
pub fn render_svg(plot: &LatencyPlot) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(440);
        histogram(&top, plot)?;
        timeline(&bottom, plot)?;
        root.present()?;
    }
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A latency in ms as an axis label: `0.1 ms`, `20 ms`, `1 s`.
fn ms_label(ms: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if ms >= 1000.0 {
        format!("{} s", trim(format!("{:.2}", ms / 1000.0)))
    } else if ms >= 1.0 {
        format!("{} ms", trim(format!("{ms:.1}")))
    } else {
        format!("{} ms", trim(format!("{ms:.3}")))
    }
}

fn histogram(area: &DrawingArea<SVGBackend<'_>, Shift>, plot: &LatencyPlot) -> DrawResult {
    let ms = |us: u64| us as f64 / 1000.0;
    let buckets: Vec<_> = plot.buckets.iter().filter(|b| b.count > 0).collect();
    let lo = buckets
        .iter()
        .map(|b| ms(b.lo_us.max(1)))
        .fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() { lo / 1.5 } else { 0.001 };
    // room right of the last bar and of the marks, so neither is clipped
    let hi = buckets
        .iter()
        .map(|b| ms(b.hi_us))
        .chain(plot.markers_us.iter().map(|&m| ms(m)))
        .fold(0.0, f64::max)
        .max(lo * 10.0)
        * 1.5;
    let top = buckets.iter().map(|b| b.count).max().unwrap_or(1).max(10) * 2;
    let mut chart = ChartBuilder::on(area)
        .caption(&plot.title, ("sans-serif", 20))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (1u64..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("transaction latency (log scale)")
        .x_label_formatter(&|v| ms_label(*v))
        .y_desc("transactions (log scale)")
        .draw()?;
    chart.draw_series(buckets.iter().map(|b| {
        Rectangle::new(
            [
                (ms(b.lo_us).max(lo), 1),
                (ms(b.hi_us.max(b.lo_us + 1)), b.count.max(1)),
            ],
            BLUE.mix(0.7).filled(),
        )
    }))?;
    for &m in &plot.markers_us {
        let x = ms(m);
        chart.draw_series(LineSeries::new(vec![(x, 1), (x, top)], RED.stroke_width(1)))?;
        chart.draw_series(std::iter::once(Text::new(
            ms_label(x),
            (x * 1.03, top / 2),
            ("sans-serif", 14).into_font().color(&RED),
        )))?;
    }
    Ok(())
}

/// Counts of `times_s` in `bins` bins of 1/[`BINS_PER_S`] s.
fn binned(times_s: &[f64], bins: usize) -> Vec<u64> {
    let mut c = vec![0u64; bins];
    for &t in times_s {
        let i = ((t.max(0.0) * BINS_PER_S) as usize).min(bins - 1);
        c[i] += 1;
    }
    c
}

/// A step outline of per-bin counts: each bin a flat segment, so bins that
/// alternate with empty ones read as bars, not a zig-zag.
fn steps(counts: &[u64]) -> Vec<(f64, u64)> {
    let mut pts = Vec::with_capacity(counts.len() * 2 + 1);
    for (b, &n) in counts.iter().enumerate() {
        pts.push((b as f64 / BINS_PER_S, n));
        pts.push(((b + 1) as f64 / BINS_PER_S, n));
    }
    pts.push((counts.len() as f64 / BINS_PER_S, 0));
    pts
}

fn timeline(area: &DrawingArea<SVGBackend<'_>, Shift>, plot: &LatencyPlot) -> DrawResult {
    let duration = plot.duration_s.max(0.1);
    let bins = ((duration * BINS_PER_S).ceil() as usize).max(1);
    let counts: Vec<Vec<u64>> = plot
        .timeline
        .iter()
        .map(|s| binned(&s.times_s, bins))
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1) + 1;
    let end = bins as f64 / BINS_PER_S;
    let mut chart = ChartBuilder::on(area)
        .caption("over time, per 100 ms", ("sans-serif", 18))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0u64..top)?;
    chart
        .configure_mesh()
        .x_desc("time since the start")
        .x_label_formatter(&|s| format!("{s} s"))
        .y_desc("per 100 ms")
        .draw()?;
    // the relay's stalls, behind the series: at least one bin wide to be seen
    if !plot.stalls.is_empty() {
        let shade = RGBColor(255, 170, 0).mix(0.35);
        let min = 1.0 / BINS_PER_S / 2.0;
        chart
            .draw_series(plot.stalls.iter().map(|&(s, e)| {
                let s = s.clamp(0.0, duration);
                let e = e.max(s + min).min(duration);
                Rectangle::new([(s, 0), (e, top)], shade.filled())
            }))?
            .label(format!("{} relay stalls", plot.stalls.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], shade.filled()));
    }
    // the first series (the slow transactions) drawn last, on top: where two
    // series count the same, the first one shows
    for (i, (series, c)) in plot.timeline.iter().zip(&counts).enumerate().rev() {
        let color = SERIES_COLORS[i % SERIES_COLORS.len()];
        let total: u64 = c.iter().sum();
        chart
            .draw_series(
                AreaSeries::new(steps(c), 0, color.mix(0.15)).border_style(color.stroke_width(2)),
            )?
            .label(format!("{total} {}", series.label))
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled()));
    }
    if !plot.timeline.is_empty() || !plot.stalls.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_both_panels_with_labels_and_totals() {
        let dir = std::env::temp_dir().join(format!("vprobe-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        let plot = LatencyPlot {
            title: "tcp_rr 16 streams".into(),
            buckets: vec![
                PlotBucket {
                    lo_us: 64,
                    hi_us: 128,
                    count: 200_000,
                },
                PlotBucket {
                    lo_us: 131_072,
                    hi_us: 262_144,
                    count: 40,
                },
            ],
            markers_us: vec![200_000, 400_000],
            duration_s: 2.0,
            timeline: vec![TimelineSeries {
                label: "macvtap drops".into(),
                times_s: vec![0.05, 0.06, 1.5],
            }],
            stalls: vec![(0.04, 0.07), (1.04, 1.07)],
        };
        write_svg(&path, &plot).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("tcp_rr 16 streams"));
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
            .collect();
        let has = |t: &str| texts.contains(&t);
        assert!(
            has("3 macvtap drops"),
            "legend: the total, then the label {texts:?}"
        );
        assert!(has("200 ms") && has("400 ms"), "markers {texts:?}");
        assert!(
            has("1 ms") && has("100 ms"),
            "x ticks with their unit {texts:?}"
        );
        assert!(
            has("2 relay stalls"),
            "stall windows in the legend {texts:?}"
        );
        assert!(svg.matches("<rect").count() >= 3, "background + 2 bars");
    }

    #[test]
    fn an_empty_plot_still_draws() {
        let path =
            std::env::temp_dir().join(format!("vprobe-svg-empty-{}.svg", std::process::id()));
        write_svg(&path, &LatencyPlot::default()).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("over time"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error_not_a_panic() {
        let e = write_svg("/nonexistent-dir/x.svg".as_ref(), &LatencyPlot::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.svg"), "{e}");
    }
}
