//! `dgcolor`: make data, train, colourize and evaluate from one command line.

mod colorize;
mod data;
mod eval;
mod model_arg;
mod onnx;
mod publish;
mod reference;
mod study;
mod sweep;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dgcolor_algorithms::{lookup, HParams, ALGORITHMS};

#[derive(Parser)]
#[command(
    name = "dgcolor",
    version,
    about = "Domain-generalizable automatic colorization (Lee et al., ECCV 2022) and DG baselines on candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make or inspect datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train one algorithm on source domains; evaluate on the unseen target domain.
    Train(train::TrainArgs),
    /// Compare methods: every algorithm on every setting and seed (a resumable sweep), then
    /// the report.
    Compare(sweep::CompareArgs),
    /// Ablate the AdaIN skip (off, every index) and the other components of the proposed
    /// model (a resumable sweep), then the report.
    AblateAdain(sweep::AblateArgs),
    /// The collect step: tables (CSV, Markdown, LaTeX), plots, the qualitative figure and
    /// an offline index.html for one sweep directory.
    Report(sweep::ReportArgs),
    /// The paper's user study on a sweep: build a study folder, serve it as a web app,
    /// export the answers, report the statistics.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Colourize image files or folders with a trained model.
    Colorize(colorize::ColorizeArgs),
    /// Metrics of a trained model on one domain, as JSON on stdout.
    Eval(eval::EvalArgs),
    /// Convert the reference code's F/C/D .pth state dicts into a dgcolor model file.
    ImportReference(reference::ImportArgs),
    /// Write a dgcolor checkpoint's generator as the reference's F.pth, C.pth and D.pth.
    ExportReference(reference::ExportArgs),
    /// Write the inference network as an ONNX model (L in, ab out).
    ExportOnnx(onnx::OnnxArgs),
    /// Write a finished run as a Hugging Face model folder (weights, config.json, model card).
    Publish(publish::PublishArgs),
    /// List the registered algorithms, in table order.
    Algorithms,
    /// Print an algorithm's hyperparameters: defaults, or a reproducible random-search draw.
    Hparams {
        #[arg(long)]
        algorithm: String,
        /// Draw from the search distributions with this seed instead of printing defaults.
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> Result<()> {
    // An invalid DGCOLOR_* value ends the program here, before any work.
    dgcolor_kernels::setup_process()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Data(cmd) => data::run(cmd)?,
        Command::Train(args) => train::run(&args)?,
        Command::Compare(args) => sweep::compare(&args)?,
        Command::AblateAdain(args) => sweep::ablate(&args)?,
        Command::Report(args) => sweep::run_report(&args)?,
        Command::Study(cmd) => study::run(cmd)?,
        Command::Colorize(args) => colorize::run(&args)?,
        Command::Eval(args) => eval::run(&args)?,
        Command::ImportReference(args) => reference::import(&args)?,
        Command::ExportReference(args) => reference::export(&args)?,
        Command::ExportOnnx(args) => onnx::run(&args)?,
        Command::Publish(args) => publish::run(&args)?,
        Command::Algorithms => {
            for a in ALGORITHMS {
                println!("{:<10} {}", a.name, a.summary);
            }
        }
        Command::Hparams { algorithm, seed } => {
            let algorithm = lookup(&algorithm)?;
            let values = match seed {
                Some(s) => HParams::random(algorithm, s),
                None => HParams::defaults(algorithm),
            };
            for spec in dgcolor_algorithms::hparams::specs(algorithm) {
                println!(
                    "{:<10} = {:<12} # default {}, search {}: {}",
                    spec.name,
                    values.get(spec.name),
                    spec.default,
                    spec.dist,
                    spec.help
                );
            }
        }
    }
    Ok(())
}
