//! The answers as one CSV table, joined with the manifest: one row per answer, everything
//! the report needs (so `study report --answers FILE` recomputes it from the CSV alone, and
//! CSVs of several machines can be concatenated).
//!
//! | column | naturalness | best_of_n |
//! |---|---|---|
//! | `participant` | participant number (1, 2, ... in order of arrival) | same |
//! | `protocol` | `naturalness` | `best_of_n` |
//! | `item` | item id | item id |
//! | `seq`, `plan_items` | position of the item in the participant's plan, plan length | same |
//! | `image` | the image shown | the image chosen |
//! | `method` | its method (empty for a control) | the chosen image's method |
//! | `kind` | `colorized`, `ground_truth` or `hue_inverted` | `colorized` |
//! | `answer` | `yes` / `no` | the chosen method |
//! | `expected` | a control's expected answer (`yes` / `no`), else empty | empty |
//! | `shown` | empty | the methods in the order shown, `\|`-separated |
//! | `position` | empty | 0-based shown position of the choice |
//! | `setting`, `target`, `class`, `source_image` | the input image | same |
//! | `response_ms` | from serving the page to receiving the answer (server clock) | same |
//! | `client_ms` | the browser's measure (empty without JavaScript) | same |
//! | `answered_at` | UTC, ISO 8601 | same |

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StudyError};
use crate::manifest::{ItemRef, Study};
use crate::store::{Answer, Store};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerRow {
    pub participant: u64,
    pub protocol: String,
    pub item: String,
    pub seq: u64,
    pub plan_items: u64,
    pub image: String,
    pub method: String,
    pub kind: String,
    pub answer: String,
    pub expected: String,
    pub shown: String,
    pub position: Option<u64>,
    pub setting: String,
    pub target: String,
    pub class: String,
    pub source_image: String,
    pub response_ms: u64,
    pub client_ms: Option<u64>,
    pub answered_at: String,
}

impl AnswerRow {
    pub fn is_naturalness(&self) -> bool {
        self.protocol == "naturalness"
    }

    pub fn is_best_of(&self) -> bool {
        self.protocol == "best_of_n"
    }

    /// Methods shown in a best-of-N answer, in shown order.
    pub fn shown_methods(&self) -> Vec<&str> {
        if self.shown.is_empty() {
            Vec::new()
        } else {
            self.shown.split('|').collect()
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch.
pub fn iso_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian; Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// One CSV row per stored answer.
pub fn answer_rows(study: &Study, store: &Store) -> Result<Vec<AnswerRow>> {
    let plans: HashMap<i64, u64> = store
        .participants()?
        .into_iter()
        .map(|p| (p.id, p.plan.len() as u64))
        .collect();
    store
        .answers()?
        .iter()
        .map(|a| row(study, a, plans.get(&a.participant).copied().unwrap_or(0)))
        .collect()
}

fn row(study: &Study, a: &Answer, plan_items: u64) -> Result<AnswerRow> {
    let bad = |m: String| StudyError::format(store_name(study), m);
    let item = study
        .item(&a.item)
        .ok_or_else(|| bad(format!("answer to unknown item {}", a.item)))?;
    let method_of = |id: &str| -> Result<String> {
        Ok(study
            .image(id)
            .ok_or_else(|| bad(format!("answer names unknown image {id}")))?
            .method
            .clone()
            .unwrap_or_default())
    };
    let (protocol, image, answer, shown) = match item {
        ItemRef::Naturalness(i) => (
            "naturalness",
            study.manifest.naturalness[i].image.clone(),
            a.choice.clone(),
            String::new(),
        ),
        ItemRef::BestOf(_) => {
            let shown: Vec<String> = a
                .shown
                .as_deref()
                .unwrap_or("")
                .split('|')
                .map(method_of)
                .collect::<Result<_>>()?;
            (
                "best_of_n",
                a.choice.clone(),
                method_of(&a.choice)?,
                shown.join("|"),
            )
        }
    };
    let img = study
        .image(&image)
        .ok_or_else(|| bad(format!("answer names unknown image {image}")))?;
    let input = &study.manifest.inputs[img.input];
    Ok(AnswerRow {
        participant: a.participant as u64,
        protocol: protocol.into(),
        item: a.item.clone(),
        seq: a.seq,
        plan_items,
        image: image.clone(),
        method: img.method.clone().unwrap_or_default(),
        kind: img.kind.name().into(),
        answer,
        expected: match img.kind.expected() {
            Some(true) if protocol == "naturalness" => "yes".into(),
            Some(false) if protocol == "naturalness" => "no".into(),
            _ => String::new(),
        },
        shown,
        position: a.position,
        setting: input.setting.clone(),
        target: input.target.clone(),
        class: input.class.clone(),
        source_image: input.source.display().to_string(),
        response_ms: a.answered_ms.saturating_sub(a.issued_ms),
        client_ms: a.client_ms,
        answered_at: iso_utc(a.answered_ms),
    })
}

fn store_name(study: &Study) -> std::path::PathBuf {
    study.dir.join(crate::manifest::DATABASE)
}

/// The rows as CSV text (with a header row).
pub fn csv_string(rows: &[AnswerRow]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| StudyError::Config(format!("writing CSV: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| StudyError::Config(format!("writing CSV: {e}")))?;
    let mut text = String::from_utf8(bytes).expect("CSV of UTF-8 fields");
    if rows.is_empty() {
        // csv writes the header with the first record; an empty export still has one.
        text = HEADER.join(",") + "\n";
    }
    Ok(text)
}

const HEADER: [&str; 19] = [
    "participant",
    "protocol",
    "item",
    "seq",
    "plan_items",
    "image",
    "method",
    "kind",
    "answer",
    "expected",
    "shown",
    "position",
    "setting",
    "target",
    "class",
    "source_image",
    "response_ms",
    "client_ms",
    "answered_at",
];

/// Writes the rows to `path` atomically.
pub fn write_csv(rows: &[AnswerRow], path: &Path) -> Result<()> {
    let text = csv_string(rows)?;
    dgcolor_algorithms::write_atomic(path, text.as_bytes()).map_err(StudyError::io(path))
}

/// Reads rows written by [`write_csv`].
pub fn read_csv(path: &Path) -> Result<Vec<AnswerRow>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| StudyError::format(path, e))?;
    r.deserialize()
        .map(|row| row.map_err(|e| StudyError::format(path, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::iso_utc;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        // date -u -d @1709210096 -> 2024-02-29 12:34:56 UTC
        assert_eq!(iso_utc(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
