//! 考核: the evaluation report of a month, quarter, half year or year (the figures of
//! `/reports/evaluation`: `api::stats::evaluation_for`), with the grid and worker ranking, and
//! the same table as CSV or XLSX.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use chrono::Datelike;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::api::stats::{EvaluationQuery, EvaluationReport, ScopeQuery, evaluation_for, to_csv, to_xlsx};
use crate::console::pages::reviewer;
use crate::console::view::Problem;
use crate::console::{Console, Page};
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Serialize, Default)]
pub struct ReportQuery {
    period: Option<String>,
    format: Option<String>,
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

async fn report(console: &Console, period: &str) -> ApiResult<EvaluationReport> {
    let q = EvaluationQuery { period: Some(period.to_owned()), ..EvaluationQuery::default() };
    let period = q.period()?;
    evaluation_for(&console.state, console.caller.clone(), period, ScopeQuery::default()).await
}

pub async fn show(console: Console, query: web::Query<ReportQuery>) -> Page {
    reviewer(&console)?;
    let presets = presets();
    let period = query.into_inner().period.filter(|p| !p.trim().is_empty()).unwrap_or_else(|| presets[0].0.clone());
    let period = period.trim().to_owned();
    let (status, r, problem) = match report(&console, &period).await {
        Ok(r) => (StatusCode::OK, Some(r), None),
        Err(e @ ApiError::Validation(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None, Some(Problem::of(Some("period"), &e)))
        }
        Err(e) => return Err(e.into()),
    };
    let ctx = context! {
        r => Value::from_serialize(&r), period, presets => Value::from_serialize(&presets), problem, page => "report",
    };
    console.page(status, "report.html", ctx)
}

/// The report as a file: `format=csv` (the API's CSV) or `format=xlsx`.
pub async fn download(console: Console, query: web::Query<ReportQuery>) -> Page {
    reviewer(&console)?;
    let q = query.into_inner();
    let r = report(&console, q.period.as_deref().unwrap_or_default().trim()).await?;
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
