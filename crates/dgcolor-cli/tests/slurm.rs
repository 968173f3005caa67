//! `dgcolor compare --launcher slurm` on a real one-node Slurm cluster, started and stopped by
//! `scripts/slurm-cluster.sh` (Debian's slurm-wlm and munge, as root). A smoke sweep of two
//! runs is submitted as a job array; one task gets the time-limit warning (SIGUSR1 to its
//! batch shell, as `--signal=B:USR1@T` sends it) and requeues itself, the other is requeued by
//! `scontrol requeue` (SIGTERM, as a preemption) and later cancelled mid-run and resubmitted
//! with `--resubmit-failed`. Every interruption checkpoints and resumes; `--status` agrees
//! with `squeue` along the way; the report's tables equal those of the same sweep run by the
//! local launcher; stopping the cluster leaves none of its processes.
//!
//! Without Slurm (or not as root) the test is skipped with a message, except under CI (`CI`
//! set, and not to `false` or `0`), where it fails: `.ci/run` installs the packages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dgcolor_runs::sweep::{read_submissions, read_task_events, TaskEvent};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join(tool).is_file())
            || Path::new("/usr/sbin").join(tool).is_file()
    })
}

/// The cluster of `scripts/slurm-cluster.sh start DIR`; stopped on drop if the test did not.
struct Cluster {
    dir: PathBuf,
    stopped: bool,
}

impl Cluster {
    /// `None` (skip) where Slurm cannot run here and `CI` is unset; a panic under CI.
    fn start(dir: &Path) -> Option<Cluster> {
        let missing: Vec<&str> = ["munged", "slurmctld", "slurmd", "sbatch", "squeue"]
            .into_iter()
            .filter(|t| !on_path(t))
            .collect();
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        let why = if !missing.is_empty() {
            Some(format!(
                "{} not installed (apt-get install slurm-wlm munge)",
                missing.join(", ")
            ))
        } else if !root {
            Some("the test cluster's daemons run as root".into())
        } else {
            None
        };
        if let Some(why) = why {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "CI must run the Slurm test, but {why}");
            eprintln!("SKIPPED: the Slurm launcher test needs a one-node cluster: {why}");
            return None;
        }
        let out = Command::new(repo_root().join("scripts/slurm-cluster.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the test cluster did not start:\n{}",
            text(&out)
        );
        Some(Cluster {
            dir: dir.to_path_buf(),
            stopped: false,
        })
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn slurm(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap()
    }

    fn stop(&mut self) -> Output {
        self.stopped = true;
        Command::new(repo_root().join("scripts/slurm-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output()
            .unwrap()
    }

    /// The daemons' pids as `start` recorded them.
    fn pids(&self) -> Vec<u32> {
        ["munged", "slurmctld", "slurmd"]
            .iter()
            .map(|n| {
                std::fs::read_to_string(self.dir.join("pids").join(n))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            let out = self.stop();
            eprintln!("cluster stopped after a failure:\n{}", text(&out));
        }
    }
}

/// Task `<job>_<index>` -> state, as `squeue` lists this cluster's tasks.
fn squeue(cluster: &Cluster) -> BTreeMap<String, String> {
    let out = cluster.slurm("squeue", &["--noheader", "--array", "--format=%F_%K %T"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (task, state) = l.trim().split_once(' ')?;
            Some((task.to_string(), state.to_string()))
        })
        .collect()
}

/// One line of `--status`: (state, Slurm task, step/steps).
type StatusLine = (String, String, String);

fn trained_steps(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("{\"kind\":\"train\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Everything that says what a cluster and a sweep were doing, for a failure message.
fn diagnose(cluster: &Cluster, sweep: &Path) -> String {
    let mut s = String::new();
    let out = cluster.slurm("squeue", &["--array", "--all", "-o", "%i %T %r %M"]);
    s.push_str(&format!(
        "squeue:\n{}",
        String::from_utf8_lossy(&out.stdout)
    ));
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["runs", "slurm"] {
        for entry in std::fs::read_dir(sweep.join(dir)).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                for f in std::fs::read_dir(&path).unwrap() {
                    files.push(f.unwrap().path());
                }
            } else {
                files.push(path);
            }
        }
    }
    for log in ["slurmctld.log", "slurmd.log"] {
        files.push(cluster.dir.join("log").join(log));
    }
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if [".log", ".jsonl", ".out", ".txt"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            s.push_str(&format!("--- {}:\n{tail}\n", f.display()));
        }
    }
    s
}

fn wait_for(
    what: &str,
    deadline: Instant,
    diagnose: &dyn Fn() -> String,
    mut ok: impl FnMut() -> bool,
) {
    while !ok() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", diagnose());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(run: &Path) -> Vec<TaskEvent> {
    read_task_events(run)
}

/// (event, status, signal) of each event, to compare with what a test expects.
fn event_kinds(run: &Path) -> Vec<(String, Option<i32>, String)> {
    events(run)
        .into_iter()
        .map(|e| (e.event, e.status, e.signal.unwrap_or_default()))
        .collect()
}

#[test]
fn a_slurm_sweep_survives_requeues_and_a_cancellation_and_reports_as_a_local_one() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut cluster) = Cluster::start(&tmp.path().join("cluster")) else {
        return;
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(420);
    let data_root = tmp.path().join("data");
    let compare = |results: &Path, extra: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_dgcolor"))
            .arg("compare")
            .args(["--preset", "smoke", "--algorithms", "erm,ours"])
            .args(["--settings", "photo+cartoon:art_painting", "--steps", "120"])
            .args(["--sweep", "s", "--results", results.to_str().unwrap()])
            .args(["--data-root", data_root.to_str().unwrap()])
            .args(extra)
            .env("SLURM_CONF", cluster.conf())
            // One thread per run, in the cluster's tasks and in the local sweep alike.
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let on_slurm = tmp.path().join("slurm");
    let sweep = on_slurm.join("s");
    let slurm_args = ["--launcher", "slurm", "--slurm-cpus", "1"];
    let status = || -> BTreeMap<String, StatusLine> {
        let out = compare(&on_slurm, &["--status"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && !l.contains(" runs: ")).then(|| {
                    (
                        f[3].to_string(),
                        (f[0].to_string(), f[1].to_string(), f[2].to_string()),
                    )
                })
            })
            .collect()
    };
    // `--status` against squeue: every run whose task squeue lists is running or pending as
    // squeue says (or done, if it finished between the two), every other run done or failed.
    // Retried until squeue reads the same before and after, so no transition falls between.
    let status_agrees_with_squeue = || {
        for _ in 0..20 {
            let before = squeue(&cluster);
            let st = status();
            if squeue(&cluster) != before {
                continue;
            }
            for (run, (state, task, _)) in &st {
                let expected: &[&str] = match before.get(task).map(String::as_str) {
                    Some("RUNNING" | "COMPLETING" | "CONFIGURING") => &["running", "done"],
                    Some(_) => &["pending"],
                    None => &["done", "failed"],
                };
                assert!(
                    expected.contains(&state.as_str()),
                    "{run}: --status says {state} for task {task}; squeue: {before:?}"
                );
            }
            return st;
        }
        panic!("squeue never read the same twice in a row");
    };

    let out = compare(&on_slurm, &slurm_args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted batch job "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no job id printed: {stdout}"))
        .to_string();
    let submissions = read_submissions(&sweep).unwrap();
    assert_eq!(submissions.len(), 1);
    assert_eq!(submissions[0].job_id, job);
    let runs: Vec<PathBuf> = submissions[0]
        .runs
        .iter()
        .map(|r| sweep.join("runs").join(r))
        .collect();
    let (erm, ours) = (&runs[0], &runs[1]);
    let dump = || diagnose(&cluster, &sweep);
    assert!(erm.to_str().unwrap().contains("/erm-") && ours.to_str().unwrap().contains("/ours-"));
    let (erm_task, ours_task) = (format!("{job}_0"), format!("{job}_1"));
    let script = std::fs::read_to_string(&submissions[0].script).unwrap();
    for line in [
        "#SBATCH --array=0-1\n",
        "#SBATCH --requeue\n",
        "#SBATCH --signal=B:USR1@120\n",
        "#SBATCH --cpus-per-task=1\n",
    ] {
        assert!(script.contains(line), "{line} missing:\n{script}");
    }
    // A second submission while both are queued submits nothing.
    let out = compare(&on_slurm, &slurm_args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to submit"),
        "{}",
        text(&out)
    );

    // Both runs mid-run: the first training record (step 10 of 120) is there.
    wait_for("both runs at step 10", deadline, &dump, || {
        trained_steps(erm) >= 10 && trained_steps(ours) >= 10
    });
    let st = status_agrees_with_squeue();
    assert!(st.values().all(|(s, _, _)| s == "running"), "{st:?}");
    // erm: the time-limit warning, as `--signal=B:USR1@T` sends it (to the batch shell only).
    let out = cluster.slurm("scancel", &["--batch", "--signal=USR1", erm_task.as_str()]);
    assert!(out.status.success(), "{}", text(&out));
    // ours: an administrator's requeue (SIGTERM to the task, as a preemption sends it).
    let out = cluster.slurm("scontrol", &["requeue", ours_task.as_str()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "both tasks to stop and be queued again",
        deadline,
        &dump,
        || {
            events(erm).iter().any(|e| e.event == "end")
                && events(ours).iter().any(|e| e.event == "end")
        },
    );
    for (run, signal) in [(erm, "USR1"), (ours, "TERM")] {
        let end = events(run).into_iter().find(|e| e.event == "end").unwrap();
        assert_eq!(
            (end.status, end.signal.as_deref()),
            (Some(75), Some(signal)),
            "{}: the trainer was still running and checkpointed\n{}",
            run.display(),
            dump()
        );
    }
    status_agrees_with_squeue();

    // ours, requeued, resumes; cancelled mid-run again it is failed until resubmitted.
    let stopped_at = trained_steps(ours);
    wait_for(
        "ours to resume and train 10 more steps",
        deadline,
        &dump,
        || trained_steps(ours) >= stopped_at + 10,
    );
    let out = cluster.slurm("scancel", &[ours_task.as_str()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "the cancelled task to leave the queue",
        deadline,
        &dump,
        || !squeue(&cluster).contains_key(&ours_task),
    );
    let st = status_agrees_with_squeue();
    let line = &st[ours.file_name().unwrap().to_str().unwrap()];
    assert_eq!(
        (line.0.as_str(), line.1.as_str()),
        ("failed", ours_task.as_str())
    );
    let out = compare(
        &on_slurm,
        &[&slurm_args[..], &["--resubmit-failed"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("submitted batch job ") && stdout.contains(": 1 run "),
        "{stdout}"
    );
    let submissions = read_submissions(&sweep).unwrap();
    assert_eq!(submissions.len(), 2);
    assert_eq!(
        submissions[1].runs,
        [ours.file_name().unwrap().to_str().unwrap()]
    );
    let resubmitted = format!("{}_0", submissions[1].job_id);
    let st = status_agrees_with_squeue();
    assert_eq!(st[&submissions[1].runs[0]].1, resubmitted);

    wait_for("every run to be done", deadline, &dump, || {
        runs.iter().all(|r| r.join("done").exists())
    });
    wait_for("the queue to empty", deadline, &dump, || {
        squeue(&cluster).is_empty()
    });
    let st = status_agrees_with_squeue();
    assert!(
        st.values()
            .all(|(s, _, step)| s == "done" && step == "120/120"),
        "{st:?}"
    );
    let kinds = |v: &[(&str, Option<i32>, &str)]| -> Vec<(String, Option<i32>, String)> {
        v.iter()
            .map(|(e, s, g)| (e.to_string(), *s, g.to_string()))
            .collect()
    };
    assert_eq!(
        event_kinds(erm),
        kinds(&[
            ("start", None, ""),
            ("end", Some(75), "USR1"),
            ("requeue", None, ""),
            ("start", None, ""),
            ("end", Some(0), ""),
        ])
    );
    assert_eq!(
        event_kinds(ours),
        kinds(&[
            ("start", None, ""),
            ("end", Some(75), "TERM"),
            ("start", None, ""),
            ("end", Some(75), "TERM"),
            ("start", None, ""),
            ("end", Some(0), ""),
        ])
    );
    assert_eq!(events(erm)[3].restart, 1, "Slurm counted the requeue");
    // Each run's output stayed in its directory: the last call resumed and finished.
    for run in &runs {
        let stdout = std::fs::read_to_string(run.join("stdout.log")).unwrap();
        let outcome = serde_json::Deserializer::from_str(&stdout)
            .into_iter::<serde_json::Value>()
            .last()
            .unwrap()
            .unwrap();
        assert_eq!(outcome["finished"], true);
        assert!(outcome["resumed_from"].as_u64().unwrap() > 0, "{stdout}");
        let stderr = std::fs::read_to_string(run.join("stderr.log")).unwrap();
        assert!(stderr.contains("checkpointed in"), "{stderr}");
    }
    let slurm_time = started.elapsed();

    // The report of the Slurm sweep, and the same sweep by the local launcher.
    let report = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(["report", sweep.to_str().unwrap()])
        .args(["--data-root", data_root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report));
    let local = tmp.path().join("local");
    let out = compare(&local, &["--parallel", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let tables = |sweep: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(sweep.join("report/tables"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (tables(&sweep), tables(&local.join("s")));
    assert!(a.keys().filter(|k| k.ends_with(".csv")).count() >= 10);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs between the Slurm and the local sweep:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&b[name])
        );
    }

    let pids = cluster.pids();
    let out = cluster.stop();
    assert!(out.status.success(), "{}", text(&out));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} is still alive"
        );
    }
    eprintln!(
        "Slurm part {:.0} s, whole test {:.0} s",
        slurm_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
