//! `dgcolor study serve`: the study as a web app (axum on tokio).
//!
//! Routes (all pages rendered here, usable without JavaScript):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | instructions and consent |
//! | `POST /start` | consent given: a new anonymous participant (random token in a cookie) |
//! | `GET /q` | the participant's next unanswered item (or the closing page) |
//! | `POST /answer` | one answer: `item`, `t` (the page's ticket), `choice`, `client_ms` |
//! | `GET /done` | the closing page |
//! | `GET /img/{id}` | an image, by opaque id |
//! | `GET /static/study.{css,js}` | style and the optional script |
//! | `GET /admin`, `GET /admin/answers.csv` | results and export, with the admin token |
//!
//! An answer is accepted only from a participant whose plan holds the item, with the
//! ticket the server issued for that participant and item (an HMAC, so it cannot be forged
//! or moved to another participant), and a choice that belongs to the item; it is committed
//! to SQLite before the redirect that acknowledges it, and a second answer to the same item
//! is refused with 409 and writes nothing. Anything else is a 4xx that writes nothing.
//! Bodies over [`ServeOptions::max_body`] are refused (413); a panic in a handler becomes a
//! 500 for that request only. Every response carries a strict content security policy and
//! `no-store` (images: private caching), and nothing the browser receives (HTML, URLs,
//! file names, headers) names a method: only the admin's pages do.

mod pages;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde::Deserialize;
use tokio::sync::oneshot;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::{Result, StudyError};
use crate::export::{answer_rows, csv_string};
use crate::ids::{is_id, mac_hex, random_hex, same_secret, token_hash};
use crate::manifest::{now_ms, ItemRef, Study, DATABASE};
use crate::report::{analyze, html_tables, ReportOptions};
use crate::store::{Answer, Insert, Participant, ServeLock, Store};

pub use pages::esc;

/// Cookie holding a participant's random token.
pub const PARTICIPANT_COOKIE: &str = "dgcolor_study";
/// Cookie holding the admin token after `/admin?token=...`.
pub const ADMIN_COOKIE: &str = "dgcolor_admin";
/// Tickets older than this are refused (the participant reloads the page for a new one).
pub const TICKET_MAX_AGE_MS: u64 = 24 * 3600 * 1000;
/// The largest accepted `client_ms` (a day).
const CLIENT_MS_MAX: u64 = 24 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen; loopback unless told otherwise.
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes (answers are well under 1 KiB).
    pub max_body: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 4096,
        }
    }
}

struct AppState {
    study: Study,
    store: Store,
    /// Participants by token hash (plans never change once made).
    cache: RwLock<HashMap<String, Arc<Participant>>>,
    plan_len: usize,
}

type App = Arc<AppState>;

/// A server running on the current tokio runtime.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub admin_token: String,
    state: App,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _lock: ServeLock,
}

impl RunningServer {
    pub fn study(&self) -> &Study {
        &self.state.study
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Stops accepting, lets requests in flight finish, and returns.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r.map_err(StudyError::io(&self.state.study.dir)),
            Err(e) => Err(StudyError::Config(format!("the server task failed: {e}"))),
        }
    }
}

/// Opens the study (taking its serve lock and its answer store), binds `opts.addr` and
/// serves on the current tokio runtime until [`RunningServer::shutdown`].
pub async fn start(study_dir: &Path, opts: &ServeOptions) -> Result<RunningServer> {
    let lock = ServeLock::take(study_dir)?;
    let study = Study::open(study_dir)?;
    let store = Store::open(&study_dir.join(DATABASE), &study.manifest.uid)?;
    let plan_len = study.plan(0).len();
    let admin_token = store.admin_token.clone();
    let state = Arc::new(AppState {
        study,
        store,
        cache: RwLock::new(HashMap::new()),
        plan_len,
    });
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| StudyError::Config(format!("cannot listen on {}: {e}", opts.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StudyError::Config(format!("cannot read the bound address: {e}")))?;
    let app = router(state.clone(), opts.max_body);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        admin_token,
        state,
        shutdown: Some(tx),
        task,
        _lock: lock,
    })
}

fn router(state: App, max_body: usize) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/start", post(start_participant))
        .route("/q", get(question))
        .route("/answer", post(answer))
        .route("/done", get(done))
        .route("/img/{id}", get(image))
        .route("/static/study.css", get(css))
        .route("/static/study.js", get(js))
        .route("/admin", get(admin))
        .route("/admin/answers.csv", get(admin_export))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            eprintln!("dgcolor study: a request handler panicked; the server goes on");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not handle this request. Please try again.",
                Some(("/q", "Continue")),
            )
        }))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn title(app: &AppState) -> &str {
    &app.study.manifest.title
}

fn page(status: StatusCode, heading: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    (
        status,
        Html(pages::message("User study", heading, text, link)),
    )
        .into_response()
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("dgcolor study: {e}");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not save or read your answers just now. Please try again.",
        Some(("/q", "Try again")),
    )
}

/// The value of cookie `name` from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| StudyError::Config(format!("a store task failed: {e}")))?
}

/// The participant of the request's cookie, if it names one.
async fn participant(app: &App, headers: &HeaderMap) -> Result<Option<Arc<Participant>>> {
    let Some(token) = cookie(headers, PARTICIPANT_COOKIE).filter(|t| is_id(t)) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    if let Some(p) = app
        .cache
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hash)
    {
        return Ok(Some(p.clone()));
    }
    let key = hash.clone();
    let found = blocking(app, move |s| s.store.participant(&key)).await?;
    Ok(found.map(|p| {
        let p = Arc::new(p);
        app.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, p.clone());
        p
    }))
}

fn ticket(app: &AppState, participant: i64, item: &str, issued_ms: u64) -> String {
    format!(
        "{issued_ms}.{}",
        mac_hex(
            &app.store.secret,
            &format!("ticket|{participant}|{item}|{issued_ms}")
        )
    )
}

/// The issue time of a valid ticket for (participant, item); `None` if forged, moved,
/// malformed, from the future or too old.
fn check_ticket(app: &AppState, participant: i64, item: &str, t: &str, now: u64) -> Option<u64> {
    let (issued, _) = t.split_once('.')?;
    if issued.is_empty() || issued.len() > 15 || !issued.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let issued: u64 = issued.parse().ok()?;
    if !same_secret(t, &ticket(app, participant, item, issued)) {
        return None;
    }
    (issued <= now + 60_000 && now.saturating_sub(issued) <= TICKET_MAX_AGE_MS).then_some(issued)
}

fn completion_code(app: &AppState, participant: i64) -> String {
    mac_hex(&app.store.secret, &format!("done|{participant}"))[..10].to_uppercase()
}

async fn index(State(app): State<App>, headers: HeaderMap) -> Response {
    let returning = match participant(&app, &headers).await {
        Ok(p) => p.is_some(),
        Err(e) => return internal(e),
    };
    Html(pages::consent(
        title(&app),
        app.plan_len,
        !app.study.manifest.best_of.is_empty(),
        returning,
    ))
    .into_response()
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    consent: String,
}

async fn start_participant(
    State(app): State<App>,
    headers: HeaderMap,
    form: std::result::Result<Form<StartForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) => {
            return page(
                r.status(),
                "Bad request",
                &r.body_text(),
                Some(("/", "Back")),
            )
        }
    };
    if form.consent != "yes" {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Consent needed",
            "Please tick the box to say that you agree to take part.",
            Some(("/", "Back to the instructions")),
        );
    }
    match participant(&app, &headers).await {
        Ok(Some(_)) => return see_other("/q"),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let token = random_hex(16);
    let hash = token_hash(&token);
    let created = blocking(&app, move |s| {
        s.store
            .create_participant(&hash, now_ms(), |ordinal| s.study.plan(ordinal))
    })
    .await;
    if let Err(e) = created {
        return internal(e);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/q".to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{PARTICIPANT_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
                ),
            ),
        ],
    )
        .into_response()
}

/// The participant of the request's cookie and the items they have answered, or the response
/// to send instead (the start page without a valid cookie, 500 on a storage error).
async fn progress(
    app: &App,
    headers: &HeaderMap,
) -> std::result::Result<(Arc<Participant>, HashSet<String>), Response> {
    let p = match participant(app, headers).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(see_other("/")),
        Err(e) => return Err(internal(e)),
    };
    let pid = p.id;
    match blocking(app, move |s| s.store.answered_items(pid)).await {
        Ok(answered) => Ok((p, answered)),
        Err(e) => Err(internal(e)),
    }
}

async fn question(State(app): State<App>, headers: HeaderMap) -> Response {
    let (p, answered) = match progress(&app, &headers).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Some(next) = p.plan.iter().find(|e| !answered.contains(&e.item)) else {
        return see_other("/done");
    };
    let total = p.plan.len();
    let done = p.plan.iter().filter(|e| answered.contains(&e.item)).count();
    let two_parts = !app.study.manifest.best_of.is_empty();
    let t = ticket(&app, p.id, &next.item, now_ms());
    let html = match app.study.item(&next.item) {
        Some(ItemRef::Naturalness(i)) => {
            let image = &app.study.manifest.naturalness[i].image;
            let part = if two_parts {
                "Part 1 of 2 · natural or not?"
            } else {
                "Natural or not?"
            };
            pages::naturalness(
                title(&app),
                part,
                done,
                total,
                &next.item,
                &t,
                image,
                app.study.noun(image),
            )
        }
        Some(ItemRef::BestOf(i)) => {
            let first = &app.study.manifest.best_of[i].options[0];
            pages::best_of(
                title(&app),
                "Part 2 of 2 · the most natural",
                done,
                total,
                &next.item,
                &t,
                &next.options,
                app.study.noun(first),
            )
        }
        None => {
            return internal(format!(
                "plan of participant {} names an unknown item",
                p.id
            ))
        }
    };
    Html(html).into_response()
}

#[derive(Deserialize)]
struct AnswerForm {
    item: String,
    t: String,
    choice: String,
    #[serde(default)]
    client_ms: String,
}

async fn answer(
    State(app): State<App>,
    headers: HeaderMap,
    form: std::result::Result<Form<AnswerForm>, FormRejection>,
) -> Response {
    let received = now_ms();
    let f = match form {
        Ok(Form(f)) => f,
        Err(r) => {
            return page(
                r.status(),
                "Answer not understood",
                &r.body_text(),
                Some(("/q", "Back to the question")),
            )
        }
    };
    let p = match participant(&app, &headers).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return page(
                StatusCode::FORBIDDEN,
                "No study session",
                "This browser has not started the study (or its cookie was removed).",
                Some(("/", "Start")),
            )
        }
        Err(e) => return internal(e),
    };
    let refuse = |status: StatusCode, why: &str| {
        page(
            status,
            "Answer refused",
            why,
            Some(("/q", "Back to the study")),
        )
    };
    let Some(item) = Some(f.item.as_str())
        .filter(|i| is_id(i))
        .and_then(|i| app.study.item(i))
    else {
        return refuse(StatusCode::NOT_FOUND, "There is no such question.");
    };
    let Some(seq) = p.plan.iter().position(|e| e.item == f.item) else {
        return refuse(StatusCode::FORBIDDEN, "This question is not one of yours.");
    };
    let Some(issued) = check_ticket(&app, p.id, &f.item, &f.t, received) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "This answer did not come from the question page (or the page is more than a day old). Please reload the question.",
        );
    };
    let entry = &p.plan[seq];
    let (choice, position, shown) = match item {
        ItemRef::Naturalness(_) => match f.choice.as_str() {
            "yes" | "no" => (f.choice.clone(), None, None),
            _ => {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The answer must be yes or no.",
                )
            }
        },
        ItemRef::BestOf(_) => {
            let pos = is_id(&f.choice)
                .then(|| entry.options.iter().position(|o| *o == f.choice))
                .flatten();
            let Some(pos) = pos else {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "That picture is not one of this question's.",
                );
            };
            (
                f.choice.clone(),
                Some(pos as u64),
                Some(entry.options.join("|")),
            )
        }
    };
    let client_ms = match f.client_ms.as_str() {
        "" => None,
        s if s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<u64>() {
            Ok(v) if v <= CLIENT_MS_MAX => Some(v),
            _ => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Bad response time."),
        },
        _ => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Bad response time."),
    };
    let a = Answer {
        participant: p.id,
        item: f.item.clone(),
        seq: seq as u64,
        choice,
        position,
        shown,
        issued_ms: issued,
        answered_ms: received,
        client_ms,
    };
    match blocking(&app, move |s| s.store.insert_answer(&a)).await {
        Ok(Insert::Stored) => see_other("/q"),
        Ok(Insert::Duplicate) => page(
            StatusCode::CONFLICT,
            "Already answered",
            "You have already answered this question; your first answer is kept.",
            Some(("/q", "Go to the next question")),
        ),
        Err(e) => internal(e),
    }
}

async fn done(State(app): State<App>, headers: HeaderMap) -> Response {
    let (p, answered) = match progress(&app, &headers).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    if p.plan.iter().any(|e| !answered.contains(&e.item)) {
        return see_other("/q");
    }
    Html(pages::done(
        title(&app),
        p.plan.len(),
        &completion_code(&app, p.id),
    ))
    .into_response()
}

async fn image(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(path) = Some(id.as_str())
        .filter(|i| is_id(i))
        .and_then(|i| app.study.image_file(i))
    else {
        return not_found().await;
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => internal(format!("{}: {e}", path.display())),
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        pages::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        pages::JS,
    )
        .into_response()
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here.",
        Some(("/", "The study")),
    )
}

#[derive(Deserialize)]
struct AdminQuery {
    token: Option<String>,
}

/// Whether the request carries the admin token (bearer header or admin cookie).
fn is_admin(app: &AppState, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    [bearer, cookie(headers, ADMIN_COOKIE)]
        .into_iter()
        .flatten()
        .any(|t| same_secret(t.trim(), &app.store.admin_token))
}

fn unauthorized() -> Response {
    let mut r = page(
        StatusCode::UNAUTHORIZED,
        "Admin token needed",
        "Open the admin link that `dgcolor study serve` printed, or send the token as `Authorization: Bearer TOKEN`.",
        None,
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn admin(
    State(app): State<App>,
    headers: HeaderMap,
    query: std::result::Result<Query<AdminQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return unauthorized();
    };
    if let Some(token) = q.token {
        if !same_secret(&token, &app.store.admin_token) {
            return unauthorized();
        }
        // Move the token from the URL into an HttpOnly cookie for the admin pages.
        return (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/admin".to_string()),
                (
                    header::SET_COOKIE,
                    format!("{ADMIN_COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict"),
                ),
            ],
        )
            .into_response();
    }
    if !is_admin(&app, &headers) {
        return unauthorized();
    }
    let body = blocking(&app, |s| {
        let (participants, answers) = s.store.counts()?;
        let rows = answer_rows(&s.study, &s.store)?;
        let analysis = analyze(&rows, &s.study.manifest.methods, &ReportOptions::default());
        Ok(format!(
            "<h1>Results so far</h1><p>{participants} participants, {answers} answers. \
             <a href=\"/admin/answers.csv\">Download the answers (CSV)</a>. The full report \
             with plots: <code>dgcolor study report</code>.</p>{}",
            html_tables(&analysis)
        ))
    })
    .await;
    match body {
        Ok(b) => Html(pages::admin(title(&app), &b)).into_response(),
        Err(e) => internal(e),
    }
}

async fn admin_export(State(app): State<App>, headers: HeaderMap) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized();
    }
    match blocking(&app, |s| csv_string(&answer_rows(&s.study, &s.store)?)).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"answers.csv\"",
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// Serves until Ctrl-C or SIGTERM, then stops gracefully (answers in flight are
/// committed or refused, never half-written). `ready` is called once listening.
pub async fn serve_until_signal(
    study_dir: &Path,
    opts: &ServeOptions,
    ready: impl FnOnce(&RunningServer),
) -> Result<()> {
    let server = start(study_dir, opts).await?;
    ready(&server);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| StudyError::Config(format!("cannot watch SIGTERM: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("dgcolor study: stopping");
    server.shutdown().await
}
