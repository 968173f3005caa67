//! `dgcolor`: make data, train, colourize and evaluate from one command line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dgcolor_algorithms::{info, HParams, Preset, ALGORITHMS};
use dgcolor_data::{generate_synth, BatchMode, OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_eval::{colorize_image, evaluate, DomainMetrics, load_generator, parse_device, plan_outputs, train, DataSpec, TrainConfig, TrainOptions, VAL_FRACTION};
use dgcolor_models::ModelConfig;

#[derive(Parser)]
#[command(name = "dgcolor", version, about = "Domain-generalizable automatic colorization (Lee et al., ECCV 2022) and DG baselines on candle")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make or inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train one algorithm on source domains; evaluate on the unseen target domain.
    Train(TrainArgs),
    /// Train several algorithms on one setting and print their target metrics side by side.
    Compare(CompareArgs),
    /// Colourize image files or folders with a trained model.
    Colorize(ColorizeArgs),
    /// Metrics of a trained model on one domain, as JSON on stdout.
    Eval(EvalArgs),
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

#[derive(Subcommand)]
enum DataCommand {
    /// Write the embedded synthetic benchmark: <out>/<domain>/<class>/*.png plus manifest.json.
    Synth {
        #[arg(long)]
        out: PathBuf,
        /// Image side in pixels.
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Images per class and domain.
        #[arg(long, default_value_t = 100)]
        per_class: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// `synth` (generated under --data-root on first use) or a folder <root>/<domain>/<class>/<image>.
    #[arg(long, default_value = "synth")]
    data: String,
    /// Comma-separated source domains.
    #[arg(long, value_delimiter = ',', default_value = "photo,cartoon")]
    sources: Vec<String>,
    /// The unseen target domain.
    #[arg(long, default_value = "art_painting")]
    target: String,
    /// smoke (seconds, for tests), quick (CPU minutes) or paper (256 px, nf 64, depth 8, batch 128, 50 epochs).
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Number of updates (default: the preset's).
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Batch size (default: the preset's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Take the same number of images from each source per step instead of shuffling their union.
    #[arg(long)]
    balanced: bool,
    /// Override a hyperparameter, e.g. --set w_adv=0.1 (repeatable; see `dgcolor hparams`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// AdaIN skip: a decoder index 1..depth-1, `z` (the skip carrying the head output, the
    /// default of `ours`) or `none` (the default of the baselines).
    #[arg(long)]
    adain: Option<String>,
    /// Resize filter: nearest (reference) or antialias.
    #[arg(long, default_value = "nearest")]
    resize: String,
    /// Skip unreadable images (reported in the records) instead of failing.
    #[arg(long)]
    skip_bad_images: bool,
    /// Where `synth` is generated.
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Stop after this many steps of this invocation (checkpointed, resumable by re-running).
    #[arg(long)]
    stop_after: Option<u64>,
}

#[derive(Args)]
struct TrainArgs {
    /// ours, erm, ... (see `dgcolor algorithms`).
    #[arg(long, default_value = "ours")]
    algorithm: String,
    #[command(flatten)]
    run: RunArgs,
    /// Run directory: config.toml, records.jsonl, checkpoint.safetensors, done. Re-running
    /// the same command on an unfinished directory resumes it.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct CompareArgs {
    /// Comma-separated algorithms, in table order.
    #[arg(long, value_delimiter = ',', default_value = "erm,ours")]
    algorithms: Vec<String>,
    #[command(flatten)]
    run: RunArgs,
    /// Parent of one run directory per algorithm.
    #[arg(long, default_value = "results/quickstart")]
    out: PathBuf,
}

#[derive(Args)]
struct ColorizeArgs {
    /// A run directory or a .safetensors checkpoint/model file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Filter that brings inputs to the model size: antialias or nearest (reference).
    #[arg(long, default_value = "antialias")]
    resize: String,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct EvalArgs {
    /// A run directory (its data settings are reused) or a .safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value = "synth")]
    data: String,
    #[arg(long)]
    domain: String,
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Data(DataCommand::Synth { out, size, per_class, seed }) => {
            let cfg = SynthConfig { size, per_class, seed };
            let started = std::time::Instant::now();
            let manifest = generate_synth(&out, &cfg)?;
            eprintln!("wrote {} images to {} in {:.1}s", manifest.files.len(), out.display(), started.elapsed().as_secs_f64());
        }
        Command::Train(args) => {
            let outcome = train(&train_options(&args.algorithm, &args.run, args.out)?)?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        }
        Command::Compare(args) => compare(&args)?,
        Command::Colorize(args) => colorize(&args)?,
        Command::Eval(args) => eval(&args)?,
        Command::Algorithms => {
            for a in ALGORITHMS {
                println!("{:<10} {}", a.name, a.summary);
            }
        }
        Command::Hparams { algorithm, seed } => {
            info(&algorithm)?;
            let values = match seed {
                Some(s) => HParams::random(&algorithm, s),
                None => HParams::defaults(&algorithm),
            };
            for spec in dgcolor_algorithms::hparams::specs(&algorithm) {
                println!("{:<10} = {:<12} # default {}, search {}: {}", spec.name, values.get(spec.name), spec.default, spec.dist, spec.help);
            }
        }
    }
    Ok(())
}

fn parse_filter(s: &str) -> Result<ResizeFilter> {
    match s {
        "nearest" => Ok(ResizeFilter::Nearest),
        "antialias" => Ok(ResizeFilter::Antialias),
        _ => bail!("--resize `{s}`: expected nearest or antialias"),
    }
}

fn train_options(algorithm: &str, run: &RunArgs, out: PathBuf) -> Result<TrainOptions> {
    let algo = info(algorithm)?;
    let preset = Preset::get(&run.preset)?;
    let synth = SynthConfig {
        size: preset.size as u32,
        per_class: preset.synth_per_class,
        seed: 0,
    };
    let data = DataSpec::parse(&run.data, synth)?;
    let mut hparams = HParams::defaults(algo.name);
    hparams.set(algo.name, &run.set)?;
    let mut model = ModelConfig::new(preset.size, preset.nf, preset.depth, 1, run.sources.len());
    model.adain_index = match run.adain.as_deref() {
        None => algo.adain.then(|| model.z_skip_index()),
        Some("none") => None,
        Some("z") => Some(model.z_skip_index()),
        Some(k) => Some(k.parse().with_context(|| format!("--adain `{k}`: expected none, z or an index 1..{}", preset.depth - 1))?),
    };
    // The class count comes from the data; open it once here so the config is complete.
    let folder = data.open(&run.data_root)?;
    model.n_classes = folder.classes.len();
    model.validate()?;
    let batch_size = run.batch_size.unwrap_or(preset.batch_size);
    let train_images: usize = run.sources.iter().map(|s| folder.domain(s).map(|d| d.len())).sum::<std::result::Result<_, _>>()?;
    let steps = run.steps.unwrap_or_else(|| TrainConfig::steps_for(&Preset { batch_size, ..preset.clone() }, train_images));
    let config = TrainConfig {
        algorithm: algo.name.to_string(),
        preset: preset.name.clone(),
        data,
        sources: run.sources.clone(),
        target: run.target.clone(),
        seed: run.seed,
        steps,
        batch_size,
        batch_mode: if run.balanced { BatchMode::Balanced } else { BatchMode::Mixed },
        preprocess: Preprocess {
            size: preset.size,
            filter: parse_filter(&run.resize)?,
        },
        flip: true,
        val_fraction: VAL_FRACTION,
        eval_every: preset.eval_every.min(steps.max(1)),
        log_every: 10.min(steps.max(1)),
        on_bad_image: if run.skip_bad_images { OnBadImage::Skip } else { OnBadImage::Fail },
        model,
        hparams,
    };
    Ok(TrainOptions {
        config,
        out,
        data_root: run.data_root.clone(),
        device: parse_device(&run.device)?,
        progress: !run.quiet,
        stop_after: run.stop_after,
    })
}

fn compare(args: &CompareArgs) -> Result<()> {
    let mut rows = Vec::new();
    for algorithm in &args.algorithms {
        eprintln!("== {algorithm}: {} -> {}", args.run.sources.join("+"), args.run.target);
        let outcome = train(&train_options(algorithm, &args.run, args.out.join(algorithm))?)?;
        rows.push(outcome);
    }
    let finished: Vec<(&str, &DomainMetrics)> = rows.iter().filter_map(|r| Some((r.algorithm.as_str(), r.target_metrics.as_ref()?))).collect();
    let Some((_, first)) = finished.first() else {
        eprintln!("no run finished yet (re-run the same command to continue)");
        return Ok(());
    };
    println!("target {} ({} images), mean over images:", args.run.target, first.images);
    print!("{:<10}", "algorithm");
    for n in first.metrics.keys() {
        print!(" {n:>20}");
    }
    println!();
    for (name, m) in &finished {
        print!("{name:<10}");
        for summary in m.metrics.values() {
            print!(" {:>20.4}", summary.mean);
        }
        println!();
    }
    Ok(())
}

fn colorize(args: &ColorizeArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let generator = load_generator(&args.checkpoint, &device)?;
    let filter = parse_filter(&args.resize)?;
    let pairs = plan_outputs(&args.inputs, &args.out)?;
    for (input, output) in &pairs {
        let rgb = colorize_image(&generator, input, filter, &device)?;
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        rgb.save(output).with_context(|| format!("writing {}", output.display()))?;
        eprintln!("{} -> {}", input.display(), output.display());
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let generator = load_generator(&args.checkpoint, &device)?;
    let model = generator.config();
    let run_config = args.checkpoint.join(dgcolor_eval::run::CONFIG);
    let saved: Option<TrainConfig> = if run_config.is_file() {
        let text = std::fs::read_to_string(&run_config)?;
        Some(toml::from_str(&text).with_context(|| format!("reading {}", run_config.display()))?)
    } else {
        None
    };
    let synth = match &saved {
        Some(TrainConfig { data: DataSpec::Synth(cfg), .. }) => *cfg,
        _ => SynthConfig {
            size: model.size as u32,
            ..SynthConfig::default()
        },
    };
    let pre = saved.as_ref().map(|c| c.preprocess).unwrap_or(Preprocess {
        size: model.size,
        filter: ResizeFilter::Nearest,
    });
    let folder = DataSpec::parse(&args.data, synth)?.open(&args.data_root)?;
    let metrics = evaluate(&generator, folder.domain(&args.domain)?, &pre, OnBadImage::Fail, &device)?;
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"domain": args.domain, "result": metrics}))?);
    Ok(())
}
