//! 考核: the evaluation report of a month, quarter, half year or year (the figures of
//! `/reports/evaluation`: `api::stats::evaluation_for`), with the grid and worker ranking, and
//! the same table as CSV or XLSX.
//!
//! Street and district officers get their unit's roll-up (the API's default for them): a row per
//! community of their street, or per street of their district, ranked, with the totals. An
//! administrator picks the level: every community, a district or a street.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use chrono::Datelike;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::api::stats::{EvaluationQuery, EvaluationReport, ScopeQuery, evaluation_for, to_csv, to_xlsx};
use crate::api::streets::{districts, streets_in_reach};
use crate::console::view::Problem;
use crate::console::{Console, Fail, Page};
use crate::domain::Role;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Serialize, Default)]
pub struct ReportQuery {
    period: Option<String>,
    format: Option<String>,
    /// The roll-up asked for: `district:<id>` or `street:<id>`; empty for the caller's default
    /// (their community, street or district; every community for an administrator).
    unit: Option<String>,
}

/// The report is for those who review or oversee communities: a grid worker gets 403.
fn report_reader(console: &Console) -> Result<(), Fail> {
    Ok(console.caller.require(&[Role::Admin, Role::Secretary, Role::StreetOfficer, Role::DistrictOfficer])?)
}

fn presets() -> Vec<(String, &'static str)> {
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
    let (y, m) = (today.year(), today.month());
    vec![
        (format!("{y}-{m:02}"), "本月"),
        (format!("{y}-Q{}", (m - 1) / 3 + 1), "本季度"),
        (format!("{y}-H{}", if m <= 6 { 1 } else { 2 }), "本半年"),
        (format!("{y}"), "本年"),
    ]
}

/// The API's scope parameters for `unit` (the API decides who may see it: 404 outside).
fn scope_of(unit: Option<&str>) -> ApiResult<ScopeQuery> {
    Ok(match unit.map(str::trim).filter(|u| !u.is_empty()).map(|u| u.split_once(':')) {
        None => ScopeQuery::default(),
        Some(Some(("district", id))) => ScopeQuery { district_id: Some(id.to_owned()), ..ScopeQuery::default() },
        Some(Some(("street", id))) => ScopeQuery { street_id: Some(id.to_owned()), ..ScopeQuery::default() },
        Some(_) => return Err(ApiError::not_found("district or street")),
    })
}

async fn report(console: &Console, period: &str, unit: Option<&str>) -> ApiResult<EvaluationReport> {
    let q = EvaluationQuery { period: Some(period.to_owned()), ..EvaluationQuery::default() };
    let period = q.period()?;
    evaluation_for(&console.state, console.caller.clone(), period, scope_of(unit)?).await
}

/// The districts and streets the caller may roll up (`unit` value, label), through the API's
/// scoped lists: every one for an administrator, none below a street.
async fn units(console: &Console) -> ApiResult<Vec<(String, String)>> {
    let caller = console.caller.clone();
    if !(caller.is_admin() || caller.is_officer()) {
        return Ok(Vec::new());
    }
    console
        .state
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for d in districts(c, &caller, None, 1000)? {
                out.push((format!("district:{}", d.id), format!("{}（{}）", d.name, d.division_code)));
                for s in streets_in_reach(c, &caller, Some(d.id), None, 1000)? {
                    out.push((format!("street:{}", s.id), format!("└ {}（{}）", s.name, s.code)));
                }
            }
            Ok(out)
        })
        .await
}

pub async fn show(console: Console, query: web::Query<ReportQuery>) -> Page {
    report_reader(&console)?;
    let presets = presets();
    let q = query.into_inner();
    let period = q.period.filter(|p| !p.trim().is_empty()).unwrap_or_else(|| presets[0].0.clone());
    let period = period.trim().to_owned();
    let unit = q.unit.filter(|u| !u.trim().is_empty());
    let (status, r, problem) = match report(&console, &period, unit.as_deref()).await {
        Ok(r) => (StatusCode::OK, Some(r), None),
        Err(e @ ApiError::Validation(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None, Some(Problem::of(Some("period"), &e)))
        }
        Err(e) => return Err(e.into()),
    };
    let units = units(&console).await?;
    // The unit shown: what was asked for, else the roll-up the caller's role gave.
    let shown = r.as_ref().and_then(|r| match (&r.scope.district_id, &r.scope.street_id) {
        (Some(d), _) => Some(format!("district:{d}")),
        (_, Some(s)) => Some(format!("street:{s}")),
        _ => None,
    });
    let unit_name = shown.as_ref().and_then(|u| units.iter().find(|(v, _)| v == u)).map(|(_, l)| l.clone());
    let ctx = context! {
        r => Value::from_serialize(&r), period, presets => Value::from_serialize(&presets), problem,
        units => Value::from_serialize(&units), choose_unit => console.caller.is_admin(),
        shown => shown.unwrap_or_default(), unit_name, page => "report",
    };
    console.page(status, "report.html", ctx)
}

/// The report as a file: `format=csv` (the API's CSV) or `format=xlsx`, of the same unit as
/// the page.
pub async fn download(console: Console, query: web::Query<ReportQuery>) -> Page {
    report_reader(&console)?;
    let q = query.into_inner();
    let r = report(&console, q.period.as_deref().unwrap_or_default().trim(), q.unit.as_deref()).await?;
    let (body, kind, ext) = match q.format.as_deref() {
        Some("xlsx") => (
            to_xlsx(&r).map_err(ApiError::internal)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        Some("csv") | None => (to_csv(&r).into_bytes(), "text/csv; charset=utf-8", "csv"),
        Some(_) => return Err(ApiError::invalid("format", "invalid", "csv or xlsx").into()),
    };
    let disposition = format!("attachment; filename=\"evaluation-{}.{ext}\"", r.period.label);
    let mut res =
        HttpResponse::Ok().content_type(kind).insert_header((header::CONTENT_DISPOSITION, disposition)).body(body);
    res.add_cookie(&console.renewed()).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
    Ok(res)
}
