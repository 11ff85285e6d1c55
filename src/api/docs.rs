//! The contract and its reader: `/openapi.json`, and Swagger UI at `/docs/` with every asset
//! served from the binary (no CDN, so it works with no internet access).
//!
//! These are ordinary resources rather than `utoipa_swagger_ui::SwaggerUi`'s own service, so
//! that they are in the document like every other route and answer other methods with 405 and
//! `Allow`, as the rest of the API does.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::Config;

use crate::error::{ApiError, ApiResult, PROBLEM_JSON as PROBLEM, Problem};

/// The document as served, serialised once.
fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(crate::api::openapi_json)
}

/// The OpenAPI 3.1 document of this API (the same as the committed `openapi/openapi.json`).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi_document",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json",
            body = Object, example = json!({"openapi": "3.1.0", "info": {"title": "Gridlight", "version": "0.1.0"}})),
    ))]
pub async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}

/// Swagger UI lives under `/docs/`; the bare path redirects there.
#[utoipa::path(get, path = "/docs", tag = "operations", operation_id = "docs_redirect",
    responses(
        (status = 308, description = "Permanent redirect to `/docs/`",
            headers(("Location" = String, description = "`/docs/`"))),
    ))]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/docs/")).finish()
}

fn swagger_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(Config::new(["/openapi.json"]))).clone()
}

/// Swagger UI: `index.html` for the empty path, else one of its bundled assets.
#[utoipa::path(get, path = "/docs/{path}", tag = "operations", operation_id = "docs_asset",
    params(("path" = String, Path, description = "An asset of Swagger UI; empty for `index.html`",
        example = "swagger-ui-bundle.js")),
    responses(
        (status = 200, description = "The page or asset (HTML, JavaScript, CSS or an image)",
            content(
                (String = "text/html"),
                (String = "text/javascript"),
                (String = "text/css"),
                (String = "image/png"),
            )),
        (status = 404, description = "No such asset", body = Problem, content_type = PROBLEM),
    ))]
pub async fn docs_asset(path: web::Path<String>) -> ApiResult<HttpResponse> {
    let file = utoipa_swagger_ui::serve(&path.into_inner(), swagger_config())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("swagger ui: {e}")))?
        .ok_or_else(|| ApiError::NotFound("no such asset of the API documentation".into()))?;
    let mut res = HttpResponse::Ok();
    if file.gzpipped {
        res.insert_header((header::CONTENT_ENCODING, header::ContentEncoding::Gzip));
    }
    Ok(res.content_type(file.content_type).body(file.bytes.into_owned()))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(openapi_document)))
        .service(web::resource("/docs").route(web::get().to(docs_redirect)))
        .service(web::resource("/docs/{path:.*}").route(web::get().to(docs_asset)));
}
