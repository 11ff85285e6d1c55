//! 今日概览: the dashboard of the caller's scope (`api::stats::overview_for`, the figures of
//! `/stats/overview`), drawn as charts with the numbers beside them.

use minijinja::{Value, context};

use crate::api::stats::{Coverage, Overview, ScopeQuery, TagCounts, overview_for};
use crate::console::charts::{Bar, bars};
use crate::console::{Console, Page};
use crate::domain::Role;

const TAGS: [(&str, &str); 3] = [("red", "红灯"), ("yellow", "黄灯"), ("green", "绿灯")];

fn by_tag(counts: &TagCounts) -> [i64; 3] {
    [counts.red, counts.yellow, counts.green]
}

fn count_chart(title: &str, counts: &TagCounts, unit: &str) -> Value {
    let items: Vec<Bar> = TAGS
        .iter()
        .zip(by_tag(counts))
        .map(|((class, label), n)| Bar { label: (*label).into(), value: n as f64, text: format!("{n} {unit}"), class })
        .collect();
    Value::from_safe_string(bars(title, &items, None))
}

fn coverage_chart(c: [&Coverage; 3]) -> Value {
    let items: Vec<Bar> = TAGS
        .iter()
        .zip(c)
        .map(|((class, label), cov)| Bar {
            label: (*label).into(),
            value: cov.rate.unwrap_or(0.0) * 100.0,
            text: match cov.rate {
                Some(r) => format!("{:.0}%（{}/{}）", r * 100.0, cov.covered, cov.planned),
                None => "无计划".into(),
            },
            class,
        })
        .collect();
    Value::from_safe_string(bars("走访覆盖率（按颜色）", &items, Some(100.0)))
}

/// The home page: the dashboard for reviewers, the to-do list for grid workers.
pub async fn home(console: Console) -> Page {
    if console.caller.role == Role::GridWorker {
        return console.redirect("/console/todo");
    }
    let q = ScopeQuery::default();
    let o: Overview = overview_for(&console.state, console.caller.clone(), q).await?;
    let t = &o.totals;
    let charts = context! {
        households => count_chart("住户（按颜色）", &t.households, "户"),
        open_tasks => count_chart("待办任务（按颜色）", &t.open_tasks, "项"),
        overdue_tasks => count_chart("逾期任务（按颜色）", &t.overdue_tasks, "项"),
        coverage => coverage_chart([&t.coverage.red, &t.coverage.yellow, &t.coverage.green]),
    };
    console.ok("overview.html", context! { o => Value::from_serialize(&o), charts, page => "overview" })
}
