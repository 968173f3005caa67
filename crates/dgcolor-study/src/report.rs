//! `dgcolor study report`: the statistics of the answers, as tables (Markdown, CSV,
//! LaTeX), plots (PNG, SVG), a JSON summary and an HTML section that the sweep's
//! `index.html` embeds.
//!
//! - **Controls.** A participant's control accuracy is the share of control items
//!   (ground truth: expected "yes"; hue-inverted ground truth: expected "no") answered as
//!   expected. A participant below [`ReportOptions::control_threshold`] fails; their
//!   answers are left out of every other number unless [`ReportOptions::include_failed`].
//! - **Naturalness.** Per method, the share of "yes" over its colourizations, with the
//!   Wilson 95% interval; the controls' rows beside them.
//! - **Best of N.** Per method, the share of the best-of-N questions it was shown in where
//!   it was picked, with a 95% percentile-bootstrap interval that resamples participants.
//! - **Bradley–Terry.** A pick of A among {A, B, C} implies that A beat B and A beat C;
//!   Bradley–Terry strengths are fitted to those implied pairwise wins (log-strength
//!   relative to the first method, its standard error, and the strengths normalised to sum
//!   to 1). Each pair's implied wins also get an exact two-sided sign test, Holm-adjusted
//!   over the pairs.
//! - **Agreement.** Fleiss' kappa over the naturalness items (yes / no, colourizations
//!   only) and over the best-of-N items (the chosen method), for items with at least two
//!   answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use dgcolor_algorithms::write_atomic;
use dgcolor_report::{plot_color, register_fonts};
use plotters::prelude::*;
use serde::Serialize;

use crate::error::{Result, StudyError};
use crate::export::AnswerRow;
use crate::server::esc;
use crate::stats::{
    binomial_test_half, bootstrap_ratio, bradley_terry, fleiss_kappa, holm, median, wilson,
    FleissKappa,
};

#[derive(Clone, Debug, Serialize)]
pub struct ReportOptions {
    /// Keep the answers of participants who failed the controls.
    pub include_failed: bool,
    /// Control accuracy below this fails a participant.
    pub control_threshold: f64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            include_failed: false,
            control_threshold: 0.75,
            bootstrap: 10_000,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ParticipantRow {
    pub participant: u64,
    pub answers: usize,
    pub plan_items: u64,
    pub controls: usize,
    pub controls_correct: usize,
    pub control_accuracy: Option<f64>,
    pub failed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Participants {
    pub total: usize,
    pub completed: usize,
    pub with_controls: usize,
    pub failed: usize,
    /// Whether the failed participants' answers are left out.
    pub failed_excluded: bool,
    pub mean_control_accuracy: Option<f64>,
    pub rows: Vec<ParticipantRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RateRow {
    pub label: String,
    /// `method`, `ground_truth` or `hue_inverted`.
    pub kind: String,
    pub yes: u64,
    pub n: u64,
    pub rate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShareRow {
    pub method: String,
    pub picked: u64,
    pub shown: u64,
    pub share: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Bradley–Terry log-strength (relative to the reference method), its standard
    /// error, and the strength normalised over the methods.
    pub bt_log_strength: Option<f64>,
    pub bt_se: Option<f64>,
    pub bt_share: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairRow {
    pub a: String,
    pub b: String,
    pub a_wins: u64,
    pub b_wins: u64,
    pub p: f64,
    pub p_holm: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KappaRow {
    pub kappa: f64,
    pub items: usize,
    pub ratings: u64,
    pub observed: f64,
    pub expected: f64,
}

impl From<FleissKappa> for KappaRow {
    fn from(k: FleissKappa) -> Self {
        Self {
            kappa: k.kappa,
            items: k.items,
            ratings: k.ratings,
            observed: k.observed,
            expected: k.expected,
        }
    }
}

/// Everything the report says.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    pub options: ReportOptions,
    pub methods: Vec<String>,
    pub answers_total: usize,
    pub answers_used: usize,
    pub participants: Participants,
    pub naturalness: Vec<RateRow>,
    pub best_of: Vec<ShareRow>,
    /// Mean number of options of the best-of-N answers (chance level is about 1 / this).
    pub best_of_mean_options: Option<f64>,
    pub bt_reference: Option<String>,
    pub bt_regularized: bool,
    pub pairwise: Vec<PairRow>,
    pub kappa_naturalness: Option<KappaRow>,
    pub kappa_best_of: Option<KappaRow>,
    pub median_response_ms_naturalness: Option<f64>,
    pub median_response_ms_best_of: Option<f64>,
}

/// Computes every statistic from answer rows. `methods` gives the table order; methods
/// found only in the rows follow, sorted.
pub fn analyze(rows: &[AnswerRow], methods: &[String], opts: &ReportOptions) -> Analysis {
    let mut methods: Vec<String> = methods.to_vec();
    let extra: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| {
            let mut v: Vec<&str> = r.shown_methods();
            if r.kind == "colorized" && !r.method.is_empty() {
                v.push(&r.method);
            }
            v
        })
        .filter(|m| !methods.iter().any(|x| x == m))
        .collect();
    methods.extend(extra.into_iter().map(String::from));

    // Participants and their controls.
    let mut by_p: BTreeMap<u64, Vec<&AnswerRow>> = BTreeMap::new();
    for r in rows {
        by_p.entry(r.participant).or_default().push(r);
    }
    let mut prow = Vec::new();
    for (&p, answers) in &by_p {
        let controls: Vec<&&AnswerRow> = answers
            .iter()
            .filter(|r| r.is_naturalness() && !r.expected.is_empty())
            .collect();
        let correct = controls.iter().filter(|r| r.answer == r.expected).count();
        let accuracy = (!controls.is_empty()).then(|| correct as f64 / controls.len() as f64);
        let items: BTreeSet<&str> = answers.iter().map(|r| r.item.as_str()).collect();
        prow.push(ParticipantRow {
            participant: p,
            answers: items.len(),
            plan_items: answers.iter().map(|r| r.plan_items).max().unwrap_or(0),
            controls: controls.len(),
            controls_correct: correct,
            control_accuracy: accuracy,
            failed: accuracy.is_some_and(|a| a < opts.control_threshold),
        });
    }
    let failed: BTreeSet<u64> = prow
        .iter()
        .filter(|r| r.failed)
        .map(|r| r.participant)
        .collect();
    let accs: Vec<f64> = prow.iter().filter_map(|r| r.control_accuracy).collect();
    let participants = Participants {
        total: prow.len(),
        completed: prow
            .iter()
            .filter(|r| r.plan_items > 0 && r.answers as u64 >= r.plan_items)
            .count(),
        with_controls: accs.len(),
        failed: failed.len(),
        failed_excluded: !opts.include_failed,
        mean_control_accuracy: (!accs.is_empty())
            .then(|| accs.iter().sum::<f64>() / accs.len() as f64),
        rows: prow,
    };
    let used: Vec<&AnswerRow> = rows
        .iter()
        .filter(|r| opts.include_failed || !failed.contains(&r.participant))
        .collect();

    // Naturalness.
    let rate = |label: String, kind: &str, sel: &dyn Fn(&AnswerRow) -> bool| {
        let chosen: Vec<&&AnswerRow> = used
            .iter()
            .filter(|r| r.is_naturalness() && sel(r))
            .collect();
        let n = chosen.len() as u64;
        let yes = chosen.iter().filter(|r| r.answer == "yes").count() as u64;
        let ci = wilson(yes, n);
        RateRow {
            label,
            kind: kind.into(),
            yes,
            n,
            rate: (n > 0).then(|| yes as f64 / n as f64),
            low: ci.map(|c| c.0),
            high: ci.map(|c| c.1),
        }
    };
    let mut naturalness: Vec<RateRow> = methods
        .iter()
        .map(|m| {
            rate(m.clone(), "method", &|r: &AnswerRow| {
                r.kind == "colorized" && r.method == *m
            })
        })
        .collect();
    naturalness.push(rate(
        "ground truth (control)".into(),
        "ground_truth",
        &|r: &AnswerRow| r.kind == "ground_truth",
    ));
    naturalness.push(rate(
        "hue-inverted ground truth (control)".into(),
        "hue_inverted",
        &|r: &AnswerRow| r.kind == "hue_inverted",
    ));
    naturalness.retain(|r| r.kind == "method" || r.n > 0);

    // Best of N: shares, implied pairwise wins, Bradley-Terry, sign tests.
    let best: Vec<&&AnswerRow> = used.iter().filter(|r| r.is_best_of()).collect();
    let index = |m: &str| methods.iter().position(|x| x == m);
    let k = methods.len();
    let mut wins = vec![vec![0.0; k]; k];
    let mut picked = vec![0u64; k];
    let mut shown = vec![0u64; k];
    let mut clusters: Vec<BTreeMap<u64, (f64, f64)>> = vec![BTreeMap::new(); k];
    let mut n_options = Vec::new();
    for r in &best {
        let s = r.shown_methods();
        n_options.push(s.len() as f64);
        let Some(c) = index(&r.answer) else { continue };
        picked[c] += 1;
        clusters[c].entry(r.participant).or_default().0 += 1.0;
        for m in s {
            let Some(j) = index(m) else { continue };
            shown[j] += 1;
            clusters[j].entry(r.participant).or_default().1 += 1.0;
            if j != c {
                wins[c][j] += 1.0;
            }
        }
    }
    let active: Vec<usize> = (0..k).filter(|&i| shown[i] > 0).collect();
    let sub: Vec<Vec<f64>> = active
        .iter()
        .map(|&i| active.iter().map(|&j| wins[i][j]).collect())
        .collect();
    let fit = bradley_terry(&sub, 0);
    let shares = fit.as_ref().map(|f| f.shares());
    let best_of: Vec<ShareRow> = (0..k)
        .filter(|&i| shown[i] > 0)
        .map(|i| {
            let a = active.iter().position(|&x| x == i);
            let cl: Vec<(f64, f64)> = clusters[i].values().copied().collect();
            let ci = bootstrap_ratio(&cl, opts.bootstrap, opts.seed.wrapping_add(i as u64));
            ShareRow {
                method: methods[i].clone(),
                picked: picked[i],
                shown: shown[i],
                share: Some(picked[i] as f64 / shown[i] as f64),
                low: ci.map(|c| c.0),
                high: ci.map(|c| c.1),
                bt_log_strength: fit.as_ref().zip(a).map(|(f, a)| f.log_strength[a]),
                bt_se: fit.as_ref().zip(a).map(|(f, a)| f.se[a]),
                bt_share: shares.as_ref().zip(a).map(|(s, a)| s[a]),
            }
        })
        .collect();
    let mut pairwise = Vec::new();
    for (x, &i) in active.iter().enumerate() {
        for &j in &active[x + 1..] {
            let (a, b) = (wins[i][j] as u64, wins[j][i] as u64);
            if a + b > 0 {
                pairwise.push(PairRow {
                    a: methods[i].clone(),
                    b: methods[j].clone(),
                    a_wins: a,
                    b_wins: b,
                    p: binomial_test_half(a, a + b),
                    p_holm: 0.0,
                });
            }
        }
    }
    let adjusted = holm(&pairwise.iter().map(|p| p.p).collect::<Vec<_>>());
    for (p, h) in pairwise.iter_mut().zip(adjusted) {
        p.p_holm = h;
    }

    // Agreement.
    let mut nat_items: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in used
        .iter()
        .filter(|r| r.is_naturalness() && r.kind == "colorized")
    {
        let c = nat_items.entry(&r.item).or_insert_with(|| vec![0, 0]);
        c[usize::from(r.answer != "yes")] += 1;
    }
    let mut best_items: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in &best {
        if let Some(c) = index(&r.answer) {
            best_items.entry(&r.item).or_insert_with(|| vec![0; k])[c] += 1;
        }
    }
    let times = |sel: fn(&AnswerRow) -> bool| {
        median(
            &used
                .iter()
                .filter(|r| sel(r))
                .map(|r| r.response_ms as f64)
                .collect::<Vec<_>>(),
        )
    };
    Analysis {
        options: opts.clone(),
        answers_total: rows.len(),
        answers_used: used.len(),
        participants,
        naturalness,
        best_of,
        best_of_mean_options: (!n_options.is_empty())
            .then(|| n_options.iter().sum::<f64>() / n_options.len() as f64),
        bt_reference: fit.as_ref().map(|_| methods[active[0]].clone()),
        bt_regularized: fit.as_ref().is_some_and(|f| f.regularized),
        pairwise,
        kappa_naturalness: fleiss_kappa(&nat_items.into_values().collect::<Vec<_>>())
            .map(Into::into),
        kappa_best_of: fleiss_kappa(&best_items.into_values().collect::<Vec<_>>()).map(Into::into),
        median_response_ms_naturalness: times(AnswerRow::is_naturalness),
        median_response_ms_best_of: times(AnswerRow::is_best_of),
        methods,
    }
}

fn f3(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.3}"))
}

fn ci(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("[{l:.3}, {h:.3}]"),
        _ => "–".into(),
    }
}

fn pval(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// A table as header + rows of cells, rendered to each format.
struct Grid {
    caption: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Grid {
    fn markdown(&self) -> String {
        let mut s = format!("**{}**\n\n| {} |\n|", self.caption, self.header.join(" | "));
        for (i, _) in self.header.iter().enumerate() {
            s.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        s.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    fn latex(&self) -> String {
        let tex = |c: &str| {
            c.replace('\\', "\\textbackslash{}")
                .replace('&', "\\&")
                .replace('%', "\\%")
                .replace('_', "\\_")
                .replace('#', "\\#")
                .replace('–', "--")
                .replace('κ', "$\\kappa$")
        };
        let mut s = format!(
            "% {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n{} \\\\\n\\midrule\n",
            self.caption,
            "r".repeat(self.header.len().saturating_sub(1)),
            self.header
                .iter()
                .map(|h| tex(h))
                .collect::<Vec<_>>()
                .join(" & ")
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{} \\\\",
                r.iter().map(|c| tex(c)).collect::<Vec<_>>().join(" & ")
            );
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
        s
    }

    fn html(&self) -> String {
        let mut s = format!("<table><caption>{}</caption><tr>", esc(&self.caption));
        for h in &self.header {
            let _ = write!(s, "<th>{}</th>", esc(h));
        }
        s.push_str("</tr>");
        for r in &self.rows {
            s.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let tag = if i == 0 { "th" } else { "td" };
                let _ = write!(s, "<{tag}>{}</{tag}>", esc(c));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
        s
    }
}

fn grids(a: &Analysis) -> Vec<(&'static str, Grid)> {
    let p = &a.participants;
    let mut out = Vec::new();
    out.push((
        "participants",
        Grid {
            caption: "Participants and agreement".into(),
            header: vec!["quantity".into(), "value".into()],
            rows: vec![
                vec!["participants".into(), p.total.to_string()],
                vec!["completed".into(), p.completed.to_string()],
                vec!["answered controls".into(), p.with_controls.to_string()],
                vec!["mean control accuracy".into(), f3(p.mean_control_accuracy)],
                vec![
                    format!(
                        "failed controls (accuracy < {})",
                        a.options.control_threshold
                    ),
                    format!(
                        "{}{}",
                        p.failed,
                        if p.failed_excluded {
                            " (excluded)"
                        } else {
                            " (included)"
                        }
                    ),
                ],
                vec![
                    "answers used / total".into(),
                    format!("{} / {}", a.answers_used, a.answers_total),
                ],
                vec![
                    "Fleiss κ, naturalness (items, ratings)".into(),
                    a.kappa_naturalness.as_ref().map_or("–".into(), |k| {
                        format!("{:.3} ({}, {})", k.kappa, k.items, k.ratings)
                    }),
                ],
                vec![
                    "Fleiss κ, best of N (items, ratings)".into(),
                    a.kappa_best_of.as_ref().map_or("–".into(), |k| {
                        format!("{:.3} ({}, {})", k.kappa, k.items, k.ratings)
                    }),
                ],
                vec![
                    "median response time, naturalness (s)".into(),
                    f3(a.median_response_ms_naturalness.map(|m| m / 1000.0)),
                ],
                vec![
                    "median response time, best of N (s)".into(),
                    f3(a.median_response_ms_best_of.map(|m| m / 1000.0)),
                ],
            ],
        },
    ));
    out.push((
        "naturalness",
        Grid {
            caption: "Naturalness: share of \"natural\" answers (Wilson 95% CI)".into(),
            header: vec![
                "method".into(),
                "natural".into(),
                "answers".into(),
                "rate".into(),
                "95% CI".into(),
            ],
            rows: a
                .naturalness
                .iter()
                .map(|r| {
                    vec![
                        r.label.clone(),
                        r.yes.to_string(),
                        r.n.to_string(),
                        f3(r.rate),
                        ci(r.low, r.high),
                    ]
                })
                .collect(),
        },
    ));
    out.push((
        "best_of_n",
        Grid {
            caption: format!(
                "Best of N: share picked when shown (participant bootstrap 95% CI){}; Bradley–Terry from implied pairwise wins{}{}",
                a.best_of_mean_options
                    .map_or(String::new(), |n| format!(", chance ≈ {:.3}", 1.0 / n)),
                a.bt_reference
                    .as_ref()
                    .map_or(String::new(), |r| format!(", log-strength relative to {r}")),
                if a.bt_regularized {
                    " (regularized: no maximum-likelihood estimate exists for these wins)"
                } else {
                    ""
                }
            ),
            header: vec![
                "method".into(),
                "picked".into(),
                "shown".into(),
                "share".into(),
                "95% CI".into(),
                "BT strength".into(),
                "BT log-strength".into(),
                "SE".into(),
            ],
            rows: a
                .best_of
                .iter()
                .map(|r| {
                    vec![
                        r.method.clone(),
                        r.picked.to_string(),
                        r.shown.to_string(),
                        f3(r.share),
                        ci(r.low, r.high),
                        f3(r.bt_share),
                        f3(r.bt_log_strength),
                        f3(r.bt_se),
                    ]
                })
                .collect(),
        },
    ));
    out.push((
        "pairwise",
        Grid {
            caption: "Implied pairwise wins in best of N: exact two-sided sign test, Holm-adjusted"
                .into(),
            header: vec![
                "A vs B".into(),
                "A wins".into(),
                "B wins".into(),
                "p".into(),
                "p (Holm)".into(),
            ],
            rows: a
                .pairwise
                .iter()
                .map(|r| {
                    vec![
                        format!("{} vs {}", r.a, r.b),
                        r.a_wins.to_string(),
                        r.b_wins.to_string(),
                        pval(r.p),
                        pval(r.p_holm),
                    ]
                })
                .collect(),
        },
    ));
    out
}

/// The tables as HTML (the admin page and the report section).
pub fn html_tables(a: &Analysis) -> String {
    grids(a).iter().map(|(_, g)| g.html()).collect()
}

/// The tables as Markdown.
pub fn markdown(a: &Analysis) -> String {
    let mut s = String::from("# User study\n\n");
    for (_, g) in grids(a) {
        s.push_str(&g.markdown());
        s.push('\n');
    }
    s
}

fn csv_of(rows: &[impl Serialize], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| StudyError::format(path, format!("writing CSV: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| StudyError::format(path, format!("writing CSV: {e}")))?;
    write_atomic(path, &bytes).map_err(StudyError::io(path))
}

/// What [`write_report`] wrote.
#[derive(Debug, Default)]
pub struct StudyReportFiles {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The self-contained HTML section (`section.html`).
    pub section: PathBuf,
    pub markdown: PathBuf,
}

/// Writes tables, plots, `summary.json`, `study.md` and `section.html` into `dir`.
pub fn write_report(a: &Analysis, dir: &Path) -> Result<StudyReportFiles> {
    std::fs::create_dir_all(dir).map_err(StudyError::io(dir))?;
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(StudyError::io(&path))?;
        files.push(path.clone());
        Ok(path)
    };
    for (stem, g) in grids(a) {
        put(&format!("{stem}.md"), &g.markdown())?;
        put(&format!("{stem}.tex"), &g.latex())?;
    }
    let markdown_path = put("study.md", &markdown(a))?;
    put(
        "summary.json",
        &serde_json::to_string_pretty(a).expect("analysis serializes"),
    )?;
    for (name, path) in [
        ("naturalness.csv", dir.join("naturalness.csv")),
        ("best_of_n.csv", dir.join("best_of_n.csv")),
        ("pairwise.csv", dir.join("pairwise.csv")),
        ("participants.csv", dir.join("participants.csv")),
    ] {
        match name {
            "naturalness.csv" => csv_of(&a.naturalness, &path)?,
            "best_of_n.csv" => csv_of(&a.best_of, &path)?,
            "pairwise.csv" => csv_of(&a.pairwise, &path)?,
            _ => csv_of(&a.participants.rows, &path)?,
        }
        files.push(path);
    }
    let plots = write_plots(a, dir)?;
    files.extend(plots.iter().cloned());
    let mut section = String::from(
        "<section id=\"user-study\"><h2>User study</h2><p>Answers of the study's participants \
         (<code>dgcolor study report</code>); method names never reached their browsers.</p>",
    );
    section.push_str(&html_tables(a));
    for p in plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
    {
        let bytes = std::fs::read(p).map_err(StudyError::io(p))?;
        let _ = write!(
            section,
            "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
            esc(&p.file_name().unwrap_or_default().to_string_lossy()),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
    }
    section.push_str("</section>\n");
    let section_path = dir.join("section.html");
    write_atomic(&section_path, section.as_bytes()).map_err(StudyError::io(&section_path))?;
    files.push(section_path.clone());
    Ok(StudyReportFiles {
        dir: dir.to_path_buf(),
        files,
        section: section_path,
        markdown: markdown_path,
    })
}

struct Bar {
    label: String,
    value: f64,
    low: Option<f64>,
    high: Option<f64>,
    color: RGBColor,
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    bars: &[Bar],
    chance: Option<f64>,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Debug| format!("{x:?}");
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..1.0f64)
        .map_err(|x| e(&x))?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, b.value)],
                b.color.filled(),
            )
        }))
        .map_err(|x| e(&x))?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            Some(PathElement::new(
                vec![(i as f64, b.low?), (i as f64, b.high?)],
                BLACK.stroke_width(2),
            ))
        }))
        .map_err(|x| e(&x))?;
    if let Some(c) = chance {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, c), (n as f64 - 0.5, c)],
                BLACK.mix(0.5).stroke_width(1),
            )))
            .map_err(|x| e(&x))?
            .label("chance")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.mix(0.5)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}

fn write_plots(a: &Analysis, dir: &Path) -> Result<Vec<PathBuf>> {
    register_fonts();
    let color_of = |label: &str| {
        a.methods
            .iter()
            .position(|m| m == label)
            .map_or(RGBColor(170, 170, 170), plot_color)
    };
    let nat: Vec<Bar> = a
        .naturalness
        .iter()
        .filter(|r| r.rate.is_some())
        .map(|r| Bar {
            label: match r.kind.as_str() {
                "ground_truth" => "ground truth".into(),
                "hue_inverted" => "hue-inverted".into(),
                _ => r.label.clone(),
            },
            value: r.rate.unwrap_or(0.0),
            low: r.low,
            high: r.high,
            color: color_of(&r.label),
        })
        .collect();
    let best: Vec<Bar> = a
        .best_of
        .iter()
        .map(|r| Bar {
            label: r.method.clone(),
            value: r.share.unwrap_or(0.0),
            low: r.low,
            high: r.high,
            color: color_of(&r.method),
        })
        .collect();
    let mut out = Vec::new();
    // (file stem, title, y axis, bars, chance level)
    type PlotSpec<'a> = (&'a str, &'a str, &'a str, &'a [Bar], Option<f64>);
    let plots: [PlotSpec; 2] = [
        (
            "naturalness",
            "Naturalness (Wilson 95% CI)",
            "share judged natural",
            &nat,
            None,
        ),
        (
            "best_of_n",
            "Best of N (bootstrap 95% CI)",
            "share picked when shown",
            &best,
            a.best_of_mean_options.map(|n| 1.0 / n),
        ),
    ];
    for (stem, title, y, bars, chance) in plots {
        if bars.is_empty() {
            continue;
        }
        let w = (140 * bars.len() as u32 + 120).max(520);
        let png = dir.join(format!("{stem}.png"));
        {
            let root = BitMapBackend::new(&png, (w, 380)).into_drawing_area();
            draw_bars(&root, title, y, bars, chance).map_err(StudyError::Draw)?;
        }
        let svg = dir.join(format!("{stem}.svg"));
        {
            let root = SVGBackend::new(&svg, (w, 380)).into_drawing_area();
            draw_bars(&root, title, y, bars, chance).map_err(StudyError::Draw)?;
        }
        out.push(png);
        out.push(svg);
    }
    Ok(out)
}
