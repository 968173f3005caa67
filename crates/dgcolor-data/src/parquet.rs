//! Parquet copies of the benchmarks on the Hugging Face Hub (`flwrlabs/pacs`,
//! `flwrlabs/office-home`): columns `image` (struct `{bytes, path}`), `domain` (string)
//! and `label` (int, a `ClassLabel` whose names the file's `huggingface` metadata holds).
//!
//! Design: the rest of dgcolor works on files (`Sample { path, class }`: decoding,
//! prefetching, `data check`, error messages naming a path), so a parquet copy is
//! *extracted once* into a folder tree `<domain>/<class>/<file>` and then opened with the
//! same benchmark loader as a downloaded release. The alternative, a second sample type
//! holding bytes, would have doubled every consumer for a one-time cost of seconds.
//! Extraction is keyed by a fingerprint of the parquet files (path, size, mtime): a
//! changed file gives a new tree; it writes into a temporary sibling and renames it into
//! place after writing `manifest.json`, so an interrupted extraction is never mistaken
//! for a complete one and two processes never see half a tree.
//!
//! Reading uses the `parquet` crate's record API (no Arrow: it would triple the compile
//! time for nothing we need) with only the snappy codec, which is what `datasets` and
//! pyarrow write by default; a file with another codec fails with the codec named.
//! Images are copied byte for byte, keeping the original file name from `image.path`
//! when it has one; they are decoded when used (and by `dgcolor data check`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::benchmark_error::BenchmarkError;
use crate::error::{DataError, Result};
use crate::folder::IMAGE_EXTENSIONS;

/// Bumped when the extracted layout changes.
pub const PARQUET_EXTRACT_VERSION: u32 = 1;

/// One row of an HF image-classification parquet file.
#[derive(Clone, Debug, PartialEq)]
pub struct HfImageRow {
    pub bytes: Vec<u8>,
    /// `image.path`: the original file name, when the uploader kept it.
    pub path: Option<String>,
    pub domain: String,
    pub label: i64,
}

fn pq_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    BenchmarkError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
    .into()
}

fn row_err(path: &Path, row: usize, message: impl Into<String>) -> DataError {
    BenchmarkError::ParquetRow {
        path: path.to_path_buf(),
        row,
        message: message.into(),
    }
    .into()
}

/// The parquet files of `path`: the file itself, or every `*.parquet` below a directory
/// (recursively, following the Hub cache's symlinks), sorted.
pub fn parquet_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(DataError::MissingRoot {
            path: path.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let p = entry.map_err(|e| DataError::io(&dir, e))?.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(pq_err(path, "no *.parquet files in this directory"));
    }
    Ok(out)
}

/// Class names from the `huggingface` key-value metadata (`datasets` writes the
/// features there: `info.features.label.names`), if present.
pub fn hf_label_names(file: &Path) -> Result<Option<Vec<String>>> {
    let f = fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    let reader = SerializedFileReader::new(f).map_err(|e| pq_err(file, e))?;
    let Some(kv) = reader.metadata().file_metadata().key_value_metadata() else {
        return Ok(None);
    };
    let Some(json) = kv
        .iter()
        .find(|k| k.key == "huggingface")
        .and_then(|k| k.value.as_deref())
    else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| DataError::Manifest {
        path: file.to_path_buf(),
        source: e,
    })?;
    let names = v
        .pointer("/info/features/label/names")
        .and_then(|n| n.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        });
    Ok(names)
}

fn as_int(f: &Field) -> Option<i64> {
    match f {
        Field::Byte(v) => Some(*v as i64),
        Field::Short(v) => Some(*v as i64),
        Field::Int(v) => Some(*v as i64),
        Field::Long(v) => Some(*v),
        Field::UByte(v) => Some(*v as i64),
        Field::UShort(v) => Some(*v as i64),
        Field::UInt(v) => Some(*v as i64),
        Field::ULong(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

fn as_string(f: &Field) -> Option<String> {
    match f {
        Field::Str(s) => Some(s.clone()),
        Field::Bytes(b) => std::str::from_utf8(b.data()).ok().map(str::to_string),
        _ => None,
    }
}

/// Streams the rows of one file (one row in memory at a time) into `each`, with the
/// 0-based row index.
pub fn for_each_row(
    file: &Path,
    mut each: impl FnMut(usize, HfImageRow) -> Result<()>,
) -> Result<usize> {
    let f = fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    let reader = SerializedFileReader::new(f).map_err(|e| pq_err(file, e))?;
    let rows = reader.get_row_iter(None).map_err(|e| pq_err(file, e))?;
    let mut n = 0;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| row_err(file, i, e.to_string()))?;
        let (mut bytes, mut path, mut domain, mut label) = (None, None, None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("image", Field::Group(img)) => {
                    for (k, v) in img.get_column_iter() {
                        match (k.as_str(), v) {
                            ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
                            ("path", v) => path = as_string(v),
                            _ => {}
                        }
                    }
                }
                ("domain", v) => domain = as_string(v),
                ("label", v) => label = as_int(v),
                _ => {}
            }
        }
        let bytes = bytes.ok_or_else(|| {
            row_err(
                file,
                i,
                "no image bytes (expected column `image` {bytes, path})",
            )
        })?;
        let domain = domain.ok_or_else(|| row_err(file, i, "no string column `domain`"))?;
        let label = label.ok_or_else(|| row_err(file, i, "no integer column `label`"))?;
        each(
            i,
            HfImageRow {
                bytes,
                path,
                domain,
                label,
            },
        )?;
        n += 1;
    }
    Ok(n)
}

/// What an extracted tree came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParquetManifest {
    pub version: u32,
    pub dataset: Benchmark,
    /// (file, size in bytes) of each source parquet file.
    pub sources: Vec<(PathBuf, u64)>,
    pub images: usize,
    /// Images per domain directory.
    pub per_domain: BTreeMap<String, usize>,
}

fn fingerprint(files: &[PathBuf]) -> Result<(u64, Vec<(PathBuf, u64)>)> {
    // The stable hash of (canonical path, size, mtime): the same across runs and platforms.
    let mut h = dgcolor_kernels::StableHasher::default();
    let mut feed = |bytes: &[u8]| std::hash::Hasher::write(&mut h, bytes);
    let mut sources = Vec::new();
    feed(&PARQUET_EXTRACT_VERSION.to_le_bytes());
    for f in files {
        let canon = fs::canonicalize(f).map_err(|e| DataError::io(f, e))?;
        let meta = fs::metadata(&canon).map_err(|e| DataError::io(f, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        feed(canon.to_string_lossy().as_bytes());
        feed(&meta.len().to_le_bytes());
        feed(&mtime.to_le_bytes());
        sources.push((canon, meta.len()));
    }
    Ok((std::hash::Hasher::finish(&h), sources))
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match s.trim() {
        "" | "." | ".." => "_".into(),
        t => t.to_string(),
    }
}

fn sniff_ext(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => "png",
        Ok(image::ImageFormat::Bmp) => "bmp",
        _ => "jpg",
    }
}

/// Where [`extract_parquet`] puts the tree of `files` under `cache_root`.
pub fn extract_dir(cache_root: &Path, bench: Benchmark, files: &[PathBuf]) -> Result<PathBuf> {
    let (h, _) = fingerprint(files)?;
    Ok(cache_root.join(format!("{}-parquet-{h:016x}", bench.name())))
}

/// Extracts the images of `files` into `<cache_root>/<dataset>-parquet-<fingerprint>/
/// <domain>/<class>/<file>` (once; later calls return the existing tree) and returns
/// that directory, ready for [`crate::open_tree`]. Domains take the canonical spelling;
/// classes come from the file's `ClassLabel` names, else the dataset's class list.
pub fn extract_parquet(files: &[PathBuf], bench: Benchmark, cache_root: &Path) -> Result<PathBuf> {
    if files.is_empty() {
        return Err(DataError::Config("no parquet files to extract".into()));
    }
    let (h, sources) = fingerprint(files)?;
    let dir = cache_root.join(format!("{}-parquet-{h:016x}", bench.name()));
    if dir.join("manifest.json").is_file() {
        return Ok(dir);
    }
    fs::create_dir_all(cache_root).map_err(|e| DataError::io(cache_root, e))?;
    let tmp = cache_root.join(format!(
        ".{}-parquet-{h:016x}.tmp-{}",
        bench.name(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    }
    let mut per_domain: BTreeMap<String, usize> = BTreeMap::new();
    let mut images = 0;
    let mut made: std::collections::HashSet<PathBuf> = Default::default();
    for file in files {
        let names = hf_label_names(file)?
            .unwrap_or_else(|| bench.classes().iter().map(|s| s.to_string()).collect());
        for_each_row(file, |row, r| {
            let domain = bench
                .canonical_domain(&r.domain)
                .map(str::to_string)
                .unwrap_or_else(|| sanitize(&r.domain));
            let class = usize::try_from(r.label)
                .ok()
                .and_then(|l| names.get(l))
                .ok_or_else(|| {
                    row_err(
                        file,
                        row,
                        format!("label {} outside 0..{}", r.label, names.len()),
                    )
                })?;
            let class_dir = tmp.join(&domain).join(sanitize(class));
            if made.insert(class_dir.clone()) {
                fs::create_dir_all(&class_dir).map_err(|e| DataError::io(&class_dir, e))?;
            }
            let original = r
                .path
                .as_deref()
                .and_then(|p| Path::new(p).file_name())
                .map(|n| sanitize(&n.to_string_lossy()))
                .filter(|n| {
                    Path::new(n)
                        .extension()
                        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
                });
            let mut name =
                original.unwrap_or_else(|| format!("row{row:06}.{}", sniff_ext(&r.bytes)));
            if class_dir.join(&name).exists() {
                name = format!("row{row:06}_{name}");
            }
            let out = class_dir.join(&name);
            fs::write(&out, &r.bytes).map_err(|e| DataError::io(&out, e))?;
            *per_domain.entry(domain).or_default() += 1;
            images += 1;
            Ok(())
        })?;
    }
    let manifest = ParquetManifest {
        version: PARQUET_EXTRACT_VERSION,
        dataset: bench,
        sources,
        images,
        per_domain,
    };
    let mpath = tmp.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    fs::write(&mpath, json).map_err(|e| DataError::io(&mpath, e))?;
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished first: keep its tree.
        Err(_) if dir.join("manifest.json").is_file() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(DataError::io(&dir, e)),
    }
}

/// Writes rows in the Hub's schema (snappy), with `label_names` as the `huggingface`
/// `ClassLabel` metadata when given: for tests, and to package a folder for sharing.
pub fn write_hf_parquet(
    path: &Path,
    rows: &[HfImageRow],
    label_names: Option<&[&str]>,
) -> Result<()> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = "message schema {
        optional group image {
            optional binary bytes;
            optional binary path (STRING);
        }
        optional binary domain (STRING);
        optional int64 label;
    }";
    let schema = Arc::new(parse_message_type(schema).map_err(|e| pq_err(path, e))?);
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if let Some(names) = label_names {
        let meta = serde_json::json!({"info": {"features": {
            "image": {"_type": "Image"},
            "domain": {"dtype": "string", "_type": "Value"},
            "label": {"names": names, "_type": "ClassLabel"},
        }}});
        props = props.set_key_value_metadata(Some(vec![KeyValue::new(
            "huggingface".to_string(),
            meta.to_string(),
        )]));
    }
    let file = fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props.build()))
        .map_err(|e| pq_err(path, e))?;
    let mut rg = writer.next_row_group().map_err(|e| pq_err(path, e))?;
    let mut column = 0;
    while let Some(mut col) = rg.next_column().map_err(|e| pq_err(path, e))? {
        match column {
            0 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .map(|r| ByteArray::from(r.bytes.clone()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&vec![2; rows.len()]), None)
            }
            1 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .filter_map(|r| r.path.as_deref().map(ByteArray::from))
                    .collect();
                let def: Vec<i16> = rows
                    .iter()
                    .map(|r| if r.path.is_some() { 2 } else { 1 })
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&def), None)
            }
            2 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .map(|r| ByteArray::from(r.domain.as_str()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&vec![1; rows.len()]), None)
            }
            _ => {
                let v: Vec<i64> = rows.iter().map(|r| r.label).collect();
                col.typed::<Int64Type>()
                    .write_batch(&v, Some(&vec![1; rows.len()]), None)
            }
        }
        .map_err(|e| pq_err(path, e))?;
        col.close().map_err(|e| pq_err(path, e))?;
        column += 1;
    }
    rg.close().map_err(|e| pq_err(path, e))?;
    writer.close().map_err(|e| pq_err(path, e))?;
    Ok(())
}
