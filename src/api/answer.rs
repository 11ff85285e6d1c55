//! How a handler answers with a stored resource: the database work and the rendering of its
//! rows run in one transaction, so the answer shows what was read or written and nothing that
//! came later; a versioned resource goes out with its `ETag`.
//!
//! A handler names the work (a scope check, an operation) and the answer follows from the row
//! type: `answer::updated(&state, move |c| ops::grids::edit(c, &caller, &id, expected, edit))`.

use actix_web::{HttpResponse, HttpResponseBuilder, web};
use serde::Serialize;

use crate::AppState;
use crate::api::conditional::etag;
use crate::api::pagination::Page;
use crate::db::DbConn;
use crate::error::ApiResult;

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

/// Runs `work` in a write transaction and renders the row it returns in the same one.
pub async fn written<R: View>(
    state: &AppState,
    work: impl FnOnce(&mut DbConn) -> ApiResult<R> + Send + 'static,
) -> ApiResult<R::Out> {
    state.db.write(move |c| work(c)?.view(c)).await
}

/// 201 with the row a write created (and its `ETag`).
pub async fn created<R: View>(
    state: &AppState,
    work: impl FnOnce(&mut DbConn) -> ApiResult<R> + Send + 'static,
) -> ApiResult<HttpResponse> {
    saved(state, move |c| Ok((true, work(c)?))).await
}

/// 200 with the row a write changed (and its `ETag`).
pub async fn updated<R: View>(
    state: &AppState,
    work: impl FnOnce(&mut DbConn) -> ApiResult<R> + Send + 'static,
) -> ApiResult<HttpResponse> {
    saved(state, move |c| Ok((false, work(c)?))).await
}

/// The answer to a write that says whether it created its row (`true`: 201) or found it
/// stored, a retry of the same request (200); with the row's `ETag`, if it is versioned.
pub async fn saved<R: View>(
    state: &AppState,
    work: impl FnOnce(&mut DbConn) -> ApiResult<(bool, R)> + Send + 'static,
) -> ApiResult<HttpResponse> {
    let (created, version, out) = state
        .db
        .write(move |c| {
            let (created, row) = work(c)?;
            Ok((created, row.version(), row.view(c)?))
        })
        .await?;
    Ok(with_etag(if created { HttpResponse::Created() } else { HttpResponse::Ok() }, version).json(out))
}

/// 200 with the row `find` reads (in the caller's scope), and its `ETag`.
pub async fn current<R: View>(
    state: &AppState,
    find: impl FnOnce(&mut DbConn) -> ApiResult<R> + Send + 'static,
) -> ApiResult<HttpResponse> {
    let (version, out) = state
        .db
        .read(move |c| {
            let row = find(c)?;
            Ok((row.version(), row.view(c)?))
        })
        .await?;
    Ok(with_etag(HttpResponse::Ok(), version).json(out))
}

fn with_etag(mut res: HttpResponseBuilder, version: Option<i32>) -> HttpResponseBuilder {
    if let Some(v) = version {
        res.insert_header(etag(v));
    }
    res
}

/// A page of rows, read by `rows` (which cuts the page with [`crate::api::pagination::page`]),
/// and rendered in the same transaction.
pub async fn listed<R: View>(
    state: &AppState,
    rows: impl FnOnce(&mut DbConn) -> ApiResult<Page<R>> + Send + 'static,
) -> ApiResult<web::Json<Page<R::Out>>> {
    let page = state
        .db
        .read(move |c| {
            let Page { items, next_cursor } = rows(c)?;
            Ok(Page { items: R::views(items, c)?, next_cursor })
        })
        .await?;
    Ok(web::Json(page))
}
