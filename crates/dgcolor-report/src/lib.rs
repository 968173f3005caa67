//! The collect step (DomainBed's `collect_results`): read every run of a sweep, select a
//! model per run, aggregate over seeds, and write tables, plots, the qualitative figure and
//! a self-contained `index.html` into `<sweep>/report/`.

mod error;
mod figure;
mod html;
mod plots;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dgcolor_metrics::{all_metrics, Better};
use dgcolor_runs::sweep::{read_jobs, Job};
use dgcolor_runs::{EvalSplit, Evaluation, Record, RunDir, TrainConfig, CONFIG};

pub use error::{ReportError, Result};
pub use figure::{FigureLayout, FIGURE_IMAGES_PER_SETTING};
pub use table::{Cell, Table};

/// How a run's reported metrics are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The step whose mean source-validation PSNR is highest (DomainBed's training-domain
    /// validation; the target is never looked at).
    TrainingDomainValidation,
    /// The final model.
    LastStep,
}

impl Selection {
    pub const ALL: [Selection; 2] = [Selection::TrainingDomainValidation, Selection::LastStep];

    pub fn slug(&self) -> &'static str {
        match self {
            Selection::TrainingDomainValidation => "val",
            Selection::LastStep => "last",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            Selection::TrainingDomainValidation => {
                "model selection: training-domain validation (source val PSNR)"
            }
            Selection::LastStep => "model selection: last step",
        }
    }
}

/// Folder of `<sweep>/report/` where other tools leave HTML sections for `index.html` (the
/// user study's `dgcolor study report` does); they are embedded in file name order after
/// the datasets' sections.
pub const SECTIONS_DIR: &str = "sections";

/// The metric the validation selection maximises.
pub const SELECTION_METRIC: &str = "psnr";

/// One finished run with its records.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub job: Job,
    pub config: TrainConfig,
    pub records: Vec<Record>,
}

impl RunResult {
    /// `synth`, `pacs`, `office-home` or `data`: the run's dataset in tables and file names.
    pub fn dataset(&self) -> String {
        self.config.dataset_name().into()
    }

    fn evaluations(&self) -> impl Iterator<Item = &Evaluation> {
        self.records.iter().filter_map(|r| match r {
            Record::Eval(e) => Some(e),
            _ => None,
        })
    }

    /// The evaluation point a selection rule picks: its step and its target test metrics.
    pub fn selected_evaluation(&self, selection: Selection) -> Option<&Evaluation> {
        match selection {
            Selection::LastStep => self.records.iter().rev().find_map(|r| match r {
                Record::Final(e) => Some(e),
                _ => None,
            }),
            Selection::TrainingDomainValidation => {
                let test_at = |step: u64| {
                    self.evaluations()
                        .find(|e| e.split == EvalSplit::Test && e.step == step)
                };
                let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                for e in self.evaluations().filter(|e| e.split == EvalSplit::Val) {
                    if let Some(v) = e.mean(SELECTION_METRIC) {
                        by_step.entry(e.step).or_default().push(v);
                    }
                }
                let (step, _) = by_step
                    .iter()
                    .map(|(s, v)| (*s, v.iter().sum::<f64>() / v.len() as f64))
                    .filter(|(s, _)| test_at(*s).is_some())
                    .fold(None, |best: Option<(u64, f64)>, (s, v)| match best {
                        Some((_, bv)) if bv > v => best,
                        _ => Some((s, v)),
                    })?;
                test_at(step)
            }
        }
    }

    /// Target-domain test metrics (means over images) under a selection rule.
    pub fn selected(&self, selection: Selection) -> Option<BTreeMap<String, f64>> {
        let e = self.selected_evaluation(selection)?;
        Some(
            e.result
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), v.mean))
                .collect(),
        )
    }

    /// (step, value) of a training loss over the run.
    pub fn curve(&self, loss: &str) -> Vec<(u64, f64)> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Train { step, losses, .. } => Some((*step, *losses.get(loss)?)),
                _ => None,
            })
            .collect()
    }
}

/// Every run of the sweep with a done marker; unfinished ones are listed separately.
pub fn load_runs(sweep_dir: &Path) -> Result<(Vec<RunResult>, Vec<Job>)> {
    let mut done = Vec::new();
    let mut pending = Vec::new();
    for job in read_jobs(sweep_dir)? {
        let run = RunDir::new(&job.dir);
        if !run.is_done() {
            pending.push(job);
            continue;
        }
        let path = run.file(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(ReportError::io(&path))?;
        let config: TrainConfig =
            toml::from_str(&text).map_err(|e| ReportError::format(&path, e))?;
        let records = run.records()?;
        done.push(RunResult {
            job,
            config,
            records,
        });
    }
    Ok((done, pending))
}

/// Metric names in registry order with their direction.
pub fn metric_order() -> Vec<(&'static str, Better)> {
    all_metrics()
        .iter()
        .map(|m| (m.name(), m.better()))
        .collect()
}

/// Paths of everything a report wrote, for the caller to print.
#[derive(Debug, Default)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub tables: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
    pub figures: Vec<PathBuf>,
    pub index: PathBuf,
}

/// Writes the whole report of `sweep_dir` into `sweep_dir/report`.
pub fn write_report(
    sweep_dir: &Path,
    data_root: &Path,
    device: &candle_core::Device,
) -> Result<ReportFiles> {
    let (runs, pending) = load_runs(sweep_dir)?;
    if runs.is_empty() {
        return Err(ReportError::format(
            sweep_dir,
            "no finished runs to report (run the sweep first)",
        ));
    }
    let dir = sweep_dir.join("report");
    std::fs::create_dir_all(dir.join("tables")).map_err(ReportError::io(&dir))?;
    std::fs::create_dir_all(dir.join("plots")).map_err(ReportError::io(&dir))?;
    let mut files = ReportFiles {
        dir: dir.clone(),
        ..Default::default()
    };
    let mut datasets: Vec<String> = runs.iter().map(RunResult::dataset).collect();
    datasets.dedup();
    datasets.sort();
    datasets.dedup();
    let mut sections = Vec::new();
    for dataset in &datasets {
        let subset: Vec<&RunResult> = runs.iter().filter(|r| &r.dataset() == dataset).collect();
        let mut tables = Vec::new();
        for selection in Selection::ALL {
            for (metric, better) in metric_order() {
                let t = Table::build(dataset, metric, better, selection, &subset);
                files.tables.extend(t.write_all(&dir.join("tables"))?);
                tables.push(t);
            }
        }
        let plot_files = plots::write_plots(dataset, &subset, &tables, &dir.join("plots"))?;
        files.plots.extend(plot_files.iter().cloned());
        let figure = figure::write_figure(dataset, &subset, data_root, device, &dir)?;
        files.figures.push(figure.clone());
        sections.push(html::Section {
            dataset: dataset.clone(),
            tables,
            plots: plot_files,
            figure,
        });
    }
    files.index = html::write_index(&dir, sweep_dir, &sections, &runs, &pending)?;
    Ok(files)
}
