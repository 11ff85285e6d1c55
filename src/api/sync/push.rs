//! The batch push: what a device did offline, applied in order through the same operations as
//! the single endpoints, each with its own result — never all or nothing.
//!
//! All operations of a request run in one transaction, each in a savepoint of its own: one that
//! fails is rolled back alone and answered `rejected` (or `conflict`), the others stay; the
//! request commits once (one flush of the log, where single requests take one each). A lost
//! database connection aborts the request (503): the device sends it again, and what was
//! applied is recognised by `op_id`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::answer::View;
use crate::api::input::from_json;
use crate::api::members::MemberOut;
use crate::api::tags::TagChangeOut;
use crate::api::{households, members, tags, tasks, visits};
use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::ops;
use crate::store::now;
use crate::store::sync::{self as store, Applied};

/// At most this many operations a request (more: 413).
pub const MAX_OPERATIONS: usize = 500;

/// What an operation does; its `body` is what the single endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum OpKind {
    /// `POST /households` (the body's `id` is the client's).
    #[serde(rename = "household.register")]
    HouseholdRegister,
    /// `PATCH /households/{id}`: the body holds `id` and the fields; `base_version` applies.
    #[serde(rename = "household.edit")]
    HouseholdEdit,
    /// `POST /households/{household_id}/members`: the body holds `household_id` and the member.
    #[serde(rename = "member.add")]
    MemberAdd,
    /// `PATCH /members/{id}`: the body holds `id` and the fields; `base_version` applies.
    #[serde(rename = "member.edit")]
    MemberEdit,
    /// `POST /visits` (the body's `id` is the client's).
    #[serde(rename = "visit.record")]
    VisitRecord,
    /// `PATCH /visits/{id}`: the body holds `id` and the fields; `base_version` applies.
    #[serde(rename = "visit.correct")]
    VisitCorrect,
    /// `POST /households/{household_id}/tag-changes`: the body holds `household_id` and the
    /// proposal; `base_version` is the household's.
    #[serde(rename = "tag_change.propose")]
    TagChangePropose,
    /// `PATCH /tasks/{id}` (reassign or cancel, as the caller's role allows): the body holds
    /// `id` and the change.
    #[serde(rename = "task.change")]
    TaskChange,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushOperation {
    /// The device's id for this operation, unique for the account (1–64 characters): the same
    /// operation sent again is answered `duplicate`.
    #[schema(min_length = 1, max_length = 64, example = "dev7-000123")]
    pub op_id: String,
    pub kind: OpKind,
    /// What the single endpoint takes (with `id` or `household_id` as the kind says).
    #[schema(value_type = Object)]
    pub body: serde_json::Map<String, Value>,
    /// For edits: the version (ETag) the change was made on. A stale one is `conflict`, with
    /// the server's record to merge with.
    #[serde(default, deserialize_with = "crate::api::optional_integral")]
    #[schema(minimum = 1)]
    pub base_version: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// In the order the device did them; at most 500.
    #[schema(max_items = 500)]
    pub operations: Vec<PushOperation>,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Done now; `record` is what is stored.
    Applied,
    /// Done before (the same `op_id`, or the same client id from the same account); `record`
    /// is what is stored now.
    Duplicate,
    /// Not done: `base_version` is stale. `record` is the server's current record.
    Conflict,
    /// Not done: `problem` says why (the same problem the single endpoint answers).
    Rejected,
}

#[derive(Serialize, ToSchema)]
pub struct PushResult {
    pub op_id: String,
    pub status: PushStatus,
    /// The problem's code for `conflict` and `rejected`.
    pub code: Option<ErrorCode>,
    pub problem: Option<Problem>,
    /// The record as the single endpoint renders it.
    #[schema(value_type = Option<Object>)]
    pub record: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PushResponse {
    /// One per operation, in order.
    pub results: Vec<PushResult>,
}

/// What an operation touched: the entity and id a replay renders again.
struct Done {
    /// False when a create found the same request from the same account already done.
    applied: bool,
    entity: &'static str,
    id: String,
    record: Value,
}

fn json(v: impl Serialize) -> Value {
    serde_json::to_value(v).expect("responses serialise")
}

/// Takes a string field out of an operation's body.
fn take(body: &mut serde_json::Map<String, Value>, field: &str) -> ApiResult<String> {
    match body.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ApiError::invalid(field, "required", "the operation's body needs it")),
    }
}

fn version(base: Option<i32>) -> Option<String> {
    base.map(|v| v.to_string())
}

/// Applies one operation (inside its savepoint).
fn run(conn: &mut DbConn, caller: &AuthUser, op: &PushOperation, policy: ops::visits::Policy) -> ApiResult<Done> {
    let mut body = op.body.clone();
    let expected = version(op.base_version);
    let expected = expected.as_deref();
    Ok(match op.kind {
        OpKind::HouseholdRegister => {
            let input = from_json::<households::CreateHousehold>(body.into())?.checked()?;
            let (created, row) = ops::households::register(conn, caller, input)?;
            Done { applied: created, entity: "household", id: row.id.clone(), record: json(row.view(conn)?) }
        }
        OpKind::HouseholdEdit => {
            let id = take(&mut body, "id")?;
            let edit = from_json::<households::PatchHousehold>(body.into())?.checked()?;
            let row = ops::households::edit(conn, caller, &id, expected, edit)?;
            Done { applied: true, entity: "household", id, record: json(row.view(conn)?) }
        }
        OpKind::MemberAdd => {
            let household_id = take(&mut body, "household_id")?;
            let input = from_json::<members::CreateMember>(body.into())?.checked()?;
            let (created, row) = ops::members::add(conn, caller, &household_id, input)?;
            Done { applied: created, entity: "member", id: row.id.clone(), record: json(MemberOut::from(row)) }
        }
        OpKind::MemberEdit => {
            let id = take(&mut body, "id")?;
            let edit = from_json::<members::PatchMember>(body.into())?.checked()?;
            let row = ops::members::edit(conn, caller, &id, expected, edit)?;
            Done { applied: true, entity: "member", id, record: json(MemberOut::from(row)) }
        }
        OpKind::VisitRecord => {
            let input = from_json::<visits::CreateVisit>(body.into())?.checked()?;
            let (created, row) = ops::visits::record(conn, caller, input, policy)?;
            Done { applied: created, entity: "visit", id: row.id.clone(), record: json(row.view(conn)?) }
        }
        OpKind::VisitCorrect => {
            let id = take(&mut body, "id")?;
            let correction = from_json::<visits::PatchVisit>(body.into())?.checked()?;
            let row = ops::visits::correct(conn, caller, &id, expected, correction)?;
            Done { applied: true, entity: "visit", id, record: json(row.view(conn)?) }
        }
        OpKind::TagChangePropose => {
            let household_id = take(&mut body, "household_id")?;
            let proposal = from_json::<tags::ProposeTagChange>(body.into())?.checked()?;
            let row = ops::tags::propose(conn, caller, &household_id, expected, proposal)?;
            Done { applied: true, entity: "tag_change", id: row.id.clone(), record: json(TagChangeOut::from(row)) }
        }
        OpKind::TaskChange => {
            let id = take(&mut body, "id")?;
            let change = from_json::<tasks::PatchTask>(body.into())?.checked()?;
            let row = ops::tasks::change(conn, caller, &id, change)?;
            Done { applied: true, entity: "task", id, record: json(row.view(conn)?) }
        }
    })
}

/// The record an operation names, as the caller may read it now (for a replay or a conflict).
fn current(conn: &mut DbConn, caller: &AuthUser, entity: &str, id: &str) -> ApiResult<Option<Value>> {
    Ok(Some(match entity {
        "household" => {
            let row = scope::household(conn, caller, id)?;
            json(row.view(conn)?)
        }
        "member" => json(MemberOut::from(scope::member(conn, caller, id)?.0)),
        "visit" => {
            let row = scope::visit(conn, caller, id)?;
            json(row.view(conn)?)
        }
        "tag_change" => json(TagChangeOut::from(scope::tag_change(conn, caller, id)?)),
        "task" => {
            let row = scope::task(conn, caller, id)?;
            json(row.view(conn)?)
        }
        _ => return Ok(None),
    }))
}

/// What a stale edit is about: its record, for the device to merge with.
fn edited(op: &PushOperation) -> Option<(&'static str, String)> {
    let field = |f: &str| op.body.get(f).and_then(Value::as_str).map(str::to_owned);
    match op.kind {
        OpKind::HouseholdEdit => Some(("household", field("id")?)),
        OpKind::MemberEdit => Some(("member", field("id")?)),
        OpKind::VisitCorrect => Some(("visit", field("id")?)),
        OpKind::TagChangePropose => Some(("household", field("household_id")?)),
        _ => None,
    }
}

fn result(op: &PushOperation, status: PushStatus, record: Option<Value>) -> PushResult {
    PushResult { op_id: op.op_id.clone(), status, code: None, problem: None, record }
}

/// Applies one operation and says how it ended. Errors are the operation's, except a lost
/// database, which ends the request.
fn apply(
    conn: &mut DbConn,
    caller: &AuthUser,
    op: &PushOperation,
    policy: ops::visits::Policy,
) -> ApiResult<PushResult> {
    if let Some(done) = store::applied(conn, &caller.id, &op.op_id)? {
        return Ok(replayed(conn, caller, op, &done));
    }
    let outcome = crate::store::savepoint(conn, |c| {
        let done = run(c, caller, op, policy)?;
        store::remember(c, &caller.id, &op.op_id, &applied_record(op, done.entity, &done.id), now())?;
        Ok(done)
    });
    match outcome {
        Ok(done) => {
            let status = if done.applied { PushStatus::Applied } else { PushStatus::Duplicate };
            Ok(result(op, status, Some(done.record)))
        }
        Err(e @ ApiError::Unavailable(_)) => Err(e),
        Err(e) => Ok(failed(conn, caller, op, e)),
    }
}

/// The result of an operation that was not done: `conflict` with the server's record for a
/// stale edit, `rejected` otherwise.
fn failed(conn: &mut DbConn, caller: &AuthUser, op: &PushOperation, e: ApiError) -> PushResult {
    if matches!(e, ApiError::Internal(_)) {
        tracing::error!(error = %e, kind = ?op.kind, "a pushed operation failed");
    }
    let status = if matches!(e, ApiError::PreconditionFailed(_)) { PushStatus::Conflict } else { PushStatus::Rejected };
    let record = match (status, edited(op)) {
        (PushStatus::Conflict, Some((entity, id))) => current(conn, caller, entity, &id).ok().flatten(),
        _ => None,
    };
    PushResult { op_id: op.op_id.clone(), status, code: Some(e.code()), problem: Some(e.problem()), record }
}

/// The answer to an operation done before (the same `op_id`): `duplicate`, with its record as
/// the caller may read it now.
fn replayed(conn: &mut DbConn, caller: &AuthUser, op: &PushOperation, done: &Applied) -> PushResult {
    let record = match (done.entity.as_deref(), done.entity_id.as_deref()) {
        (Some(e), Some(id)) => current(conn, caller, e, id).ok().flatten(),
        _ => None,
    };
    result(op, PushStatus::Duplicate, record)
}

/// What an operation remembers for its replays.
fn applied_record(op: &PushOperation, entity: &str, id: &str) -> Applied {
    Applied {
        kind: serde_json::to_value(op.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        entity: Some(entity.to_owned()),
        entity_id: Some(id.to_owned()),
    }
}

/// Applies a run of `visit.record` operations together (`ops::visits::record_many`), each with
/// the result [`apply`] would give it: the op ids looked up at once, the visits recorded as one
/// batch in one savepoint, rendered and remembered together. Should the batch fail as a whole
/// (a database error), its savepoint is rolled back and the run is applied one by one.
fn apply_visits(
    conn: &mut DbConn,
    caller: &AuthUser,
    ops: &[PushOperation],
    policy: ops::visits::Policy,
) -> ApiResult<Vec<PushResult>> {
    let op_ids: Vec<String> = ops.iter().map(|op| op.op_id.clone()).collect();
    let done = store::applied_many(conn, &caller.id, &op_ids)?;
    let mut out: Vec<Option<PushResult>> = Vec::with_capacity(ops.len());
    let mut batch = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        out.push(match done.get(&op.op_id) {
            Some(d) => Some(replayed(conn, caller, op, d)),
            None => match from_json::<visits::CreateVisit>(op.body.clone().into()).and_then(|v| v.checked()) {
                Ok(v) => {
                    batch.push((i, v));
                    None
                }
                Err(e) => Some(failed(conn, caller, op, e)),
            },
        });
    }
    let (at, inputs): (Vec<usize>, Vec<ops::visits::NewVisit>) = batch.into_iter().unzip();
    let outcome = crate::store::savepoint(conn, |c| {
        let recorded = ops::visits::record_many(c, caller, inputs, policy)?;
        let mut rows = Vec::new();
        let mut statuses = Vec::new();
        let mut remembered = Vec::new();
        for (&i, r) in at.iter().zip(recorded) {
            match r {
                Ok((created, row)) => {
                    remembered.push((ops[i].op_id.as_str(), applied_record(&ops[i], "visit", &row.id)));
                    statuses.push((i, Ok(created)));
                    rows.push(row);
                }
                Err(e) => statuses.push((i, Err(e))),
            }
        }
        store::remember_many(c, &caller.id, &remembered, now())?;
        let views = visits::views(c, rows)?;
        Ok((statuses, views))
    });
    match outcome {
        Ok((statuses, views)) => {
            let mut views = views.into_iter();
            for (i, status) in statuses {
                out[i] = Some(match status {
                    Ok(created) => {
                        let status = if created { PushStatus::Applied } else { PushStatus::Duplicate };
                        result(&ops[i], status, views.next().map(json))
                    }
                    Err(e) => failed(conn, caller, &ops[i], e),
                });
            }
        }
        Err(e @ ApiError::Unavailable(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "a batch of pushed visits failed; applying them one by one");
            for &i in &at {
                out[i] = Some(apply(conn, caller, &ops[i], policy)?);
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Checks a request's shape before anything runs.
pub fn check(req: &PushRequest) -> ApiResult<()> {
    if req.operations.len() > MAX_OPERATIONS {
        return Err(ApiError::PayloadTooLarge(format!(
            "at most {MAX_OPERATIONS} operations a request; split the push"
        )));
    }
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, op) in req.operations.iter().enumerate() {
        let printable = crate::domain::text::check(&op.op_id, false).is_ok() && !op.op_id.trim().is_empty();
        if op.op_id.chars().count() > 64 || !printable {
            errors.push(crate::error::FieldError::new(
                format!("operations[{i}].op_id"),
                "invalid",
                "1–64 visible characters",
            ));
        } else if !seen.insert(op.op_id.as_str()) {
            errors.push(crate::error::FieldError::new(format!("operations[{i}].op_id"), "duplicate", "listed twice"));
        }
        if op.base_version.is_some_and(|v| v < 1) {
            let field = format!("operations[{i}].base_version");
            errors.push(crate::error::FieldError::new(field, "out_of_range", "versions start at 1"));
        }
    }
    crate::api::validate::done(errors)
}

/// Applies every operation of a request, in order, in the caller's transaction.
pub fn push(
    conn: &mut DbConn,
    caller: &AuthUser,
    req: &PushRequest,
    policy: ops::visits::Policy,
) -> ApiResult<PushResponse> {
    let mut results = Vec::with_capacity(req.operations.len());
    let ops = &req.operations;
    let mut i = 0;
    while i < ops.len() {
        // A run of visits (what a day offline mostly is) goes as one batch.
        let run = ops[i..].iter().take_while(|op| op.kind == OpKind::VisitRecord).count();
        if run > 1 {
            results.extend(apply_visits(conn, caller, &ops[i..i + run], policy)?);
            i += run;
        } else {
            results.push(apply(conn, caller, &ops[i], policy)?);
            i += 1;
        }
    }
    Ok(PushResponse { results })
}
