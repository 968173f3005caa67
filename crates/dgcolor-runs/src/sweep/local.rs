//! The local launcher: runs in this process, `parallel` at a time on each of its devices
//! (`--devices cuda:0,cuda:1 --parallel 1`: one run per GPU).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::Device;

use super::{Job, JobReport, JobState, LaunchContext, Launcher};
use crate::error::Result;
use crate::stop::StopFlag;
use crate::trainer::{train, TrainOptions, TrainOutcome};

/// Runs jobs in this process, `parallel` at a time on each device (each run also uses
/// candle's own threads). Done jobs are skipped; a failing job is reported and the others go
/// on; after a stop request (SIGTERM / SIGUSR1) the runs in progress checkpoint and no new
/// one starts.
pub struct Local {
    /// Runs at a time on each device.
    pub parallel: usize,
    /// The devices runs are spread over (`cuda:0`, `cuda:1`, ...; see [`worker_devices`]);
    /// empty: the context's `--device`.
    pub devices: Vec<String>,
}

impl Local {
    /// One run per two cores on the context's device: candle already spreads each run over
    /// the cores it has.
    pub fn fitted() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            parallel: (cores / 2).max(1),
            devices: Vec::new(),
        }
    }
}

/// The device index of each of `devices x parallel` workers: worker `w` uses device
/// `w % devices`, so the first runs are dealt to the devices in turn (round-robin) and every
/// device has `parallel` workers. A worker takes the next waiting run when its own ends, so a
/// device whose runs end sooner is not left idle behind a fixed share.
pub fn worker_devices(devices: usize, parallel: usize) -> Vec<usize> {
    let devices = devices.max(1);
    (0..devices * parallel.max(1))
        .map(|w| w % devices)
        .collect()
}

impl Launcher for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport> {
        let names = if self.devices.is_empty() {
            vec![ctx.device.clone()]
        } else {
            self.devices.clone()
        };
        // Each device is opened once and shared by its runs.
        let opened: std::result::Result<Vec<(String, Device)>, String> = names
            .iter()
            .map(|n| {
                dgcolor_eval::parse_device(n)
                    .map(|d| (n.clone(), d))
                    .map_err(|e| e.to_string())
            })
            .collect();
        let devices = match opened {
            Ok(d) => d,
            Err(e) => {
                return jobs
                    .iter()
                    .map(|job| JobReport {
                        job: job.clone(),
                        before: job.state(),
                        result: Err(e.clone()),
                    })
                    .collect()
            }
        };
        let several = devices.len() > 1;
        let finished = AtomicUsize::new(0);
        run_pool(
            jobs,
            &devices,
            self.parallel,
            &ctx.stop,
            |job, (name, device)| {
                let before = job.state();
                let result = if before == JobState::Done {
                    // A finished run is not touched, but its sidecar takes this sweep's
                    // label and row order (an older sweep may have written others).
                    job.write_sidecar()
                        .map(|()| None)
                        .map_err(|e| e.to_string())
                } else {
                    run_job(job, ctx, device).map_err(|e| e.to_string())
                };
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                let result = match result {
                    Ok(Some(TrainOutcome {
                        stopped_by: Some(signal),
                        steps,
                        ..
                    })) => Err(format!(
                        "stopped by {signal} at step {steps} (checkpointed; re-run to resume)"
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                let status = match (&result, before) {
                    (Err(e), _) => format!("FAILED: {e}"),
                    (Ok(()), JobState::Done) => "already done".into(),
                    (Ok(()), JobState::Unfinished | JobState::Running) => {
                        "resumed and finished".into()
                    }
                    (Ok(()), JobState::New) => "finished".into(),
                };
                let on = if several {
                    format!(" on {name}")
                } else {
                    String::new()
                };
                eprintln!(
                    "[{n}/{}] {} {}->{} hparams {} seed {}{on}: {status}",
                    jobs.len(),
                    job.label,
                    job.spec.sources.join("+"),
                    job.spec.target,
                    job.spec.hparams_seed,
                    job.spec.seed
                );
                JobReport {
                    job: job.clone(),
                    before,
                    result,
                }
            },
        )
    }
}

/// Runs `jobs` on the workers of [`worker_devices`]`(devices.len(), parallel)` (no more
/// workers than jobs), each calling `run` with its device; returns the reports in row order.
/// Workers take no new job once `stop` is set; jobs never started get no report.
fn run_pool<D: Sync>(
    jobs: &[Job],
    devices: &[D],
    parallel: usize,
    stop: &StopFlag,
    run: impl Fn(&Job, &D) -> JobReport + Sync,
) -> Vec<JobReport> {
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    let work = |device: &D| loop {
        if stop.signal().is_some() {
            break;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(job) = jobs.get(i) else { break };
        let report = run(job, device);
        reports.lock().expect("reports lock").push(report);
    };
    let mut workers = worker_devices(devices.len(), parallel);
    workers.truncate(jobs.len().max(1));
    // The calling thread is worker 0: in a binary it is the main thread, a worker of rayon's
    // pool (`dgcolor_kernels::setup_process`), where a training run's parallel sections start
    // without a hand-off; a spawned thread would leave it idle.
    std::thread::scope(|scope| {
        for &d in &workers[1..] {
            let work = &work;
            scope.spawn(move || work(&devices[d]));
        }
        work(&devices[workers[0]]);
    });
    let mut reports = reports.into_inner().expect("reports lock");
    reports.sort_by_key(|r| r.job.order);
    reports
}

fn run_job(job: &Job, ctx: &LaunchContext, device: &Device) -> Result<Option<TrainOutcome>> {
    job.write_sidecar()?;
    let run = job.spec.prepare(&ctx.data_root)?;
    let outcome = train(
        &run,
        &TrainOptions {
            out: job.dir.clone(),
            device: device.clone(),
            progress: false,
            stop_after: None,
            stop: ctx.stop.clone(),
        },
    )?;
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use dgcolor_algorithms::PresetName;

    use super::*;
    use crate::spec::RunSpec;

    fn jobs(n: usize) -> Vec<Job> {
        (0..n)
            .map(|i| {
                let spec = RunSpec {
                    seed: i as u64,
                    ..RunSpec::new("erm", &["photo"], "sketch", PresetName::Smoke).unwrap()
                };
                Job::new("erm", i, spec, Path::new("/nonexistent"))
            })
            .collect()
    }

    #[test]
    fn workers_go_round_robin_over_devices() {
        assert_eq!(worker_devices(2, 1), [0, 1]);
        assert_eq!(worker_devices(2, 2), [0, 1, 0, 1]);
        assert_eq!(worker_devices(3, 2), [0, 1, 2, 0, 1, 2]);
        assert_eq!(worker_devices(1, 3), [0, 0, 0]);
        assert_eq!(worker_devices(0, 0), [0]);
    }

    /// No GPU here: the pool runs on a fake device list (names), with runs that only sleep,
    /// and must keep `parallel` runs on every device, never more, and run each job once.
    #[test]
    fn the_pool_keeps_parallel_runs_on_every_device() {
        let devices = ["cuda:0", "cuda:1", "cuda:2"];
        let jobs = jobs(14);
        let busy = Mutex::new(BTreeMap::<&str, (usize, usize)>::new()); // now, peak
        let ran = Mutex::new(Vec::new());
        let first_six = std::sync::Barrier::new(6);
        let reports = run_pool(&jobs, &devices, 2, &StopFlag::default(), |job, device| {
            {
                let mut b = busy.lock().unwrap();
                let e = b.entry(device).or_default();
                e.0 += 1;
                e.1 = e.1.max(e.0);
            }
            // The first six runs wait for each other: they must all be running at once.
            if job.order < 6 {
                first_six.wait();
            }
            std::thread::sleep(Duration::from_millis(5));
            busy.lock().unwrap().get_mut(device).unwrap().0 -= 1;
            ran.lock().unwrap().push((job.order, *device));
            JobReport {
                job: job.clone(),
                before: JobState::New,
                result: Ok(()),
            }
        });
        assert_eq!(
            reports.iter().map(|r| r.job.order).collect::<Vec<_>>(),
            (0..14).collect::<Vec<_>>()
        );
        let busy = busy.into_inner().unwrap();
        for d in devices {
            assert_eq!(busy[d], (0, 2), "{d}: two runs at a time, never more");
        }
        let ran = ran.into_inner().unwrap();
        assert_eq!(ran.len(), 14);
        // The first six jobs ran at once, one per worker: two on each device.
        let mut first: Vec<&str> = ran
            .iter()
            .filter(|(o, _)| *o < 6)
            .map(|(_, d)| *d)
            .collect();
        first.sort();
        assert_eq!(
            first,
            ["cuda:0", "cuda:0", "cuda:1", "cuda:1", "cuda:2", "cuda:2"]
        );
    }

    #[test]
    fn a_stop_request_starts_no_new_run() {
        let stop = StopFlag::default();
        let jobs = jobs(5);
        let reports = run_pool(&jobs, &["cpu"], 1, &stop, |job, _| {
            if job.order == 1 {
                stop.request(15);
            }
            JobReport {
                job: job.clone(),
                before: JobState::New,
                result: Ok(()),
            }
        });
        assert_eq!(reports.len(), 2);
    }
}
