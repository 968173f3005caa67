//! Two tables beside the main ones, per selection rule: per-class means of the per-image
//! metrics (which classes a method colours well), and the hyperparameters each selection
//! picked (DomainBed's "best hyperparameters" listing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dgcolor_algorithms::write_atomic;

use crate::error::{ReportError, Result};
use crate::selection::{Picks, Selection};
use crate::PerImage;

/// The per-image metrics the per-class tables show.
const METRICS: [&str; 2] = ["psnr", "colourfulness"];

fn write_md(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes()).map_err(ReportError::io(path))
}

/// `<dataset>_per_class_<selection>.md`: per target and metric, rows = methods, columns =
/// classes, cells = the mean over that class's test images, trials pooled.
pub(crate) fn write(
    dataset: &str,
    selection: Selection,
    picks: &Picks,
    per_image: &PerImage,
    dir: &Path,
) -> Result<(PathBuf, String)> {
    // (metric, target) -> row -> class -> (sum, n)
    type Sums = BTreeMap<(usize, String), BTreeMap<String, (f64, usize)>>;
    let mut acc: BTreeMap<(&str, String), Sums> = BTreeMap::new();
    for (row, by_target) in picks {
        for (target, by_trial) in by_target {
            for s in by_trial.values() {
                let Some(rows) = per_image.rows(s)? else {
                    continue;
                };
                for r in rows.iter() {
                    for metric in METRICS {
                        if let Some(v) = r.values.get(metric) {
                            let cell = acc
                                .entry((metric, target.clone()))
                                .or_default()
                                .entry(row.clone())
                                .or_default()
                                .entry(r.class.clone())
                                .or_default();
                            cell.0 += v;
                            cell.1 += 1;
                        }
                    }
                }
            }
        }
    }
    let mut text = format!(
        "# Per-class test means on {dataset} ({})\n\nMeans over the test images of each class, trials pooled.\n",
        selection.title()
    );
    for ((metric, target), rows) in &acc {
        let mut classes: Vec<&String> = rows.values().flat_map(|c| c.keys()).collect();
        classes.sort();
        classes.dedup();
        let _ = write!(
            text,
            "\n**{metric}, target {target}**\n\n| method | {} |\n|---|{}\n",
            classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(classes.len())
        );
        for ((_, label), by_class) in rows {
            let cells: Vec<String> = classes
                .iter()
                .map(|c| {
                    by_class
                        .get(*c)
                        .map_or("–".into(), |(sum, n)| format!("{:.3}", sum / *n as f64))
                })
                .collect();
            let _ = writeln!(text, "| {label} | {} |", cells.join(" | "));
        }
    }
    let path = dir.join(format!("{dataset}_per_class_{}.md", selection.slug()));
    write_md(&path, &text)?;
    Ok((path, text))
}

/// `<dataset>_hparams_<selection>.md`: for every method, target and trial, the draw and
/// evaluation point the rule picked and its hyperparameters.
pub(crate) fn write_hparams(
    dataset: &str,
    selection: Selection,
    picks: &Picks,
    dir: &Path,
) -> Result<(PathBuf, String)> {
    let mut text = format!(
        "# Selected hyperparameters on {dataset} ({})\n\n| method | target | trial | draw | step | hyperparameters |\n|---|---|---|---|---|---|\n",
        selection.title()
    );
    for ((_, label), by_target) in picks {
        for (target, by_trial) in by_target {
            for (trial, s) in by_trial {
                let hp: Vec<String> = s
                    .run
                    .config
                    .hparams
                    .iter()
                    .map(|(k, v)| format!("{k}={}", hparam_text(*v)))
                    .collect();
                let _ = writeln!(
                    text,
                    "| {label} | {target} | {trial} | {} | {} | {} |",
                    s.run.config.hparams_seed,
                    s.step,
                    hp.join(", ")
                );
            }
        }
    }
    let path = dir.join(format!("{dataset}_hparams_{}.md", selection.slug()));
    write_md(&path, &text)?;
    Ok((path, text))
}

/// A hyperparameter as written in tables: the shortest exact form when it is short (`1`,
/// `0.001`), else four significant digits (`1.235e-4`), so random-search draws stay readable.
fn hparam_text(v: f64) -> String {
    let exact = format!("{v}");
    if exact.len() <= 8 {
        exact
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod hparam_text_tests {
    use super::hparam_text;

    #[test]
    fn short_values_exact_long_ones_rounded() {
        assert_eq!(hparam_text(1.0), "1");
        assert_eq!(hparam_text(0.0), "0");
        assert_eq!(hparam_text(0.001), "0.001");
        assert_eq!(hparam_text(0.5), "0.5");
        assert_eq!(hparam_text(0.000123456789), "1.235e-4");
        assert_eq!(hparam_text(12345.6789), "1.235e4");
    }
}
