//! The SVG chart: for every figure, how tablenet compares with each baseline
//! (raw TCP + bincode, message-io, tokio multi-thread, tokio current-thread),
//! on a log scale where right of 1 means tablenet is better (throughputs:
//! tablenet / baseline; times and memory: baseline / tablenet). Only the
//! baselines present in the figures get a bar and a legend entry, so results
//! saved before the tokio sides existed draw as they did. The sweeps
//! (`sizes`, `scaling`) are drawn below the bars instead, as line plots of
//! the absolute values, one line per side, both axes on a log scale; files
//! without sweep points give the bar chart alone, as before.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::common::{Figure, fmt_num, ratio};

const RAW_COLOR: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const MIO_COLOR: RGBColor = RGBColor(0xdd, 0x84, 0x52);
/// The legend's own strip below the axis description.
const LEGEND_PX: u32 = 24;
const TOKIO_COLOR: RGBColor = RGBColor(0x3a, 0x9a, 0x4a);
const TOKIO_CT_COLOR: RGBColor = RGBColor(0x8e, 0x5b, 0xb5);

/// A baseline series: its legend, its name in the caption, its color and
/// where a figure keeps it.
struct Series {
    legend: &'static str,
    caption: &'static str,
    color: RGBColor,
    value: fn(&Figure) -> Option<f64>,
}

const SERIES: [Series; 4] = [
    Series {
        legend: "vs raw TCP + bincode",
        caption: "raw TCP + bincode",
        color: RAW_COLOR,
        value: |f| f.raw,
    },
    Series {
        legend: "vs message-io 0.19",
        caption: "message-io",
        color: MIO_COLOR,
        value: |f| f.message_io,
    },
    Series {
        legend: "vs tokio (multi-thread)",
        caption: "tokio",
        color: TOKIO_COLOR,
        value: |f| f.tokio,
    },
    Series {
        legend: "vs tokio (current_thread)",
        caption: "tokio",
        color: TOKIO_CT_COLOR,
        value: |f| f.tokio_ct,
    },
];

/// How much better tablenet is than the baseline (>1: better).
fn advantage(f: &Figure, baseline: Option<f64>) -> Option<f64> {
    let r = ratio(f.tablenet, baseline)?;
    let a = if f.higher_is_better() { r } else { 1.0 / r };
    (a.is_finite() && a > 0.0).then_some(a)
}

/// Draws the chart to `path`: the comparison bars of every figure outside
/// the sweeps, then, when the figures include sweep points (`sizes`,
/// `scaling`), one line plot per sweep below them. Without sweep points the
/// chart is exactly the bar chart alone.
pub fn draw(figures: &[Figure], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let panels = sweep_panels(figures);
    let figures: Vec<&Figure> = figures.iter().filter(|f| !is_sweep(f)).collect();
    // The baselines that appear anywhere, in SERIES order.
    let used: Vec<&Series> = SERIES
        .iter()
        .filter(|s| figures.iter().any(|f| advantage(f, (s.value)(f)).is_some()))
        .collect();
    let rows: Vec<(&Figure, Vec<Option<f64>>)> = figures
        .iter()
        .map(|f| {
            let bars = used.iter().map(|s| advantage(f, (s.value)(f))).collect();
            (*f, bars)
        })
        .filter(|(_, bars): &(&Figure, Vec<Option<f64>>)| bars.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() && panels.is_empty() {
        return Err("no figure has a baseline to compare with".into());
    }
    let sweep_px = if panels.is_empty() {
        0
    } else {
        SWEEP_LEGEND_PX + PANEL_H * panels.len().div_ceil(2) as u32
    };
    if rows.is_empty() {
        let root = SVGBackend::new(path, (1100, sweep_px)).into_drawing_area();
        root.fill(&WHITE)?;
        draw_panels(&root, &panels)?;
        root.present()?;
        return Ok(());
    }
    let (lo, hi) = rows
        .iter()
        .flat_map(|(_, bars)| bars.iter().copied())
        .flatten()
        .fold((0.5f64, 2.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo / 4.0, hi * 4.0); // room for the value labels

    // Two bars per row keep the old 44 px rows; each further one adds 16 px.
    let k = used.len().max(2);
    let slot = 0.7 / k as f64;
    let label_width = 330u32;
    let row_px = 12 + 16 * k as u32;
    let height = 90 + row_px * rows.len() as u32;
    let canvas = SVGBackend::new(path, (1100, height + LEGEND_PX + sweep_px)).into_drawing_area();
    canvas.fill(&WHITE)?;
    let root = if panels.is_empty() {
        canvas.clone()
    } else {
        let (bars, sweeps) = canvas.split_vertically(height + LEGEND_PX);
        draw_panels(&sweeps, &panels)?;
        bars
    };
    let (plot, _) = root.split_vertically(height);
    let n = rows.len() as f64;
    let mut names: Vec<&str> = used.iter().map(|s| s.caption).collect();
    names.dedup();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    };
    let caption = format!("tablenet against {listed} (right of 1: tablenet better)");
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .margin_left(label_width)
        .x_label_area_size(36)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(
            "advantage: tablenet/baseline for throughput, baseline/tablenet for time and memory",
        )
        .x_label_formatter(&|v| format!("{}x", (*v * 1e6).round() / 1e6))
        .draw()?;

    for (i, (f, bars)) in rows.iter().enumerate() {
        let top = n - i as f64;
        for (j, (value, series)) in bars.iter().zip(&used).enumerate() {
            let Some(v) = value else { continue };
            let y0 = top - 0.15 - slot * (j as f64 + 1.0);
            let y1 = y0 + slot * 0.94;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(1.0f64.min(*v), y0), (1.0f64.max(*v), y1)],
                series.color.filled(),
            )))?;
            let (x, anchor) = if *v >= 1.0 {
                (*v * 1.05, Pos::new(HPos::Left, VPos::Center))
            } else {
                (*v / 1.05, Pos::new(HPos::Right, VPos::Center))
            };
            chart.draw_series(std::iter::once(Text::new(
                format!("{}x", fmt_num(*v)),
                (x, (y0 + y1) / 2.0),
                ("sans-serif", 12).into_font().color(&BLACK).pos(anchor),
            )))?;
        }
        let (_, py) = chart.backend_coord(&(lo, top - 0.5));
        let label = format!("{} {} ({})", f.scenario, f.metric, f.unit);
        root.draw_text(
            &label,
            &("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center)),
            (label_width as i32 - 8, py),
        )?;
    }
    chart.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, n)],
        BLACK.stroke_width(1),
    ))?;
    // Legend.
    for (k, series) in used.iter().enumerate() {
        let x = 20 + 220 * k as i32;
        let y = (height + LEGEND_PX / 2) as i32;
        root.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 6)],
            series.color.filled(),
        ))?;
        root.draw_text(
            series.legend,
            &("sans-serif", 13).into_font().color(&BLACK),
            (x + 20, y - 7),
        )?;
    }
    canvas.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The sweeps: one line per side against the swept quantity.

/// Height of one row of sweep plots (two plots side by side).
const PANEL_H: u32 = 380;
const TABLENET_COLOR: RGBColor = RGBColor(0xc0, 0x1c, 0x28);

/// A sweep plot: which RESULT lines it takes (scenario, metric prefix and
/// the unit suffix of the swept value), and its captions.
struct Panel {
    scenario: &'static str,
    prefix: &'static str,
    x_unit: XUnit,
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum XUnit {
    /// `64B`, `16KiB`, `1MiB`.
    Bytes,
    /// `100clients`, `10000conns`, `2threads`.
    Count(&'static str),
}

const PANELS: [Panel; 6] = [
    Panel {
        scenario: "sizes",
        prefix: "mb_per_s_",
        x_unit: XUnit::Bytes,
        title: "one-way stream: MB/s of payload against table size",
        x_desc: "payload per table (byte string)",
        y_desc: "MB/s (higher is better)",
    },
    Panel {
        scenario: "sizes",
        prefix: "msgs_per_s_",
        x_unit: XUnit::Bytes,
        title: "one-way stream: tables/s against table size",
        x_desc: "payload per table (byte string)",
        y_desc: "tables/s (higher is better)",
    },
    Panel {
        scenario: "scaling",
        prefix: "deliveries_",
        x_unit: XUnit::Count("clients"),
        title: "fanout: deliveries/s against connected clients",
        x_desc: "clients",
        y_desc: "deliveries/s (higher is better)",
    },
    Panel {
        scenario: "scaling",
        prefix: "rss_per_conn_",
        x_unit: XUnit::Count("conns"),
        title: "idle connections: server RSS per connection",
        x_desc: "connections",
        y_desc: "KiB per connection (lower is better)",
    },
    Panel {
        scenario: "threads",
        prefix: "deliveries_",
        x_unit: XUnit::Count("threads"),
        title: "fanout, 1,000 clients: deliveries/s against IO threads",
        x_desc: "IO threads per network (Config::io_threads)",
        y_desc: "deliveries/s (higher is better)",
    },
    Panel {
        scenario: "threads",
        prefix: "setup_ms_",
        x_unit: XUnit::Count("threads"),
        title: "10,000 connections: setup time against the clients' IO threads",
        x_desc: "IO threads of the clients' network",
        y_desc: "ms until the server saw all (lower is better)",
    },
];

/// A side of a line plot: its legend, its color and where a figure keeps it.
type Line = (&'static str, RGBColor, fn(&Figure) -> Option<f64>);

/// The sides of a line plot, tablenet first.
const LINES: [Line; 5] = [
    ("tablenet", TABLENET_COLOR, |f| f.tablenet),
    ("raw TCP + bincode", RAW_COLOR, |f| f.raw),
    ("message-io", MIO_COLOR, |f| f.message_io),
    ("tokio (multi-thread)", TOKIO_COLOR, |f| f.tokio),
    ("tokio (current_thread)", TOKIO_CT_COLOR, |f| f.tokio_ct),
];

/// The swept value of a metric name's suffix (`64B` -> 64, `1MiB` ->
/// 1048576, `100clients` -> 100), if it has the panel's form.
fn sweep_x(panel: &Panel, f: &Figure) -> Option<f64> {
    if f.scenario != panel.scenario {
        return None;
    }
    let rest = f.metric.strip_prefix(panel.prefix)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = rest.split_at(digits);
    let n: f64 = n.parse().ok()?;
    let scale = match (panel.x_unit, unit) {
        (XUnit::Bytes, "B") => 1.0,
        (XUnit::Bytes, "KiB") => 1024.0,
        (XUnit::Bytes, "MiB") => 1024.0 * 1024.0,
        (XUnit::Count(u), v) if u == v => 1.0,
        _ => return None,
    };
    Some(n * scale)
}

/// Whether a figure is a sweep point (drawn as a line, not as a bar row).
fn is_sweep(f: &Figure) -> bool {
    PANELS.iter().any(|p| sweep_x(p, f).is_some())
}

/// A plot to draw: its panel and, per side of [`LINES`], the points
/// sorted by x (sides without points are left out).
type PanelData<'a> = (&'a Panel, Vec<(usize, Vec<(f64, f64)>)>);

fn sweep_panels(figures: &[Figure]) -> Vec<PanelData<'static>> {
    PANELS
        .iter()
        .filter_map(|panel| {
            let lines: Vec<(usize, Vec<(f64, f64)>)> = LINES
                .iter()
                .enumerate()
                .filter_map(|(i, (_, _, value))| {
                    let mut points: Vec<(f64, f64)> = figures
                        .iter()
                        .filter_map(|f| Some((sweep_x(panel, f)?, value(f)?)))
                        .filter(|(_, y)| y.is_finite() && *y > 0.0)
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (!points.is_empty()).then_some((i, points))
                })
                .collect();
            (!lines.is_empty()).then_some((panel, lines))
        })
        .collect()
}

/// [`fmt_num`] without trailing zeros: `1`, `2.5`, `64`, `0.3`.
fn short(v: f64) -> String {
    let s = fmt_num(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `64 B`, `16 KiB`, `1 MiB`, or a count.
fn x_label(unit: XUnit, v: f64) -> String {
    match unit {
        XUnit::Bytes if v >= 1024.0 * 1024.0 => format!("{} MiB", short(v / 1048576.0)),
        XUnit::Bytes if v >= 1024.0 => format!("{} KiB", short(v / 1024.0)),
        XUnit::Bytes => format!("{} B", short(v)),
        XUnit::Count(_) => short(v),
    }
}

/// `1.2M`, `340k`, `1.5`.
fn y_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", short(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", short(v / 1e3))
    } else {
        short(v)
    }
}

/// Height of the legend strip above the sweep plots.
const SWEEP_LEGEND_PX: u32 = 28;

/// Ticks at 1, 2 and 5 times the powers of ten within `lo..=hi`, so a
/// plot spanning less than a decade still gets labels.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for e in first..=last {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if (lo..=hi).contains(&v) {
                ticks.push(v);
            }
        }
    }
    ticks
}

/// Draws the plots two to a row into `area`.
fn draw_panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panels: &[PanelData<'_>],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    // One legend for all plots: the sides drawn anywhere, in LINES order.
    let (legend, area) = area.split_vertically(SWEEP_LEGEND_PX);
    let mut sides: Vec<usize> = panels
        .iter()
        .flat_map(|(_, lines)| lines.iter().map(|(i, _)| *i))
        .collect();
    sides.sort_unstable();
    sides.dedup();
    let y = (SWEEP_LEGEND_PX / 2) as i32;
    legend.draw_text(
        "sweeps, log scales:",
        &("sans-serif", 13).into_font().color(&BLACK),
        (20, y - 7),
    )?;
    for (k, i) in sides.iter().enumerate() {
        let (name, color, _) = LINES[*i];
        let x = 160 + 200 * k as i32;
        let width = if *i == 0 { 3 } else { 2 };
        legend.draw(&PathElement::new(
            [(x, y), (x + 22, y)],
            color.stroke_width(width),
        ))?;
        legend.draw(&Circle::new((x + 11, y), 3, color.filled()))?;
        legend.draw_text(
            name,
            &("sans-serif", 13).into_font().color(&BLACK),
            (x + 28, y - 7),
        )?;
    }
    let rows = panels.len().div_ceil(2);
    let cells = area.split_evenly((rows, 2));
    for ((panel, lines), cell) in panels.iter().zip(&cells) {
        let xs: Vec<f64> = lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
            .collect();
        let ys = lines.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y));
        let (x_lo, x_hi) = xs
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let mut ticks = xs.clone();
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        let x_unit = panel.x_unit;
        let mut chart = ChartBuilder::on(cell)
            .caption(panel.title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (x_lo / 1.6..x_hi * 1.6).log_scale().with_key_points(ticks),
                (y_lo / 2.0..y_hi * 2.0)
                    .log_scale()
                    .with_key_points(ticks_125(y_lo / 2.0, y_hi * 2.0)),
            )?;
        chart
            .configure_mesh()
            .x_desc(panel.x_desc)
            .y_desc(panel.y_desc)
            .x_label_formatter(&|v| x_label(x_unit, *v))
            .y_label_formatter(&|v| y_label(*v))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, points) in lines {
            let (_, color, _) = LINES[*i];
            let width = if *i == 0 { 3 } else { 2 };
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))?;
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
    }
    Ok(())
}
