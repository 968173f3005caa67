//! Plots with plotters, each written as PNG and SVG: grouped bars per metric (last-step
//! selection, error bars = standard error), training curves of the L1 loss, and the
//! colourfulness-ratio-vs-PSNR scatter that shows the desaturation trade-off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::{RunResult, Selection, Table};

/// plotters draws text with fonts registered here (embedded, so no system font is needed);
/// every plotting crate of the workspace calls it, so the fonts are registered once.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fonts = [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ];
        for (style, bytes) in fonts {
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                panic!("the embedded DejaVu Sans font does not parse");
            }
        }
    });
}

/// The i-th series colour of every plot (the user study's too).
pub fn color(i: usize) -> RGBColor {
    // Tableau-like palette, readable on white and in print.
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

enum Plot {
    Bars {
        title: String,
        y_desc: String,
        table: Table,
    },
    Curves {
        title: String,
        series: Vec<(String, Vec<(u64, f64)>)>,
    },
    Scatter {
        title: String,
        points: Vec<(String, Vec<(f64, f64)>)>,
    },
}

type DrawResult = std::result::Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

impl Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        match self {
            Plot::Bars {
                title,
                y_desc,
                table,
            } => {
                let n_cols = table.columns.len();
                let n_rows = table.rows.len().max(1);
                let cells = table.rows.iter().flat_map(|(_, c)| c.iter().flatten());
                let top = cells
                    .clone()
                    .map(|c| c.mean + c.se.unwrap_or(0.0))
                    .fold(0.0f64, f64::max);
                let bottom = cells
                    .map(|c| c.mean - c.se.unwrap_or(0.0))
                    .fold(0.0f64, f64::min);
                let pad = (top - bottom).max(1e-9) * 0.08;
                let mut chart = ChartBuilder::on(root)
                    .caption(title, ("sans-serif", 18))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(56)
                    .build_cartesian_2d(-0.5f64..(n_cols as f64 - 0.5), (bottom - pad)..(top + pad))
                    .map_err(err)?;
                let cols = table.columns.clone();
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(n_cols)
                    .x_label_formatter(&|x| {
                        let i = x.round();
                        if (x - i).abs() < 1e-6 && i >= 0.0 {
                            cols.get(i as usize).cloned().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .y_desc(y_desc.as_str())
                    .draw()
                    .map_err(err)?;
                let width = 0.8 / n_rows as f64;
                for (r, (label, cells)) in table.rows.iter().enumerate() {
                    let c = color(r);
                    let bars: Vec<_> = cells
                        .iter()
                        .enumerate()
                        .filter_map(|(col, cell)| cell.map(|cell| (col, cell)))
                        .collect();
                    let x0 = |col: usize| col as f64 - 0.4 + r as f64 * width;
                    chart
                        .draw_series(bars.iter().map(|&(col, cell)| {
                            Rectangle::new(
                                [(x0(col), 0.0), (x0(col) + width * 0.9, cell.mean)],
                                c.filled(),
                            )
                        }))
                        .map_err(err)?
                        .label(label.as_str())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
                        });
                    chart
                        .draw_series(bars.iter().filter_map(|&(col, cell)| {
                            let se = cell.se?;
                            let x = x0(col) + width * 0.45;
                            Some(PathElement::new(
                                vec![(x, cell.mean - se), (x, cell.mean + se)],
                                BLACK.stroke_width(1),
                            ))
                        }))
                        .map_err(err)?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            Plot::Curves { title, series } => {
                let max_step = series
                    .iter()
                    .flat_map(|(_, s)| s.iter().map(|p| p.0))
                    .max()
                    .unwrap_or(1) as f64;
                let max_v = series
                    .iter()
                    .flat_map(|(_, s)| s.iter().map(|p| p.1))
                    .fold(0.0f64, f64::max);
                let mut chart = ChartBuilder::on(root)
                    .caption(title, ("sans-serif", 18))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(56)
                    .build_cartesian_2d(0f64..max_step.max(1.0), 0f64..(max_v * 1.05).max(1e-6))
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("step")
                    .y_desc("L1 (ab/100)")
                    .draw()
                    .map_err(err)?;
                for (i, (label, points)) in series.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(LineSeries::new(
                            points.iter().map(|&(s, v)| (s as f64, v)),
                            c.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(label.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }
            Plot::Scatter { title, points } => {
                let all: Vec<(f64, f64)> =
                    points.iter().flat_map(|(_, p)| p.iter().copied()).collect();
                let (x_lo, x_hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                    (lo.min(p.0), hi.max(p.0))
                });
                let y_hi = all.iter().map(|p| p.1).fold(1.1f64, f64::max);
                let xpad = ((x_hi - x_lo) * 0.1).max(0.5);
                let mut chart = ChartBuilder::on(root)
                    .caption(title, ("sans-serif", 18))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(56)
                    .build_cartesian_2d((x_lo - xpad)..(x_hi + xpad), 0f64..y_hi * 1.05)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("PSNR (dB)")
                    .y_desc("colourfulness ratio (1 = as colourful as ground truth)")
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x_lo - xpad, 1.0), (x_hi + xpad, 1.0)],
                        BLACK.mix(0.4).stroke_width(1),
                    )))
                    .map_err(err)?;
                for (i, (label, pts)) in points.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 5, c.filled())))
                        .map_err(err)?
                        .label(label.as_str())
                        .legend(move |(x, y)| Circle::new((x + 6, y), 5, c.filled()));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)
    }

    /// Writes `<stem>.png` and `<stem>.svg`.
    fn save(&self, stem: &Path, size: (u32, u32)) -> Result<Vec<PathBuf>> {
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        self.draw(&BitMapBackend::new(&png, size).into_drawing_area())
            .map_err(|e| ReportError::format(&png, e))?;
        self.draw(&SVGBackend::new(&svg, size).into_drawing_area())
            .map_err(|e| ReportError::format(&svg, e))?;
        Ok(vec![png, svg])
    }
}

/// Every plot of one dataset; returns the files written (PNG first, then SVG, per plot).
pub(super) fn write_plots(
    dataset: &str,
    runs: &[&RunResult],
    tables: &[Table],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    register_fonts();
    let mut files = Vec::new();
    for table in tables
        .iter()
        .filter(|t| t.selection == Selection::TrainingDomainValidation)
    {
        let plot = Plot::Bars {
            title: format!(
                "{} on {} (training-domain validation; ± s.e. over trials)",
                table.metric, dataset
            ),
            y_desc: table.metric.clone(),
            table: table.clone(),
        };
        files.extend(plot.save(
            &dir.join(format!("{dataset}_{}_bars", table.metric)),
            (900, 480),
        )?);
    }
    // Training curves: the L1 loss of the first seed of each method, per target.
    let mut targets: Vec<&str> = runs.iter().map(|r| r.config.target.as_str()).collect();
    targets.sort();
    targets.dedup();
    for target in targets {
        let mut firsts: BTreeMap<(usize, String), &RunResult> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.config.target == target) {
            let key = (r.job.order, r.job.label.clone());
            if firsts
                .get(&key)
                .is_none_or(|f| f.config.seed > r.config.seed)
            {
                firsts.insert(key, r);
            }
        }
        let series = firsts
            .into_iter()
            .map(|((_, label), r)| (label, r.curve("g_l1")))
            .collect();
        let plot = Plot::Curves {
            title: format!("training L1 on the sources, target {target} ({dataset})"),
            series,
        };
        files.extend(plot.save(
            &dir.join(format!("{dataset}_curves_{}", target.replace(' ', "_"))),
            (900, 480),
        )?);
    }
    // Desaturation trade-off: one point per run (last step).
    let mut by_label: BTreeMap<(usize, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs {
        let last = r.records.iter().rev().find_map(|rec| match rec {
            dgcolor_runs::Record::Final(e) => Some(&e.result),
            _ => None,
        });
        if let Some(m) = last {
            if let (Some(p), Some(c)) = (m.value("psnr"), m.value("colourfulness_ratio")) {
                by_label
                    .entry((r.job.order, r.job.label.clone()))
                    .or_default()
                    .push((p, c));
            }
        }
    }
    let plot = Plot::Scatter {
        title: format!("colourfulness vs PSNR on the targets ({dataset}, one point per run)"),
        points: by_label.into_iter().map(|((_, l), p)| (l, p)).collect(),
    };
    files.extend(plot.save(
        &dir.join(format!("{dataset}_colourfulness_vs_psnr")),
        (900, 560),
    )?);
    Ok(files)
}
