//! The SVG chart: for every figure, how tablenet compares with each baseline
//! (raw TCP + bincode, message-io, tokio multi-thread, tokio current-thread),
//! on a log scale where right of 1 means tablenet is better (throughputs:
//! tablenet / baseline; times and memory: baseline / tablenet). Only the
//! baselines present in the figures get a bar and a legend entry, so results
//! saved before the tokio sides existed draw as they did.

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

/// Draws the chart to `path`.
pub fn draw(figures: &[Figure], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // The baselines that appear anywhere, in SERIES order.
    let used: Vec<&Series> = SERIES
        .iter()
        .filter(|s| figures.iter().any(|f| advantage(f, (s.value)(f)).is_some()))
        .collect();
    let rows: Vec<(&Figure, Vec<Option<f64>>)> = figures
        .iter()
        .map(|f| {
            let bars = used.iter().map(|s| advantage(f, (s.value)(f))).collect();
            (f, bars)
        })
        .filter(|(_, bars): &(&Figure, Vec<Option<f64>>)| bars.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return Err("no figure has a baseline to compare with".into());
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
    let root = SVGBackend::new(path, (1100, height + LEGEND_PX)).into_drawing_area();
    root.fill(&WHITE)?;
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
    root.present()?;
    Ok(())
}
