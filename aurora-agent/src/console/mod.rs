//! `aurora console`: the fleet's web console. Agents from the heartbeat bucket, alerts live
//! from the stream, an alert's event, rule and process chain, and the control plane's commands
//! behind a confirmation — for operators who logged in (viewers only look). axum (already the
//! metrics server), pages rendered on the server, a little plain JavaScript, server-sent events;
//! nothing to build but the binary.
pub mod auth;
pub mod feed;
pub mod pages;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use auth::{Role, Session, Sessions, Users};
use feed::Feed;

#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub nats: crate::nats::NatsConnectArgs,
    /// Where to serve (loopback unless told otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8640")]
    pub listen: SocketAddr,
    /// Users file: `NAME ROLE ARGON2-HASH` lines (roles operator, viewer); --add-user writes it.
    #[arg(long, value_name = "FILE", required = true)]
    pub users: PathBuf,
    /// Add or replace this user in --users (password read from stdin) and exit.
    #[arg(long, value_name = "NAME")]
    pub add_user: Option<String>,
    /// The role of --add-user: operator (may act) or viewer.
    #[arg(long, value_name = "ROLE", default_value = "viewer")]
    pub role: String,
    /// Hours a login lasts.
    #[arg(long, value_name = "HOURS", default_value_t = 8.0)]
    pub session_hours: f64,
    /// Serve HTTPS with this certificate (PEM chain; with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The JetStream stream the agents publish to.
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
}

/// What every request handler reaches.
pub struct Console {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    refused: crate::nats::Refusals,
    users: Users,
    sessions: Sessions,
    feed: Arc<Feed>,
    /// Served over TLS: session cookies are `Secure`.
    secure: bool,
}

type Shared = Arc<Console>;

/// Hosts per page of the agents table.
pub const PAGE: usize = 100;
const COOKIE: &str = "aurora_session";

/// Add or replace `--add-user` in the users file, the password from stdin.
pub fn add_user(args: &ConsoleArgs, name: &str) -> Result<()> {
    let role = Role::parse(&args.role).context("--role: operator or viewer")?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    auth::add_user(
        &args.users,
        name,
        role,
        password.trim_end_matches(['\n', '\r']),
    )?;
    println!(
        "console: {name} ({}) in {}",
        role.name(),
        args.users.display()
    );
    Ok(())
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    args: ConsoleArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let users = Users::load(&args.users)?;
    if !(0.01..=720.0).contains(&args.session_hours) {
        anyhow::bail!(
            "--session-hours {}: expected 0.01 to 720",
            args.session_hours
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls::server_config(c, k)?),
        _ => None,
    };
    let cfg = args.nats.resolve()?.context("give --nats-url URL")?;
    let refused = crate::nats::Refusals::default();
    let client = refused
        .watch(crate::nats::options(&cfg).await?.retry_on_initial_connect())
        .connect(crate::nats::server_addrs(&cfg)?)
        .await?;
    let js = async_nats::jetstream::new(client.clone());
    crate::fleet::Stores::open(&js, false)
        .await
        .context("the fleet's buckets (aurora fleet init creates them)")?;
    let feed = Feed::new();
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| crate::nats::NatsConfig::DEFAULT_STREAM.into());
    tokio::spawn(feed.clone().follow(js.clone(), stream));
    let state = Arc::new(Console {
        client,
        js,
        refused,
        users,
        sessions: Sessions::new(Duration::from_secs_f64(args.session_hours * 3600.0)),
        feed,
        secure: tls.is_some(),
    });
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("console: serving {scheme}://{}", listener.local_addr()?);
    match tls {
        Some(config) => tls::serve(listener, config, app, shutdown).await,
        None => Ok(axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?),
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(agents_page))
        .route("/alerts", get(alerts_page))
        .route("/alerts/{seq}", get(alert_page))
        .route("/api/agents", get(api_agents))
        .route("/api/alerts", get(api_alerts))
        .route("/api/alerts/stream", get(api_stream))
        .route("/api/cmd", post(api_cmd))
        .with_state(state)
}

/// The session the request's cookie names.
fn session(c: &Console, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let token = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())?;
    c.sessions.get(&token).map(|s| (token, s))
}

/// Where a page without a session goes.
fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// What an API call without a session gets.
fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "log in"}))).into_response()
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(State(c): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let users = &c.users;
    let (user, password) = (f.user.clone(), f.password.clone());
    // argon2 is deliberately slow: off the async workers.
    let role = tokio::task::block_in_place(|| users.check(&user, &password));
    match role {
        Some(role) => {
            let token = c.sessions.open(&f.user, role);
            tracing::info!("console: {} logged in ({})", f.user, role.name());
            (
                StatusCode::SEE_OTHER,
                [
                    (
                        header::SET_COOKIE,
                        format!(
                            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{}",
                            if c.secure { "; Secure" } else { "" }
                        ),
                    ),
                    (header::LOCATION, "/".to_owned()),
                ],
            )
                .into_response()
        }
        None => {
            tracing::warn!("console: failed login for {:?}", f.user);
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some("wrong user or password"))),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(c): State<Shared>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((token, s)) = session(&c, &headers) else {
        return Redirect::to("/login").into_response();
    };
    if !auth::same(&f.csrf, &s.csrf) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
    }
    c.sessions.close(&token);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response()
}

async fn agents_page(State(c): State<Shared>, headers: HeaderMap) -> Response {
    match session(&c, &headers) {
        Some((_, s)) => Html(pages::agents(&s)).into_response(),
        None => to_login(),
    }
}

async fn alerts_page(State(c): State<Shared>, headers: HeaderMap) -> Response {
    match session(&c, &headers) {
        Some((_, s)) => Html(pages::alerts(&s)).into_response(),
        None => to_login(),
    }
}

async fn alert_page(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath(seq): UrlPath<u64>,
) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return to_login();
    };
    match c.feed.alert(seq) {
        Some(a) => {
            let chain = c.feed.chain(&a.alert["event"]);
            Html(pages::alert(&s, seq, &a.host_id, &a.alert, &chain)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "no such alert (or older than the console keeps)",
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

async fn api_agents(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if session(&c, &headers).is_none() {
        return unauthorized();
    }
    match agents(&c, q.page.unwrap_or(1).max(1)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": format!("{e:#}")})),
        )
            .into_response(),
    }
}

/// One page of the fleet's hosts as `fleet status --json` rows.
async fn agents(c: &Console, page: usize) -> Result<Value> {
    let rows = crate::fleet::heartbeat::status_rows(&c.js).await?;
    let stale = rows.iter().filter(|r| r.stale).count();
    let total = rows.len();
    let hosts: Vec<_> = rows
        .into_iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .collect();
    Ok(json!({"total": total, "stale": stale, "page": page, "hosts": hosts}))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn api_alerts(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<LimitQuery>,
) -> Response {
    if session(&c, &headers).is_none() {
        return unauthorized();
    }
    let list: Vec<Value> = c
        .feed
        .newest(q.limit.unwrap_or(200).min(feed::ALERTS_KEPT))
        .iter()
        .map(|a| a.summary())
        .collect();
    Json(list).into_response()
}

async fn api_stream(State(c): State<Shared>, headers: HeaderMap) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    if session(&c, &headers).is_none() {
        return unauthorized();
    }
    let rx = c.feed.live.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(a) => {
                    let ev = Event::default().data(a.summary().to_string());
                    return Some((Ok::<_, std::convert::Infallible>(ev), rx));
                }
                // A slow page skips what it could not take; the list reloads on demand.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct CmdBody {
    host: String,
    words: Vec<String>,
}

async fn api_cmd(State(c): State<Shared>, headers: HeaderMap, Json(b): Json<CmdBody>) -> Response {
    let Some((_, s)) = session(&c, &headers) else {
        return unauthorized();
    };
    let csrf = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth::same(csrf, &s.csrf) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "missing or wrong CSRF token"})),
        )
            .into_response();
    }
    if s.role != Role::Operator {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "viewers cannot act"})),
        )
            .into_response();
    }
    let cmd = match crate::fleet::command::Command::parse(&b.words) {
        Ok(cmd) => cmd,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    tracing::info!("console: {} sends {:?} to {}", s.user, b.words, b.host);
    match crate::fleet::operator::send(&c.client, &b.host, &s.user, cmd).await {
        Ok(crate::fleet::operator::Sent::Replied(r)) => Json(json!(r)).into_response(),
        Ok(sent) => Json(json!(sent)).into_response(),
        Err(e) => {
            let error = c.refused.explain(format!("{e:#}")).to_string();
            (StatusCode::BAD_GATEWAY, Json(json!({"error": error}))).into_response()
        }
    }
}
