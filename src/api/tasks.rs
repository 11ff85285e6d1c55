//! Tasks: `/tasks` (a worker's to-do list, a secretary's queue) and `/tasks/{id}`. The rules
//! are in [`crate::ops::tasks`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::answer::{Api, View};
use crate::api::input::{Body, Day, Params};
use crate::api::pagination::{Page, PageQuery, date_key, parse_date_key};
use crate::api::validate::{clean, declared, done};
use crate::auth::AuthUser;
use crate::auth::scope::{self, Reach};
use crate::db::DbConn;
use crate::domain::text::required_line;
use crate::domain::{ServiceKind, Tag, TaskStatus};
use crate::error::{ApiResult, FieldError, PROBLEM_JSON as PROBLEM, Problem};
use crate::ops;
use crate::store::communities;
use crate::store::tasks::{self as store, Assignee, ListFilter, TaskRow};

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
}

impl ListTasks {
    /// The filter of the query, in the caller's reach; `today` flags the overdue.
    fn filter(self, caller: &AuthUser, reach: Reach, today: NaiveDate) -> ListFilter {
        let assignee = self.assignee.map(|a| match a.as_str() {
            "me" => Assignee::User(caller.id.clone()),
            "none" => Assignee::Nobody,
            _ => Assignee::User(a),
        });
        let mut filter = ListFilter {
            assignee,
            status: self.status,
            open_due_before: (self.overdue == Some(true)).then_some(today),
            due_before: self.due_before.map(|d| d.0),
            grid_id: self.grid_id,
            household_id: self.household_id,
            ..Default::default()
        };
        // The households now in the worker's grids, not removed: the rule of changing one (a
        // done task keeps the grid it was done in).
        let bounds = reach.bounds();
        (filter.community_id, filter.community_ids, filter.current_households_in) =
            (bounds.community, bounds.communities, bounds.grids);
        filter
    }
}

/// Lists tasks in the caller's scope, soonest due first (overdue ones flagged).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", operation_id = "list_tasks",
    params(ListTasks, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tasks", body = Page<TaskOut>),
    ))]
pub async fn list(api: Api, query: Params<ListTasks>, page: PageQuery) -> ApiResult<web::Json<Page<TaskOut>>> {
    let (q, fetch) = (query.into_inner(), page.fetch()?);
    let after = page.after_pair(parse_date_key)?;
    let out = api.read(move |conn, caller| tasks(conn, caller, q, after, fetch)).await?;
    Ok(web::Json(out))
}

/// A page of the tasks `q` asks for in the caller's reach (the API's list and the console's).
pub(crate) fn tasks(
    conn: &mut DbConn,
    caller: &AuthUser,
    q: ListTasks,
    after: Option<(NaiveDate, String)>,
    fetch: i64,
) -> ApiResult<Page<TaskOut>> {
    let reach = scope::reach(conn, caller)?;
    // One calendar for the page: the community's, or (a list across communities) the default.
    let today = communities::today_of_list(conn, reach.community())?;
    let rows = store::list(conn, &q.filter(caller, reach, today), after, fetch)?;
    let Page { items, next_cursor } = Page::of(rows, fetch, |t| vec![date_key(t.due_on), t.id.clone()]);
    Ok(Page { items: items.into_iter().map(|t| task_out(t, today)).collect(), next_cursor })
}

#[derive(Deserialize, ToSchema, Validate)]
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
    #[validate(length(max = 200, code = "too_long"), custom(function = "required_line"))]
    pub cancel_reason: Option<String>,
}

/// The one status a client may set on a task: tasks are completed by visits.
#[derive(ToSchema)]
#[schema(as = TaskCancelled)]
pub enum Cancelled {
    #[schema(rename = "cancelled")]
    Cancelled,
}

impl PatchTask {
    pub(crate) fn checked(self) -> ApiResult<ops::tasks::Change> {
        let mut errors = Vec::new();
        let cancelling = match self.status {
            None => false,
            Some(TaskStatus::Cancelled) => true,
            Some(_) => {
                let only = "tasks are completed by visits; only `cancelled` may be set";
                errors.push(FieldError::new("status", "invalid", only));
                false
            }
        };
        errors.extend(declared(&self));
        if cancelling && self.cancel_reason.is_none() {
            errors.push(FieldError::new("cancel_reason", "required", "say why the task is cancelled"));
        }
        if !cancelling && self.assignee_id.is_none() {
            errors.push(FieldError::new("body", "empty", "give assignee_id or status: cancelled"));
        }
        done(errors)?;
        let cancel_reason = self.cancel_reason.filter(|_| cancelling).map(|r| clean(&r));
        Ok(ops::tasks::Change { assignee: self.assignee_id, cancel_reason })
    }
}

/// A task as answered: `overdue` by today in its community.
impl View for TaskRow {
    type Out = TaskOut;

    fn version(&self) -> Option<i32> {
        Some(self.version)
    }

    fn view(self, conn: &mut DbConn) -> ApiResult<TaskOut> {
        let today = communities::today(conn, &self.community_id)?;
        Ok(task_out(self, today))
    }
}

/// Reassigns or cancels an open task (the community's secretary, or an administrator).
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", operation_id = "update_task",
    request_body = PatchTask, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed task", body = TaskOut),
        (status = 403, description = "Grid workers do not reassign or cancel tasks", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The task is not open (`task_closed`)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid change, or an assignee who is not an active worker of the task's grid", body = Problem, content_type = PROBLEM),
    ))]
pub async fn patch(api: Api, id: web::Path<String>, body: Body<PatchTask>) -> ApiResult<HttpResponse> {
    let change = body.into_inner().checked()?;
    api.updated(move |c, caller| ops::tasks::change(c, caller, &id, change)).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tasks").route(web::get().to(list)))
        .service(web::resource("/tasks/{id}").route(web::patch().to(patch)));
}
