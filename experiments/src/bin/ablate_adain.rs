//! The proposed model with the AdaIN skip off and at every valid skip index, plus the model
//! without the adversarial update, without the class head and without content
//! randomization; then the report.

use anyhow::Result;
use clap::Parser;
use dgcolor_algorithms::Preset;
use dgcolor_eval::sweep::Job;
use dgcolor_experiments::SweepArgs;

#[derive(Parser)]
#[command(
    about = "Ablate the AdaIN skip (off, every index) and the other components of the proposed model"
)]
struct Cli {
    #[command(flatten)]
    sweep: SweepArgs,
}

fn main() -> Result<()> {
    dgcolor_kernels::setup_process();
    let cli = Cli::parse();
    let depth = Preset::get(&cli.sweep.preset)?.depth;
    // (label, adain, overrides)
    let mut variants: Vec<(String, Option<String>, Vec<String>)> =
        vec![("ours".into(), None, vec![])];
    variants.push(("ours, AdaIN off".into(), Some("none".into()), vec![]));
    for k in 1..depth {
        let note = if k == depth - 3 { " (z, default)" } else { "" };
        variants.push((
            format!("ours, AdaIN at skip {k}{note}"),
            Some(k.to_string()),
            vec![],
        ));
    }
    variants.push((
        "ours, no adversarial update".into(),
        None,
        vec!["use_adv=0".into()],
    ));
    variants.push((
        "ours, no class head".into(),
        None,
        vec!["use_class=0".into()],
    ));
    variants.push((
        "ours, no content randomization".into(),
        None,
        vec!["use_cr=0".into()],
    ));
    let dir = cli.sweep.sweep_dir(&format!(
        "ablate-adain-{}-{}",
        cli.sweep.data.replace(['/', ':'], "_"),
        cli.sweep.preset
    ));
    let mut jobs = Vec::new();
    for (sources, target) in cli.sweep.settings()? {
        for (order, (label, adain, set)) in variants.iter().enumerate() {
            for seed in 0..cli.sweep.seeds() {
                let mut spec = cli.sweep.spec("ours", &sources, &target, seed);
                spec.adain = adain.clone();
                spec.set = set.clone();
                jobs.push(Job::new(label.clone(), order, spec, &dir));
            }
        }
    }
    cli.sweep.execute(&jobs, &dir)?;
    Ok(())
}
