//! The study folder, participants' plans, the store and the report's bookkeeping.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{fabricate, METHODS};
use dgcolor_study::export::{csv_string, read_csv};
use dgcolor_study::manifest::{now_ms, Design, ImageKind, ItemRef, PlanEntry, IMAGES};
use dgcolor_study::report::{analyze, markdown, write_report, ReportOptions};
use dgcolor_study::store::{Answer, Insert};
use dgcolor_study::{AnswerRow, Store, Study};

#[test]
fn the_folder_has_opaque_images_and_a_private_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let study = fabricate(tmp.path(), &METHODS, 3, 2, 1, Design::Rotate);
    let m = &study.manifest;
    assert_eq!(m.images.len(), 3 * 3 + 2 + 1);
    assert_eq!(m.naturalness.len(), m.images.len());
    assert_eq!(m.best_of.len(), 3);
    let mut times = BTreeSet::new();
    for entry in std::fs::read_dir(tmp.path().join(IMAGES)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(dgcolor_study::ids::is_id(&name), "{name}");
        assert!(study.image(&name).is_some());
        times.insert(std::fs::metadata(&path).unwrap().modified().unwrap());
        // Plain PNGs of our own: no text chunks (the crate writes none).
        let bytes = std::fs::read(&path).unwrap();
        for chunk in [&b"tEXt"[..], b"iTXt", b"zTXt", b"eXIf"] {
            assert!(!bytes.windows(4).any(|w| w == chunk));
        }
    }
    assert_eq!(times.len(), 1, "one modification time for every image");
    // Re-opening reads the same study; a second build into the folder is refused.
    let again = Study::open(tmp.path()).unwrap();
    assert_eq!(again.manifest, study.manifest);
    assert!(dgcolor_study::StudyWriter::create(tmp.path()).is_err());
}

#[test]
fn plans_are_seeded_rotated_and_balanced() {
    let tmp = tempfile::tempdir().unwrap();
    let study = fabricate(tmp.path(), &METHODS, 6, 2, 2, Design::Rotate);
    let n_methods = METHODS.len() as u64;
    // Same ordinal, same plan; another ordinal, another order.
    assert_eq!(study.plan(4), study.plan(4));
    assert_ne!(study.plan(0), study.plan(1));
    let mut covered: BTreeMap<String, usize> = BTreeMap::new();
    for p in 0..n_methods {
        let plan = study.plan(p);
        assert_eq!(plan.len(), 6 + 4 + 6);
        let items: BTreeSet<&str> = plan.iter().map(|e| e.item.as_str()).collect();
        assert_eq!(items.len(), plan.len(), "no item twice");
        let mut inputs_seen = BTreeSet::new();
        let mut controls = 0;
        let mut in_part_two = false;
        for e in &plan {
            match study.item(&e.item).unwrap() {
                ItemRef::Naturalness(i) => {
                    assert!(!in_part_two, "naturalness comes first");
                    let img = study.image(&study.manifest.naturalness[i].image).unwrap();
                    if img.kind == ImageKind::Colorized {
                        assert!(inputs_seen.insert(img.input), "a scene twice in part 1");
                        *covered.entry(e.item.clone()).or_default() += 1;
                    } else {
                        controls += 1;
                    }
                }
                ItemRef::BestOf(i) => {
                    in_part_two = true;
                    let mut shown = e.options.clone();
                    shown.sort();
                    let mut all = study.manifest.best_of[i].options.clone();
                    all.sort();
                    assert_eq!(shown, all, "options are a permutation");
                }
            }
        }
        assert_eq!(controls, 4, "every control in every plan");
    }
    // Over as many participants as methods, every colourization is judged exactly once.
    assert_eq!(covered.len(), 6 * METHODS.len());
    assert!(covered.values().all(|&n| n == 1));
    // Best-of option orders vary across participants.
    let orders: BTreeSet<Vec<String>> = (0..12)
        .map(|p| study.plan(p).last().unwrap().options.clone())
        .collect();
    assert!(orders.len() > 1);

    let tmp = tempfile::tempdir().unwrap();
    let all = fabricate(tmp.path(), &METHODS, 2, 1, 0, Design::All);
    assert_eq!(all.plan(0).len(), 2 * 3 + 1 + 2);
}

fn answer(p: i64, item: &str, seq: u64, choice: &str) -> Answer {
    let now = now_ms();
    Answer {
        participant: p,
        item: item.into(),
        seq,
        choice: choice.into(),
        position: None,
        shown: None,
        issued_ms: now - 900,
        answered_ms: now,
        client_ms: Some(850),
    }
}

#[test]
fn the_store_keeps_the_first_answer_and_its_build() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.sqlite");
    let plan = vec![PlanEntry {
        item: "a".repeat(32),
        options: vec![],
    }];
    {
        let store = Store::open(&db, "build-1").unwrap();
        let mode: String = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let p = store
            .create_participant(&"f".repeat(64), now_ms(), |ordinal| {
                assert_eq!(ordinal, 0);
                plan.clone()
            })
            .unwrap();
        assert_eq!(p.id, 1);
        assert_eq!(
            store
                .insert_answer(&answer(1, &plan[0].item, 0, "yes"))
                .unwrap(),
            Insert::Stored
        );
        assert_eq!(
            store
                .insert_answer(&answer(1, &plan[0].item, 0, "no"))
                .unwrap(),
            Insert::Duplicate
        );
        // An answer of a participant that does not exist is an error, not a duplicate.
        assert!(store
            .insert_answer(&answer(9, &plan[0].item, 0, "no"))
            .is_err());
    }
    let store = Store::open(&db, "build-1").unwrap();
    let answers = store.answers().unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].choice, "yes");
    assert_eq!(
        store.participant(&"f".repeat(64)).unwrap().unwrap().plan,
        plan
    );
    assert!(store.participant(&"0".repeat(64)).unwrap().is_none());
    let token = store.admin_token.clone();
    drop(store);
    assert_eq!(Store::open_existing(&db).unwrap().admin_token, token);
    let err = Store::open(&db, "build-2").err().unwrap().to_string();
    assert!(err.contains("another build"), "{err}");
}

fn row(p: u64, protocol: &str, item: &str, method: &str, kind: &str, answer: &str) -> AnswerRow {
    AnswerRow {
        participant: p,
        protocol: protocol.into(),
        item: item.into(),
        seq: 0,
        plan_items: 0,
        image: String::new(),
        method: method.into(),
        kind: kind.into(),
        answer: answer.into(),
        expected: match kind {
            "ground_truth" => "yes".into(),
            "hue_inverted" => "no".into(),
            _ => String::new(),
        },
        shown: if protocol == "best_of_n" {
            "erm|dann|ours".into()
        } else {
            String::new()
        },
        position: None,
        setting: "photo+cartoon:art_painting".into(),
        target: "art_painting".into(),
        class: "fish".into(),
        source_image: "x.png".into(),
        response_ms: 1000 * p,
        client_ms: None,
        answered_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

#[test]
fn the_report_excludes_control_failures_and_counts_what_is_left() {
    let mut rows = Vec::new();
    // Participants 1-3 pass both controls; participant 4 fails both.
    for p in 1..=4 {
        let good = p != 4;
        rows.push(row(
            p,
            "naturalness",
            "gt",
            "",
            "ground_truth",
            if good { "yes" } else { "no" },
        ));
        rows.push(row(
            p,
            "naturalness",
            "neg",
            "",
            "hue_inverted",
            if good { "no" } else { "yes" },
        ));
        rows.push(row(
            p,
            "naturalness",
            "n-erm",
            "erm",
            "colorized",
            if p == 1 { "yes" } else { "no" },
        ));
        rows.push(row(p, "naturalness", "n-ours", "ours", "colorized", "yes"));
        rows.push(row(
            p,
            "best_of_n",
            "b1",
            "ours",
            "colorized",
            if good { "ours" } else { "erm" },
        ));
        rows.push(row(p, "best_of_n", "b2", "dann", "colorized", "dann"));
    }
    let methods: Vec<String> = METHODS.iter().map(|m| m.to_string()).collect();
    let a = analyze(&rows, &methods, &ReportOptions::default());
    assert_eq!(a.participants.total, 4);
    assert_eq!(a.participants.failed, 1);
    assert_eq!(a.answers_used, 18);
    let nat: BTreeMap<&str, (u64, u64)> = a
        .naturalness
        .iter()
        .map(|r| (r.label.as_str(), (r.yes, r.n)))
        .collect();
    assert_eq!(nat["erm"], (1, 3));
    assert_eq!(nat["ours"], (3, 3));
    assert_eq!(nat["dann"], (0, 0));
    assert_eq!(nat["ground truth (control)"], (3, 3));
    let best: BTreeMap<&str, (u64, u64)> = a
        .best_of
        .iter()
        .map(|r| (r.method.as_str(), (r.picked, r.shown)))
        .collect();
    assert_eq!(best["ours"], (3, 6));
    assert_eq!(best["dann"], (3, 6));
    assert_eq!(best["erm"], (0, 6));
    // erm never wins: no MLE, so the fit is regularized, and erm is the weakest.
    assert!(a.bt_regularized);
    let bt: BTreeMap<&str, f64> = a
        .best_of
        .iter()
        .map(|r| (r.method.as_str(), r.bt_share.unwrap()))
        .collect();
    assert!(bt["erm"] < bt["ours"] && bt["erm"] < bt["dann"]);
    // Pairs: erm-dann 0:3, erm-ours 0:3, dann-ours 3:3.
    let pairs: Vec<(String, String, u64, u64)> = a
        .pairwise
        .iter()
        .map(|p| (p.a.clone(), p.b.clone(), p.a_wins, p.b_wins))
        .collect();
    assert_eq!(
        pairs,
        [
            ("erm".into(), "dann".into(), 0, 3),
            ("erm".into(), "ours".into(), 0, 3),
            ("dann".into(), "ours".into(), 3, 3)
        ]
    );
    // With the failures included, participant 4's answers count.
    let all = analyze(
        &rows,
        &methods,
        &ReportOptions {
            include_failed: true,
            ..Default::default()
        },
    );
    assert_eq!(all.answers_used, 24);
    assert_eq!(
        all.best_of
            .iter()
            .find(|r| r.method == "erm")
            .unwrap()
            .picked,
        1
    );
    assert!(!all.bt_regularized);
    // Kappa of the naturalness items (yes/no per colourized item): erm 1:2, ours 3:0.
    let k = a.kappa_naturalness.as_ref().unwrap();
    assert_eq!((k.items, k.ratings), (2, 6));

    // The CSV round trip gives the same analysis; the files are written.
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("answers.csv");
    std::fs::write(&csv, csv_string(&rows).unwrap()).unwrap();
    let back = read_csv(&csv).unwrap();
    assert_eq!(back, rows);
    let b = analyze(&back, &methods, &ReportOptions::default());
    assert_eq!(markdown(&b), markdown(&a));
    let files = write_report(&a, &tmp.path().join("report")).unwrap();
    for name in [
        "study.md",
        "naturalness.csv",
        "naturalness.tex",
        "best_of_n.csv",
        "best_of_n.tex",
        "pairwise.csv",
        "summary.json",
        "naturalness.png",
        "best_of_n.svg",
        "section.html",
    ] {
        assert!(files.dir.join(name).is_file(), "{name}");
    }
    let section = std::fs::read_to_string(files.section).unwrap();
    assert!(section.contains("data:image/png;base64,") && section.contains("Bradley"));
    let tex = std::fs::read_to_string(files.dir.join("best_of_n.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("ours"));
}
