//! The collect step (DomainBed's `collect_results`): read every run of a sweep, select a
//! model per run, aggregate over seeds, and write tables, plots, the qualitative figure and
//! a self-contained `index.html` into `<sweep>/report/`.

mod error;
mod figure;
mod html;
mod per_class;
mod plots;
mod selection;
pub mod stats;
mod table;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use dgcolor_metrics::{all_metrics, set_metrics, Better};
use dgcolor_runs::sweep::{read_jobs, Job};
use dgcolor_runs::{read_per_image, ImageRow, Record, RunDir, TrainConfig, CONFIG};

pub use error::{ReportError, Result};
pub use figure::{FigureLayout, FIGURE_IMAGES_PER_SETTING};
pub use plots::{color as plot_color, register_fonts};
pub use selection::{picks, select, Picks, Selected, Selection};
pub use table::{Cell, Comparison, Table, ALPHA, BASELINE};

/// Folder of `<sweep>/report/` where other tools leave HTML sections for `index.html` (the
/// user study's `dgcolor study report` does); they are embedded in file name order after
/// the datasets' sections.
pub const SECTIONS_DIR: &str = "sections";

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

/// Every table's metric in column order: (name, direction, has a value per image). The
/// per-image metrics come first, then the set metrics.
pub fn metric_order() -> Vec<(&'static str, Better, bool)> {
    let per_image = all_metrics()
        .into_iter()
        .map(|m| (m.name(), m.better(), true));
    let set = set_metrics()
        .into_iter()
        .map(|m| (m.name(), m.better(), false));
    per_image.chain(set).collect()
}

/// Rows of one per-image file, shared between tables.
type Rows = Option<Rc<Vec<ImageRow>>>;

/// The per-image results of selected evaluation points, read once each.
#[derive(Default)]
pub struct PerImage {
    cache: RefCell<HashMap<(PathBuf, u64), Rows>>,
}

impl PerImage {
    /// The rows of `s`'s test evaluation, or `None` if the run did not write them.
    pub fn rows(&self, s: &Selected) -> Result<Rows> {
        let key = (s.run.job.dir.clone(), s.step);
        if let Some(rows) = self.cache.borrow().get(&key) {
            return Ok(rows.clone());
        }
        let path = RunDir::new(&s.run.job.dir).per_image_file(s.step);
        let rows = if path.exists() {
            Some(Rc::new(read_per_image(&path)?))
        } else {
            None
        };
        self.cache.borrow_mut().insert(key, rows.clone());
        Ok(rows)
    }
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
    let per_image = PerImage::default();
    for dataset in &datasets {
        let subset: Vec<&RunResult> = runs.iter().filter(|r| &r.dataset() == dataset).collect();
        let mut tables = Vec::new();
        let mut extra = Vec::new();
        for selection in Selection::ALL {
            let picked = picks(selection, &subset);
            for (metric, better, is_per_image) in metric_order() {
                let t = Table::build(
                    dataset,
                    metric,
                    better,
                    is_per_image,
                    selection,
                    &picked,
                    &per_image,
                )?;
                files.tables.extend(t.write_all(&dir.join("tables"))?);
                tables.push(t);
            }
            let (path, text) =
                per_class::write(dataset, selection, &picked, &per_image, &dir.join("tables"))?;
            files.tables.push(path);
            extra.push(text);
            let (path, text) =
                per_class::write_hparams(dataset, selection, &picked, &dir.join("tables"))?;
            files.tables.push(path);
            extra.push(text);
        }
        let plot_files = plots::write_plots(dataset, &subset, &tables, &dir.join("plots"))?;
        files.plots.extend(plot_files.iter().cloned());
        let figure = figure::write_figure(dataset, &subset, data_root, device, &dir)?;
        files.figures.push(figure.clone());
        sections.push(html::Section {
            dataset: dataset.clone(),
            tables,
            extra,
            plots: plot_files,
            figure,
        });
    }
    files.index = html::write_index(&dir, sweep_dir, &sections, &runs, &pending)?;
    Ok(files)
}
