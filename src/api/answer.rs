//! How an authenticated handler reaches the database and answers: [`Api`] (the caller and the
//! application state, in one extractor) runs the handler's work as the caller, and renders the
//! rows it returns in the same transaction, so the answer shows what was read or written and
//! nothing that came later; a versioned resource goes out with its `ETag`.
//!
//! A handler names the work (a scope check, an operation) and the answer follows from the row
//! type: `api.updated(move |c, caller| ops::grids::edit(c, caller, &id, expected, edit))`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Serialize;

use crate::AppState;
use crate::api::conditional::etag;
use crate::api::pagination::Page;
use crate::auth::AuthUser;
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};

/// A stored row as clients see it.
pub trait View: Sized + Send + 'static {
    type Out: Serialize + Send + 'static;

    /// The version its `ETag` names, for a versioned resource.
    fn version(&self) -> Option<i32> {
        None
    }

    /// The answer, reading what else it shows on the same connection (a grid's workers, a
    /// household's suggestion).
    fn view(self, conn: &mut DbConn) -> ApiResult<Self::Out>;

    /// The answers of a page of rows; one at a time unless a resource reads them together.
    fn views(rows: Vec<Self>, conn: &mut DbConn) -> ApiResult<Vec<Self::Out>> {
        rows.into_iter().map(|r| r.view(conn)).collect()
    }
}

/// Implements [`View`] for a row whose answer is `Out::from(row)`, reading nothing else:
/// `view_from!(UserRow => UserOut, version)` for a versioned row (naming its version field),
/// `view_from!(EventRow => AuditEventOut)` for one without a version.
macro_rules! view_from {
    ($row:ty => $out:ty $(, $version:ident)?) => {
        impl $crate::api::answer::View for $row {
            type Out = $out;

            $(
                fn version(&self) -> Option<i32> {
                    Some(self.$version)
                }
            )?

            fn view(self, _: &mut $crate::db::DbConn) -> $crate::error::ApiResult<$out> {
                Ok(<$out>::from(self))
            }
        }
    };
}
pub(crate) use view_from;

/// What an authenticated handler works with: who calls (taking an `Api` authenticates the
/// request, 401 otherwise, as [`AuthUser`]) and the application they call. Its methods run
/// work as the caller off the async workers and answer with what it returns.
pub struct Api {
    pub caller: AuthUser,
    pub state: web::Data<AppState>,
}

impl FromRequest for Api {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Api, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let caller = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
            Ok(Api { caller, state })
        })
    }
}

/// Work done as the caller on a connection.
pub trait Work<T>: FnOnce(&mut DbConn, &AuthUser) -> ApiResult<T> + Send + 'static {}
impl<T, F: FnOnce(&mut DbConn, &AuthUser) -> ApiResult<T> + Send + 'static> Work<T> for F {}

impl Api {
    /// Runs `work` on a read connection.
    pub async fn read<T: Send + 'static>(self, work: impl Work<T>) -> ApiResult<T> {
        let Api { caller, state } = self;
        state.db.read(move |c| work(c, &caller)).await
    }

    /// Runs `work` in a write transaction (an error rolls it back).
    pub async fn write<T: Send + 'static>(self, work: impl Work<T>) -> ApiResult<T> {
        let Api { caller, state } = self;
        state.db.write(move |c| work(c, &caller)).await
    }

    /// The answer to the row a write returns, rendered in its transaction.
    pub async fn written<R: View>(self, work: impl Work<R>) -> ApiResult<R::Out> {
        self.write(move |c, caller| work(c, caller)?.view(c)).await
    }

    /// 201 with the row a write created (and its `ETag`).
    pub async fn created<R: View>(self, work: impl Work<R>) -> ApiResult<HttpResponse> {
        self.saved(move |c, caller| Ok((true, work(c, caller)?))).await
    }

    /// 200 with the row a write changed (and its `ETag`).
    pub async fn updated<R: View>(self, work: impl Work<R>) -> ApiResult<HttpResponse> {
        self.saved(move |c, caller| Ok((false, work(c, caller)?))).await
    }

    /// The answer to a write that says whether it created its row (`true`: 201) or found it
    /// stored, a retry of the same request (200); with the row's `ETag`, if it is versioned.
    pub async fn saved<R: View>(self, work: impl Work<(bool, R)>) -> ApiResult<HttpResponse> {
        let (created, version, out) = self
            .write(move |c, caller| {
                let (created, row) = work(c, caller)?;
                Ok((created, row.version(), row.view(c)?))
            })
            .await?;
        Ok(with_etag(if created { HttpResponse::Created() } else { HttpResponse::Ok() }, version).json(out))
    }

    /// 200 with the row `find` reads (in the caller's scope), and its `ETag`.
    pub async fn current<R: View>(self, find: impl Work<R>) -> ApiResult<HttpResponse> {
        let (version, out) = self
            .read(move |c, caller| {
                let row = find(c, caller)?;
                Ok((row.version(), row.view(c)?))
            })
            .await?;
        Ok(with_etag(HttpResponse::Ok(), version).json(out))
    }

    /// A page of rows, read by `rows` (which cuts it with [`Page::of`]) and rendered in the
    /// same transaction.
    pub async fn listed<R: View>(self, rows: impl Work<Page<R>>) -> ApiResult<web::Json<Page<R::Out>>> {
        Ok(web::Json(self.read(move |c, caller| rendered(c, caller, rows)).await?))
    }
}

/// The page of rows `rows` reads, each rendered on the same connection.
pub fn rendered<R: View>(
    c: &mut DbConn,
    caller: &AuthUser,
    rows: impl FnOnce(&mut DbConn, &AuthUser) -> ApiResult<Page<R>>,
) -> ApiResult<Page<R::Out>> {
    let Page { items, next_cursor } = rows(c, caller)?;
    Ok(Page { items: R::views(items, c)?, next_cursor })
}

/// [`rendered`], as the JSON a client is sent.
pub fn rendered_json<R: View>(
    c: &mut DbConn,
    caller: &AuthUser,
    rows: impl FnOnce(&mut DbConn, &AuthUser) -> ApiResult<Page<R>>,
) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(&rendered(c, caller, rows)?).map_err(|e| ApiError::internal(anyhow::Error::from(e)))
}

fn with_etag(mut res: HttpResponseBuilder, version: Option<i32>) -> HttpResponseBuilder {
    if let Some(v) = version {
        res.insert_header(etag(v));
    }
    res
}
