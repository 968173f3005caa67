//! Per-image results of a test evaluation (`per_image/test-step-NNNNNN.csv`): one row per
//! image with its file (relative to the dataset root), domain, class and every per-image
//! value of `dgcolor_metrics::evaluate_pair`, so the report can pair methods image by image.

use std::collections::BTreeMap;
use std::path::Path;

use dgcolor_algorithms::write_atomic;
use dgcolor_eval::ImageResult;

use crate::error::{Result, RunError};

/// One image's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRow {
    /// `/`-separated path relative to the dataset root.
    pub file: String,
    pub domain: String,
    pub class: String,
    pub values: BTreeMap<String, f64>,
}

const FIXED: [&str; 3] = ["file", "domain", "class"];

/// Writes the rows of one evaluation atomically.
pub fn write_per_image(
    path: &Path,
    root: &Path,
    domain: &str,
    classes: &[String],
    images: &[ImageResult],
) -> Result<()> {
    let names: Vec<&str> = images
        .first()
        .map(|i| i.values.keys().copied().collect())
        .unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| RunError::format(path, e);
    w.write_record(FIXED.iter().chain(&names)).map_err(fail)?;
    for image in images {
        let file = image.path.strip_prefix(root).unwrap_or(&image.path);
        let file = file
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let class = classes.get(image.class).cloned().unwrap_or_default();
        let mut row = vec![file, domain.to_string(), class];
        for name in &names {
            let v = image.values.get(name).ok_or_else(|| {
                RunError::format(
                    path,
                    format!("{}: no value for `{name}`", image.path.display()),
                )
            })?;
            // Rust's shortest round-trip formatting: the file holds the exact f64.
            row.push(v.to_string());
        }
        w.write_record(&row).map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| RunError::format(path, e))?;
    write_atomic(path, &bytes).map_err(RunError::io(path))
}

/// Reads the rows [`write_per_image`] wrote.
pub fn read_per_image(path: &Path) -> Result<Vec<ImageRow>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| RunError::format(path, e))?;
    let headers = r.headers().map_err(|e| RunError::format(path, e))?.clone();
    if headers.iter().take(3).ne(FIXED) {
        return Err(RunError::format(
            path,
            format!("expected the columns to start with {FIXED:?}, found {headers:?}"),
        ));
    }
    let mut rows = Vec::new();
    for (i, record) in r.records().enumerate() {
        let record = record.map_err(|e| RunError::format(path, e))?;
        let mut values = BTreeMap::new();
        for (name, field) in headers.iter().zip(record.iter()).skip(3) {
            let v: f64 = field.parse().map_err(|_| {
                RunError::format(
                    path,
                    format!("row {}: `{name}` is `{field}`, not a number", i + 2),
                )
            })?;
            values.insert(name.to_string(), v);
        }
        rows.push(ImageRow {
            file: record[0].to_string(),
            domain: record[1].to_string(),
            class: record[2].to_string(),
            values,
        });
    }
    Ok(rows)
}
