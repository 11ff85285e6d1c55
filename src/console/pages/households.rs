//! 住户: the list with its filters (the API's `households::rows`), and a household's page:
//! members masked with an audited reveal (`ops::pii`), tag history, open tasks, visits, who saw
//! its personal data, and the secretary's direct tag change (`ops::tags::propose`).

use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::api::answer::View;
use crate::api::audit::AuditEventOut;
use crate::api::households::{HouseholdOut, ListHouseholds};
use crate::api::members::MemberOut;
use crate::api::pagination::{Page as Listed, decode_cursor};
use crate::api::pii::PiiQuery;
use crate::api::tags::{ProposeTagChange, TagChangeOut};
use crate::api::tasks::{ListTasks, TaskOut, tasks};
use crate::api::visits::{ListVisits, VisitOut};
use crate::auth::AuthUser;
use crate::auth::scope;
use crate::console::pages::{GridItem, grids, names, reviewer};
use crate::console::view::{Problem, done_message};
use crate::console::{Console, Page, Post};
use crate::db::DbConn;
use crate::domain::{Tag, TaskStatus, catalogue};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::store::households::After;
use crate::store::{households as store, record, tags};

const PAGE: i64 = 30;

/// The list's filters as the form sends them (empty fields are no filter).
#[derive(Deserialize, Serialize, Default)]
pub struct Filters {
    #[serde(default)]
    grid: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Filters {
    fn query(&self) -> ApiResult<ListHouseholds> {
        let tag = match some(&self.tag) {
            Some(t) => Some(Tag::parse(&t).map_err(|e| ApiError::invalid("tag", "invalid", e.to_string()))?),
            None => None,
        };
        Ok(ListHouseholds {
            grid_id: some(&self.grid),
            community_id: None,
            tag,
            q: some(&self.q),
            review_due: Some(self.due == "1"),
            updated_since: None,
            view: None,
        })
    }
}

#[derive(Serialize)]
struct Listing {
    items: Vec<HouseholdOut>,
    next: Option<String>,
    grids: Vec<GridItem>,
}

pub async fn list(console: Console, filters: web::Query<Filters>) -> Page {
    reviewer(&console)?;
    let f = filters.into_inner();
    let q = f.query()?;
    let after = decode_cursor(some(&f.cursor).as_deref(), 1)?.map(|mut k| After::Id(k.remove(0)));
    let caller = console.caller.clone();
    let listing = console
        .state
        .db
        .read(move |c| {
            let page =
                crate::api::households::rows(c, &caller, &q, after.as_ref(), PAGE + 1, store::list, |(h, _)| {
                    vec![h.id.clone()]
                })?;
            let Listed { items, next_cursor } = page;
            Ok(Listing {
                items: crate::api::households::listed_views(c, items)?,
                next: next_cursor,
                grids: grids(c, &caller, false)?,
            })
        })
        .await?;
    let ctx = context! { l => Value::from_serialize(&listing), f => Value::from_serialize(&f), page => "households" };
    console.ok("households.html", ctx)
}

/// A revealed member or household phone, shown once on the page that asked.
#[derive(Serialize, Default)]
struct Revealed {
    id: String,
    id_number: Option<String>,
    birth_date: Option<String>,
    phone: Option<String>,
}

#[derive(Serialize)]
struct Reveal {
    at: String,
    who: String,
    action: String,
    entity_type: String,
    reason: String,
}

#[derive(Serialize)]
struct Household {
    h: HouseholdOut,
    grid: String,
    members: Vec<MemberOut>,
    history: Vec<TagChangeOut>,
    tasks: Vec<TaskOut>,
    visits: Vec<VisitOut>,
    reveals: Vec<Reveal>,
    names: std::collections::HashMap<String, String>,
}

fn read_household(c: &mut DbConn, caller: &AuthUser, id: &str) -> ApiResult<Household> {
    let row = scope::household(c, caller, id)?;
    let grid = crate::store::communities::find_grid(c, &row.grid_id)?.map(|g| format!("{} {}", g.name, g.code));
    let members: Vec<MemberOut> = store::list_members(c, id, None, 200)?.into_iter().map(MemberOut::from).collect();
    let member_ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let history: Vec<TagChangeOut> = tags::history(c, id, None, 50)?.into_iter().map(TagChangeOut::from).collect();
    let open = ListTasks {
        household_id: Some(id.to_owned()),
        status: Some(TaskStatus::Open),
        assignee: None,
        overdue: None,
        due_before: None,
        grid_id: None,
    };
    let tasks = tasks(c, caller, open, None, 101)?.items;
    let visit_query =
        ListVisits { household_id: Some(id.to_owned()), grid_id: None, worker_id: None, from: None, to: None };
    let visit_rows = crate::api::visits::rows(c, caller, visit_query, None, 31)?.items;
    let visits = crate::api::visits::views(c, visit_rows)?;
    let events: Vec<AuditEventOut> =
        record::reveals(c, id, &member_ids)?.into_iter().rev().map(AuditEventOut::from).collect();
    let named = (history.iter().flat_map(|t| std::iter::once(&t.proposed_by).chain(t.decided_by.as_ref())))
        .chain(tasks.iter().filter_map(|t| t.assignee_id.as_ref()))
        .chain(visits.iter().map(|v| &v.worker_id))
        .chain(events.iter().filter_map(|e| e.actor_id.as_ref()));
    let names = names(c, named)?;
    let reveals = events
        .into_iter()
        .map(|e| Reveal {
            at: e.at.to_rfc3339(),
            who: e.actor_id.as_ref().and_then(|a| names.get(a)).cloned().unwrap_or_default(),
            reason: e.summary["reason"].as_str().unwrap_or_default().to_owned(),
            action: e.action,
            entity_type: e.entity_type,
        })
        .collect();
    Ok(Household { h: row.view(c)?, grid: grid.unwrap_or_default(), members, history, tasks, visits, reveals, names })
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

async fn render(
    console: Console,
    id: String,
    status: StatusCode,
    problem: Option<Problem>,
    revealed: Option<Revealed>,
    done: Option<String>,
) -> Page {
    reviewer(&console)?;
    let caller = console.caller.clone();
    let household = console.state.db.read(move |c| read_household(c, &caller, &id)).await?;
    let reasons: Vec<_> = catalogue().iter().map(|r| (r.code, r.label_zh, r.suggests)).collect();
    let ctx = context! {
        d => Value::from_serialize(&household),
        reasons => Value::from_serialize(&reasons),
        problem, revealed => Value::from_serialize(&revealed),
        done => done_message(done.as_deref()),
        page => "households",
    };
    console.page(status, "household.html", ctx)
}

pub async fn show(console: Console, id: web::Path<String>, flash: web::Query<Flash>) -> Page {
    render(console, id.into_inner(), StatusCode::OK, None, None, flash.into_inner().done).await
}

/// A failed form on the household page: the page again with the message beside the form.
async fn refused(console: Console, id: String, target: &str, e: ApiError) -> Page {
    match e {
        ApiError::Validation(_) | ApiError::Conflict(..) | ApiError::Forbidden(_) | ApiError::PreconditionFailed(_) => {
            let status = actix_web::ResponseError::status_code(&e);
            render(console, id, status, Some(Problem::of(Some(target), &e)), None, None).await
        }
        other => Err(other.into()),
    }
}

/// The secretary's direct tag change: the API's proposal, which a secretary's role applies at
/// once (recorded as an approved change).
pub async fn set_tag(id: web::Path<String>, post: Post<Vec<(String, String)>>) -> Page {
    let (console, id) = (post.console, id.into_inner());
    reviewer(&console)?;
    let proposal = post.form.and_then(|pairs| {
        let mut body = ProposeTagChange { to_tag: String::new(), reasons: Vec::new(), note: None };
        for (k, v) in pairs {
            match k.as_str() {
                "to_tag" => body.to_tag = v,
                "reasons" => body.reasons.push(v),
                "note" => body.note = some(&v),
                other => return Err(ApiError::invalid(other, "unknown_field", "unknown field")),
            }
        }
        body.checked()
    });
    let caller = console.caller.clone();
    let hid = id.clone();
    let result = match proposal {
        Ok(p) => console.state.db.write(move |c| ops::tags::propose(c, &caller, &hid, None, p).map(|_| ())).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => console.redirect(&format!("/console/households/{id}?done=tagged")),
        Err(e) => refused(console, id, "tag", e).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevealForm {
    reason: Option<String>,
}

fn reason_of(form: Result<RevealForm, ApiError>) -> ApiResult<String> {
    PiiQuery { reason: form?.reason.as_deref().and_then(some) }.checked()
}

/// Runs a reveal for the form's reason and shows the household's page with the values, or
/// with the message beside the form (`target`) that asked.
async fn reveal<F>(
    console: Console,
    household_id: String,
    target: String,
    form: Result<RevealForm, ApiError>,
    op: F,
) -> Page
where
    F: FnOnce(&mut DbConn, &AuthUser, &str) -> ApiResult<Revealed> + Send + 'static,
{
    let result = match reason_of(form) {
        Ok(reason) => {
            let caller = console.caller.clone();
            console.state.db.write(move |c| op(c, &caller, &reason)).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => render(console, household_id, StatusCode::OK, None, Some(r), None).await,
        Err(e) => refused(console, household_id, &target, e).await,
    }
}

/// Reveals a member's full values for a reason (audited, as `/members/{id}/pii`), on the
/// household's page.
pub async fn reveal_member(id: web::Path<String>, post: Post<RevealForm>) -> Page {
    let (console, member_id) = (post.console, id.into_inner());
    reviewer(&console)?;
    let (caller, mid) = (console.caller.clone(), member_id.clone());
    let household_id = console.state.db.read(move |c| Ok(scope::member(c, &caller, &mid)?.1.id)).await?;
    let mid = member_id.clone();
    reveal(console, household_id, member_id, post.form, move |c, caller, reason| {
        let m = ops::pii::reveal_member(c, caller, &mid, reason)?;
        let birth_date = m.birth_date.map(|d| d.to_string());
        Ok(Revealed { id: m.id, id_number: m.id_number, birth_date, phone: m.phone })
    })
    .await
}

/// Reveals a household's full phone for a reason (audited, as `/households/{id}/pii`).
pub async fn reveal_phone(id: web::Path<String>, post: Post<RevealForm>) -> Page {
    let (console, id) = (post.console, id.into_inner());
    reviewer(&console)?;
    let hid = id.clone();
    reveal(console, id.clone(), id, post.form, move |c, caller, reason| {
        let h = ops::pii::reveal_household(c, caller, &hid, reason)?;
        Ok(Revealed { id: h.id, phone: h.phone, ..Default::default() })
    })
    .await
}
