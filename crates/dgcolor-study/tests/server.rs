//! The study server over real HTTP on loopback: a whole participant, what reaches the
//! browser, one answer per item, hostile requests, restarts.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{
    answer_page, choices, fabricate, field, image_urls, progress, serve, Client, METHODS,
};
use dgcolor_study::ids::{mac_hex, random_id};
use dgcolor_study::manifest::{now_ms, Design, ItemRef};
use dgcolor_study::{answer_rows, Store};

/// Everything a method could be recognised by in a participant's browser: the labels,
/// every registered algorithm name, and the manifest-only facts (run directories,
/// source files).
fn forbidden() -> Vec<String> {
    let mut f: Vec<String> = METHODS.iter().map(|m| m.to_string()).collect();
    f.extend(
        dgcolor_algorithms::ALGORITHMS
            .iter()
            .map(|a| a.name.to_string()),
    );
    f.extend(["runs/", "checkpoint", "safetensors", "synth/", "manifest"].map(String::from));
    f
}

fn assert_no_leak(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for f in forbidden() {
        assert!(
            !lower.contains(&f.to_lowercase()),
            "{what} contains `{f}`:\n{text}"
        );
    }
}

fn check_reply(what: &str, r: &common::Reply) {
    for (k, v) in &r.headers {
        assert_no_leak(&format!("{what}: header {k}"), v);
    }
    if r.header("content-type")
        .is_some_and(|t| !t.starts_with("image/"))
    {
        assert_no_leak(what, &r.text());
    }
}

#[test]
fn a_participant_answers_both_protocols_and_no_method_reaches_the_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let study = fabricate(tmp.path(), &METHODS, 4, 2, 2, Design::Rotate);
    let plan_len = study.plan(0).len();
    assert_eq!(
        plan_len,
        4 + 2 + 2 + 4,
        "rotate: one per input, controls, best-of"
    );
    let (rt, server) = serve(tmp.path());
    let mut c = Client::new(server.addr);

    let home = c.get("/");
    assert_eq!(home.status, 200);
    assert!(home.text().contains("agree to take part"));
    check_reply("GET /", &home);
    for path in ["/static/study.css", "/static/study.js"] {
        let r = c.get(path);
        assert_eq!(r.status, 200);
        check_reply(path, &r);
    }
    // Without consent nothing is created.
    let r = c.post("/start", &[("consent", "")]);
    assert_eq!(r.status, 422);
    assert_eq!(server.store().counts().unwrap(), (0, 0));
    assert!(c.cookie.is_none());
    // Before consent the questions send you to the instructions.
    assert_eq!(c.get("/q").status, 303);

    let mut page = c.join();
    let mut seen_protocols = BTreeSet::new();
    let mut answered = 0;
    loop {
        assert_eq!(page.status, 200, "{}", page.text());
        check_reply("question", &page);
        let html = page.text();
        assert_eq!(progress(&html), (answered, plan_len));
        let item = field(&html, "item").unwrap();
        let protocol = server.study().item(&item).unwrap();
        seen_protocols.insert(format!("{:?}", protocol.protocol()));
        let opts = choices(&html);
        match protocol {
            ItemRef::Naturalness(_) => {
                assert_eq!(opts, ["yes", "no"]);
                assert!(html.contains("natural colour painting"), "{html}");
            }
            ItemRef::BestOf(_) => assert_eq!(opts.len(), METHODS.len()),
        }
        for url in image_urls(&html) {
            assert_no_leak("image URL", &url);
            let img = c.get(&url);
            assert_eq!(img.status, 200);
            assert_eq!(img.header("content-type"), Some("image/png"));
            assert!(img.header("last-modified").is_none() && img.header("etag").is_none());
            check_reply("image", &img);
        }
        let r = answer_page(&mut c, &html, answered);
        assert_eq!(r.status, 303, "{}", r.text());
        answered += 1;
        match r.header("location") {
            Some("/q") => {}
            other => panic!("answer redirected to {other:?}"),
        }
        page = c.get("/q");
        if page.status == 303 {
            assert_eq!(page.header("location"), Some("/done"));
            break;
        }
    }
    assert_eq!(answered, plan_len);
    assert_eq!(
        seen_protocols.into_iter().collect::<Vec<_>>(),
        ["BestOf", "Naturalness"]
    );
    let done = c.get("/done");
    assert_eq!(done.status, 200);
    assert!(done.text().contains("Thank you"));
    check_reply("done", &done);

    // Every answer is in SQLite, once, in plan order, with its response time.
    let answers = server.store().answers().unwrap();
    assert_eq!(answers.len(), plan_len);
    let items: HashSet<&str> = answers.iter().map(|a| a.item.as_str()).collect();
    assert_eq!(items.len(), plan_len);
    let plan = &server.store().participants().unwrap()[0].plan;
    for a in &answers {
        assert_eq!(plan[a.seq as usize].item, a.item);
        assert_eq!(a.client_ms, Some(1234));
        assert!(a.answered_ms >= a.issued_ms);
    }
    // The export names the methods (it is the researcher's), with the shown order.
    let rows = answer_rows(server.study(), server.store()).unwrap();
    let best: Vec<_> = rows.iter().filter(|r| r.is_best_of()).collect();
    assert_eq!(best.len(), 4);
    for r in &best {
        let shown: BTreeSet<&str> = r.shown_methods().into_iter().collect();
        assert_eq!(shown, METHODS.iter().copied().collect());
        assert_eq!(r.shown_methods()[r.position.unwrap() as usize], r.answer);
    }
    rt.block_on(server.shutdown()).unwrap();
}

/// What a hostile request must not do: change the number of stored answers or
/// participants.
fn unchanged(store: &Store, before: (u64, u64), what: &str) {
    assert_eq!(store.counts().unwrap(), before, "{what} wrote something");
}

/// Sends raw bytes and returns what came back (possibly nothing) once the server closes
/// the connection (requests say `Connection: close`). A request that leaves the server
/// waiting for more is closed on our side after sending (`half_close`).
fn raw_with(addr: std::net::SocketAddr, bytes: &[u8], half_close: bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    raw_with(addr, bytes, false)
}

fn status_of(raw_reply: &str) -> Option<u16> {
    raw_reply.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn hostile_requests_get_a_4xx_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fabricate(tmp.path(), &METHODS, 3, 1, 1, Design::Rotate);
    let (rt, server) = serve(tmp.path());
    let store = server.store();
    let addr = server.addr;
    let mut a = Client::new(addr);
    let mut b = Client::new(addr);
    let page_a = a.join().text();
    let page_b = b.join().text();
    let item_a = field(&page_a, "item").unwrap();
    let t_a = field(&page_a, "t").unwrap();
    let item_b = field(&page_b, "item").unwrap();
    let t_b = field(&page_b, "t").unwrap();
    let yes_or_first = |page: &str| choices(page)[0].clone();
    let choice_a = yes_or_first(&page_a);
    let before = store.counts().unwrap();
    assert_eq!(before, (2, 0));

    // An item of the study that is not in A's plan (rotate: another method's image of
    // an input A sees).
    let plan_a = &store.participants().unwrap()[0].plan;
    let foreign = server
        .study()
        .manifest
        .naturalness
        .iter()
        .map(|n| n.id.clone())
        .find(|id| !plan_a.iter().any(|e| e.item == *id))
        .unwrap();
    // A best-of item of A and an option of another best-of item.
    let best_a = plan_a
        .iter()
        .find(|e| !e.options.is_empty())
        .unwrap()
        .clone();
    let other_option = server
        .study()
        .manifest
        .best_of
        .iter()
        .find(|b| b.id != best_a.item)
        .unwrap()
        .options[0]
        .clone();
    let secret = store.secret.clone();
    let pid_a = 1;
    let craft = |item: &str, issued: u64| {
        format!(
            "{issued}.{}",
            mac_hex(&secret, &format!("ticket|{pid_a}|{item}|{issued}"))
        )
    };
    let now = now_ms();
    // (what, form fields, expected status)
    type Case = (&'static str, Vec<(&'static str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            "unknown item",
            vec![
                ("item", random_id()),
                ("t", t_a.clone()),
                ("choice", choice_a.clone()),
            ],
            404,
        ),
        (
            "path-like item",
            vec![
                ("item", "../manifest.json".into()),
                ("t", t_a.clone()),
                ("choice", choice_a.clone()),
            ],
            404,
        ),
        (
            "item not in the plan",
            vec![
                ("item", foreign.clone()),
                ("t", craft(&foreign, now)),
                ("choice", "yes".into()),
            ],
            403,
        ),
        (
            "forged ticket",
            vec![
                ("item", item_a.clone()),
                ("t", format!("{now}.{}", "0".repeat(64))),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "ticket without a MAC",
            vec![
                ("item", item_a.clone()),
                ("t", now.to_string()),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "ticket of another item",
            vec![
                ("item", item_a.clone()),
                ("t", craft(&foreign, now)),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "ticket of another participant",
            vec![
                ("item", item_b.clone()),
                ("t", t_b.clone()),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "expired ticket",
            vec![
                ("item", item_a.clone()),
                ("t", craft(&item_a, now - 25 * 3600 * 1000)),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "ticket from the future",
            vec![
                ("item", item_a.clone()),
                ("t", craft(&item_a, now + 3600 * 1000)),
                ("choice", choice_a.clone()),
            ],
            403,
        ),
        (
            "not yes or no",
            vec![
                ("item", item_a.clone()),
                ("t", t_a.clone()),
                ("choice", "maybe".into()),
            ],
            422,
        ),
        (
            "best-of option of another item",
            vec![
                ("item", best_a.item.clone()),
                ("t", craft(&best_a.item, now)),
                ("choice", other_option.clone()),
            ],
            422,
        ),
        (
            "yes to a best-of item",
            vec![
                ("item", best_a.item.clone()),
                ("t", craft(&best_a.item, now)),
                ("choice", "yes".into()),
            ],
            422,
        ),
        (
            "negative client time",
            vec![
                ("item", item_a.clone()),
                ("t", t_a.clone()),
                ("choice", choice_a.clone()),
                ("client_ms", "-5".into()),
            ],
            422,
        ),
        (
            "huge client time",
            vec![
                ("item", item_a.clone()),
                ("t", t_a.clone()),
                ("choice", choice_a.clone()),
                ("client_ms", "999999999999".into()),
            ],
            422,
        ),
        (
            "text client time",
            vec![
                ("item", item_a.clone()),
                ("t", t_a.clone()),
                ("choice", choice_a.clone()),
                ("client_ms", "soon".into()),
            ],
            422,
        ),
        (
            "missing choice",
            vec![("item", item_a.clone()), ("t", t_a.clone())],
            422,
        ),
    ];
    for (what, form, want) in &cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = a.post("/answer", &form);
        assert_eq!(r.status, *want, "{what}: {}", r.text());
        unchanged(store, before, what);
    }
    // No cookie, a cookie naming nobody, a malformed cookie.
    for cookie in [
        None,
        Some(format!("dgcolor_study={}", random_id())),
        Some("dgcolor_study=../../x".into()),
    ] {
        let mut c = Client::new(addr);
        c.cookie = cookie.clone();
        let r = c.post(
            "/answer",
            &[("item", &item_a), ("t", &t_a), ("choice", &choice_a)],
        );
        assert_eq!(r.status, 403, "cookie {cookie:?}");
        unchanged(store, before, "an answer without a participant");
    }
    // Bodies: wrong type, oversized (with a length, and chunked without one).
    let r = a.post_raw("/answer", "application/json", b"{\"item\":1}");
    assert_eq!(r.status, 415);
    let cookie = a.cookie.clone().unwrap();
    let big = format!(
        "item={item_a}&t={t_a}&choice=yes&pad={}",
        "x".repeat(10_000)
    );
    let request = format!(
        "POST /answer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(status_of(&raw(addr, request.as_bytes())), Some(413));
    let mut chunked = format!(
        "POST /answer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..4 {
        chunked.push_str(&format!("1000\r\n{}\r\n", "a".repeat(4096)));
    }
    chunked.push_str("0\r\n\r\n");
    assert_eq!(status_of(&raw(addr, chunked.as_bytes())), Some(413));
    unchanged(store, before, "oversized bodies");
    let body = "consent=yes&x=".repeat(1000);
    let request = format!(
        "POST /start HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status_of(&raw(addr, request.as_bytes())), Some(413));
    unchanged(store, before, "an oversized consent");

    // Files: only images, only by id; no path gets out of images/.
    let id = image_urls(&page_a)[0]
        .trim_start_matches("/img/")
        .to_string();
    for path in [
        "/manifest.json".to_string(),
        "/study.sqlite".into(),
        "/images/".to_string() + &id + ".png",
        "/img/".to_string() + &id + ".png",
        "/img/".to_string() + &id.to_uppercase(),
        "/img/..%2Fmanifest.json".into(),
        "/img/%2e%2e%2fmanifest.json".into(),
        "/img/..%2F..%2F..%2Fetc%2Fpasswd".into(),
        "/img/../manifest.json".into(),
        "/static/../manifest.json".into(),
        "/static/%2e%2e/manifest.json".into(),
        "/img/".to_string() + &random_id(),
    ] {
        let r = a.get(&path);
        assert_eq!(r.status, 404, "{path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("\"uid\""), "{path} served the manifest");
    }
    // Raw: path traversal the client library would normalise.
    for target in [
        "/img/../manifest.json",
        "/../manifest.json",
        "//manifest.json",
    ] {
        let reply = raw(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            matches!(status_of(&reply), Some(400..=499)),
            "{target}: {reply}"
        );
        assert!(!reply.contains("\"uid\""));
    }
    assert_eq!(a.get("/answer").status, 405);

    // The admin pages want the token.
    let mut anon = Client::new(addr);
    assert_eq!(anon.get("/admin").status, 401);
    assert_eq!(anon.get("/admin/answers.csv").status, 401);
    assert_eq!(
        anon.get(&format!("/admin?token={}", random_id())).status,
        401
    );
    let wrong = format!("Bearer {}", random_id());
    assert_eq!(
        anon.get_with("/admin/answers.csv", &[("Authorization", &wrong)])
            .status,
        401
    );
    let mut as_participant = Client::new(addr);
    as_participant.cookie = a.cookie.clone();
    assert_eq!(as_participant.get("/admin").status, 401);

    // Malformed HTTP: garbage, bad header bytes, huge headers, a truncated request. The
    // server answers 4xx or closes, and keeps serving.
    let garbage: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1_000_000)
        )
        .into_bytes(),
        b"POST /answer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nitem=".to_vec(),
        b"POST /answer HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /img/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for g in &garbage {
        let reply = raw_with(addr, g, true);
        if let Some(s) = status_of(&reply) {
            assert!(
                (400..500).contains(&s),
                "{:?}: {reply}",
                String::from_utf8_lossy(&g[..g.len().min(60)])
            );
        }
        assert_eq!(
            Client::new(addr).get("/").status,
            200,
            "server stopped serving"
        );
    }
    unchanged(store, before, "malformed requests");

    // A real answer still goes through; replaying it (even with another choice) is
    // refused and the first answer stays.
    let r = a.post(
        "/answer",
        &[("item", &item_a), ("t", &t_a), ("choice", &choice_a)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let after = (before.0, before.1 + 1);
    let other = choices(&page_a).last().unwrap().clone();
    for c in [&choice_a, &other] {
        let r = a.post("/answer", &[("item", &item_a), ("t", &t_a), ("choice", c)]);
        assert_eq!(r.status, 409);
        unchanged(store, after, "a replayed answer");
    }
    assert_eq!(store.answers().unwrap()[0].choice, choice_a);
    // B's own answer with B's ticket is fine.
    let r = b.post(
        "/answer",
        &[
            ("item", &item_b),
            ("t", &t_b),
            ("choice", &yes_or_first(&page_b)),
        ],
    );
    assert_eq!(r.status, 303);
    // The admin export (bearer token) has both answers.
    let bearer = format!("Bearer {}", server.admin_token);
    let csv = anon.get_with("/admin/answers.csv", &[("Authorization", &bearer)]);
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text().lines().count(), 3, "{}", csv.text());
    // The admin link moves the token into a cookie.
    let r = anon.get(&format!("/admin?token={}", server.admin_token));
    assert_eq!(r.status, 303);
    let admin_cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = anon.get_with("/admin", &[("Cookie", &admin_cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Results so far"));
    rt.block_on(server.shutdown()).unwrap();
}

#[test]
fn concurrent_copies_of_one_answer_store_exactly_one() {
    let tmp = tempfile::tempdir().unwrap();
    fabricate(tmp.path(), &METHODS, 2, 1, 1, Design::All);
    let (rt, server) = serve(tmp.path());
    let mut a = Client::new(server.addr);
    let page = a.join().text();
    let form: Vec<(String, String)> = vec![
        ("item".into(), field(&page, "item").unwrap()),
        ("t".into(), field(&page, "t").unwrap()),
        ("choice".into(), choices(&page)[0].clone()),
    ];
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (addr, cookie, form) = (server.addr, a.cookie.clone(), form.clone());
                s.spawn(move || {
                    let mut c = Client::new(addr);
                    c.cookie = cookie;
                    let f: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    c.post("/answer", &f).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(server.store().counts().unwrap(), (1, 1));
    rt.block_on(server.shutdown()).unwrap();
}

#[test]
fn a_restarted_server_continues_the_study() {
    let tmp = tempfile::tempdir().unwrap();
    fabricate(tmp.path(), &METHODS, 3, 1, 1, Design::Rotate);
    let (rt, server) = serve(tmp.path());
    let token = server.admin_token.clone();
    let mut a = Client::new(server.addr);
    let mut page = a.join().text();
    for k in 0..3 {
        assert_eq!(answer_page(&mut a, &page, k).status, 303);
        page = a.get("/q").text();
    }
    let plan = server.store().participants().unwrap()[0].plan.clone();
    // A second server on the same study is refused while the first runs.
    let busy = rt.block_on(dgcolor_study::start(tmp.path(), &Default::default()));
    assert!(
        matches!(busy, Err(dgcolor_study::StudyError::Busy { .. })),
        "{:?}",
        busy.err()
    );
    rt.block_on(server.shutdown()).unwrap();
    drop(rt);

    let (rt, server) = serve(tmp.path());
    assert_eq!(
        server.admin_token, token,
        "the admin token survives restarts"
    );
    let mut again = Client::new(server.addr);
    again.cookie = a.cookie.clone();
    let page = again.get("/q").text();
    let total = plan.len();
    assert_eq!(progress(&page), (3, total));
    assert_eq!(
        field(&page, "item").unwrap(),
        plan[3].item,
        "the same plan goes on"
    );
    // The old page's ticket is still valid for its item (the HMAC key is stored).
    assert_eq!(answer_page(&mut again, &page, 0).status, 303);
    assert_eq!(server.store().participants().unwrap()[0].plan, plan);
    assert_eq!(server.store().counts().unwrap(), (1, 4));
    // A new participant gets the next number.
    let mut b = Client::new(server.addr);
    b.join();
    assert_eq!(server.store().participants().unwrap()[1].id, 2);
    rt.block_on(server.shutdown()).unwrap();
}
