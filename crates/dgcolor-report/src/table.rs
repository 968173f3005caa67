//! One table per dataset, metric and selection rule: rows are methods in registry (job)
//! order, columns the target domains plus their average, cells mean ± standard error over
//! seeds, the best cell of each column marked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dgcolor_algorithms::write_atomic;
use dgcolor_metrics::Better;

use crate::error::{ReportError, Result};
use crate::{RunResult, Selection};

/// Mean ± standard error (sample std / sqrt(n); none for a single seed) over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub mean: f64,
    pub se: Option<f64>,
    pub n: usize,
}

impl Cell {
    pub fn of(values: &[f64]) -> Option<Cell> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let se = (n > 1).then(|| {
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        });
        Some(Cell { mean, se, n })
    }

    fn text(&self, pm: &str) -> String {
        match self.se {
            Some(se) => format!("{:.3} {pm} {:.3}", self.mean, se),
            None => format!("{:.3}", self.mean),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Table {
    pub dataset: String,
    pub metric: String,
    pub better: Better,
    pub selection: Selection,
    /// Target domains, then "Avg".
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Option<Cell>>)>,
    /// Index of the best row per column.
    pub best: Vec<Option<usize>>,
}

impl Table {
    pub fn build(
        dataset: &str,
        metric: &str,
        better: Better,
        selection: Selection,
        runs: &[&RunResult],
    ) -> Self {
        let mut targets: Vec<String> = Vec::new();
        let mut labels: Vec<(usize, String)> = Vec::new();
        // (label, target) -> seed -> value
        let mut values: BTreeMap<(String, String), BTreeMap<u64, f64>> = BTreeMap::new();
        for r in runs {
            if !targets.contains(&r.config.target) {
                targets.push(r.config.target.clone());
            }
            if !labels.iter().any(|(_, l)| l == &r.job.label) {
                labels.push((r.job.order, r.job.label.clone()));
            }
            if let Some(v) = r.selected(selection).and_then(|m| m.get(metric).copied()) {
                values
                    .entry((r.job.label.clone(), r.config.target.clone()))
                    .or_default()
                    .insert(r.config.seed, v);
            }
        }
        targets.sort();
        labels.sort();
        let rows: Vec<(String, Vec<Option<Cell>>)> = labels
            .into_iter()
            .map(|(_, label)| {
                let per_target: Vec<Option<&BTreeMap<u64, f64>>> = targets
                    .iter()
                    .map(|t| values.get(&(label.clone(), t.clone())))
                    .collect();
                let mut cells: Vec<Option<Cell>> = per_target
                    .iter()
                    .map(|m| m.and_then(|m| Cell::of(&m.values().copied().collect::<Vec<_>>())))
                    .collect();
                // Average over targets, per seed present in every target, then over seeds.
                let seeds: Vec<u64> = per_target
                    .first()
                    .copied()
                    .flatten()
                    .map(|m| m.keys().copied().collect())
                    .unwrap_or_default();
                let averages: Vec<f64> = seeds
                    .iter()
                    .filter_map(|s| {
                        let vs: Option<Vec<f64>> = per_target
                            .iter()
                            .map(|m| m.and_then(|m| m.get(s).copied()))
                            .collect();
                        vs.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                    })
                    .collect();
                cells.push(Cell::of(&averages));
                (label, cells)
            })
            .collect();
        let mut columns = targets;
        columns.push("Avg".into());
        let best = (0..columns.len())
            .map(|c| {
                let score = |cell: &Cell| match better {
                    Better::Higher => cell.mean,
                    Better::Lower => -cell.mean,
                    Better::CloserToOne => -(cell.mean - 1.0).abs(),
                };
                rows.iter()
                    .enumerate()
                    .filter_map(|(i, (_, cells))| cells[c].map(|cell| (i, score(&cell))))
                    .fold(None, |acc: Option<(usize, f64)>, (i, s)| match acc {
                        Some((_, bs)) if bs >= s => acc,
                        _ => Some((i, s)),
                    })
                    .map(|(i, _)| i)
            })
            .collect();
        Table {
            dataset: dataset.into(),
            metric: metric.into(),
            better,
            selection,
            columns,
            rows,
            best,
        }
    }

    pub fn caption(&self) -> String {
        let dir = match self.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
            Better::CloserToOne => "closer to 1 is better",
        };
        format!(
            "{} on {} ({dir}); {}; mean ± standard error over seeds",
            self.metric,
            self.dataset,
            self.selection.title()
        )
    }

    fn file_stem(&self) -> String {
        format!("{}_{}_{}", self.dataset, self.metric, self.selection.slug())
    }

    fn is_best(&self, row: usize, col: usize) -> bool {
        self.best[col] == Some(row)
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "**{}**\n\n| method | {} |\n|---|{}\n",
            self.caption(),
            self.columns.join(" | "),
            "---|".repeat(self.columns.len())
        );
        for (i, (label, cells)) in self.rows.iter().enumerate() {
            let texts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, cell)| match cell {
                    Some(cell) if self.is_best(i, c) => format!("**{}**", cell.text("±")),
                    Some(cell) => cell.text("±"),
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(s, "| {label} | {} |", texts.join(" | "));
        }
        s
    }

    /// Long format: one line per (method, column) with the numbers kept apart.
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let row = |w: &mut csv::Writer<Vec<u8>>, fields: &[String]| {
            w.write_record(fields).expect("writing CSV to memory")
        };
        row(
            &mut w,
            &["method", "column", "mean", "se", "n", "best"].map(String::from),
        );
        for (i, (label, cells)) in self.rows.iter().enumerate() {
            for (c, cell) in cells.iter().enumerate() {
                if let Some(cell) = cell {
                    row(
                        &mut w,
                        &[
                            label.clone(),
                            self.columns[c].clone(),
                            cell.mean.to_string(),
                            cell.se.map_or(String::new(), |v| v.to_string()),
                            cell.n.to_string(),
                            self.is_best(i, c).to_string(),
                        ],
                    );
                }
            }
        }
        String::from_utf8(w.into_inner().expect("writing CSV to memory")).expect("UTF-8 fields")
    }

    pub fn latex(&self) -> String {
        let esc = |t: &str| {
            t.replace('_', "\\_")
                .replace('&', "\\&")
                .replace('%', "\\%")
        };
        let mut s = format!(
            "% {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\nMethod & {} \\\\\n\\midrule\n",
            self.caption(),
            "c".repeat(self.columns.len()),
            self.columns
                .iter()
                .map(|c| esc(c))
                .collect::<Vec<_>>()
                .join(" & ")
        );
        for (i, (label, cells)) in self.rows.iter().enumerate() {
            let texts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, cell)| match cell {
                    Some(cell) if self.is_best(i, c) => {
                        format!("\\textbf{{{}}}", cell.text("$\\pm$"))
                    }
                    Some(cell) => cell.text("$\\pm$"),
                    None => "--".into(),
                })
                .collect();
            let _ = writeln!(s, "{} & {} \\\\", esc(label), texts.join(" & "));
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
        s
    }

    /// Writes `<stem>.{csv,md,tex}` into `dir`.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let stem = self.file_stem();
        [
            ("csv", self.csv()),
            ("md", self.markdown()),
            ("tex", self.latex()),
        ]
        .into_iter()
        .map(|(ext, text)| {
            let path = dir.join(format!("{stem}.{ext}"));
            write_atomic(&path, text.as_bytes()).map_err(ReportError::io(&path))?;
            Ok(path)
        })
        .collect()
    }
}
