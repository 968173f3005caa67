//! One table per dataset, metric and selection rule: rows are methods in registry (job)
//! order, columns the target domains plus their average, cells mean ± standard error over
//! trials (DomainBed's convention: the standard deviation with ddof 0 over sqrt(n)). For the
//! per-image metrics each method is compared with `erm` image by image (pairs of one image in
//! one trial, trials pooled): the mean difference with a paired bootstrap 95% interval and a
//! Wilcoxon signed-rank p-value, Holm-corrected across the methods of a column; ▲ / ▼ mark
//! significant wins and losses. A column's best cell is bold only when it is significantly
//! ahead of the runner-up (the same paired test, α = 0.05).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dgcolor_algorithms::write_atomic;
use dgcolor_metrics::Better;

use crate::error::{ReportError, Result};
use crate::selection::{Picks, RowKey, Selected, Selection};
use crate::stats::{bootstrap_mean_ci, holm, wilcoxon};
use crate::PerImage;

/// Significance level of every test in the tables.
pub const ALPHA: f64 = 0.05;
/// Bootstrap resamples of each confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// The baseline every method is compared with.
pub const BASELINE: &str = "erm";

/// Mean ± standard error over trials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub mean: f64,
    /// Population standard deviation over sqrt(n) (DomainBed); `None` for a single trial,
    /// whose spread is unknown rather than zero.
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
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            var.sqrt() / (n as f64).sqrt()
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

/// A method against the baseline in one column.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub row: usize,
    pub column: usize,
    /// Paired images (image x trial).
    pub n: usize,
    /// Mean of method - baseline, with its bootstrap 95% interval.
    pub diff: f64,
    pub ci: (f64, f64),
    pub p: f64,
    /// Holm-corrected over the methods of the column.
    pub p_holm: f64,
}

impl Comparison {
    /// +1 a significant win, -1 a significant loss, 0 neither.
    pub fn verdict(&self, better: Better) -> i8 {
        if self.p_holm >= ALPHA || self.diff == 0.0 {
            return 0;
        }
        let up = self.diff > 0.0;
        match better {
            Better::Higher => {
                if up {
                    1
                } else {
                    -1
                }
            }
            Better::Lower => {
                if up {
                    -1
                } else {
                    1
                }
            }
            Better::CloserToOne => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Table {
    pub dataset: String,
    pub metric: String,
    pub better: Better,
    pub selection: Selection,
    /// Whether the metric has a value per image (and so paired tests).
    pub per_image: bool,
    /// Target domains, then "Avg".
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Option<Cell>>)>,
    /// Per column, the row whose cell is significantly ahead of the runner-up.
    pub best: Vec<Option<usize>>,
    /// Every method against the baseline, where both have per-image results.
    pub comparisons: Vec<Comparison>,
}

/// Per-image values of one row in one column: (target, trial, file) -> value.
type ImageValues = BTreeMap<(String, u64, String), f64>;

/// The per-image values of `metric` for the picks of one row over `targets`.
fn values_by_image(
    per_image: &PerImage,
    metric: &str,
    picks: &BTreeMap<String, BTreeMap<u64, Selected>>,
    targets: &[String],
) -> Result<ImageValues> {
    let mut out = BTreeMap::new();
    for target in targets {
        for (trial, s) in picks.get(target).into_iter().flatten() {
            let Some(rows) = per_image.rows(s)? else {
                continue;
            };
            for r in rows.iter() {
                if let Some(v) = r.values.get(metric) {
                    out.insert((target.clone(), *trial, r.file.clone()), *v);
                }
            }
        }
    }
    Ok(out)
}

/// Differences `a - b` over the images both have.
fn paired(a: &ImageValues, b: &ImageValues) -> Vec<f64> {
    a.iter()
        .filter_map(|(k, va)| Some(va - b.get(k)?))
        .collect()
}

impl Table {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        dataset: &str,
        metric: &str,
        better: Better,
        per_image_metric: bool,
        selection: Selection,
        picks: &Picks,
        per_image: &PerImage,
    ) -> Result<Self> {
        let mut targets: Vec<String> = picks
            .values()
            .flat_map(|by_target| by_target.keys().cloned())
            .collect();
        targets.sort();
        targets.dedup();
        let mut columns = targets.clone();
        columns.push("Avg".into());
        let rows: Vec<(RowKey, Vec<Option<Cell>>)> = picks
            .iter()
            .map(|(key, by_target)| {
                let value = |s: &Selected| s.test.result.value(metric);
                let mut cells: Vec<Option<Cell>> = targets
                    .iter()
                    .map(|t| {
                        let vs: Vec<f64> = by_target
                            .get(t)
                            .into_iter()
                            .flat_map(|by_trial| by_trial.values().filter_map(value))
                            .collect();
                        Cell::of(&vs)
                    })
                    .collect();
                // Average over targets per trial present in every target, then over trials.
                let trials: Vec<u64> = by_target
                    .values()
                    .next()
                    .map(|m| m.keys().copied().collect())
                    .unwrap_or_default();
                let averages: Vec<f64> = trials
                    .iter()
                    .filter_map(|trial| {
                        let vs: Option<Vec<f64>> = targets
                            .iter()
                            .map(|t| by_target.get(t)?.get(trial).and_then(value))
                            .collect();
                        vs.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                    })
                    .collect();
                cells.push(Cell::of(&averages));
                (key.clone(), cells)
            })
            .collect();

        // Per-image values of every row, per column (the targets, then all pooled).
        let column_targets: Vec<Vec<String>> = targets
            .iter()
            .map(|t| vec![t.clone()])
            .chain(std::iter::once(targets.clone()))
            .collect();
        let mut images: Vec<Vec<ImageValues>> = Vec::new();
        if per_image_metric {
            for by_target in picks.values() {
                images.push(
                    column_targets
                        .iter()
                        .map(|ts| values_by_image(per_image, metric, by_target, ts))
                        .collect::<Result<_>>()?,
                );
            }
        }

        let seed = |row: &str, col: &str| {
            dgcolor_kernels::stable_hash(
                format!("{dataset}/{metric}/{}/{row}/{col}", selection.slug()).as_bytes(),
            )
        };
        let mut comparisons = Vec::new();
        let baseline = rows.iter().position(|((_, l), _)| l == BASELINE);
        if let (true, Some(b)) = (per_image_metric, baseline) {
            for c in 0..columns.len() {
                let mut column = Vec::new();
                for (r, ((_, label), _)) in rows.iter().enumerate() {
                    if r == b {
                        continue;
                    }
                    let d = paired(&images[r][c], &images[b][c]);
                    if d.is_empty() {
                        continue;
                    }
                    let (diff, lo, hi) =
                        bootstrap_mean_ci(&d, 0.95, BOOTSTRAP_RESAMPLES, seed(label, &columns[c]));
                    column.push(Comparison {
                        row: r,
                        column: c,
                        n: d.len(),
                        diff,
                        ci: (lo, hi),
                        p: wilcoxon(&d).pvalue,
                        p_holm: f64::NAN,
                    });
                }
                let adjusted = holm(&column.iter().map(|x| x.p).collect::<Vec<_>>());
                for (x, p) in column.iter_mut().zip(adjusted) {
                    x.p_holm = p;
                }
                comparisons.extend(column);
            }
        }

        let score = |cell: &Cell| match better {
            Better::Higher => cell.mean,
            Better::Lower => -cell.mean,
            Better::CloserToOne => -(cell.mean - 1.0).abs(),
        };
        let best = (0..columns.len())
            .map(|c| {
                if !per_image_metric {
                    return None;
                }
                let mut ranked: Vec<(usize, f64)> = rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, cells))| cells[c].map(|cell| (i, score(&cell))))
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                match ranked.as_slice() {
                    [(top, _), (second, _), ..] => {
                        let d = paired(&images[*top][c], &images[*second][c]);
                        (!d.is_empty() && wilcoxon(&d).pvalue < ALPHA).then_some(*top)
                    }
                    _ => None,
                }
            })
            .collect();
        Ok(Table {
            dataset: dataset.into(),
            metric: metric.into(),
            better,
            selection,
            per_image: per_image_metric,
            columns,
            rows: rows.into_iter().map(|((_, l), c)| (l, c)).collect(),
            best,
            comparisons,
        })
    }

    pub fn caption(&self) -> String {
        let dir = match self.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
            Better::CloserToOne => "closer to 1 is better",
        };
        let mut s = format!(
            "{} on {} ({dir}); {}; mean ± standard error over trials (std with ddof 0 / sqrt(n), DomainBed's convention; none for one trial)",
            self.metric,
            self.dataset,
            self.selection.title()
        );
        if self.per_image {
            let _ = write!(
                s,
                "; ▲/▼: significantly better/worse than {BASELINE} (paired over test images and trials: Wilcoxon signed-rank, Holm-corrected across methods, α = {ALPHA}); bold: best, significantly ahead of the runner-up (Wilcoxon, α = {ALPHA})"
            );
        } else {
            s.push_str("; a set metric: no per-image test, no marks");
        }
        s
    }

    fn file_stem(&self) -> String {
        format!("{}_{}_{}", self.dataset, self.metric, self.selection.slug())
    }

    /// The comparison of `row` with the baseline in `col`.
    pub fn comparison(&self, row: usize, col: usize) -> Option<&Comparison> {
        self.comparisons
            .iter()
            .find(|c| c.row == row && c.column == col)
    }

    fn mark(&self, row: usize, col: usize) -> &'static str {
        match self.comparison(row, col).map(|c| c.verdict(self.better)) {
            Some(1) => " ▲",
            Some(-1) => " ▼",
            _ => "",
        }
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
                    Some(cell) if self.is_best(i, c) => {
                        format!("**{}**{}", cell.text("±"), self.mark(i, c))
                    }
                    Some(cell) => format!("{}{}", cell.text("±"), self.mark(i, c)),
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(s, "| {label} | {} |", texts.join(" | "));
        }
        s
    }

    /// Long format: one line per (method, column) with the numbers kept apart, and the
    /// comparison with the baseline where there is one.
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let row = |w: &mut csv::Writer<Vec<u8>>, fields: &[String]| {
            w.write_record(fields).expect("writing CSV to memory")
        };
        row(
            &mut w,
            &[
                "method",
                "column",
                "mean",
                "se",
                "n",
                "best",
                "vs_erm_diff",
                "vs_erm_ci_low",
                "vs_erm_ci_high",
                "vs_erm_p",
                "vs_erm_p_holm",
                "vs_erm_pairs",
            ]
            .map(String::from),
        );
        let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for (i, (label, cells)) in self.rows.iter().enumerate() {
            for (c, cell) in cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let cmp = self.comparison(i, c);
                row(
                    &mut w,
                    &[
                        label.clone(),
                        self.columns[c].clone(),
                        cell.mean.to_string(),
                        num(cell.se),
                        cell.n.to_string(),
                        self.is_best(i, c).to_string(),
                        num(cmp.map(|x| x.diff)),
                        num(cmp.map(|x| x.ci.0)),
                        num(cmp.map(|x| x.ci.1)),
                        num(cmp.map(|x| x.p)),
                        num(cmp.map(|x| x.p_holm)),
                        cmp.map_or(String::new(), |x| x.n.to_string()),
                    ],
                );
            }
        }
        String::from_utf8(w.into_inner().expect("writing CSV to memory")).expect("UTF-8 fields")
    }

    /// The comparisons with the baseline as a Markdown table (empty without any).
    pub fn comparisons_markdown(&self) -> String {
        if self.comparisons.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "**{} on {}, {} vs {BASELINE}** (mean difference over paired test images x trials, bootstrap 95% CI with {BOOTSTRAP_RESAMPLES} resamples, Wilcoxon signed-rank p, Holm-corrected across methods per column)\n\n| method | column | pairs | difference [95% CI] | p | p (Holm) | verdict |\n|---|---|---|---|---|---|---|\n",
            self.metric,
            self.dataset,
            self.selection.slug()
        );
        for c in &self.comparisons {
            let verdict = match c.verdict(self.better) {
                1 => "better",
                -1 => "worse",
                _ => "not resolved",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:+.3} [{:+.3}, {:+.3}] | {:.2e} | {:.2e} | {verdict} |",
                self.rows[c.row].0,
                self.columns[c.column],
                c.n,
                c.diff,
                c.ci.0,
                c.ci.1,
                c.p,
                c.p_holm
            );
        }
        s
    }

    pub fn latex(&self) -> String {
        let esc = |t: &str| {
            t.replace('_', "\\_")
                .replace('&', "\\&")
                .replace('%', "\\%")
        };
        let mark = |m: &str| match m {
            " ▲" => "$^\\blacktriangle$",
            " ▼" => "$^\\blacktriangledown$",
            _ => "",
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
                    Some(cell) if self.is_best(i, c) => format!(
                        "\\textbf{{{}}}{}",
                        cell.text("$\\pm$"),
                        mark(self.mark(i, c))
                    ),
                    Some(cell) => format!("{}{}", cell.text("$\\pm$"), mark(self.mark(i, c))),
                    None => "--".into(),
                })
                .collect();
            let _ = writeln!(s, "{} & {} \\\\", esc(label), texts.join(" & "));
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
        s
    }

    /// Writes `<stem>.{csv,md,tex}` (and `<stem>_vs_erm.md` with the comparisons) into `dir`.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let stem = self.file_stem();
        let mut files = vec![
            (format!("{stem}.csv"), self.csv()),
            (format!("{stem}.md"), self.markdown()),
            (format!("{stem}.tex"), self.latex()),
        ];
        let comparisons = self.comparisons_markdown();
        if !comparisons.is_empty() {
            files.push((format!("{stem}_vs_{BASELINE}.md"), comparisons));
        }
        files
            .into_iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                write_atomic(&path, text.as_bytes()).map_err(ReportError::io(&path))?;
                Ok(path)
            })
            .collect()
    }
}
