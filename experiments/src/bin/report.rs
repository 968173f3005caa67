//! The collect step: tables (CSV, Markdown, LaTeX), plots, the qualitative figure and an
//! offline `index.html` for one sweep directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use dgcolor_eval::parse_device;
use dgcolor_eval::report::write_report;

#[derive(Parser)]
#[command(
    about = "Write the report of a sweep: results/<sweep>/report/{tables,plots,figure_*.png,index.html}"
)]
struct Cli {
    /// The sweep directory (holding runs/).
    sweep_dir: PathBuf,
    /// Where `synth` lives (the figure reads target images).
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    dgcolor_kernels::setup_process();
    let cli = Cli::parse();
    let files = write_report(&cli.sweep_dir, &cli.data_root, &parse_device(&cli.device)?)?;
    println!("report: {}", files.index.display());
    println!(
        "{} tables, {} plots, {} figures in {}",
        files.tables.len(),
        files.plots.len(),
        files.figures.len(),
        files.dir.display()
    );
    Ok(())
}
