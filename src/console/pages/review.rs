//! 待审核: pending tag proposals, oldest first, each with its household, the proposer's reasons
//! and note, and the household's suggested tag with its explanation; approve or reject in
//! place (`ops::tags::decide`, as `/tag-changes/{id}/approve` and `/reject`).

use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::api::answer::View;
use crate::api::households::HouseholdOut;
use crate::api::tags::{Decision, Rejection, TagChangeOut, changes};
use crate::auth::scope;
use crate::console::pages::{names, reviewer};
use crate::console::view::{Problem, done_message};
use crate::console::{Console, Page, Post};
use crate::domain::TagChangeStatus;
use crate::ops;
use crate::store::tags::ListFilter;

#[derive(Serialize)]
struct Item {
    change: TagChangeOut,
    household: HouseholdOut,
    proposer: String,
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

/// How many proposals the queue shows at most (the earliest); beyond, it says so.
const SHOWN: i64 = 200;

/// The queue, with `problem` shown beside the proposal it is about.
async fn render(console: Console, status: StatusCode, problem: Option<Problem>, done: Option<String>) -> Page {
    reviewer(&console)?;
    let filter = ListFilter { status: Some(TagChangeStatus::Pending), ..Default::default() };
    let (items, more) = console
        .state
        .db
        .read({
            let caller = console.caller.clone();
            move |c| {
                let page = changes(c, &caller, filter, None, SHOWN + 1)?;
                let more = page.next_cursor.is_some();
                let who = names(c, page.items.iter().map(|row| &row.proposed_by))?;
                let mut items = Vec::new();
                for row in page.items {
                    let household = scope::household(c, &caller, &row.household_id)?.view(c)?;
                    let proposer = who.get(&row.proposed_by).cloned().unwrap_or_default();
                    items.push(Item { change: row.view(c)?, household, proposer });
                }
                Ok((items, more))
            }
        })
        .await?;
    let done = done_message(done.as_deref());
    let ctx = context! { items => Value::from_serialize(&items), more, problem, done, page => "review" };
    console.page(status, "review.html", ctx)
}

pub async fn queue(console: Console, flash: web::Query<Flash>) -> Page {
    render(console, StatusCode::OK, None, flash.into_inner().done).await
}

/// Runs a decision; back to the queue, or the queue again with the error beside the proposal.
async fn decide(console: Console, id: String, decision: Result<ops::tags::Decision, crate::error::ApiError>) -> Page {
    reviewer(&console)?;
    let done = match &decision {
        Ok(ops::tags::Decision::Approve { .. }) => "approved",
        _ => "rejected",
    };
    let target = id.clone();
    let result = match decision {
        Ok(d) => console
            .state
            .db
            .write({
                let caller = console.caller.clone();
                move |c| ops::tags::decide(c, &caller, &id, d)
            })
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => console.redirect(&format!("/console/review?done={done}")),
        Err(e @ (crate::error::ApiError::Validation(_) | crate::error::ApiError::Conflict(..))) => {
            let status = actix_web::ResponseError::status_code(&e);
            render(console, status, Some(Problem::of(Some(&target), &e)), None).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn approve(id: web::Path<String>, post: Post<Decision>) -> Page {
    let decision = post.form.and_then(Decision::checked);
    decide(post.console, id.into_inner(), decision).await
}

pub async fn reject(id: web::Path<String>, post: Post<Rejection>) -> Page {
    let decision = post.form.and_then(|r| Rejection::checked(Some(r).filter(|r| !r.note.is_empty())));
    decide(post.console, id.into_inner(), decision).await
}
