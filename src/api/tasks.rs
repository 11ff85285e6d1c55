//! Tasks: `/tasks` (a worker's to-do list, a secretary's queue) and `/tasks/{id}`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::conditional::etag;
use crate::api::input::{Body, Day, Params};
use crate::api::pagination::{Page, date_key, decode_cursor, fetch_limit, page, parse_date_key};
use crate::api::validate::text;
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::db::schema::tasks;
use crate::domain::{Role, ServiceKind, Tag, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::store::audit::{self, Event};
use crate::store::communities::{self, today_in};
use crate::store::now;
use crate::store::plans;
use crate::store::tasks::{self as store, TaskRow};

#[derive(Serialize, ToSchema)]
pub struct TaskOut {
    pub id: String,
    pub household_id: String,
    pub template_id: String,
    pub community_id: String,
    pub grid_id: String,
    /// The household's tag when the task was scheduled.
    pub tag: Tag,
    pub kind: ServiceKind,
    /// The worker who should do it; `null` while the grid has no primary worker.
    pub assignee_id: Option<String>,
    /// A date in the community's timezone.
    pub due_on: NaiveDate,
    pub status: TaskStatus,
    /// Open and due before today.
    pub overdue: bool,
    /// When it was done: the time of the visit that did it (a visit recorded offline counts
    /// when it took place), but not before the task was scheduled.
    pub completed_at: Option<DateTime<Utc>>,
    pub visit_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn task_out(t: TaskRow, today: NaiveDate) -> TaskOut {
    TaskOut {
        overdue: t.status == TaskStatus::Open && t.due_on < today,
        tag: t.tag,
        kind: t.kind,
        status: t.status,
        completed_at: t.completed_at.map(|c| c.and_utc()),
        created_at: t.created_at.and_utc(),
        updated_at: t.updated_at.and_utc(),
        id: t.id,
        household_id: t.household_id,
        template_id: t.template_id,
        community_id: t.community_id,
        grid_id: t.grid_id,
        assignee_id: t.assignee_id,
        due_on: t.due_on,
        visit_id: t.visit_id,
        cancel_reason: t.cancel_reason,
        version: t.version,
    }
}

/// Today in the timezone of the community a set of tasks belongs to.
fn today_of(conn: &mut DbConn, community_id: Option<&str>) -> ApiResult<NaiveDate> {
    let tz = match community_id {
        Some(c) => communities::find(conn, c)?.map(|c| c.timezone).unwrap_or_default(),
        None => String::new(),
    };
    Ok(today_in(&tz))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// `me` (the caller's to-do list), `none` (the unassigned queue) or a user id.
    #[param(example = "me")]
    pub assignee: Option<String>,
    pub status: Option<TaskStatus>,
    /// `true`: only open tasks due before today.
    pub overdue: Option<bool>,
    /// Only tasks due before this date.
    #[param(value_type = Option<NaiveDate>)]
    pub due_before: Option<Day>,
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub grid_id: Option<String>,
    #[param(example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub household_id: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Lists tasks in the caller's scope, soonest due first (overdue ones flagged).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", operation_id = "list_tasks",
    params(ListTasks), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tasks", body = Page<TaskOut>),
        (status = 400, description = "Malformed query", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = PROBLEM),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: Params<ListTasks>,
) -> ApiResult<web::Json<Page<TaskOut>>> {
    let q = query.into_inner();
    let fetch = fetch_limit(q.limit)?;
    let after = match decode_cursor(q.cursor.as_deref(), 2)? {
        Some(k) => Some((parse_date_key(&k[0])?, k[1].clone())),
        None => None,
    };
    let out = state
        .db
        .read(move |conn| {
            let mut query = tasks::table
                .select(TaskRow::as_select())
                .order((tasks::due_on.asc(), tasks::id.asc()))
                .limit(fetch)
                .into_boxed();
            let community = match scope::reach(conn, &caller)? {
                Reach::Everything => None,
                Reach::Community(c) => {
                    query = query.filter(tasks::community_id.eq(c.clone()));
                    Some(c)
                }
                Reach::Grids { community_id, grid_ids } => {
                    // The tasks of the households now in the worker's grids, not removed: the
                    // rule of changing one (a done task keeps the grid it was done in).
                    query = query
                        .filter(tasks::community_id.eq(community_id.clone()))
                        .filter(tasks::household_id.eq_any(crate::store::households::current_in(&grid_ids)));
                    Some(community_id)
                }
            };
            let today = today_of(conn, community.as_deref())?;
            match q.assignee.as_deref() {
                None => {}
                Some("me") => query = query.filter(tasks::assignee_id.eq(caller.id.clone())),
                Some("none") => query = query.filter(tasks::assignee_id.is_null()),
                Some(id) => query = query.filter(tasks::assignee_id.eq(id.to_owned())),
            }
            if let Some(s) = q.status {
                query = query.filter(tasks::status.eq(s.as_str()));
            }
            if q.overdue == Some(true) {
                query = query.filter(tasks::status.eq("open")).filter(tasks::due_on.lt(today));
            }
            if let Some(d) = q.due_before {
                query = query.filter(tasks::due_on.lt(d.0));
            }
            if let Some(g) = q.grid_id {
                query = query.filter(tasks::grid_id.eq(g));
            }
            if let Some(h) = q.household_id {
                query = query.filter(tasks::household_id.eq(h));
            }
            if let Some((due, id)) = after {
                query = query.filter(tasks::due_on.gt(due).or(tasks::due_on.eq(due).and(tasks::id.gt(id))));
            }
            let rows = query.load(conn)?;
            Ok(page(rows, fetch, |t| vec![date_key(t.due_on), t.id.clone()], |t| task_out(t, today)))
        })
        .await?;
    Ok(web::Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    /// Reassign to a worker of the task's grid, or `null` to put it in the unassigned queue.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    #[schema(value_type = Option<String>, example = "01936f4e-8a4b-7c3d-9e2f-0123456789ab")]
    pub assignee_id: Option<Option<String>>,
    /// Only `cancelled`: this occurrence is skipped and the next one is scheduled one interval
    /// later.
    #[schema(value_type = Option<Cancelled>)]
    pub status: Option<TaskStatus>,
    /// Required when cancelling, up to 200 characters.
    #[schema(example = "老人住院，本周无法走访", min_length = 1, max_length = 200)]
    pub cancel_reason: Option<String>,
}

/// The one status a client may set on a task: tasks are completed by visits.
#[derive(ToSchema)]
#[schema(as = TaskCancelled)]
pub enum Cancelled {
    #[schema(rename = "cancelled")]
    Cancelled,
}

/// Reassigns or cancels an open task (the community's secretary, or an administrator).
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", operation_id = "update_task",
    params(("id" = String, Path, description = "Task id")),
    request_body = PatchTask, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed task", body = TaskOut, headers(("ETag" = String, description = "Version"))),
        (status = 400, description = "Malformed request", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Not authenticated", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Grid workers do not reassign or cancel tasks", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such task in the caller's scope", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The task is not open", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid change", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: Body<PatchTask>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let input = body.into_inner();
    let mut errors = Vec::new();
    let cancelling = match input.status {
        None => false,
        Some(TaskStatus::Cancelled) => true,
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "invalid",
                "tasks are completed by visits; only `cancelled` may be set",
            ));
            false
        }
    };
    let reason = input.cancel_reason.as_deref().map(|r| text("cancel_reason", r, 200, &mut errors));
    if cancelling && reason.is_none() {
        errors.push(FieldError::new("cancel_reason", "required", "say why the task is cancelled"));
    }
    let reason = reason.filter(|_| cancelling);
    if !cancelling && input.assignee_id.is_none() {
        errors.push(FieldError::new("body", "empty", "give assignee_id or status: cancelled"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let actor = caller.actor();
    let out = state
        .db
        .write(move |conn| {
            let task = scope::task_for_update(conn, &caller, &id)?;
            caller.require(&[Role::Admin, Role::Secretary])?;
            if task.status != TaskStatus::Open {
                return Err(ApiError::conflict(ErrorCode::TaskClosed, format!("the task is {}, not open", task.status)));
            }
            let at = now();
            if let Some(assignee) = &input.assignee_id {
                if let Some(user) = assignee
                    && !communities::serving_workers(conn, &task.grid_id)?.contains(user)
                {
                    return Err(ApiError::invalid(
                        "assignee_id",
                        "not_a_grid_worker",
                        "not an active worker of the task's grid",
                    ));
                }
                diesel::update(tasks::table.find(&id))
                    .set((tasks::assignee_id.eq(assignee.clone()), tasks::updated_at.eq(at), tasks::version.eq(tasks::version + 1)))
                    .execute(conn)?;
            }
            let mut successor = None;
            if let Some(reason) = &reason {
                diesel::update(tasks::table.find(&id))
                    .set((
                        tasks::status.eq("cancelled"),
                        tasks::cancel_reason.eq(reason),
                        tasks::updated_at.eq(at),
                        tasks::version.eq(tasks::version + 1),
                    ))
                    .execute(conn)?;
                // The next occurrence: one interval after the skipped one at the earliest.
                let household = crate::store::households::find(conn, &task.household_id)?.ok_or_else(|| ApiError::not_found("task"))?;
                let template = plans::active_templates(conn, &household.community_id, household.tag)?
                    .into_iter()
                    .find(|t| t.id == task.template_id);
                if let Some(t) = template {
                    let tz = communities::find(conn, &household.community_id)?.map(|c| c.timezone).unwrap_or_default();
                    let floor = task.due_on + chrono::Duration::days(i64::from(t.interval_days));
                    let row = store::new_task(conn, &household, &t, &tz, Some(floor))?;
                    diesel::insert_into(tasks::table).values(&row).execute(conn)?;
                    successor = Some(row.id);
                }
            }
            audit::record(conn, &actor, Event {
                action: if cancelling { "task.cancelled" } else { "task.reassigned" },
                entity_type: "task",
                entity_id: Some(&id),
                community_id: Some(&task.community_id),
                summary: serde_json::json!({"assignee_id": input.assignee_id, "cancel_reason": reason, "successor": successor}),
            })?;
            let tz = communities::find(conn, &task.community_id)?.map(|c| c.timezone).unwrap_or_default();
            let row = store::find(conn, &id)?.ok_or_else(|| ApiError::not_found("task"))?;
            Ok(task_out(row, today_in(&tz)))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(etag(out.version)).json(out))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tasks").route(web::get().to(list)))
        .service(web::resource("/tasks/{id}").route(web::patch().to(patch)));
}
