//! 导入: upload a roster, read the dry run's report, commit it — the import endpoints'
//! own steps (`api::imports::checked_upload`, `api::imports::commit`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::api::imports::{self, CommitQuery, ImportOut, checked_upload, commit as commit_import, visible};
use crate::console::pages::reviewer;
use crate::console::view::{Problem, done_message};
use crate::console::{Console, Fail, Page, Post};
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct Shown {
    id: Option<String>,
    done: Option<String>,
}

async fn render(
    console: Console,
    status: StatusCode,
    id: Option<String>,
    problem: Option<Problem>,
    done: Option<String>,
) -> Page {
    reviewer(&console)?;
    let import = match id.filter(|i| !i.is_empty()) {
        Some(id) => {
            let caller = console.caller.clone();
            let row = console.state.db.read(move |c| visible(c, &caller, &id)).await?;
            Some(ImportOut::of(row)?)
        }
        None => None,
    };
    let ctx = context! {
        import => Value::from_serialize(&import), problem, done => done_message(done.as_deref()), page => "import",
    };
    console.page(status, "import.html", ctx)
}

pub async fn form(console: Console, shown: web::Query<Shown>) -> Page {
    let Shown { id, done } = shown.into_inner();
    render(console, StatusCode::OK, id, None, done).await
}

/// The upload: its CSRF token is a part of the multipart form.
pub async fn upload(console: Console, req: HttpRequest, payload: web::Payload) -> Page {
    reviewer(&console)?;
    let result = async {
        let u = imports::upload(&req, payload).await?;
        console.check_csrf(u.csrf.as_deref()).map_err(|_| ApiError::Forbidden("csrf".into()))?;
        let community = console.caller.community_id.clone().ok_or_else(|| {
            ApiError::invalid("file", "no_community", "an administrator imports through the API, naming the community")
        })?;
        checked_upload(&console.state, console.caller.clone(), community, u.file_name, u.file).await
    }
    .await;
    match result {
        Ok(row) => console.redirect(&format!("/console/import?id={}", row.id)),
        Err(ApiError::Forbidden(m)) if m == "csrf" => Err(Fail::Csrf),
        Err(e @ (ApiError::Validation(_) | ApiError::PayloadTooLarge(_))) => {
            let status = actix_web::ResponseError::status_code(&e);
            render(console, status, None, Some(Problem::of(Some("file"), &e)), None).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitForm {
    #[serde(default)]
    skip_errors: Option<String>,
}

pub async fn commit(id: web::Path<String>, post: Post<CommitForm>) -> Page {
    let (console, id) = (post.console, id.into_inner());
    reviewer(&console)?;
    let options = post.form.and_then(|f| {
        CommitQuery {
            skip_errors: f.skip_errors.is_some(),
            remove_missing: false,
            removal_reason: None,
            removal_note: None,
        }
        .checked()
    });
    let result = match options {
        Ok(options) => {
            let (db, caller, iid) = (console.state.db.clone(), console.caller.clone(), id.clone());
            web::block(move || commit_import(&db, &caller, &iid, options, &mut |_, _| {}))
                .await
                .map_err(ApiError::from)
                .and_then(|r| r)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => console.redirect(&format!("/console/import?id={id}&done=committed")),
        Err(e @ (ApiError::Validation(_) | ApiError::Conflict(..) | ApiError::Gone(..))) => {
            let status = actix_web::ResponseError::status_code(&e);
            render(console, status, Some(id.clone()), Some(Problem::of(Some(&id), &e)), None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The empty roster workbook to fill in (the API's `/imports/template.xlsx`).
pub async fn template(console: Console) -> Page {
    reviewer(&console)?;
    Ok(crate::api::exports::template_xlsx(console.caller.clone()).await?)
}
