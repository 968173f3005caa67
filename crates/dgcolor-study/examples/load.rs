//! Load benchmark of the study server over loopback (not a timed test):
//!
//! ```sh
//! cargo run --release -p dgcolor-study --example load [-- --participants 50 --answers 40]
//! ```
//!
//! Builds a study in a temporary folder whose plans are exactly `--answers` long, serves
//! it in this process (a 2-worker tokio runtime, as on a small lab machine), and runs
//! `--participants` simulated participants at once, each a thread with its own HTTP
//! connection: consent, then for every item `GET /q` and `POST /answer`. It reports the
//! latency of the acknowledged answer (POST until the 303 arrives, i.e. committed and
//! fsynced) and of the question page, then checks the database: every participant has
//! exactly its plan's answers, nothing lost, nothing twice.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::{answer_page, fabricate, field, serve, Client, METHODS};
use dgcolor_study::manifest::Design;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    dgcolor_study::stats::percentile_sorted(sorted, q).unwrap_or(f64::NAN)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() {
    let participants = arg("--participants", 50);
    let answers = arg("--answers", 40);
    // Plans of `answers` items: with 3 methods and the rotate design a plan holds one
    // naturalness item per input, every control and one best-of-N item per input.
    assert!(
        answers >= 4 && answers.is_multiple_of(2),
        "--answers: an even number >= 4"
    );
    let controls = if answers >= 12 { 4 } else { 1 };
    let inputs = answers / 2 - controls;
    let tmp = tempfile::tempdir().unwrap();
    let study = fabricate(
        tmp.path(),
        &METHODS,
        inputs,
        controls,
        controls,
        Design::Rotate,
    );
    assert_eq!(study.plan(0).len(), answers);
    let (rt, server) = serve(tmp.path());
    let addr = server.addr;
    println!(
        "{participants} participants x {answers} answers against {addr} ({} cores, {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let barrier = Arc::new(Barrier::new(participants));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..participants)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                barrier.wait();
                let mut page = c.join();
                let (mut post_ms, mut get_ms, mut acked) = (Vec::new(), Vec::new(), 0usize);
                loop {
                    assert_eq!(page.status, 200, "{}", page.text());
                    let html = page.text();
                    assert!(field(&html, "item").is_some());
                    let t = Instant::now();
                    let r = answer_page(&mut c, &html, i + acked);
                    post_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(r.status, 303, "answer refused: {}", r.text());
                    acked += 1;
                    let t = Instant::now();
                    page = c.get("/q");
                    get_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if page.status == 303 {
                        break;
                    }
                }
                (c.cookie.unwrap(), acked, post_ms, get_ms)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = t0.elapsed();
    let mut post: Vec<f64> = results.iter().flat_map(|r| r.2.iter().copied()).collect();
    let mut get: Vec<f64> = results.iter().flat_map(|r| r.3.iter().copied()).collect();
    post.sort_by(f64::total_cmp);
    get.sort_by(f64::total_cmp);
    let acked: usize = results.iter().map(|r| r.1).sum();

    // The database: exactly the acknowledged answers, each (participant, item) once.
    let store = server.store();
    let stored = store.answers().unwrap();
    let mut pairs: Vec<(i64, &str)> = stored
        .iter()
        .map(|a| (a.participant, a.item.as_str()))
        .collect();
    pairs.sort();
    pairs.dedup();
    let plans = store.participants().unwrap();
    assert_eq!(plans.len(), participants);
    for (cookie, n, _, _) in &results {
        let token = cookie.split_once('=').unwrap().1;
        let p = store
            .participant(&dgcolor_study::ids::token_hash(token))
            .unwrap()
            .unwrap();
        let mine = stored.iter().filter(|a| a.participant == p.id).count();
        assert_eq!((mine, *n), (answers, answers), "participant {}", p.id);
    }
    let lost = acked as i64 - stored.len() as i64;
    let duplicated = stored.len() - pairs.len();
    println!(
        "answers: {acked} acknowledged, {} stored, {lost} lost, {duplicated} duplicated",
        stored.len()
    );
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(acked, participants * answers);
    println!(
        "POST /answer (committed + fsynced, then 303): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&post, 50.0),
        percentile(&post, 99.0),
        post.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "GET /q (next question page): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&get, 50.0),
        percentile(&get, 99.0),
        get.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "wall {:.2} s, {:.0} answers/s",
        wall.as_secs_f64(),
        acked as f64 / wall.as_secs_f64().max(1e-9)
    );
    rt.block_on(server.shutdown()).unwrap();
}
