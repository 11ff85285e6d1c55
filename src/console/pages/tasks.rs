//! 任务: overdue and unassigned open tasks by grid, reassigned or cancelled with a reason
//! (`ops::tasks::change`, as `PATCH /tasks/{id}`); and a grid worker's own to-do list.

use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::api::households::HouseholdOut;
use crate::api::tasks::{ListTasks, PatchTask, TaskOut, tasks};
use crate::console::pages::{GridItem, grids, names, reviewer};
use crate::console::view::{Problem, done_message};
use crate::console::{Console, Page, Post};
use crate::db::DbConn;
use crate::domain::TaskStatus;
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::store::households as store;

/// How many tasks each list of the page shows at most (the soonest due); beyond, the page says
/// so and the grid filter narrows it.
const SHOWN: i64 = 200;

/// How many of a grid worker's own tasks the to-do list shows at most (the soonest due).
const TODO_SHOWN: i64 = 500;

fn open(assignee: Option<&str>, overdue: bool) -> ListTasks {
    ListTasks {
        assignee: assignee.map(str::to_owned),
        status: Some(TaskStatus::Open),
        overdue: overdue.then_some(true),
        due_before: None,
        grid_id: None,
        household_id: None,
    }
}

/// A grid id as a filter: `None` for all grids (empty) and for anything that is not an id's
/// shape (it then never reaches a query or a redirect).
fn grid_filter(grid: Option<String>) -> Option<String> {
    grid.filter(|g| !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[derive(Serialize)]
struct Row {
    task: TaskOut,
    household: String,
    tag_of_household: String,
    assignee: String,
}

#[derive(Serialize)]
struct GridTasks {
    grid: GridItem,
    overdue: Vec<Row>,
    unassigned: Vec<Row>,
}

/// The households the rows are about, by id (their addresses and heads, for the table).
fn rows(c: &mut DbConn, list: Vec<TaskOut>) -> ApiResult<Vec<Row>> {
    let ids: Vec<String> = list.iter().map(|t| t.household_id.clone()).collect();
    let found = store::find_many(c, &ids)?;
    let households: Vec<HouseholdOut> = crate::api::households::views(c, found)?;
    let who = names(c, list.iter().filter_map(|t| t.assignee_id.as_ref()))?;
    Ok(list
        .into_iter()
        .map(|task| {
            let h = households.iter().find(|h| h.id == task.household_id);
            Row {
                household: h
                    .map(|h| format!("{} · {}{}{}", h.head_name, h.address.building, h.address.unit, h.address.room))
                    .unwrap_or_default(),
                tag_of_household: h.map(|h| h.tag.as_str().to_owned()).unwrap_or_default(),
                assignee: task.assignee_id.as_ref().and_then(|a| who.get(a)).cloned().unwrap_or_default(),
                task,
            }
        })
        .collect())
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
    grid: Option<String>,
}

async fn render(
    console: Console,
    status: StatusCode,
    problem: Option<Problem>,
    done: Option<String>,
    grid: Option<String>,
) -> Page {
    reviewer(&console)?;
    let caller = console.caller.clone();
    let only = grid.clone();
    let (by_grid, all_grids, more) = console
        .state
        .db
        .read(move |c| {
            let list = |c: &mut DbConn, assignee, overdue| {
                let q = ListTasks { grid_id: only.clone(), ..open(assignee, overdue) };
                tasks(c, &caller, q, None, SHOWN + 1)
            };
            let (late, nobody) = (list(c, None, true)?, list(c, Some("none"), false)?);
            let more = late.next_cursor.is_some() || nobody.next_cursor.is_some();
            let mut overdue = rows(c, late.items)?;
            let mut unassigned = rows(c, nobody.items)?;
            let all_grids = grids(c, &caller, true)?;
            let mut out = Vec::new();
            for grid in all_grids.iter().cloned() {
                let of_grid = |r: &Row| r.task.grid_id == grid.id;
                let (o, rest): (Vec<Row>, Vec<Row>) = overdue.into_iter().partition(of_grid);
                overdue = rest;
                let (u, rest): (Vec<Row>, Vec<Row>) = unassigned.into_iter().partition(of_grid);
                unassigned = rest;
                if !o.is_empty() || !u.is_empty() {
                    out.push(GridTasks { grid, overdue: o, unassigned: u });
                }
            }
            Ok((out, all_grids, more))
        })
        .await?;
    let ctx = context! {
        grids => Value::from_serialize(&by_grid), all_grids => Value::from_serialize(&all_grids),
        grid => grid.unwrap_or_default(), more, shown => SHOWN,
        problem, done => done_message(done.as_deref()), page => "tasks",
    };
    console.page(status, "tasks.html", ctx)
}

pub async fn queue(console: Console, flash: web::Query<Flash>) -> Page {
    let Flash { done, grid } = flash.into_inner();
    render(console, StatusCode::OK, None, done, grid_filter(grid)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskForm {
    action: String,
    #[serde(default)]
    assignee_id: String,
    #[serde(default)]
    cancel_reason: String,
    /// The grid the page was narrowed to: the answer keeps it.
    #[serde(default)]
    grid: String,
}

impl TaskForm {
    /// The same change a `PATCH /tasks/{id}` body makes, checked by the same rules.
    fn checked(self) -> ApiResult<ops::tasks::Change> {
        let patch = match self.action.as_str() {
            "reassign" => PatchTask {
                assignee_id: Some(Some(self.assignee_id).filter(|a| !a.is_empty())),
                status: None,
                cancel_reason: None,
            },
            "cancel" => PatchTask {
                assignee_id: None,
                status: Some(TaskStatus::Cancelled),
                cancel_reason: Some(self.cancel_reason).filter(|r| !r.trim().is_empty()),
            },
            _ => return Err(ApiError::invalid("action", "invalid", "reassign or cancel")),
        };
        patch.checked()
    }
}

/// Reassigns or cancels a task; back to the queue, or the queue with the error beside it.
pub async fn change(id: web::Path<String>, post: Post<TaskForm>) -> Page {
    let (console, id) = (post.console, id.into_inner());
    reviewer(&console)?;
    let mut done = "reassigned";
    let mut grid = None;
    let result = match post.form.and_then(|mut f| {
        if f.action == "cancel" {
            done = "cancelled";
        }
        grid = grid_filter(Some(std::mem::take(&mut f.grid)));
        f.checked()
    }) {
        Ok(change) => {
            let (caller, tid) = (console.caller.clone(), id.clone());
            console.state.db.write(move |c| ops::tasks::change(c, &caller, &tid, change).map(|_| ())).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let narrowed = grid.as_ref().map(|g| format!("&grid={g}")).unwrap_or_default();
            console.redirect(&format!("/console/tasks?done={done}{narrowed}"))
        }
        Err(e @ (ApiError::Validation(_) | ApiError::Conflict(..))) => {
            let status = actix_web::ResponseError::status_code(&e);
            render(console, status, Some(Problem::of(Some(&id), &e)), None, grid).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A grid worker's own open tasks, soonest due first (`/tasks?assignee=me`).
pub async fn todo(console: Console) -> Page {
    let caller = console.caller.clone();
    let list = console
        .state
        .db
        .read(move |c| {
            let mine = tasks(c, &caller, open(Some("me"), false), None, TODO_SHOWN + 1)?;
            Ok((rows(c, mine.items)?, mine.next_cursor.is_some()))
        })
        .await?;
    let (list, more) = list;
    console.ok("todo.html", context! { rows => Value::from_serialize(&list), more, page => "todo" })
}
