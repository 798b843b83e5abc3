//! Output of an experiment: a CSV of the numbers, an SVG plot of them, a table on stdout.
//!
//! Everything written here is a function of the run's arguments only (no wall-clock time, no
//! machine name), so two runs with the same seed produce identical files.

use std::fs;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::SimError;

/// The output directory of a run.
pub struct Out {
    dir: PathBuf,
}

impl Out {
    pub fn new(dir: &Path) -> Result<Out, SimError> {
        fs::create_dir_all(dir).map_err(|source| SimError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Out {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `name` as CSV: one header line, then the rows.
    pub fn csv(&self, name: &str, header: &[&str], rows: &[Vec<String>]) -> Result<(), SimError> {
        let mut s = header.join(",");
        s.push('\n');
        for r in rows {
            s.push_str(&r.join(","));
            s.push('\n');
        }
        let path = self.path(name);
        fs::write(&path, s).map_err(|source| SimError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// How a series is drawn.
#[derive(Clone, Debug)]
pub enum Style {
    Line,
    Dashed,
    Points,
    /// Points with a vertical bar from `lo` to `hi` at each x: (x, lo, mid, hi).
    ErrorBars(Vec<(f64, f64, f64, f64)>),
    /// Bars of width 0.8 centred on each x.
    Bars,
}

#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, style: Style) -> Series {
        Series {
            label: label.into(),
            points,
            style,
        }
    }
}

/// A 2-D chart: title, axis descriptions and ranges.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
    pub xr: (f64, f64),
    pub yr: (f64, f64),
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// Draws `series` on one chart into `out/name` (SVG).
pub fn plot(out: &Out, name: &str, chart: &Chart, series: &[Series]) -> Result<(), SimError> {
    let path = out.path(name);
    let err = |e: &dyn std::fmt::Display| SimError::Plot {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let root = SVGBackend::new(&path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(chart.xr.0..chart.xr.1, chart.yr.0..chart.yr.1)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc(chart.x)
        .y_desc(chart.y)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(&e))?;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let legend = match &s.style {
            Style::Line => c
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?,
            Style::Dashed => c
                .draw_series(DashedLineSeries::new(
                    s.points.clone(),
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?,
            Style::Points => c
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| err(&e))?,
            Style::ErrorBars(bars) => {
                c.draw_series(bars.iter().map(|&(x, lo, mid, hi)| {
                    ErrorBar::new_vertical(x, lo, mid, hi, color.stroke_width(1), 8)
                }))
                .map_err(|e| err(&e))?;
                c.draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| err(&e))?
            }
            Style::Bars => c
                .draw_series(s.points.iter().map(|&(x, y)| {
                    Rectangle::new([(x - 0.4, 0.0), (x + 0.4, y)], color.mix(0.7).filled())
                }))
                .map_err(|e| err(&e))?,
        };
        legend
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled()));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Formats a float for CSV and tables with a fixed number of decimals.
pub fn f(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}
