//! One error type for every failure a client can see, answered as RFC 9457 problem details.
//!
//! Handlers return `Result<_, ApiError>`; database and pool errors convert into it so that
//! `?` does the right thing (missing row → 404, unique violation → 409, unreachable database →
//! 503). Anything unexpected is logged with its cause and answered as a bare 500.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request, e.g. `members[0].id_number`.
    #[schema(example = "phone")]
    pub field: String,
    /// A stable machine-readable code, e.g. `invalid_format`, `required`, `too_long`.
    #[schema(example = "invalid_format")]
    pub code: String,
    /// A human-readable explanation.
    #[schema(example = "must be a mainland mobile number or a landline with area code")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), code: code.into(), message: message.into() }
    }
}

/// What went wrong, as a word a client can branch on (`code` in every problem+json): a mobile
/// client or the sync protocol tells "this id is taken" from "the household was removed"
/// without parsing English. Closed: a new kind of failure gets a new variant here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request could not be read (malformed JSON, query string or header).
    BadRequest,
    /// 401: no valid access token (or the account was deactivated or its password changed).
    Unauthenticated,
    /// 403: the caller's role may never do this.
    Forbidden,
    /// 404: no such resource, or not in the caller's scope (the two are not told apart).
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409: the client-chosen id belongs to another record, or another request of it.
    IdConflict,
    /// 409: the household was removed (moved out, deceased, merged); it takes no more changes.
    HouseholdRemoved,
    /// 409: the household already has a pending tag proposal.
    ProposalPending,
    /// 409: the tag change was already decided (or cancelled).
    AlreadyDecided,
    /// 409: the visit is more than 24 hours old and can no longer be corrected.
    VisitLocked,
    /// 409: the task is done or cancelled.
    TaskClosed,
    /// 409: a value that must be unique (a username, a grid code) is taken.
    AlreadyExists,
    /// 409: a current resident already holds this ID number (a person is registered once).
    IdNumberTaken,
    /// 409: a record the request names does not exist, or one it would remove is still used.
    InUse,
    /// 409: a concurrent change got there first; the request can be retried.
    ConcurrentChange,
    /// 409: what a roster import was checked against changed since its dry run: upload the
    /// file again for a new dry run.
    ImportStale,
    /// 409: the import was committed (or failed) already.
    ImportClosed,
    /// 409: the import has rows with errors and the commit was not asked to skip them.
    ImportHasErrors,
    /// 410: the import's file was cleared (it ended, or its dry run expired) and it kept no
    /// error workbook.
    ImportFileCleared,
    /// 410: a sync token that cannot be served (too old, another account's or server's): start
    /// a new initial sync, keeping unsent work to push.
    ResyncRequired,
    /// 410: the events after the `after` given were pruned with the change log (older than its
    /// retention): read again from the oldest kept (`after=0`).
    EventsPruned,
    /// 412: `If-Match` names another version than the current one.
    StaleVersion,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422: fields are invalid; `errors` names each with its own code.
    Validation,
    /// 429: too many failed password checks on the account; see `Retry-After`.
    RateLimited,
    /// 503: the database is unreachable or busy; see `Retry-After`.
    Unavailable,
    /// 500: a bug; the cause is logged, never sent.
    Internal,
}

/// RFC 9457 problem details, the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI identifying the kind of problem.
    #[schema(example = "urn:gridlight:problem:validation")]
    #[serde(rename = "type")]
    pub problem_type: String,
    #[schema(example = "Validation failed")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "1 field is invalid")]
    pub detail: String,
    /// The kind of failure, for clients to branch on.
    pub code: ErrorCode,
    /// Present on validation failures (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict ({0:?}): {1}")]
    Conflict(ErrorCode, String),
    #[error("gone ({0:?}): {1}")]
    Gone(ErrorCode, String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("too many requests: {detail}")]
    TooManyRequests { detail: String, retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// A 409 of a kind.
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::Conflict(code, detail.into())
    }

    /// The household was removed: it takes no more changes.
    pub fn household_removed() -> Self {
        ApiError::Conflict(ErrorCode::HouseholdRemoved, "the household has been removed".into())
    }

    /// The code a client branches on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(code, _) | ApiError::Gone(code, _) => *code,
            ApiError::PreconditionFailed(_) => ErrorCode::StaleVersion,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Validation(_) => ErrorCode::Validation,
            ApiError::TooManyRequests { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    /// A 422 with one field error.
    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, code, message)])
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Malformed request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Not allowed for this role"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(..) => ("conflict", "Conflict"),
            ApiError::Gone(..) => ("gone", "No longer available"),
            ApiError::PreconditionFailed(_) => ("precondition-failed", "Precondition failed"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::Validation(_) => ("validation", "Validation failed"),
            ApiError::TooManyRequests { .. } => ("too-many-requests", "Too many requests"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let detail = match self {
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(_, d)
            | ApiError::Gone(_, d)
            | ApiError::PreconditionFailed(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unavailable(d) => d.clone(),
            ApiError::TooManyRequests { detail, .. } => detail.clone(),
            ApiError::MethodNotAllowed => "this resource does not support that method".into(),
            ApiError::Validation(errors) => match errors.len() {
                1 => "1 field is invalid".into(),
                n => format!("{n} fields are invalid"),
            },
            // The cause is logged, never sent.
            ApiError::Internal(_) => "the server could not complete the request".into(),
        };
        Problem {
            problem_type: format!("urn:gridlight:problem:{slug}"),
            title: title.into(),
            status: self.status_code().as_u16(),
            detail,
            code: self.code(),
            errors: match self {
                ApiError::Validation(e) => Some(e.clone()),
                _ => None,
            },
        }
    }
}

/// The problem+json response for a status, for errors that arise outside handlers.
pub fn problem_response(status: StatusCode, detail: &str) -> HttpResponse {
    let err = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(detail.into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized(detail.into()),
        StatusCode::FORBIDDEN => ApiError::Forbidden(detail.into()),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(detail.into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail.into()),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(detail.into()),
        s if s.is_server_error() => ApiError::Internal(anyhow::anyhow!("{detail}")),
        _ => ApiError::BadRequest(detail.into()),
    };
    let mut problem = err.problem();
    problem.status = status.as_u16();
    if !status.is_server_error() && !detail.is_empty() {
        problem.detail = detail.into();
    }
    HttpResponse::build(status).content_type(PROBLEM_JSON).json(problem)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Gone(..) => StatusCode::GONE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(detail, "database unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.content_type(PROBLEM_JSON);
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::TooManyRequests { retry_after_secs, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "2"));
            }
            _ => {}
        }
        res.json(self.problem())
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => ApiError::NotFound("not found".into()),
            DieselError::DatabaseError(kind, info) => {
                let message = info.message().to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => ApiError::Conflict(
                        ErrorCode::AlreadyExists,
                        format!("already exists ({})", constraint_of(&*info)),
                    ),
                    DatabaseErrorKind::ForeignKeyViolation => ApiError::Conflict(
                        ErrorCode::InUse,
                        "a referenced record does not exist or is still in use".into(),
                    ),
                    DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                        ApiError::Validation(vec![FieldError::new(
                            constraint_of(&*info),
                            "invalid",
                            "the value breaks a rule of the data model",
                        )])
                    }
                    DatabaseErrorKind::SerializationFailure => ApiError::Conflict(
                        ErrorCode::ConcurrentChange,
                        "a concurrent change got there first; retry".into(),
                    ),
                    DatabaseErrorKind::ClosedConnection => ApiError::Unavailable("database connection lost".into()),
                    _ if is_unavailable_message(&message) => ApiError::Unavailable("database unavailable".into()),
                    _ => ApiError::Internal(anyhow::anyhow!("database error: {message}")),
                }
            }
            DieselError::BrokenTransactionManager => ApiError::Unavailable("database connection lost".into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Errors that mean "the database is not reachable or busy right now", which clients should
/// retry, as opposed to bugs.
fn is_unavailable_message(message: &str) -> bool {
    const SIGNS: [&str; 10] = [
        "database is locked",
        "deadlock detected",
        "database is busy",
        "server closed the connection",
        "terminating connection",
        "connection to server",
        "no connection to the server",
        "could not connect",
        "the database system is shutting down",
        "the database system is starting up",
    ];
    let m = message.to_ascii_lowercase();
    SIGNS.iter().any(|s| m.contains(s))
}

/// The constraint (PostgreSQL) or column list (SQLite) a violation names, for the detail.
fn constraint_of(info: &dyn diesel::result::DatabaseErrorInformation) -> String {
    if let Some(name) = info.constraint_name() {
        return name.to_owned();
    }
    // SQLite: "UNIQUE constraint failed: grids.code"
    info.message().rsplit(": ").next().unwrap_or("constraint").to_owned()
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(_: diesel::r2d2::PoolError) -> Self {
        ApiError::Unavailable("no database connection available in time".into())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(anyhow::anyhow!("blocking task was cancelled or panicked"))
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut out = Vec::new();
        for (field, errs) in errors.field_errors() {
            for e in errs {
                let message = e.message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| match e.code.as_ref() {
                    "length" => "has the wrong length".into(),
                    "range" => "is out of range".into(),
                    "required" => "is required".into(),
                    code => format!("is invalid ({code})"),
                });
                out.push(FieldError::new(field.to_string(), e.code.to_string(), message));
            }
        }
        out.sort_by(|a, b| a.field.cmp(&b.field));
        ApiError::Validation(out)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let p = ApiError::internal(anyhow::anyhow!("SELECT secret FROM /etc/passwd")).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("SELECT"));
    }

    #[test]
    fn connection_loss_is_unavailable() {
        assert!(is_unavailable_message("server closed the connection unexpectedly"));
        assert!(is_unavailable_message("database is locked"));
        assert!(!is_unavailable_message("syntax error at or near"));
    }
}
