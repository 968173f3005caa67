//! The answers, in SQLite (rusqlite's bundled SQLite), durable before they are
//! acknowledged.
//!
//! - The database is in WAL mode with `synchronous=FULL`: a commit returns only after its
//!   WAL frames are written and fsynced, so a committed answer survives `kill -9` of the
//!   server (and a power cut).
//! - Each answer is one `BEGIN IMMEDIATE ... COMMIT` transaction; the server acknowledges
//!   it (the redirect to the next question) only after [`Store::insert_answer`] returned.
//! - `(participant, item)` is the primary key of `answers`: a second answer to the same
//!   item is a constraint violation, reported as [`Insert::Duplicate`], and the first
//!   answer stays as it was.
//! - One writer connection behind a mutex (SQLite has one writer at a time anyway) and a
//!   few reader connections, which WAL lets read while the writer commits.
//! - The store is tied to the manifest it was created for (its `uid`): a rebuilt study
//!   never mixes its ids with another build's answers.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Result, StudyError};
use crate::ids::random_hex;
use crate::manifest::{PlanEntry, SERVE_LOCK};

/// Version of the database layout.
pub const STORE_SCHEMA: &str = "1";
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS participants(
    id INTEGER PRIMARY KEY,         -- 1, 2, 3, ... in order of arrival; ordinal = id - 1
    token_hash TEXT NOT NULL UNIQUE, -- SHA-256 of the cookie token, never the token
    created_ms INTEGER NOT NULL,
    plan TEXT NOT NULL              -- JSON: the items in order, with best-of-N option orders
) STRICT;
CREATE TABLE IF NOT EXISTS answers(
    participant INTEGER NOT NULL REFERENCES participants(id),
    item TEXT NOT NULL,
    seq INTEGER NOT NULL,           -- the item's index in the participant's plan
    choice TEXT NOT NULL,           -- 'yes' / 'no', or the chosen image id
    position INTEGER,               -- best-of-N: shown position of the chosen image
    shown TEXT,                     -- best-of-N: image ids in shown order, '|'-separated
    issued_ms INTEGER NOT NULL,     -- when the question page was served
    answered_ms INTEGER NOT NULL,   -- when the answer arrived
    client_ms INTEGER,              -- the browser's own measure of the response time
    PRIMARY KEY (participant, item)
) STRICT;
";

/// A participant as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    /// Database id (1-based); the plan was made for ordinal `id - 1`.
    pub id: i64,
    pub created_ms: u64,
    pub plan: Vec<PlanEntry>,
}

/// One answer, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub participant: i64,
    pub item: String,
    pub seq: u64,
    pub choice: String,
    pub position: Option<u64>,
    pub shown: Option<String>,
    pub issued_ms: u64,
    pub answered_ms: u64,
    pub client_ms: Option<u64>,
}

/// What became of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Committed (durable).
    Stored,
    /// The participant had already answered this item; nothing was written.
    Duplicate,
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Key of the answer tickets' HMAC (kept in the database, so tickets outlive restarts).
    pub secret: Vec<u8>,
    /// The token the results and export pages ask for.
    pub admin_token: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves no half-done transaction behind (rusqlite
    // rolls back on drop), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StudyError + '_ {
        move |source| StudyError::Store {
            path: self.path.clone(),
            what,
            source,
        }
    }

    fn connect(path: &Path, read_only: bool) -> Result<Connection> {
        let e = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| StudyError::Store { path, what, source }
        };
        // Readers open read-write too (a read-only connection cannot create the WAL index
        // when no writer is around) and are then made query-only.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(path, flags).map_err(e("opening"))?;
        c.busy_timeout(Duration::from_secs(30))
            .map_err(e("setting the busy timeout"))?;
        if read_only {
            c.pragma_update(None, "query_only", "ON")
                .map_err(e("making a reader query-only"))?;
        } else {
            let mode: String = c
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(e("switching to WAL"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StudyError::format(
                    path,
                    format!("SQLite refused WAL mode (journal_mode is {mode})"),
                ));
            }
        }
        c.pragma_update(None, "synchronous", "FULL")
            .map_err(e("setting synchronous=FULL"))?;
        c.pragma_update(None, "foreign_keys", "ON")
            .map_err(e("enabling foreign keys"))?;
        Ok(c)
    }

    /// Opens (creating if needed) the store of the study build `uid`.
    pub fn open(path: &Path, uid: &str) -> Result<Store> {
        let mut writer = Store::connect(path, false)?;
        let e = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| StudyError::Store { path, what, source }
        };
        writer
            .execute_batch(SCHEMA)
            .map_err(e("creating the tables"))?;
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e("starting a transaction"))?;
        let get = |key: &str| -> Result<Option<String>> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(e("reading meta"))
        };
        let meta = |key: &str, make: &dyn Fn() -> String| -> Result<String> {
            if let Some(v) = get(key)? {
                return Ok(v);
            }
            let v = make();
            tx.execute("INSERT INTO meta(key, value) VALUES (?1, ?2)", [key, &v])
                .map_err(e("writing meta"))?;
            Ok(v)
        };
        let stored_uid = meta("uid", &|| uid.to_string())?;
        if stored_uid != uid {
            return Err(StudyError::format(
                path,
                "this answer database belongs to another build of the study (its uid differs \
                 from manifest.json's); move it away before serving this build",
            ));
        }
        let schema = meta("schema", &|| STORE_SCHEMA.to_string())?;
        if schema != STORE_SCHEMA {
            return Err(StudyError::format(
                path,
                format!("answer database schema {schema}, expected {STORE_SCHEMA}"),
            ));
        }
        let secret = meta("secret", &|| random_hex(32))?;
        let admin_token = meta("admin_token", &|| random_hex(16))?;
        tx.commit().map_err(e("committing meta"))?;
        let secret = secret.into_bytes();
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Mutex::new(Store::connect(path, true)?));
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            secret,
            admin_token,
        })
    }

    /// Opens an existing store to read it (export, report), even while a server writes.
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(StudyError::format(
                path,
                "no answers yet (the database is created by `dgcolor study serve`)",
            ));
        }
        let uid: String = Store::connect(path, false)?
            .query_row("SELECT value FROM meta WHERE key = 'uid'", [], |r| r.get(0))
            .map_err(|source| StudyError::Store {
                path: path.to_path_buf(),
                what: "reading meta",
                source,
            })?;
        Store::open(path, &uid)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }

    /// Creates the next participant, with the plan `plan_for(ordinal)` made inside the same
    /// transaction, so ordinals are dense and each plan is made once.
    pub fn create_participant(
        &self,
        token_hash: &str,
        created_ms: u64,
        plan_for: impl FnOnce(u64) -> Vec<PlanEntry>,
    ) -> Result<Participant> {
        let mut c = lock(&self.writer);
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        let last: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) FROM participants", [], |r| {
                r.get(0)
            })
            .map_err(self.err("counting participants"))?;
        let id = last + 1;
        let plan = plan_for(last as u64);
        let json = serde_json::to_string(&plan).expect("plans serialize");
        tx.execute(
            "INSERT INTO participants(id, token_hash, created_ms, plan) VALUES (?1, ?2, ?3, ?4)",
            params![id, token_hash, created_ms as i64, json],
        )
        .map_err(self.err("adding a participant"))?;
        tx.commit().map_err(self.err("committing a participant"))?;
        Ok(Participant {
            id,
            created_ms,
            plan,
        })
    }

    fn participant_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Participant> {
        let plan: String = r.get(2)?;
        Ok(Participant {
            id: r.get(0)?,
            created_ms: r.get::<_, i64>(1)? as u64,
            plan: serde_json::from_str(&plan).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
            })?,
        })
    }

    /// The participant whose token hashes to `token_hash`, if any.
    pub fn participant(&self, token_hash: &str) -> Result<Option<Participant>> {
        let c = self.reader();
        c.query_row(
            "SELECT id, created_ms, plan FROM participants WHERE token_hash = ?1",
            [token_hash],
            |r| self.participant_row(r),
        )
        .optional()
        .map_err(self.err("reading a participant"))
    }

    /// Every participant, in order of arrival.
    pub fn participants(&self) -> Result<Vec<Participant>> {
        let c = self.reader();
        let mut st = c
            .prepare("SELECT id, created_ms, plan FROM participants ORDER BY id")
            .map_err(self.err("reading participants"))?;
        let rows = st
            .query_map([], |r| self.participant_row(r))
            .map_err(self.err("reading participants"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading participants"))
    }

    /// The items a participant has answered.
    pub fn answered_items(&self, participant: i64) -> Result<HashSet<String>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached("SELECT item FROM answers WHERE participant = ?1")
            .map_err(self.err("reading answers"))?;
        let rows = st
            .query_map([participant], |r| r.get::<_, String>(0))
            .map_err(self.err("reading answers"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading answers"))
    }

    /// Stores an answer in its own transaction, committed (and fsynced) before this
    /// returns; a second answer to the same (participant, item) writes nothing.
    pub fn insert_answer(&self, a: &Answer) -> Result<Insert> {
        let mut c = lock(&self.writer);
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("starting a transaction"))?;
        let inserted = tx.execute(
            "INSERT INTO answers(participant, item, seq, choice, position, shown, issued_ms, \
             answered_ms, client_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                a.participant,
                a.item,
                a.seq as i64,
                a.choice,
                a.position.map(|p| p as i64),
                a.shown,
                a.issued_ms as i64,
                a.answered_ms as i64,
                a.client_ms.map(|p| p as i64),
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation
                    && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                // The transaction is rolled back when dropped.
                return Ok(Insert::Duplicate);
            }
            Err(e) => return Err(self.err("storing an answer")(e)),
        }
        tx.commit().map_err(self.err("committing an answer"))?;
        Ok(Insert::Stored)
    }

    /// Every answer, by participant then plan position.
    pub fn answers(&self) -> Result<Vec<Answer>> {
        let c = self.reader();
        let mut st = c
            .prepare(
                "SELECT participant, item, seq, choice, position, shown, issued_ms, answered_ms, \
                 client_ms FROM answers ORDER BY participant, seq",
            )
            .map_err(self.err("reading answers"))?;
        let rows = st
            .query_map([], |r| {
                Ok(Answer {
                    participant: r.get(0)?,
                    item: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    choice: r.get(3)?,
                    position: r.get::<_, Option<i64>>(4)?.map(|p| p as u64),
                    shown: r.get(5)?,
                    issued_ms: r.get::<_, i64>(6)? as u64,
                    answered_ms: r.get::<_, i64>(7)? as u64,
                    client_ms: r.get::<_, Option<i64>>(8)?.map(|p| p as u64),
                })
            })
            .map_err(self.err("reading answers"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading answers"))
    }

    /// (participants, answers) stored.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let c = self.reader();
        c.query_row(
            "SELECT (SELECT COUNT(*) FROM participants), (SELECT COUNT(*) FROM answers)",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .map_err(self.err("counting"))
    }
}

/// Held by a running server: a second `dgcolor study serve` on the same study stops with
/// the first one's pid. The operating system drops the lock when the process dies.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    pub fn take(study_dir: &Path) -> Result<ServeLock> {
        let path = study_dir.join(SERVE_LOCK);
        match dgcolor_runs::take_pid_lock(&path).map_err(StudyError::io(&path))? {
            Ok(file) => Ok(ServeLock { _file: file }),
            Err(pid) => Err(StudyError::Busy {
                path: study_dir.to_path_buf(),
                pid,
            }),
        }
    }
}
