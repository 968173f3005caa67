//! `dgcolor data ...`: make, fetch and inspect datasets.
//!
//! - `synth`: write the embedded synthetic benchmark.
//! - `info`: domains, classes, images per domain and class, the split sizes, and the
//!   totals against the published counts (PACS, Office-Home), so a user can tell whether
//!   their copy is complete before a two-day run.
//! - `check`: decode every image (all cores) and list the broken ones; exits non-zero
//!   if any is broken.
//! - `fetch`: download the Hub's parquet copy into the Hugging Face cache.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;
use dgcolor_data::hub::{fetch, HubConfig};
use dgcolor_data::{
    check_images, find_split_dir, generate_synth, read_split_list, reference_split, Benchmark,
    DataSpec, SplitChoice, SplitPart, SynthConfig, VAL_FRACTION,
};

#[derive(Subcommand)]
pub enum DataCommand {
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
        /// Also shift the colours of art_painting and cartoon (off: every domain shares the
        /// class palette and only the look shifts).
        #[arg(long)]
        palette_shift: bool,
    },
    /// Domains, classes, images per domain and class, split sizes, and the totals against
    /// the published counts.
    Info {
        /// synth, a folder, pacs:PATH, office-home:PATH, pacs-parquet:PATH or office-home-parquet:PATH.
        #[arg(long)]
        data: DataSpec,
        /// reference, or official[,skip-missing][,dir=PATH] (PACS split files).
        #[arg(long, default_value = "reference")]
        split: SplitChoice,
        /// Seed of the reference split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where synth is generated and parquet copies are extracted.
        #[arg(long, default_value = "data")]
        data_root: PathBuf,
    },
    /// Decode every image and list the ones that fail (exit status 1 if any).
    Check {
        #[arg(long)]
        data: DataSpec,
        #[arg(long, default_value = "data")]
        data_root: PathBuf,
    },
    /// Download the Hugging Face parquet copy (flwrlabs/pacs or flwrlabs/office-home) into
    /// the HF cache (HF_HOME / HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE honoured);
    /// resumes partial downloads and checks sizes.
    Fetch {
        /// pacs or office-home.
        dataset: String,
        /// Use only the cache (same as HF_HUB_OFFLINE=1).
        #[arg(long)]
        offline: bool,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Synth {
            out,
            size,
            per_class,
            seed,
            palette_shift,
        } => {
            let cfg = SynthConfig {
                size,
                per_class,
                seed,
                palette_shift,
            };
            let started = std::time::Instant::now();
            let manifest = generate_synth(&out, &cfg)?;
            eprintln!(
                "wrote {} images to {} in {:.1}s",
                manifest.files.len(),
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        DataCommand::Info {
            data,
            split,
            seed,
            data_root,
        } => info(&data, &split, seed, &data_root)?,
        DataCommand::Check { data, data_root } => check(&data, &data_root)?,
        DataCommand::Fetch { dataset, offline } => {
            let Some(bench) = Benchmark::parse(&dataset) else {
                bail!("fetch {dataset}: expected pacs or office-home");
            };
            let mut cfg = HubConfig::from_env();
            cfg.offline |= offline;
            let fetched = fetch(&cfg, bench)?;
            for (file, size) in &fetched.files {
                println!("{}  {size} bytes", file.display());
            }
            println!(
                "use: --data {}-parquet:{}",
                bench.name(),
                fetched.snapshot.display()
            );
        }
    }
    Ok(())
}

fn info(data: &DataSpec, split: &SplitChoice, seed: u64, data_root: &Path) -> Result<()> {
    let folder = data.open(data_root, &SynthConfig::default())?;
    let bench = data.benchmark();
    println!("data: {data}");
    println!(
        "tree: {}{}",
        folder.root.display(),
        bench.map_or(String::new(), |b| format!(" ({})", b.title()))
    );
    println!(
        "domains ({}): {}",
        folder.domains.len(),
        folder.domains.join(", ")
    );
    println!(
        "classes ({}): {}",
        folder.classes.len(),
        folder.classes.join(", ")
    );
    let ignored = folder.ignored();
    if !ignored.is_empty() {
        println!("ignored ({} non-image entries):", ignored.len());
        for p in ignored.iter().take(10) {
            println!("  {}", p.display());
        }
        if ignored.len() > 10 {
            println!("  ... and {} more", ignored.len() - 10);
        }
    }

    // Images per class (rows) and domain (columns).
    let counts: Vec<Vec<usize>> = folder
        .domains
        .iter()
        .map(|d| {
            let mut c = vec![0; folder.classes.len()];
            for s in folder.domain_samples(d).unwrap_or(&[]) {
                c[s.class] += 1;
            }
            c
        })
        .collect();
    let width = folder
        .classes
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let cols: Vec<usize> = folder.domains.iter().map(|d| d.len().max(6)).collect();
    print!("\n{:<width$}", "class");
    for (d, w) in folder.domains.iter().zip(&cols) {
        print!("  {d:>w$}");
    }
    println!();
    for (k, class) in folder.classes.iter().enumerate() {
        print!("{class:<width$}");
        for (c, w) in counts.iter().zip(&cols) {
            print!("  {:>w$}", c[k]);
        }
        println!();
    }
    print!("{:<width$}", "total");
    for (c, w) in counts.iter().zip(&cols) {
        print!("  {:>w$}", c.iter().sum::<usize>());
    }
    println!();

    if let Some(b) = bench {
        println!("\npublished counts ({}):", b.title());
        let mut all_match = true;
        for &d in b.domains() {
            let published = b.published_count(d).expect("a domain of the benchmark");
            let have = folder
                .domains
                .iter()
                .position(|x| dgcolor_data::same_domain(x, d))
                .map(|i| counts[i].iter().sum::<usize>());
            let verdict = match have {
                Some(n) if n == published => "matches".to_string(),
                Some(n) => {
                    all_match = false;
                    format!(
                        "differs ({n} here, {} {})",
                        n.abs_diff(published),
                        if n < published { "fewer" } else { "more" }
                    )
                }
                None => {
                    all_match = false;
                    "domain absent".into()
                }
            };
            println!(
                "  {d:<14} {:>6} here  {published:>6} published  {verdict}",
                have.map_or("-".into(), |n| n.to_string())
            );
        }
        println!(
            "  {}",
            if all_match {
                "all domains match the published counts"
            } else {
                "this copy differs from the published release"
            }
        );
    }

    match split {
        SplitChoice::Reference => {
            println!(
                "\nsplit: reference (per class 90/10, seed {seed}); test = the whole target domain"
            );
            for d in &folder.domains {
                let samples = folder.domain_samples(d)?;
                let s = reference_split(samples, VAL_FRACTION, seed);
                println!(
                    "  {d:<14} train {:>6}  val {:>5}  (as target: test {:>6})",
                    s.train.len(),
                    s.val.len(),
                    samples.len()
                );
            }
        }
        SplitChoice::Official { dir, .. } => {
            let dir = find_split_dir(&folder.root, dir.as_deref())?;
            println!("\nsplit: official, files in {}", dir.display());
            let mut notes = Vec::new();
            for d in &folder.domains {
                let mut line = format!("  {d:<14}");
                for part in SplitPart::ALL {
                    match read_split_list(&folder, &dir, d, part) {
                        Ok(list) => {
                            line.push_str(&format!(
                                "  {} {} of {} listed",
                                part.name(),
                                list.samples.len(),
                                list.listed
                            ));
                            notes.extend(list.report());
                        }
                        Err(e) => notes.push(e.to_string()),
                    }
                }
                println!("{line}");
            }
            if !notes.is_empty() {
                println!("split-file report:");
                for n in notes {
                    println!("  {n}");
                }
            }
        }
    }
    Ok(())
}

fn check(data: &DataSpec, data_root: &Path) -> Result<()> {
    let folder = data.open(data_root, &SynthConfig::default())?;
    let samples: Vec<_> = folder
        .domains
        .iter()
        .flat_map(|d| folder.domain_samples(d).unwrap_or(&[]).iter().cloned())
        .collect();
    let started = std::time::Instant::now();
    let broken = check_images(&samples);
    println!(
        "decoded {} images in {:.1}s: {} broken",
        samples.len(),
        started.elapsed().as_secs_f64(),
        broken.len()
    );
    for b in &broken {
        println!("broken: {}", b.error);
    }
    if !folder.ignored().is_empty() {
        println!(
            "({} non-image entries ignored; see `dgcolor data info`)",
            folder.ignored().len()
        );
    }
    if !broken.is_empty() {
        bail!("{} of {} images are broken", broken.len(), samples.len());
    }
    Ok(())
}
