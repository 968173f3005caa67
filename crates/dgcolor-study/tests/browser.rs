//! End to end in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver. A participant reads the instructions, gives
//! consent, answers both protocols by clicking, and the answers land in SQLite exactly as
//! clicked. CI (`CI` set) fails when the browser is missing; a local run without it skips
//! with a message.

mod common;

use std::time::{Duration, Instant};

use common::browser::{available, Browser};
use common::{fabricate, field, progress, serve, METHODS};
use dgcolor_study::manifest::{Design, ItemRef};
use fantoccini::Locator;

fn browser_or_skip() -> bool {
    match available() {
        Ok(()) => true,
        Err(why)
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") =>
        {
            panic!("the browser test needs Chromium in CI: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED the browser test: {why}");
            false
        }
    }
}

/// Waits until the page is a new question (its progress moved past `done`) or the
/// closing page.
async fn next_page(b: &Browser, done: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let html = b.c().source().await.unwrap();
        if html.contains("Thank you")
            || (html.contains("progress max=") && progress(&html).0 > done)
        {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "no next page after {done} answers:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[test]
fn a_participant_answers_both_protocols_by_clicking_in_chromium() {
    if !browser_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let study = fabricate(tmp.path(), &METHODS, 3, 1, 1, Design::Rotate);
    let plan_len = study.plan(0).len();
    let (rt, server) = serve(tmp.path());
    let base = format!("http://{}", server.addr);
    let shots = std::env::var_os("DGCOLOR_STUDY_SCREENSHOTS").map(std::path::PathBuf::from);
    let clicked = rt.block_on(async {
        let b = Browser::start(1100, 900).await;
        let c = b.c();
        c.goto(&format!("{base}/")).await.unwrap();
        let home = c.source().await.unwrap();
        assert!(home.contains("How natural does the colour look?"), "{home}");
        // Consent is required by the form itself: Start without the box stays put.
        c.find(Locator::Css("button.primary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/");
        c.find(Locator::Css("input[name=consent]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("button.primary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // Wait for the first question (progress 0 of N).
        let mut html = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !html.contains("name=\"item\"") {
            assert!(Instant::now() < deadline, "no first question:\n{html}");
            tokio::time::sleep(Duration::from_millis(30)).await;
            html = c.source().await.unwrap();
        }
        let mut clicked = Vec::new();
        let mut shot_taken = [false, false];
        for k in 0..plan_len {
            assert_eq!(progress(&html), (k, plan_len));
            for m in METHODS {
                assert!(!html.to_lowercase().contains(m), "method `{m}` in the page");
            }
            let item = field(&html, "item").unwrap();
            let which = match server.study().item(&item).unwrap() {
                ItemRef::Naturalness(_) => 0,
                ItemRef::BestOf(_) => 1,
            };
            if let Some(dir) = &shots {
                if !shot_taken[which] {
                    // Wait for the images to be decoded before the picture is taken.
                    c.execute(
                        "return Array.from(document.images).every(i => i.complete)",
                        vec![],
                    )
                    .await
                    .unwrap();
                    let png = c.screenshot().await.unwrap();
                    let name = ["study-naturalness.png", "study-best-of-n.png"][which];
                    std::fs::write(dir.join(name), png).unwrap();
                    shot_taken[which] = true;
                }
            }
            let (selector, value) = if which == 0 {
                let v = if k % 2 == 0 { "yes" } else { "no" };
                (format!("button[value={v}]"), v.to_string())
            } else {
                let buttons = c.find_all(Locator::Css(".options button")).await.unwrap();
                assert_eq!(buttons.len(), METHODS.len());
                let v = buttons[1].attr("value").await.unwrap().unwrap();
                (format!("button[value=\"{v}\"]"), v)
            };
            c.find(Locator::Css(&selector))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            clicked.push((item, value));
            html = next_page(&b, k).await;
        }
        assert!(html.contains("Thank you"), "{html}");
        assert_eq!(c.current_url().await.unwrap().path(), "/done");
        b.close().await;
        clicked
    });
    // Every click is in SQLite, as clicked, with the browser's own response time.
    let answers = server.store().answers().unwrap();
    assert_eq!(answers.len(), plan_len);
    for (item, value) in &clicked {
        let a = answers.iter().find(|a| &a.item == item).unwrap();
        assert_eq!(&a.choice, value);
        assert!(a.client_ms.is_some(), "the script filled client_ms");
        if !a.choice.starts_with('y') && a.choice.len() == 32 {
            assert_eq!(a.position, Some(1), "the second picture was clicked");
        }
    }
    rt.block_on(server.shutdown()).unwrap();
}
