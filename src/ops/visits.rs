//! Visits: recording one (it completes the household's open task of its kind and schedules the
//! next) and correcting it within the window.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{AuthUser, scope};
use crate::db::DbConn;
use crate::domain::visit::{CORRECTION_WINDOW, VisitTimeError, check_visited_at};
use crate::domain::{Finding, Location, Role, ServiceKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::{audit_event, check_version};
use crate::store::audit::{self, Event};
use crate::store::replay::{self, StoredOrigin};
use crate::store::sync;
use crate::store::visits::{self as store, VisitCorrection, VisitRow};
use crate::store::{JsonText, now, tasks};

/// What a visit says besides its household, kind and time; checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub location: Option<Location>,
}

/// A visit to record; checked.
#[derive(Debug, Clone)]
pub struct NewVisit {
    /// The client's id, or a new one.
    pub id: String,
    pub household_id: String,
    pub kind: ServiceKind,
    /// Truncated to microseconds, as stored.
    pub visited_at: NaiveDateTime,
    pub content: Content,
}

/// The rules of the deployment that recording applies.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How old a visit a grid worker may record (`GRIDLIGHT_VISIT_MAX_AGE_DAYS`).
    pub max_age_days: u32,
}

/// What identifies a submission's content, for telling a retry from another request.
pub fn content_hash(household_id: &str, kind: ServiceKind, visited_at: NaiveDateTime, c: &Content) -> String {
    let canonical = json!({
        "household_id": household_id,
        "kind": kind.as_str(),
        "visited_at": visited_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "notes": c.notes,
        "findings": c.findings,
        "location": c.location,
    });
    Sha256::digest(canonical.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Records a visit: it completes the household's open task of the same kind (early visits
/// count; the task's completion time is the visit's, not before the task was scheduled) and
/// schedules the next one from the visit's date. The same submission again from its author is
/// answered with the stored visit (`false`: nothing new); anything else with its id is a 409.
///
/// One visit is a batch of one: [`record_many`] holds the rules.
pub fn record(conn: &mut DbConn, caller: &AuthUser, v: NewVisit, policy: Policy) -> ApiResult<(bool, VisitRow)> {
    record_many(conn, caller, vec![v], policy)?
        .pop()
        .unwrap_or_else(|| Err(ApiError::internal(anyhow::anyhow!("a batch of one answered nothing"))))
}

/// The outcome of one visit of a batch: recorded (`true`) or found recorded before (`false`),
/// or why not.
pub type Recorded = ApiResult<(bool, VisitRow)>;

/// Records visits by one caller in order, each with its own outcome, exactly as recording them
/// one after the other with [`record`] would — the same checks in the same order, the same rows,
/// tasks and audit events — in a few statements for the whole batch: the households are read,
/// checked and locked together (in id order), the ids looked up together, and the task
/// reconcile runs once for all households touched instead of once per visit.
///
/// Order matters where a visit sees what an earlier one did: a second visit to a household
/// completes the task the reconcile after the first one scheduled, and a second visit with the
/// same id is its replay. So the batch is written in segments: before a visit to a household
/// that already has a visit in the segment of the same kind (or of a kind without an open task),
/// the segment is written and reconciled, and the open tasks read again.
///
/// An outer error (the database) leaves the transaction to be rolled back; a visit's own
/// failure (not in scope, removed, an id of another record, a time outside the window) writes
/// nothing and leaves the others alone.
pub fn record_many(
    conn: &mut DbConn,
    caller: &AuthUser,
    visits: Vec<NewVisit>,
    policy: Policy,
) -> ApiResult<Vec<Recorded>> {
    let received = now();
    let may_backfill = matches!(caller.role, Role::Secretary | Role::Admin);
    let mut out: Vec<Option<Recorded>> = visits
        .iter()
        .map(|v| {
            check_visited_at(v.visited_at, received, policy.max_age_days, may_backfill).err().map(|e| {
                Err(match e {
                    VisitTimeError::InFuture => {
                        ApiError::invalid("visited_at", "in_future", "may not be in the future")
                    }
                    VisitTimeError::TooOld { max_age_days } => {
                        ApiError::invalid("visited_at", "too_old", format!("may not be older than {max_age_days} days"))
                    }
                })
            })
        })
        .collect();
    let wanted = |pick: fn(&NewVisit) -> &String| -> Vec<String> {
        let mut ids: Vec<String> =
            visits.iter().zip(&out).filter(|(_, o)| o.is_none()).map(|(v, _)| pick(v).clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    // The household before its tasks, in the order every writer takes them (tag decisions,
    // edits, the reconciler); the other way round deadlocks on PostgreSQL.
    let homes = scope::households_for_update(conn, caller, &wanted(|v| &v.household_id))?;
    let stored: HashMap<String, VisitRow> =
        sync::visits_by_ids(conn, &wanted(|v| &v.id))?.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut open = OpenTasks::read(conn, homes.keys().cloned().collect())?;
    let mut batch: HashMap<String, VisitRow> = HashMap::new();
    let mut segment = Segment::default();
    for (i, v) in visits.into_iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let Some(household) = homes.get(&v.household_id) else {
            out[i] = Some(Err(ApiError::not_found("household")));
            continue;
        };
        let hash = content_hash(&household.id, v.kind, v.visited_at, &v.content);
        if let Some(earlier) = stored.get(&v.id).or_else(|| batch.get(&v.id)) {
            out[i] = Some(replayed(earlier, caller, &hash));
            continue;
        }
        if household.removed_at.is_some() {
            out[i] = Some(Err(ApiError::household_removed()));
            continue;
        }
        if segment.sees(&household.id, v.kind, &open) {
            segment.write(conn, caller, &mut open, true, received, &mut out)?;
        }
        let row = VisitRow {
            id: v.id.clone(),
            household_id: household.id.clone(),
            community_id: household.community_id.clone(),
            grid_id: household.grid_id.clone(),
            worker_id: caller.id.clone(),
            kind: v.kind,
            visited_at: v.visited_at,
            notes: v.content.notes.clone(),
            findings: JsonText(v.content.findings.clone()),
            location_lat: v.content.location.map(|l| l.lat),
            location_lng: v.content.location.map(|l| l.lng),
            location_accuracy_m: v.content.location.map(|l| l.accuracy_m),
            content_hash: hash,
            received_at: received,
            version: 1,
            updated_at: received,
        };
        batch.insert(row.id.clone(), row.clone());
        segment.rows.push((i, row));
    }
    segment.write(conn, caller, &mut open, false, received, &mut out)?;
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(ApiError::internal(anyhow::anyhow!("a visit left out")))))
        .collect())
}

/// A visit whose id is taken: the same submission again from its author is answered with the
/// stored visit; anything else is a 409.
fn replayed(stored: &VisitRow, caller: &AuthUser, hash: &str) -> Recorded {
    let origin = StoredOrigin { created_by: Some(stored.worker_id.clone()), digest: Some(stored.content_hash.clone()) };
    replay::check_retry(&origin, &caller.id, hash)?;
    Ok((false, stored.clone()))
}

/// The open tasks of the batch's households, by household and kind: (id, created_at).
struct OpenTasks(HashMap<(String, ServiceKind), Vec<(String, NaiveDateTime)>>);

impl OpenTasks {
    fn read(conn: &mut DbConn, household_ids: Vec<String>) -> ApiResult<OpenTasks> {
        let mut open = OpenTasks(HashMap::new());
        open.reread(conn, household_ids)?;
        Ok(open)
    }

    /// Reads these households' open tasks again (after a reconcile).
    fn reread(&mut self, conn: &mut DbConn, mut household_ids: Vec<String>) -> ApiResult<()> {
        if household_ids.is_empty() {
            return Ok(());
        }
        household_ids.sort();
        household_ids.dedup();
        self.0.retain(|(h, _), _| household_ids.binary_search(h).is_err());
        for (id, household_id, kind, created_at) in tasks::open_of(conn, &household_ids)? {
            self.0.entry((household_id, kind)).or_default().push((id, created_at));
        }
        Ok(())
    }

    fn of(&self, household_id: &str, kind: ServiceKind) -> &[(String, NaiveDateTime)] {
        self.0.get(&(household_id.to_owned(), kind)).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Visits not written yet, none of which depends on what another one does: (index in the
/// batch, row).
#[derive(Default)]
struct Segment {
    rows: Vec<(usize, VisitRow)>,
}

impl Segment {
    /// Whether a visit of this kind to this household would see what the segment's visits do
    /// (recorded one by one, the reconcile after an earlier visit to the household schedules
    /// the task a later one completes).
    fn sees(&self, household_id: &str, kind: ServiceKind, open: &OpenTasks) -> bool {
        self.rows.iter().any(|(_, r)| r.household_id == household_id)
            && (open.of(household_id, kind).is_empty()
                || self.rows.iter().any(|(_, r)| r.household_id == household_id && r.kind == kind))
    }

    /// Writes the segment's visits, completes their tasks, reconciles their households once
    /// and writes their audit events; their outcomes go to `out`. With `more` (segments
    /// follow), `open` is read again for the households reconciled.
    fn write(
        &mut self,
        conn: &mut DbConn,
        caller: &AuthUser,
        open: &mut OpenTasks,
        more: bool,
        received: NaiveDateTime,
        out: &mut [Option<Recorded>],
    ) -> ApiResult<()> {
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return Ok(());
        }
        let all: Vec<VisitRow> = rows.iter().map(|(_, r)| r.clone()).collect();
        let written = if store::insert_many(conn, &all)? {
            rows
        } else {
            // An id taken meanwhile (a concurrent retry): one at a time, as a single visit.
            let mut written = Vec::with_capacity(rows.len());
            for (i, row) in rows {
                if store::insert(conn, &row)? {
                    written.push((i, row));
                } else {
                    let stored = store::find(conn, &row.id)?.ok_or_else(|| ApiError::not_found("visit"))?;
                    out[i] = Some(replayed(&stored, caller, &row.content_hash));
                }
            }
            written
        };
        let mut completed = Vec::with_capacity(written.len());
        for (_, row) in &written {
            let due = open.of(&row.household_id, row.kind).to_vec();
            completed.push(tasks::complete(conn, &due, &row.id, row.visited_at.min(received))?);
        }
        let mut households: Vec<String> = written.iter().map(|(_, r)| r.household_id.clone()).collect();
        households.sort();
        households.dedup();
        let created = tasks::households_changed(conn, &households)?;
        // Each task made goes to the audit event of the visit whose reconcile would have made
        // it one by one: the visit of its kind, else the household's first of the segment.
        let mut tasks_created = vec![0u64; written.len()];
        for (household_id, kind) in &created {
            let of_kind = written.iter().position(|(_, r)| &r.household_id == household_id && r.kind == *kind);
            let first = written.iter().position(|(_, r)| &r.household_id == household_id);
            if let Some(k) = of_kind.or(first) {
                tasks_created[k] += 1;
            }
        }
        let summaries: Vec<Value> = written
            .iter()
            .zip(&completed)
            .zip(&tasks_created)
            .map(|(((_, row), completed), created)| {
                json!({"household_id": row.household_id, "kind": row.kind,
                    "completed_task_ids": completed, "tasks_created": created})
            })
            .collect();
        let events: Vec<Event<'_>> =
            written.iter().zip(summaries).map(|((_, row), summary)| event("visit.recorded", row, summary)).collect();
        audit::record_many(conn, &caller.actor(), &events)?;
        if more {
            open.reread(conn, households)?;
        }
        for (i, row) in written {
            out[i] = Some(Ok((true, row)));
        }
        Ok(())
    }
}

/// A correction: each field present replaces the stored one (`Some(None)` clears); checked.
#[derive(Debug, Clone, Default)]
pub struct Correction {
    pub notes: Option<Option<String>>,
    pub findings: Option<Vec<Finding>>,
    pub location: Option<Option<Location>>,
}

/// Corrects a visit's notes, findings or location: its author only, within 24 hours of its
/// receipt; afterwards it is immutable (409 `visit_locked`).
pub fn correct(
    conn: &mut DbConn,
    caller: &AuthUser,
    id: &str,
    expected: Option<&str>,
    c: Correction,
) -> ApiResult<VisitRow> {
    let v = scope::visit_for_update(conn, caller, id)?;
    if v.worker_id != caller.id {
        return Err(ApiError::Forbidden("only the visit's author may correct it".into()));
    }
    if now() > v.received_at + CORRECTION_WINDOW {
        return Err(ApiError::conflict(ErrorCode::VisitLocked, "visits can be corrected for 24 hours only"));
    }
    check_version(expected, v.version)?;
    let fields = audit::fields_set([
        ("notes", c.notes.is_some()),
        ("findings", c.findings.is_some()),
        ("location", c.location.is_some()),
    ]);
    let content = Content {
        notes: c.notes.unwrap_or_else(|| v.notes.clone()),
        findings: c.findings.unwrap_or_else(|| v.findings.0.clone()),
        location: c
            .location
            .unwrap_or_else(|| Location::from_columns(v.location_lat, v.location_lng, v.location_accuracy_m)),
    };
    let correction = VisitCorrection {
        content_hash: content_hash(&v.household_id, v.kind, v.visited_at, &content),
        notes: Some(content.notes),
        findings: Some(JsonText(content.findings)),
        location_lat: Some(content.location.map(|l| l.lat)),
        location_lng: Some(content.location.map(|l| l.lng)),
        location_accuracy_m: Some(content.location.map(|l| l.accuracy_m)),
        version: v.version + 1,
        updated_at: now(),
    };
    if !store::correct(conn, id, v.version, &correction)? {
        return Err(ApiError::internal(anyhow::anyhow!("a locked visit changed")));
    }
    audit_event(conn, caller, event("visit.corrected", &v, json!({"fields": fields})))?;
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("visit"))
}

/// The audit event of a visit.
fn event<'a>(action: &'a str, visit: &'a VisitRow, summary: Value) -> Event<'a> {
    Event { action, entity_type: "visit", entity_id: Some(&visit.id), community_id: Some(&visit.community_id), summary }
}
