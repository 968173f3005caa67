//! What the experiment binaries share: the sweep options, the paper's settings, and
//! running a sweep through a launcher followed by the report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_data::{leave_one_out_settings, paper_settings, SynthConfig};
use dgcolor_eval::report::{write_report, ReportFiles};
use dgcolor_eval::sweep::{DryRun, Job, JobReport, LaunchContext, Launcher, Local};
use dgcolor_eval::{parse_device, parse_precision, DataSpec, Precision, RunSpec};

/// Options every sweep binary takes.
#[derive(Args, Clone, Debug)]
pub struct SweepArgs {
    /// `synth` (generated under --data-root on first use) or a dataset folder.
    #[arg(long, default_value = "synth")]
    pub data: String,
    /// smoke, quick or paper.
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// Settings `src1+src2:target`, comma-separated (default: the paper's three two-source
    /// settings of the dataset: PACS names for synth and pacs, Office-Home's for office-home).
    #[arg(long, value_delimiter = ',')]
    pub settings: Vec<String>,
    /// Default settings leave one domain out (every other domain is a source) instead.
    #[arg(long)]
    pub leave_one_out: bool,
    /// Seeds per run (default: the preset's).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Updates per run (default: the preset's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Sweep name: runs go to results/<sweep>/runs, the report to results/<sweep>/report.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Parent of all sweeps.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// local (runs here) or dry-run (prints the commands).
    #[arg(long, default_value = "local")]
    pub launcher: String,
    /// Runs in parallel for the local launcher (default: one per two cores).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Where `synth` is generated.
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of the convolutions' matrix products: f32, tf32 or bf16 (see `dgcolor train`).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,
    /// Skip the report after the sweep.
    #[arg(long)]
    pub no_report: bool,
}

/// Seeds per run of a preset: one on a CPU, three at the paper's scale.
pub fn preset_seeds(preset: &str) -> u64 {
    if preset == "paper" {
        3
    } else {
        1
    }
}

impl SweepArgs {
    /// (sources, target) pairs from `--settings`, or the dataset's paper settings.
    pub fn settings(&self) -> Result<Vec<(Vec<String>, String)>> {
        if self.settings.is_empty() {
            let spec = DataSpec::parse(&self.data, SynthConfig::default())?;
            let Some(name) = spec.settings_name() else {
                bail!("--data {}: a plain folder has no paper settings; give --settings src1+src2:target", self.data);
            };
            let settings = if self.leave_one_out {
                leave_one_out_settings(name)
            } else {
                paper_settings(name)
            };
            return Ok(settings
                .into_iter()
                .map(|(s, t)| (s.iter().map(|x| x.to_string()).collect(), t.to_string()))
                .collect());
        }
        self.settings
            .iter()
            .map(|s| {
                let Some((sources, target)) = s.split_once(':') else {
                    bail!("--settings `{s}`: expected src1+src2:target");
                };
                let sources: Vec<String> = sources.split('+').map(str::to_string).collect();
                if sources.iter().any(String::is_empty) || target.is_empty() {
                    bail!("--settings `{s}`: empty domain name");
                }
                Ok((sources, target.to_string()))
            })
            .collect()
    }

    pub fn sweep_dir(&self, default_name: &str) -> PathBuf {
        self.results
            .join(self.sweep.as_deref().unwrap_or(default_name))
    }

    /// A spec for one run of this sweep.
    pub fn spec(&self, algorithm: &str, sources: &[String], target: &str, seed: u64) -> RunSpec {
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        RunSpec {
            data: self.data.clone(),
            steps: self.steps,
            seed,
            precision: self.precision,
            ..RunSpec::new(algorithm, &sources, target, &self.preset)
        }
    }

    pub fn seeds(&self) -> u64 {
        self.seeds.unwrap_or_else(|| preset_seeds(&self.preset))
    }

    fn launcher(&self) -> Result<Box<dyn Launcher>> {
        Ok(match self.launcher.as_str() {
            "local" => Box::new(match self.parallel {
                Some(n) => Local { parallel: n.max(1) },
                None => Local::fitted(),
            }),
            "dry-run" => Box::new(DryRun),
            other => bail!("--launcher `{other}`: expected local or dry-run"),
        })
    }

    /// Runs the jobs, then (unless a dry run or --no-report) the report; prints where it is.
    pub fn execute(&self, jobs: &[Job], sweep_dir: &Path) -> Result<Option<ReportFiles>> {
        let launcher = self.launcher()?;
        let ctx = LaunchContext {
            data_root: self.data_root.clone(),
            device: parse_device(&self.device)?,
        };
        eprintln!(
            "{}: {} runs under {} ({} launcher)",
            sweep_dir.display(),
            jobs.len(),
            sweep_dir.join("runs").display(),
            launcher.name()
        );
        let reports: Vec<JobReport> = launcher.launch(jobs, &ctx);
        let failed: Vec<&JobReport> = reports.iter().filter(|r| r.result.is_err()).collect();
        for r in &failed {
            eprintln!(
                "FAILED {} ({}): {}",
                r.job.label,
                r.job.dir.display(),
                r.result.as_ref().unwrap_err()
            );
        }
        if launcher.name() == "dry-run" || self.no_report {
            return Ok(None);
        }
        let files = write_report(sweep_dir, &self.data_root, &ctx.device)?;
        println!("report: {}", files.index.display());
        println!("tables: {}", files.dir.join("tables").display());
        if !failed.is_empty() {
            bail!(
                "{} of {} runs failed (re-run the same command to retry them)",
                failed.len(),
                jobs.len()
            );
        }
        Ok(Some(files))
    }
}
