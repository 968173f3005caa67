//! `index.html`: every table, plot and figure of the report in one self-contained file
//! (images embedded as data URIs), readable offline in any browser.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use dgcolor_algorithms::write_atomic;

use crate::error::{ReportError, Result};
use crate::{RunResult, Table};
use dgcolor_runs::sweep::Job;

pub(super) struct Section {
    pub dataset: String,
    pub tables: Vec<Table>,
    /// Markdown of the per-class and selected-hyperparameter tables.
    pub extra: Vec<String>,
    pub plots: Vec<PathBuf>,
    pub figure: PathBuf,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn embed_png(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(ReportError::io(path))?;
    Ok(format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
        esc(&path.file_name().unwrap_or_default().to_string_lossy()),
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn table_html(t: &Table) -> String {
    let mut s = format!(
        "<table><caption>{}</caption><tr><th>method</th>",
        esc(&t.caption())
    );
    for c in &t.columns {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>");
    for (i, (label, cells)) in t.rows.iter().enumerate() {
        let _ = write!(s, "<tr><th>{}</th>", esc(label));
        for (c, cell) in cells.iter().enumerate() {
            let text = match cell {
                Some(cell) => match cell.se {
                    Some(se) => format!("{:.3} ± {:.3}", cell.mean, se),
                    None => format!("{:.3}", cell.mean),
                },
                None => "–".into(),
            };
            let class = if t.best[c] == Some(i) {
                " class=\"best\""
            } else {
                ""
            };
            let mark = match t.comparison(i, c).map(|x| x.verdict(t.better)) {
                Some(1) => " ▲",
                Some(-1) => " ▼",
                _ => "",
            };
            let _ = write!(s, "<td{class}>{}{mark}</td>", esc(&text));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

/// The HTML fragments in `dir/sections/*.html` (see [`crate::SECTIONS_DIR`]), in name order.
fn extra_sections(dir: &Path) -> Result<String> {
    let sections = dir.join(crate::SECTIONS_DIR);
    let Ok(entries) = std::fs::read_dir(&sections) else {
        return Ok(String::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    let mut out = String::new();
    for f in files {
        out.push_str(&std::fs::read_to_string(&f).map_err(ReportError::io(&f))?);
    }
    Ok(out)
}

pub(super) fn write_index(
    dir: &Path,
    sweep_dir: &Path,
    sections: &[Section],
    runs: &[RunResult],
    pending: &[Job],
) -> Result<PathBuf> {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>dgcolor report: {}</h1><p>{} finished runs{}. Cells are mean ± standard error over trials; ▲/▼ mark significant wins and losses against erm and a bold cell is significantly ahead of its runner-up (each table's caption says how).</p>",
        esc(&sweep_dir.display().to_string()),
        runs.len(),
        if pending.is_empty() { String::new() } else { format!(", {} unfinished (not shown)", pending.len()) }
    );
    for sec in sections {
        let _ = write!(
            body,
            "<h2>{}</h2><h3>Qualitative comparison</h3>{}",
            esc(&sec.dataset),
            embed_png(&sec.figure)?
        );
        let _ = write!(body, "<h3>Tables</h3>");
        for t in &sec.tables {
            body.push_str(&table_html(t));
            let cmp = t.comparisons_markdown();
            if !cmp.is_empty() {
                let _ = write!(
                    body,
                    "<details><summary>{} ({}) vs erm: differences, intervals, p-values</summary><pre>{}</pre></details>",
                    esc(&t.metric),
                    t.selection.slug(),
                    esc(&cmp)
                );
            }
        }
        for text in &sec.extra {
            let title = text.lines().next().unwrap_or("").trim_start_matches("# ");
            let _ = write!(
                body,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(title),
                esc(text)
            );
        }
        let _ = write!(body, "<h3>Plots</h3>");
        for p in sec
            .plots
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
        {
            body.push_str(&embed_png(p)?);
        }
    }
    body.push_str(&extra_sections(dir)?);
    let _ = write!(body, "<h2>Runs</h2><table><tr><th>method</th><th>sources → target</th><th>draw</th><th>trial</th><th>steps</th><th>directory</th></tr>");
    for r in runs {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&r.job.label),
            esc(&r.config.sources.join(" + ")),
            esc(&r.config.target),
            r.config.hparams_seed,
            r.config.seed,
            r.config.steps,
            esc(&r.job.dir.display().to_string())
        );
    }
    body.push_str("</table>");
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dgcolor report</title><style>\
body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}\
caption{{text-align:left;font-weight:bold;padding:.3em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}\
th:first-child{{text-align:left}}td.best{{font-weight:bold;background:#eef6ee}}img{{max-width:100%;display:block;margin:.5em 0}}\
</style></head><body>{body}</body></html>\n"
    );
    let path = dir.join("index.html");
    write_atomic(&path, html.as_bytes()).map_err(ReportError::io(&path))?;
    Ok(path)
}
