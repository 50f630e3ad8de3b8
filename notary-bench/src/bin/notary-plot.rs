//! notary-plot: draw the curves `scripts/bench.sh --curves` measured as SVG.
//!
//!     notary-plot docs/performance docs/performance/targets.csv …
//!
//! Reads notary-bench's `--csv` rows (`label,server,operation,ok,req_s,p50_ms,p99_ms,p999_ms,
//! errors`, the label being `targets=N`, `repos=N` or `versions=N`) and writes one SVG per label
//! kind: throughput on the left, p99 latency on the right, both against N on log scales.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use plotters::prelude::*;

/// One measured row.
struct Point {
    x: f64,
    req_s: f64,
    p99_ms: f64,
}

/// What each kind of curve is called on its x axis, and its file name.
const KINDS: [(&str, &str, &str); 3] = [
    (
        "targets",
        "targets per repository",
        "Cost vs targets per repository",
    ),
    (
        "repos",
        "repositories (reads spread uniformly)",
        "Cost vs number of repositories",
    ),
    (
        "versions",
        "published versions (changefeed: 1 000 rows per version)",
        "Cost vs history",
    ),
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some((out, csvs)) = args[1..].split_first() else {
        bail!("usage: notary-plot OUT_DIR CURVES.csv…");
    };
    // kind → (operation, server) → points
    let mut curves = Curves::new();
    for csv in csvs {
        let Ok(text) = std::fs::read_to_string(csv) else {
            eprintln!("{csv}: not there, skipped");
            continue;
        };
        read_csv(csv, &text, &mut curves)?;
    }
    std::fs::create_dir_all(out)?;
    for (kind, axis, title) in KINDS {
        let Some(series) = curves.get(kind) else {
            continue;
        };
        let path = PathBuf::from(out).join(format!("{kind}.svg"));
        draw(&path, axis, title, series)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

type Curves = BTreeMap<String, BTreeMap<(String, String), Vec<Point>>>;

/// Add one CSV file's rows to `curves`.
fn read_csv(csv: &str, text: &str, curves: &mut Curves) -> anyhow::Result<()> {
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').collect();
        let [label, server, operation, _ok, req_s, _p50, p99, _p999, errors] = f[..] else {
            bail!("{csv}:{}: expected 9 fields: {line}", n + 1);
        };
        let (kind, x) = label
            .split_once('=')
            .with_context(|| format!("{csv}:{}: label {label:?} is not kind=N", n + 1))?;
        if errors.trim() != "0" {
            eprintln!("{csv}:{}: {errors} errors in this row", n + 1);
        }
        curves
            .entry(kind.to_string())
            .or_default()
            .entry((operation.to_string(), server.to_string()))
            .or_default()
            .push(Point {
                x: x.parse()?,
                req_s: req_s.parse()?,
                p99_ms: p99.parse()?,
            });
    }
    Ok(())
}

/// Distinct colours readable on white (Tableau's ten).
const COLOURS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// An axis label: whole numbers without a fraction, thousands as `k`, millions as `M`.
fn number(v: &f64) -> String {
    match *v {
        v if v >= 1e6 && (v / 1e6).fract() == 0.0 => format!("{}M", v / 1e6),
        v if v >= 1e3 && (v / 1e3).fract() == 0.0 => format!("{}k", v / 1e3),
        v if v.fract() == 0.0 => format!("{v:.0}"),
        v => format!("{v}"),
    }
}

/// Bounds of a log axis holding `values` (positive ones), widened to whole decades.
fn decades(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 1.0..10.0;
    }
    10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0))
}

fn draw(
    path: &Path,
    axis: &str,
    title: &str,
    series: &BTreeMap<(String, String), Vec<Point>>,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(550);
    let xs = decades(series.values().flatten().map(|p| p.x));
    type Value = fn(&Point) -> f64;
    let panels: [(_, &str, Value); 2] = [
        (left, "requests per second", |p| p.req_s),
        (right, "p99 latency, ms", |p| p.p99_ms),
    ];
    for (area, y_name, value) in panels {
        let ys = decades(series.values().flatten().map(value));
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xs.clone().log_scale(), ys.log_scale())?;
        chart
            .configure_mesh()
            .x_desc(axis)
            .y_desc(y_name)
            .x_label_formatter(&number)
            .y_label_formatter(&number)
            .label_style(("sans-serif", 12))
            .draw()?;
        // One colour per operation; ours solid with dots, Go's dashed with crosses.
        let operations: Vec<&String> = {
            let mut o: Vec<&String> = series.keys().map(|(op, _)| op).collect();
            o.dedup();
            o
        };
        for ((operation, server), points) in series {
            let i = operations.iter().position(|o| *o == operation).unwrap_or(0);
            let colour = COLOURS[i % COLOURS.len()];
            let mut pts: Vec<(f64, f64)> = points.iter().map(|p| (p.x, value(p))).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let label = format!("{operation} ({server})");
            if server == "go" {
                chart
                    .draw_series(DashedLineSeries::new(
                        pts.clone(),
                        6,
                        4,
                        colour.stroke_width(2),
                    ))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 6, y)], colour.stroke_width(2))
                    });
                chart.draw_series(
                    pts.iter()
                        .map(|&p| Cross::new(p, 5, colour.stroke_width(2))),
                )?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
