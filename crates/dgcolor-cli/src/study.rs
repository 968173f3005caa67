//! `dgcolor study {build,serve,export,report}`: the paper's user study on a sweep.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dgcolor_study::manifest::{DATABASE, REPORT};
use dgcolor_study::server::{serve_until_signal, ServeOptions};
use dgcolor_study::{
    analyze, answer_rows, build_study, read_csv, write_csv, write_report, BuildOptions, Design,
    ReportOptions, Store, Study,
};

use crate::model_arg::SelectArg;
use crate::train::Runtime;

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Sample target-domain test images of a sweep (stratified by setting and class,
    /// seeded), colourize each with every chosen method's selected checkpoint, and write a
    /// study folder (images under opaque ids, a private manifest, control images).
    Build(BuildArgs),
    /// Serve a study as a web app: instructions and consent, the naturalness and best-of-N
    /// protocols, answers committed to SQLite before they are acknowledged.
    Serve(ServeArgs),
    /// Write the answers as CSV (one row per answer, joined with the manifest).
    Export(ExportArgs),
    /// Statistics of the answers: naturalness (Wilson CIs), best of N (bootstrap CIs),
    /// Bradley–Terry strengths, sign tests, controls, Fleiss' kappa; tables, plots and the
    /// section of the sweep's index.html.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// The sweep directory (holding runs/).
    #[arg(long)]
    pub sweep: PathBuf,
    /// The study folder to write (default: <sweep>/study); must be new or empty.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Study images over all settings (each colourized by every method).
    #[arg(long, default_value_t = 20)]
    pub images: usize,
    /// Methods (sweep labels), comma-separated (default: every method of the sweep).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Seed of the image sampling and of every participant's item order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ground-truth images mixed into the naturalness part as controls (expected: natural).
    #[arg(long, default_value_t = 4)]
    pub controls: usize,
    /// Hue-inverted ground-truth images as controls (expected: not natural).
    #[arg(long, default_value_t = 4)]
    pub negative_controls: usize,
    /// rotate: each participant judges every study image once, by a method that rotates
    /// across participants; all: every participant judges every colourization.
    #[arg(long, default_value = "rotate")]
    pub design: Design,
    /// Title shown on every page.
    #[arg(long, default_value = "Colour study")]
    pub title: String,
    #[command(flatten)]
    pub select: SelectArg,
    #[command(flatten)]
    pub runtime: Runtime,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The study folder.
    pub study: PathBuf,
    /// Address to listen on. The default is loopback only; to let other machines of a lab
    /// network in, give this machine's address (or 0.0.0.0:PORT).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub max_body: usize,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The study folder.
    pub study: PathBuf,
    /// Where to write the CSV (default: <study>/answers.csv; `-` for standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The study folder.
    pub study: PathBuf,
    /// Compute from this exported CSV (or several concatenated) instead of the database.
    #[arg(long)]
    pub answers: Option<PathBuf>,
    /// Keep the answers of participants who failed the controls.
    #[arg(long)]
    pub include_failed: bool,
    /// A participant whose control accuracy is below this fails the controls.
    #[arg(long, default_value_t = 0.75)]
    pub control_threshold: f64,
    /// Bootstrap resamples of the best-of-N intervals.
    #[arg(long, default_value_t = 10_000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default: <study>/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not add the section to the sweep's report/index.html.
    #[arg(long)]
    pub no_sweep_report: bool,
    #[command(flatten)]
    pub runtime: Runtime,
}

pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Build(a) => build(&a),
        StudyCommand::Serve(a) => serve(&a),
        StudyCommand::Export(a) => export(&a),
        StudyCommand::Report(a) => report(&a),
    }
}

fn build(a: &BuildArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.sweep.join("study"));
    let device = dgcolor_eval::parse_device(&a.runtime.device)?;
    let study = build_study(
        &BuildOptions {
            sweep: a.sweep.clone(),
            out: out.clone(),
            data_root: a.runtime.data_root.clone(),
            images: a.images,
            methods: a.methods.clone(),
            seed: a.seed,
            select: a.select.select,
            controls: a.controls,
            negative_controls: a.negative_controls,
            design: a.design,
            title: a.title.clone(),
        },
        &device,
        |msg| eprintln!("{msg}"),
    )?;
    let m = &study.manifest;
    println!(
        "study: {} ({} methods, {} images, {} naturalness items, {} best-of-N items, {} questions per participant)",
        out.display(),
        m.methods.len(),
        m.images.len(),
        m.naturalness.len(),
        m.best_of.len(),
        study.plan(0).len()
    );
    println!("serve it: dgcolor study serve {}", out.display());
    Ok(())
}

fn serve(a: &ServeArgs) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = ServeOptions {
        addr: a.addr,
        max_body: a.max_body,
    };
    let study = a.study.clone();
    rt.block_on(serve_until_signal(&a.study, &opts, |server| {
        let addr = server.addr;
        let m = &server.study().manifest;
        let (participants, answers) = server.store().counts().unwrap_or((0, 0));
        println!(
            "dgcolor study: {} ({} naturalness items, {} best-of-N items; {participants} participants and {answers} answers so far)",
            study.display(),
            m.naturalness.len(),
            m.best_of.len()
        );
        println!("participants: http://{addr}/");
        println!("admin token: {}", server.admin_token);
        println!("results: http://{addr}/admin?token={}", server.admin_token);
        println!(
            "export: curl -H 'Authorization: Bearer {}' http://{addr}/admin/answers.csv (or dgcolor study export {})",
            server.admin_token,
            study.display()
        );
        if !addr.ip().is_loopback() {
            println!(
                "note: listening beyond loopback: every machine that can reach {addr} can take part"
            );
        }
        println!("listening on {addr}");
    }))?;
    Ok(())
}

fn rows_from_db(study: &Study) -> Result<Vec<dgcolor_study::AnswerRow>> {
    let store = Store::open_existing(&study.dir.join(DATABASE))?;
    Ok(answer_rows(study, &store)?)
}

fn export(a: &ExportArgs) -> Result<()> {
    let study = Study::open(&a.study)?;
    let rows = rows_from_db(&study)?;
    match a.out.as_deref() {
        Some(p) if p == Path::new("-") => {
            print!("{}", dgcolor_study::export::csv_string(&rows)?);
        }
        out => {
            let path = out.map_or_else(|| a.study.join("answers.csv"), Path::to_path_buf);
            write_csv(&rows, &path)?;
            println!("{} answers: {}", rows.len(), path.display());
        }
    }
    Ok(())
}

fn report(a: &ReportArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.control_threshold) {
        bail!("--control-threshold must be between 0 and 1");
    }
    let study = Study::open(&a.study)?;
    let rows = match &a.answers {
        Some(csv) => read_csv(csv)?,
        None => rows_from_db(&study)?,
    };
    let analysis = analyze(
        &rows,
        &study.manifest.methods,
        &ReportOptions {
            include_failed: a.include_failed,
            control_threshold: a.control_threshold,
            bootstrap: a.bootstrap,
            seed: a.seed,
        },
    );
    let p = &analysis.participants;
    if p.failed_excluded && p.failed > 0 && p.failed == p.with_controls {
        eprintln!(
            "warning: all {} participants who answered controls failed them (accuracy < {}), \
             so their answers are left out; --include-failed keeps them",
            p.failed, a.control_threshold
        );
    }
    let dir = a.out.clone().unwrap_or_else(|| a.study.join(REPORT));
    let files = write_report(&analysis, &dir)?;
    print!("{}", dgcolor_study::report::markdown(&analysis));
    println!(
        "report: {} ({} files)",
        files.dir.display(),
        files.files.len()
    );
    if a.no_sweep_report {
        return Ok(());
    }
    let Some(sweep) = study
        .manifest
        .sweep
        .clone()
        .filter(|s| s.join("runs").is_dir())
    else {
        return Ok(());
    };
    // The sweep's index.html embeds every file of report/sections/.
    let sections = sweep.join("report").join(dgcolor_report::SECTIONS_DIR);
    std::fs::create_dir_all(&sections)
        .with_context(|| format!("creating {}", sections.display()))?;
    let name = format!(
        "user-study-{}.html",
        study
            .dir
            .canonicalize()
            .unwrap_or(study.dir.clone())
            .file_name()
            .map_or("study".into(), |n| n.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_"
            ))
    );
    let target = sections.join(name);
    std::fs::copy(&files.section, &target)
        .with_context(|| format!("copying the section to {}", target.display()))?;
    let device = dgcolor_eval::parse_device(&a.runtime.device)?;
    match dgcolor_report::write_report(&sweep, &a.runtime.data_root, &device) {
        Ok(r) => println!("sweep report with the study: {}", r.index.display()),
        Err(e) => eprintln!(
            "the section is in {}, but the sweep's report could not be rewritten: {e}",
            target.display()
        ),
    }
    Ok(())
}
