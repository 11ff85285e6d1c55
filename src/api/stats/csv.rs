//! The evaluation report as one CSV table, for the spreadsheets the report meetings use.
//!
//! RFC 4180 with CRLF line ends, a header row, and a `level` column telling the rows apart
//! (`grid`, `worker`, `community`, `street`, `total`). Two things are for spreadsheet programs: the file
//! starts with a UTF-8 byte order mark, without which Excel reads UTF-8 as the local code page
//! and shows the Chinese names as mojibake; and no cell begins with a character that makes a
//! spreadsheet run it as a formula (`=`, `+`, `-`, `@`, tab, carriage return) — such a cell
//! gets a leading apostrophe, since names are typed by users (CSV injection).

use actix_web::http::header::{self, Header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::api::stats::evaluation::{Evaluation, EvaluationReport};

/// The media type of the CSV answer.
pub(super) const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// The UTF-8 byte order mark the table starts with.
pub const BOM: char = '\u{feff}';

const HEADER: [&str; 27] = [
    "level",
    "rank",
    "period",
    "street_id",
    "street_name",
    "community_id",
    "community_name",
    "grid_id",
    "grid_code",
    "grid_name",
    "worker_id",
    "worker_username",
    "worker_name",
    "tasks_due",
    "completed_on_time",
    "completed_late",
    "missed",
    "overdue",
    "not_yet_due",
    "on_time_rate",
    "red_planned",
    "red_covered",
    "red_coverage",
    "visits_home_visit",
    "visits_phone_call",
    "visits_service",
    "visits_total",
];

/// CSV when asked for with `Accept: text/csv` (or `text/*`) before JSON; JSON otherwise.
pub(super) fn wanted(req: &HttpRequest) -> bool {
    let Ok(accept) = header::Accept::parse(req) else { return false };
    for mime in accept.ranked() {
        let acceptable = accept.iter().any(|q| q.item == mime && q.quality > header::Quality::ZERO);
        if !acceptable {
            continue;
        }
        match (mime.type_().as_str(), mime.subtype().as_str()) {
            ("text", "csv" | "*") => return true,
            ("application", "json" | "problem+json" | "*") | ("*", _) => return false,
            _ => {}
        }
    }
    false
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. Text that a
/// spreadsheet would run as a formula gets a leading apostrophe.
fn field(out: &mut String, value: &str) {
    let guarded;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn rate(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.4}")).unwrap_or_default()
}

/// The columns before the figures.
const TEXT_COLUMNS: usize = 13;

/// One row: the text columns, then the figures.
fn row(rows: &mut Vec<Vec<String>>, text: [&str; TEXT_COLUMNS], e: &Evaluation) {
    let numbers = [
        e.tasks_due.to_string(),
        e.completed_on_time.to_string(),
        e.completed_late.to_string(),
        e.missed.to_string(),
        e.overdue.to_string(),
        e.not_yet_due.to_string(),
        rate(e.on_time_rate),
        e.red_coverage.planned.to_string(),
        e.red_coverage.covered.to_string(),
        rate(e.red_coverage.rate),
        e.visits.home_visit.to_string(),
        e.visits.phone_call.to_string(),
        e.visits.service.to_string(),
        e.visits.total.to_string(),
    ];
    rows.push(text.into_iter().map(str::to_owned).chain(numbers).collect());
}

/// The answer with the report as a CSV attachment named after its period.
pub(super) fn attachment(mut res: HttpResponseBuilder, report: &EvaluationReport) -> HttpResponse {
    let disposition = format!("attachment; filename=\"evaluation-{}.csv\"", report.period.label);
    res.content_type(CONTENT_TYPE).insert_header((header::CONTENT_DISPOSITION, disposition)).body(to_csv(report))
}

/// The report as one table: the grids (ranked), the workers, the communities (ranked within
/// their street), a roll-up's streets (ranked), then the total.
fn table(r: &EvaluationReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let name_of = |id: &str| r.communities.iter().find(|c| c.community_id == id).map(|c| c.name.as_str()).unwrap_or("");
    let p = r.period.label.as_str();
    for g in &r.grids {
        let rank = g.rank.to_string();
        let text = [
            "grid",
            rank.as_str(),
            p,
            "",
            "",
            g.community_id.as_str(),
            name_of(&g.community_id),
            g.grid_id.as_str(),
            g.code.as_str(),
            g.name.as_str(),
            "",
            "",
            "",
        ];
        row(&mut rows, text, &g.figures);
    }
    for w in &r.workers {
        let community = w.community_id.as_deref().unwrap_or("");
        let text = [
            "worker",
            "",
            p,
            "",
            "",
            community,
            name_of(community),
            "",
            "",
            "",
            w.worker_id.as_str(),
            w.username.as_str(),
            w.display_name.as_str(),
        ];
        row(&mut rows, text, &w.figures);
    }
    let street_of = |id: &str| r.streets.iter().find(|s| s.street_id == id).map(|s| s.name.as_str()).unwrap_or("");
    for c in &r.communities {
        let rank = c.rank.to_string();
        let (street, street_name) = (c.street_id.as_str(), street_of(&c.street_id));
        let text = ["community", &rank, p, street, street_name, &c.community_id, &c.name, "", "", "", "", "", ""];
        row(&mut rows, text, &c.figures);
    }
    for s in &r.streets {
        let rank = s.rank.to_string();
        row(&mut rows, ["street", &rank, p, &s.street_id, &s.name, "", "", "", "", "", "", "", ""], &s.figures);
    }
    row(&mut rows, ["total", "", p, "", "", "", "", "", "", "", "", "", ""], &r.totals);
    rows
}

/// The report as CSV: every cell goes through [`field`], the numbers too, so that no cell
/// escapes the formula guard.
pub fn to_csv(r: &EvaluationReport) -> String {
    let mut out = String::new();
    out.push(BOM);
    out.push_str(&HEADER.join(","));
    out.push_str("\r\n");
    for cells in table(r) {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, cell);
        }
        out.push_str("\r\n");
    }
    out
}

/// The same table as an Excel workbook (the console's download): text cells are written as
/// text, never as formulas; the figures as numbers.
pub fn to_xlsx(r: &EvaluationReport) -> anyhow::Result<Vec<u8>> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(&r.period.label)?;
    for (col, name) in HEADER.iter().enumerate() {
        sheet.write_string(0, u16::try_from(col)?, *name)?;
    }
    for (i, cells) in table(r).iter().enumerate() {
        let line = u32::try_from(i + 1)?;
        for (col, cell) in cells.iter().enumerate() {
            let col = u16::try_from(col)?;
            match cell.parse::<f64>() {
                Ok(n) if usize::from(col) >= TEXT_COLUMNS => sheet.write_number(line, col, n)?,
                _ => sheet.write_string(line, col, cell)?,
            };
        }
    }
    Ok(book.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::api::stats::evaluation::{CommunityEvaluation, GridEvaluation, WorkerEvaluation};
    use crate::api::stats::types::ScopeOut;
    use crate::domain::{Period, Role};

    fn one(value: &str) -> String {
        let mut out = String::new();
        field(&mut out, value);
        out
    }

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(one("网格, \"一\""), "\"网格, \"\"一\"\"\"");
        assert_eq!(one("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(one("建新一网格"), "建新一网格");
        assert_eq!(one("=1+1"), "'=1+1");
        assert_eq!(one("+86 138"), "'+86 138");
        assert_eq!(one("-2+3"), "'-2+3");
        assert_eq!(one("@SUM(A1:A9)"), "'@SUM(A1:A9)");
        assert_eq!(one("\t=1"), "'\t=1");
        assert_eq!(one("\r=1"), "\"'\r=1\"");
        // Only the first character counts: a formula sign inside text is harmless.
        assert_eq!(one("a=b"), "a=b");
        assert_eq!(one("1-2"), "1-2");
        assert_eq!(one(""), "");
    }

    fn report() -> EvaluationReport {
        let period = Period::parse("2026-Q4").unwrap();
        let figures = Evaluation { tasks_due: 2, completed_on_time: 1, on_time_rate: Some(0.5), ..Default::default() };
        EvaluationReport {
            period,
            scope: ScopeOut { community_id: Some("c1".into()), ..Default::default() },
            generated_at: Utc.with_ymd_and_hms(2026, 11, 15, 2, 0, 0).unwrap(),
            totals: figures.clone(),
            streets: Vec::new(),
            communities: vec![CommunityEvaluation {
                rank: 1,
                street_id: "s1".into(),
                community_id: "c1".into(),
                name: "建新社区".into(),
                timezone: "Asia/Shanghai".into(),
                as_of: NaiveDate::from_ymd_opt(2026, 11, 15).unwrap(),
                period_over: false,
                figures: figures.clone(),
            }],
            grids: vec![GridEvaluation {
                rank: 1,
                grid_id: "g1".into(),
                community_id: "c1".into(),
                code: "37010300100101".into(),
                name: "=cmd|' /C calc'!A0".into(),
                figures: figures.clone(),
            }],
            workers: vec![WorkerEvaluation {
                worker_id: "u1".into(),
                username: "@w01".into(),
                display_name: "-薛慧敏".into(),
                role: Role::GridWorker,
                community_id: Some("c1".into()),
                grid_ids: vec!["g1".into()],
                figures,
            }],
        }
    }

    #[test]
    fn the_table_starts_with_a_bom_and_no_cell_is_a_formula() {
        let text = to_csv(&report());
        assert!(text.starts_with("\u{feff}level,rank,period,"), "{text:?}");
        assert_eq!(text.as_bytes()[..3], [0xEF, 0xBB, 0xBF]);
        assert_eq!(text.matches(BOM).count(), 1);
        let lines: Vec<&str> = text.trim_start_matches(BOM).trim_end_matches("\r\n").split("\r\n").collect();
        assert_eq!(lines.len(), 1 + 4);
        assert_eq!(
            lines[1],
            "grid,1,2026-Q4,,,c1,建新社区,g1,37010300100101,'=cmd|' /C calc'!A0,,,,2,1,0,0,0,0,0.5000,0,0,,0,0,0,0"
        );
        assert_eq!(lines[2], "worker,,2026-Q4,,,c1,建新社区,,,,u1,'@w01,'-薛慧敏,2,1,0,0,0,0,0.5000,0,0,,0,0,0,0");
        assert_eq!(lines[3], "community,1,2026-Q4,s1,,c1,建新社区,,,,,,,2,1,0,0,0,0,0.5000,0,0,,0,0,0,0");
        assert_eq!(lines[4], "total,,2026-Q4,,,,,,,,,,,2,1,0,0,0,0,0.5000,0,0,,0,0,0,0");
        for cell in lines.iter().flat_map(|l| l.split(',')) {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?} in {text}");
        }
    }
}
