//! The user study end to end with the `dgcolor` binary: a smoke sweep, `study build`,
//! `study serve` answered by scripted participants while the server is killed with
//! SIGKILL and restarted, then `study export` and `study report` (from the database and
//! from the exported CSV).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dgcolor_study::ids::token_hash;
use dgcolor_study::{Store, Study};

fn dgcolor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(args)
        .output()
        .expect("run dgcolor");
    assert!(
        out.status.success(),
        "dgcolor {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `dgcolor study serve`.
struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Server {
    fn start(study: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
            .args(["study", "serve", s(study), "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dgcolor study serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut token = None;
        let addr = loop {
            let line = lines
                .next()
                .expect("the server printed its address")
                .unwrap();
            if let Some(t) = line.strip_prefix("admin token: ") {
                token = Some(t.to_string());
            }
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.to_string();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://{addr}"),
            token: token.expect("an admin token line"),
        }
    }

    /// SIGKILL, no goodbye.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        // SIGTERM: a graceful stop.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful stop: {status}");
    }
}

struct Reply {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
    headers: Vec<String>,
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

/// `Err` when the server is unreachable or the connection broke (it was killed).
fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut req = agent.request(method, url);
    if let Some(c) = cookie {
        req = req.set("Cookie", c);
    }
    let r = if method == "POST" {
        req.send_form(form)
    } else {
        req.call()
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let headers = resp
        .headers_names()
        .iter()
        .map(|n| format!("{n}: {}", resp.header(n).unwrap_or("")))
        .collect();
    Ok(Reply {
        status: resp.status(),
        location: resp.header("location").map(String::from),
        cookie: resp
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(String::from),
        headers,
        body: resp.into_string().map_err(|e| e.to_string())?,
    })
}

fn field(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let start = html.find(&key)? + key.len();
    Some(html[start..start + html[start..].find('"')?].to_string())
}

fn choices(html: &str) -> Vec<String> {
    html.split("name=\"choice\" value=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

/// What a scripted participant saw acknowledged: (item, choice) for every 303.
type Acked = Vec<(String, String)>;

/// The expected answer (`yes` / `no`) of every control item of a study, read from its
/// private manifest: scripted participants answer these as an attentive person would, so
/// the report's default exclusion of control failures leaves their answers in.
fn control_answers(study_dir: &Path) -> BTreeMap<String, String> {
    let study = Study::open(study_dir).unwrap();
    study
        .manifest
        .naturalness
        .iter()
        .filter_map(|item| {
            let natural = study.image(&item.image)?.kind.expected()?;
            Some((item.id.clone(), if natural { "yes" } else { "no" }.into()))
        })
        .collect()
}

/// A participant that answers its whole plan, riding out server deaths: on a broken
/// connection it waits, reads the (possibly new) address and asks for its next question
/// again. Controls get their expected answer, every other item an arbitrary one. Returns
/// its cookie and the answers the server acknowledged.
fn participant(
    base: Arc<RwLock<String>>,
    controls: Arc<BTreeMap<String, String>>,
    seed: usize,
    pause: Duration,
) -> (String, Acked) {
    let agent = agent();
    let url = |path: &str| format!("{}{path}", base.read().unwrap());
    let retry = || std::thread::sleep(Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(120);
    let cookie = loop {
        assert!(Instant::now() < deadline, "could not start");
        match request(&agent, "POST", &url("/start"), None, &[("consent", "yes")]) {
            Ok(r) if r.status == 303 => break r.cookie.unwrap(),
            Ok(r) => panic!("start: {} {}", r.status, r.body),
            Err(_) => retry(),
        }
    };
    let mut acked = Vec::new();
    let mut k = seed;
    loop {
        assert!(Instant::now() < deadline, "participant {seed} stuck");
        let page = match request(&agent, "GET", &url("/q"), Some(&cookie), &[]) {
            Ok(r) => r,
            Err(_) => {
                retry();
                continue;
            }
        };
        if page.status == 303 && page.location.as_deref() == Some("/done") {
            return (cookie, acked);
        }
        assert_eq!(page.status, 200, "{}", page.body);
        let item = field(&page.body, "item").unwrap();
        let t = field(&page.body, "t").unwrap();
        let opts = choices(&page.body);
        let choice = match controls.get(&item) {
            Some(expected) => {
                assert!(opts.contains(expected), "{opts:?}");
                expected.clone()
            }
            None => opts[k % opts.len()].clone(),
        };
        k += 1;
        std::thread::sleep(pause);
        match request(
            &agent,
            "POST",
            &url("/answer"),
            Some(&cookie),
            &[("item", &item), ("t", &t), ("choice", &choice)],
        ) {
            Ok(r) if r.status == 303 => acked.push((item, choice)),
            // Stored by a server that died before it could say so: not acknowledged.
            Ok(r) if r.status == 409 => {}
            Ok(r) => panic!("answer: {} {}", r.status, r.body),
            Err(_) => retry(),
        }
    }
}

fn smoke_study(tmp: &Path) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    dgcolor(&[
        "compare",
        "--preset",
        "smoke",
        "--algorithms",
        "erm,ours",
        "--settings",
        "photo+cartoon:art_painting",
        "--results",
        s(tmp),
        "--data-root",
        s(&data),
        "--sweep",
        "s",
    ]);
    let sweep = tmp.join("s");
    let out = dgcolor(&[
        "study",
        "build",
        "--sweep",
        s(&sweep),
        "--images",
        "6",
        "--controls",
        "2",
        "--negative-controls",
        "2",
        "--data-root",
        s(&data),
    ]);
    assert!(out.contains("16 questions per participant"), "{out}");
    (sweep.join("study"), data)
}

#[test]
fn a_smoke_study_survives_kill_9_and_reports_from_its_export() {
    let tmp = tempfile::tempdir().unwrap();
    let (study_dir, data) = smoke_study(tmp.path());
    let study = Study::open(&study_dir).unwrap();
    let m = &study.manifest;
    assert_eq!(m.methods, ["erm", "ours"]);
    assert_eq!(m.images.len(), 6 * 2 + 2 + 2);
    assert_eq!(m.best_of.len(), 6);
    // Sampling is seeded: a second build picks the same images (with new random ids).
    let again = tmp.path().join("again");
    dgcolor(&[
        "study",
        "build",
        "--sweep",
        s(&tmp.path().join("s")),
        "--out",
        s(&again),
        "--images",
        "6",
        "--controls",
        "2",
        "--negative-controls",
        "2",
        "--data-root",
        s(&data),
    ]);
    let m2 = Study::open(&again).unwrap().manifest;
    assert_eq!(m2.inputs, m.inputs);
    assert!(m2.images.iter().all(|i| study.image(&i.id).is_none()));
    // Stratified: six study images of seven classes are six different classes.
    let classes: BTreeSet<&str> = m
        .inputs
        .iter()
        .filter(|i| i.role == dgcolor_study::manifest::InputRole::Study)
        .map(|i| i.class.as_str())
        .collect();
    assert_eq!(classes.len(), 6);
    // Each colourization comes from the checkpoint model selection picks (--select val).
    for img in &m.images {
        if let Some(p) = &img.provenance {
            assert_eq!(p.checkpoint, p.run.join(dgcolor_runs::CHECKPOINT_VAL));
        }
    }

    // Phase 1: kill -9 between answers; every acknowledged answer is there after restart.
    let server = Server::start(&study_dir);
    let agent = agent();
    let start = request(
        &agent,
        "POST",
        &format!("{}/start", server.base),
        None,
        &[("consent", "yes")],
    )
    .unwrap();
    let cookie = start.cookie.unwrap();
    let mut server = Some(server);
    let mut acked = 0;
    for round in 0..3 {
        let srv = server.take().unwrap();
        for _ in 0..2 {
            let page = request(
                &agent,
                "GET",
                &format!("{}/q", srv.base),
                Some(&cookie),
                &[],
            )
            .unwrap();
            // Method names never reach the browser.
            // (as whole words: "term" or "yours" are no leak)
            for text in std::iter::once(&page.body).chain(&page.headers) {
                let words = text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
                for word in words {
                    assert!(word != "erm" && word != "ours", "{text}");
                }
            }
            let r = request(
                &agent,
                "POST",
                &format!("{}/answer", srv.base),
                Some(&cookie),
                &[
                    ("item", &field(&page.body, "item").unwrap()),
                    ("t", &field(&page.body, "t").unwrap()),
                    ("choice", &choices(&page.body)[round % 2]),
                ],
            )
            .unwrap();
            assert_eq!(r.status, 303);
            acked += 1;
        }
        srv.kill9();
        let count = Store::open_existing(&study_dir.join("study.sqlite"))
            .unwrap()
            .counts()
            .unwrap();
        assert_eq!(count, (1, acked), "after kill -9 number {round}");
        let next = Server::start(&study_dir);
        let page = request(
            &agent,
            "GET",
            &format!("{}/q", next.base),
            Some(&cookie),
            &[],
        )
        .unwrap();
        assert!(
            page.body.contains(&format!("{acked} of 16 answered")),
            "{}",
            page.body
        );
        server = Some(next);
    }

    // Phase 2: six participants answer concurrently while the server is killed -9 at
    // random moments (mid-request included) and restarted.
    let base = Arc::new(RwLock::new(server.as_ref().unwrap().base.clone()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let controls = Arc::new(control_answers(&study_dir));
    assert!(!controls.is_empty(), "the study has control items");
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let (base, results, controls) = (base.clone(), results.clone(), controls.clone());
            std::thread::spawn(move || {
                let r = participant(base, controls, i, Duration::from_millis(40 + 10 * i as u64));
                results.lock().unwrap().push(r);
            })
        })
        .collect();
    let mut kills = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    while results.lock().unwrap().len() < 6 && kills < 8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(60 + rng % 240));
        server.take().unwrap().kill9();
        kills += 1;
        let next = Server::start(&study_dir);
        *base.write().unwrap() = next.base.clone();
        server = Some(next);
    }
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        kills >= 3,
        "the participants finished before the server was killed enough"
    );
    let server = server.unwrap();

    // Nothing acknowledged was lost, nothing is there twice, every plan is complete.
    let store = Store::open_existing(&study_dir.join("study.sqlite")).unwrap();
    let participants = store.participants().unwrap();
    let answers = store.answers().unwrap();
    let mut by_p: BTreeMap<i64, Vec<&dgcolor_study::store::Answer>> = BTreeMap::new();
    for a in &answers {
        by_p.entry(a.participant).or_default().push(a);
    }
    for (cookie, acked) in results.lock().unwrap().iter() {
        let token = cookie.split_once('=').unwrap().1;
        let p = store.participant(&token_hash(token)).unwrap().unwrap();
        let mine = &by_p[&p.id];
        assert_eq!(mine.len(), p.plan.len(), "participant {} is complete", p.id);
        let items: BTreeSet<&str> = mine.iter().map(|a| a.item.as_str()).collect();
        assert_eq!(items.len(), mine.len(), "no duplicates");
        for (item, choice) in acked {
            let a = mine.iter().find(|a| &a.item == item);
            assert_eq!(
                a.map(|a| &a.choice),
                Some(choice),
                "acknowledged answer lost"
            );
        }
    }
    // 1 + 6, and possibly a participant whose consent was stored by a server that died
    // before answering (its browser then consents again): never fewer.
    assert!(participants.len() >= 7);
    assert_eq!(by_p.len(), 7);

    // The admin export (bearer token) has every answer; without the token it is 401.
    let url = format!("{}/admin/answers.csv", server.base);
    let csv = agent
        .get(&url)
        .set("Authorization", &format!("Bearer {}", server.token))
        .call();
    assert_eq!(
        csv.unwrap().into_string().unwrap().lines().count(),
        answers.len() + 1
    );
    assert_eq!(request(&agent, "GET", &url, None, &[]).unwrap().status, 401);

    // Export and report; the report from the exported CSV is the same report.
    server.stop();
    let out = dgcolor(&["study", "export", s(&study_dir)]);
    assert!(
        out.starts_with(&format!("{} answers", answers.len())),
        "{out}"
    );
    let csv_path = study_dir.join("answers.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), answers.len() + 1);
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("participant,protocol,item,"));
    let from_db = dgcolor(&["study", "report", s(&study_dir), "--data-root", s(&data)]);
    assert!(
        from_db.contains("Best of N") && from_db.contains("| erm |"),
        "{from_db}"
    );
    let from_csv = dgcolor(&[
        "study",
        "report",
        s(&study_dir),
        "--answers",
        s(&csv_path),
        "--out",
        s(&tmp.path().join("report-from-csv")),
        "--no-sweep-report",
    ]);
    let tables = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with('|'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(tables(&from_db), tables(&from_csv));
    for f in [
        "study.md",
        "naturalness.tex",
        "best_of_n.csv",
        "naturalness.png",
        "section.html",
    ] {
        assert!(study_dir.join("report").join(f).is_file(), "{f}");
    }
    // The sweep's index.html has the study's section.
    let index = std::fs::read_to_string(tmp.path().join("s/report/index.html")).unwrap();
    assert!(
        index.contains("<section id=\"user-study\">"),
        "no study section"
    );
}
