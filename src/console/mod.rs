//! The review console at `/console/`: server-rendered pages in Simplified Chinese for
//! community secretaries (and administrators), and a to-do list for grid workers.
//!
//! The console is another entry point to the same rules: every page reads through the API's
//! own scoped reads (`api::households::rows`, `api::tasks::tasks`, `api::stats::overview_for`,
//! …) and every form calls the same operation as the API (`ops::tags::decide`,
//! `ops::pii::reveal_member`, `ops::tasks::change`, …), so scope, audit and errors are the
//! API's. Pages are plain HTML forms (no script at all), styled by one served stylesheet, under
//! a strict Content-Security-Policy. See docs/console.md.

mod charts;
mod forms;
mod pages;
mod session;
mod view;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, ResponseError, web};

pub use self::forms::Post;
pub use self::session::Console;
use crate::error::ApiError;

/// No script, no inline style, nothing from elsewhere; forms post to the console only; no
/// framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum Fail {
    /// No valid session: to the sign-in page.
    SignIn,
    /// A form without this session's CSRF token.
    Csrf,
    /// What the operation or read said (scope 404, role 403, …), as a page.
    Api(ApiError),
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail::Api(e)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::SignIn => f.write_str("not signed in"),
            Fail::Csrf => f.write_str("missing or wrong CSRF token"),
            Fail::Api(e) => write!(f, "{e}"),
        }
    }
}

impl ResponseError for Fail {
    fn status_code(&self) -> StatusCode {
        match self {
            Fail::SignIn => StatusCode::SEE_OTHER,
            Fail::Csrf => StatusCode::FORBIDDEN,
            Fail::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Fail::SignIn => HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/login")).finish(),
            Fail::Csrf => view::error_page(StatusCode::FORBIDDEN, "表单已失效，请返回上一页刷新后重试。"),
            Fail::Api(e) => {
                // Logs internal errors and outages with their cause, as the API does.
                let _ = e.error_response();
                let mut res = view::error_page(e.status_code(), &view::message(e));
                if let ApiError::TooManyRequests { retry_after_secs, .. } = e {
                    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                }
                res
            }
        }
    }
}

pub type Page = Result<HttpResponse, Fail>;

/// Answers paths under `/console/` that name no page.
async fn no_page() -> Page {
    Err(Fail::Api(ApiError::NotFound("no page at this path".into())))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("static/console.css"))
}

async fn to_home() -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/")).finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    use self::pages::{households, imports, overview, reports, review, sign, tasks};
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"));
    cfg.service(web::resource("/console").route(web::get().to(to_home))).service(
        web::scope("/console")
            .wrap(headers)
            .route("/", web::get().to(overview::home))
            .route("/static/console.css", web::get().to(stylesheet))
            .route("/login", web::get().to(sign::form))
            .route("/login", web::post().to(sign::sign_in))
            .route("/logout", web::post().to(sign::sign_out))
            .route("/review", web::get().to(review::queue))
            .route("/review/{id}/approve", web::post().to(review::approve))
            .route("/review/{id}/reject", web::post().to(review::reject))
            .route("/households", web::get().to(households::list))
            .route("/households/{id}", web::get().to(households::show))
            .route("/households/{id}/tag", web::post().to(households::set_tag))
            .route("/households/{id}/reveal", web::post().to(households::reveal_phone))
            .route("/members/{id}/reveal", web::post().to(households::reveal_member))
            .route("/tasks", web::get().to(tasks::queue))
            .route("/tasks/{id}", web::post().to(tasks::change))
            .route("/todo", web::get().to(tasks::todo))
            .route("/report", web::get().to(reports::show))
            .route("/report/download", web::get().to(reports::download))
            .route("/import", web::get().to(imports::form))
            .route("/import", web::post().to(imports::upload))
            .route("/import/{id}/commit", web::post().to(imports::commit))
            .route("/import/template.xlsx", web::get().to(imports::template))
            .default_service(web::to(no_page)),
    );
}
