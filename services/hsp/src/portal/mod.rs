//! The clinicians' web portal, served by the HSP on a listener of its own:
//! a JSON API under `/api/` and the page's built assets (HTML, CSS, the
//! script bundle with OPAQUE's WebAssembly), all from the HSP itself.
//!
//! Every response carries a strict Content-Security-Policy: scripts only from
//! this origin, plus `'wasm-unsafe-eval'` because OPAQUE runs as
//! WebAssembly; no inline script or style, no framing, no other origins.
//! API answers are never cached. A page without a live session sees nothing
//! but the sign-in form: every `/api/` call checks the session on the server.

mod admin;
mod admin_patients;
mod alerts;
mod api;
mod client;
mod error;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod login;
mod lookup;
mod session;
mod setup;
mod tls;
mod traced;

pub(crate) use api::NOT_OPEN;
pub use client::TrustedProxy;
pub(crate) use error::ApiError;
pub use login::code_mac;
pub(crate) use session::Clinician;
pub use tls::PortalTls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;

use crate::Hsp;

/// The portal's settings.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// The built page (`portal/dist`): `index.html` and what it loads. Without
    /// it the API still works and `/` says how to build the page.
    pub assets_dir: Option<PathBuf>,
    /// The built page carried in the binary, by request path
    /// (`/index.html`, …): served when `assets_dir` is `None`.
    pub embedded_assets: &'static [(&'static str, &'static [u8])],
    /// Whether the portal is reached over TLS (directly or through a proxy
    /// that terminates it): then the cookie is `Secure` and `__Host-` prefixed.
    /// Always so when the portal serves TLS itself.
    pub secure_cookies: bool,
    /// Serve TLS with this certificate and key instead of plain HTTP.
    pub tls: Option<PortalTls>,
    /// A session ends after this many idle seconds (30 minutes).
    pub idle_secs: u64,
    /// And after this many in all (12 hours).
    pub absolute_secs: u64,
    /// The clinicians (by username) who may use the administrator pages.
    pub administrators: Vec<String>,
    /// An administrator's changes need a password proven this many seconds
    /// ago at most (15 minutes); reading needs only the session.
    pub admin_proof_secs: u64,
    /// The TTP's administrator token, for enrolling parties and revoking
    /// credentials from the portal; without it those pages say they are not
    /// configured.
    pub ttp_admin_token: Option<vitalgate_rpc::admin::AdminToken>,
    /// The proxies in front of the portal whose `Forwarded` or
    /// `X-Forwarded-For` names the client (for counting password guesses
    /// per client); from anyone else those headers are ignored.
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            assets_dir: None,
            embedded_assets: &[],
            secure_cookies: false,
            tls: None,
            idle_secs: 30 * 60,
            absolute_secs: 12 * 3600,
            administrators: Vec::new(),
            admin_proof_secs: 15 * 60,
            ttp_admin_token: None,
            trusted_proxies: Vec::new(),
        }
    }
}

const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Per session (token hash): when its list was audited, and which list.
pub(crate) type ListAudits = HashMap<[u8; 32], (u64, u64)>;

/// The portal's shared state.
#[derive(Clone)]
pub(crate) struct Portal {
    pub(crate) hsp: Hsp,
    pub(crate) config: Arc<PortalConfig>,
    assets: Arc<HashMap<String, Asset>>,
    /// Per session (token hash): when its patient list was last audited,
    /// and which list (see `api::Portal::list_needs_audit`).
    pub(crate) list_audits: Arc<std::sync::Mutex<ListAudits>>,
}

struct Asset {
    body: axum::body::Bytes,
    content_type: &'static str,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// Reads the built page into memory once: a fixed set of files, so no
/// request path ever reaches the file system.
fn load_assets(dir: &Path) -> std::io::Result<HashMap<String, Asset>> {
    let mut assets = HashMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(relative) = path.strip_prefix(dir) else {
                continue;
            };
            let key = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            assets.insert(
                key,
                Asset {
                    body: std::fs::read(&path)?.into(),
                    content_type: content_type(&path),
                },
            );
        }
    }
    Ok(assets)
}

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>vitalgate portal</title></head><body><h1>The portal's page is not built</h1>\
    <p>This binary was built without it: run <code>scripts/portal-build</code> (npm) and build \
    the binary again, or start the HSP with <code>--portal-assets portal/dist</code>. \
    The API under <code>/api/</code> works without it.</p>\
    </body></html>";

async fn asset(State(portal): State<Portal>, request: Request) -> Response {
    let path = request.uri().path();
    // Client-side routes (/, /patients/…) all load the one page.
    let key = if path == "/" || !path.contains('.') {
        "/index.html"
    } else {
        path
    };
    match portal.assets.get(key) {
        Some(asset) => (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.body.clone(),
        )
            .into_response(),
        None if key == "/index.html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn security_headers(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Browsers heed this only over TLS (the portal's own, or a proxy's).
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

impl Hsp {
    /// The portal's routes on this HSP.
    pub fn portal_router(&self, config: PortalConfig) -> std::io::Result<Router> {
        let assets = match &config.assets_dir {
            Some(dir) => load_assets(dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("the portal's assets in {}: {e}", dir.display()),
                )
            })?,
            None => config
                .embedded_assets
                .iter()
                .map(|&(path, body)| {
                    let asset = Asset {
                        body: axum::body::Bytes::from_static(body),
                        content_type: content_type(Path::new(path)),
                    };
                    (path.to_string(), asset)
                })
                .collect(),
        };
        if config.assets_dir.is_some() && !assets.contains_key("/index.html") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the portal's assets have no index.html: run scripts/portal-build",
            ));
        }
        let portal = Portal {
            hsp: self.clone(),
            config: Arc::new(config),
            assets: Arc::new(assets),
            list_audits: Arc::default(),
        };
        let api = Router::new()
            .route("/login/start", post(login::start))
            .route("/login/finish", post(login::finish))
            .route("/break-glass/start", post(login::break_glass_start))
            .route("/break-glass/finish", post(login::break_glass_finish))
            .route("/session", get(api::session))
            .route("/logout", post(api::logout))
            .route("/patients", get(api::patients))
            .route("/patients/{pseudonym}", get(api::patient))
            .route("/patients/{pseudonym}/live", get(api::live))
            .route("/alerts/{id}/acknowledge", post(alerts::acknowledge))
            .route("/alerts/{id}/resolve", post(alerts::resolve))
            .route("/fhir-token", post(crate::fhir_api::clinician_token))
            .route("/otp/enroll", post(setup::enroll_otp))
            .route("/setup/password/start", post(setup::setup_password_start))
            .route("/setup/password/finish", post(setup::setup_password_finish))
            .route("/password/start", post(api::password_start))
            .route("/password/finish", post(api::password_finish))
            .route("/admin", get(admin::overview))
            .route("/admin/audit", get(admin::audit_log))
            .route("/admin/parties", get(admin::parties))
            .route("/admin/enrollment-tokens", post(admin::enroll))
            .route("/admin/revoke", post(admin::revoke))
            .route("/admin/factor-tokens", post(admin::factor_token))
            .route(
                "/admin/patients",
                get(admin_patients::list).post(admin_patients::add),
            )
            .route(
                "/admin/patients/{pseudonym}/care-team",
                post(admin_patients::care_team),
            )
            .route(
                "/admin/patients/{pseudonym}/on-call",
                post(admin_patients::on_call),
            )
            .route(
                "/admin/patients/{pseudonym}/device",
                post(admin_patients::device),
            )
            .route(
                "/admin/patients/{pseudonym}/settings",
                post(admin_patients::settings),
            )
            .route(
                "/admin/patients/{pseudonym}/discharge",
                post(admin_patients::discharge),
            )
            .fallback(|| async { ApiError::not_found("No such API.") });
        Ok(Router::new()
            .nest("/api", api)
            .nest("/fhir", crate::fhir_api::router())
            .fallback(get(asset))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .layer(middleware::from_fn(security_headers))
            .layer(middleware::from_fn(traced::traced))
            .with_state(portal))
    }

    /// Serves the portal on `listener` until `shutdown`.
    pub async fn serve_portal(
        &self,
        mut config: PortalConfig,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tls = config.tls.clone();
        config.secure_cookies |= tls.is_some();
        let service = self
            .portal_router(config)?
            .into_make_service_with_connect_info::<SocketAddr>();
        match tls {
            Some(tls) => {
                // (Tapping each connection to set TCP_NODELAY, as axum's
                // own TCP listener can, also gives handlers the peer's
                // address: axum provides that for tapped listeners.)
                let listener = tls::TlsListener::new(listener, &tls)?.tap_io(|tls| {
                    let _ = tls.get_ref().0.set_nodelay(true);
                });
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }
}
