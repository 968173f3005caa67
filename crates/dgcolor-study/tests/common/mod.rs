//! Shared by the study's integration tests: a study folder made from the embedded
//! benchmark's drawing code (no sweep needed), an in-process server, and a small HTTP
//! client that keeps a participant's cookie.
#![allow(dead_code)]

pub mod browser;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dgcolor_data::{render_synth, SynthConfig, SYNTH_CLASSES};
use dgcolor_study::manifest::{Design, ImageKind, Input, InputRole, Provenance, StudyMeta};
use dgcolor_study::{hue_invert, RunningServer, ServeOptions, Study, StudyWriter};
use image::RgbImage;

/// Method labels of the fabricated studies: real algorithm names, so the leak checks
/// look for exactly what a real study could leak.
pub const METHODS: [&str; 3] = ["erm", "dann", "ours"];

/// A fake "colourization" per method: visibly different, deterministic.
fn fake_colorize(rgb: &RgbImage, method: usize) -> RgbImage {
    let mut out = rgb.clone();
    for p in out.pixels_mut() {
        let [r, g, b] = p.0;
        let gray = ((r as u32 * 3 + g as u32 * 6 + b as u32) / 10) as u8;
        p.0 = match method % 3 {
            0 => [r / 2 + gray / 2, g / 2 + gray / 2, b / 2 + gray / 2],
            1 => [g, b, r],
            _ => [r, g.saturating_add(20), b],
        };
    }
    out
}

/// A study of `inputs` art_painting drawings (96 px) colourized by `methods`, with
/// `controls` ground-truth and `negatives` hue-inverted controls.
pub fn fabricate(
    dir: &Path,
    methods: &[&str],
    inputs: usize,
    controls: usize,
    negatives: usize,
    design: Design,
) -> Study {
    let cfg = SynthConfig {
        size: 96,
        per_class: 100,
        seed: 0,
        palette_shift: false,
    };
    let mut w = StudyWriter::create(dir).unwrap();
    let input = |k: usize, role| {
        let class = k % SYNTH_CLASSES.len();
        Input {
            role,
            setting: "photo+cartoon:art_painting".into(),
            target: "art_painting".into(),
            class: SYNTH_CLASSES[class].into(),
            source: format!("synth/art_painting/{}/{k}.png", SYNTH_CLASSES[class]).into(),
        }
    };
    for k in 0..inputs {
        let rgb = render_synth(1, k % SYNTH_CLASSES.len(), k, &cfg);
        let i = w.add_input(input(k, InputRole::Study));
        for (m, name) in methods.iter().enumerate() {
            w.add_image(
                i,
                ImageKind::Colorized,
                Some(name.to_string()),
                Some(Provenance {
                    run: format!("runs/{name}-art_painting-s0").into(),
                    checkpoint: format!("runs/{name}-art_painting-s0/checkpoint.safetensors")
                        .into(),
                    seed: 0,
                }),
                &fake_colorize(&rgb, m),
            )
            .unwrap();
        }
    }
    for k in inputs..inputs + controls {
        let rgb = render_synth(1, k % SYNTH_CLASSES.len(), k, &cfg);
        let i = w.add_input(input(k, InputRole::Control));
        w.add_image(i, ImageKind::GroundTruth, None, None, &rgb)
            .unwrap();
    }
    for k in inputs + controls..inputs + controls + negatives {
        let rgb = render_synth(1, k % SYNTH_CLASSES.len(), k, &cfg);
        let i = w.add_input(input(k, InputRole::Control));
        w.add_image(i, ImageKind::HueInverted, None, None, &hue_invert(&rgb))
            .unwrap();
    }
    w.finish(StudyMeta {
        title: "Colour study".into(),
        seed: 7,
        sweep: None,
        design,
        methods: methods.iter().map(|m| m.to_string()).collect(),
    })
    .unwrap()
}

/// A multi-threaded runtime and a server on a free loopback port.
pub fn serve(dir: &Path) -> (tokio::runtime::Runtime, RunningServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServeOptions::default()
    };
    let server = rt.block_on(dgcolor_study::start(dir, &opts)).unwrap();
    (rt, server)
}

/// One HTTP response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A browser-like client: no redirects followed, one cookie kept.
pub struct Client {
    pub base: String,
    pub cookie: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            cookie: None,
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    fn finish(&mut self, r: Result<ureq::Response, ureq::Error>) -> Reply {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let headers: Vec<(String, String)> = resp
            .headers_names()
            .into_iter()
            .flat_map(|n| {
                resp.all(&n)
                    .into_iter()
                    .map(|v| (n.clone(), v.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let status = resp.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        let reply = Reply {
            status,
            headers,
            body,
        };
        if let Some(c) = reply.header("set-cookie") {
            if let Some(v) = c.split(';').next() {
                if v.starts_with("dgcolor_study=") {
                    self.cookie = Some(v.to_string());
                }
            }
        }
        reply
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let r = req.call();
        self.finish(r)
    }

    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = req.call();
        self.finish(r)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let r = req.send_form(form);
        self.finish(r)
    }

    pub fn post_raw(&mut self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Content-Type", content_type);
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let r = req.send_bytes(body);
        self.finish(r)
    }

    /// Consents and returns the first question page.
    pub fn join(&mut self) -> Reply {
        let r = self.post("/start", &[("consent", "yes")]);
        assert_eq!(r.status, 303, "{}", r.text());
        assert!(self.cookie.is_some());
        self.get("/q")
    }
}

/// The value of the first `name="NAME" value="..."` in a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let start = html.find(&key)? + key.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// Every `name="choice"` value of a page, in page order.
pub fn choices(html: &str) -> Vec<String> {
    let key = "name=\"choice\" value=\"";
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        out.push(rest[..rest.find('"').unwrap()].to_string());
    }
    out
}

/// Every `/img/...` source of a page.
pub fn image_urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("src=\"/img/") {
        rest = &rest[i + 5..];
        out.push(rest[..rest.find('"').unwrap()].to_string());
    }
    out
}

/// `(done, total)` from a question page's progress bar.
pub fn progress(html: &str) -> (usize, usize) {
    let total = html
        .split("progress max=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    let done = html
        .split("value=\"")
        .find_map(|s| s.split('"').next().and_then(|v| v.parse().ok()))
        .unwrap();
    (done, total)
}

/// Answers the question on `page` (yes for naturalness, the first option otherwise);
/// returns the reply.
pub fn answer_page(c: &mut Client, page: &str, pick: usize) -> Reply {
    let item = field(page, "item").expect("a question page");
    let t = field(page, "t").unwrap();
    let opts = choices(page);
    let choice = opts[pick % opts.len()].clone();
    c.post(
        "/answer",
        &[
            ("item", &item),
            ("t", &t),
            ("choice", &choice),
            ("client_ms", "1234"),
        ],
    )
}
