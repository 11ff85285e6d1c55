//! Rendering: the templates (compiled into the binary), the Chinese names of the domain's
//! values, and errors as readable messages.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::console::{Console, Page};
use crate::domain::reason;
use crate::error::{ApiError, ErrorCode};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "base.html",
    "error.html",
    "login.html",
    "overview.html",
    "review.html",
    "households.html",
    "household.html",
    "tasks.html",
    "todo.html",
    "report.html",
    "import.html",
);

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("the console's templates parse");
        }
        env.add_filter("tag_zh", |v: String| tag_zh(&v).to_owned());
        env.add_filter("kind_zh", |v: String| kind_zh(&v).to_owned());
        env.add_filter("relation_zh", |v: String| relation_zh(&v).to_owned());
        env.add_filter("reason_zh", |v: String| reason(&v).map_or(v.clone(), |r| r.label_zh.to_owned()));
        env.add_filter("when", |v: String| when(&v));
        env.add_filter("percent", |v: Option<f64>| v.map_or("—".to_owned(), |r| format!("{:.0}%", r * 100.0)));
        env
    })
}

pub fn tag_zh(tag: &str) -> &'static str {
    match tag {
        "red" => "红灯",
        "yellow" => "黄灯",
        "green" => "绿灯",
        _ => "未知",
    }
}

pub fn kind_zh(kind: &str) -> &'static str {
    match kind {
        "home_visit" => "入户走访",
        "phone_call" => "电话问候",
        "service" => "上门服务",
        _ => "其他",
    }
}

fn relation_zh(relation: &str) -> &'static str {
    match relation {
        "head" => "户主",
        "spouse" => "配偶",
        "child" => "子女",
        "parent" => "父母",
        "grandchild" => "孙辈",
        _ => "其他",
    }
}

/// An RFC 3339 time as Beijing time, to the minute.
fn when(v: &str) -> String {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| v.to_owned())
}

/// The template rendered, or a logged 500 page.
fn render(name: &str, ctx: Value) -> Result<String, ApiError> {
    env()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("console template {name}: {e:#}")))
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
}

/// An error page (no session needed).
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let title = match status.as_u16() {
        403 => "无权访问",
        404 => "页面不存在",
        409 => "操作未完成",
        422 => "填写有误",
        429 => "请稍后再试",
        503 => "服务暂不可用",
        s if s >= 500 => "系统错误",
        _ => "请求有误",
    };
    let ctx = context! { title, message, status => status.as_u16() };
    match render("error.html", ctx) {
        Ok(body) => html(status, body),
        Err(_) => html(status, format!("<!doctype html><title>{title}</title><p>{title}</p>")),
    }
}

/// What went wrong, for a person: the form's fields and a sentence.
#[derive(Serialize, Default, Debug)]
pub struct Problem {
    /// The item the form was about (a proposal, a task, a member), to show the message there.
    pub target: Option<String>,
    pub message: String,
    /// Field name → message.
    pub fields: BTreeMap<String, String>,
}

impl Problem {
    pub fn of(target: Option<&str>, e: &ApiError) -> Problem {
        let fields = match e {
            ApiError::Validation(errors) => {
                errors.iter().map(|f| (f.field.clone(), field_message(&f.code, &f.message))).collect()
            }
            _ => BTreeMap::new(),
        };
        Problem { target: target.map(str::to_owned), message: message(e), fields }
    }
}

fn field_message(code: &str, english: &str) -> String {
    match code {
        "required" => "必填，请填写。".into(),
        "too_long" => "内容太长。".into(),
        "control_character" | "control" => "含有不可见的控制字符，请删除后重试。".into(),
        "bidi_override" => "含有文字方向控制字符，请删除后重试。".into(),
        "invalid" | "invalid_format" => format!("格式不正确（{english}）。"),
        "not_a_worker" | "not_assignable" => "该人员不是本网格的在岗网格员。".into(),
        _ => format!("填写有误：{english}"),
    }
}

/// A readable sentence for an error of the API's.
pub fn message(e: &ApiError) -> String {
    match e {
        ApiError::NotFound(_) => "没有找到该记录，或它不在您的管辖范围内。".into(),
        ApiError::Forbidden(_) => "您的账号没有这项操作的权限。".into(),
        ApiError::Unauthorized(_) => "请重新登录。".into(),
        ApiError::Validation(_) => "请按提示修改后再提交。".into(),
        ApiError::TooManyRequests { retry_after_secs, .. } => {
            format!("密码错误次数过多，账号已暂时锁定，请在 {} 分钟后再试。", retry_after_secs.div_ceil(60))
        }
        ApiError::Conflict(code, detail) | ApiError::Gone(code, detail) => match code {
            ErrorCode::AlreadyDecided => "该申请已被处理，请刷新页面。".into(),
            ErrorCode::ProposalPending => "该住户已有一条待审核的申请，请先处理该申请。".into(),
            ErrorCode::HouseholdRemoved => "该住户已注销，不能再修改。".into(),
            ErrorCode::TaskClosed => "该任务已完成或已取消。".into(),
            ErrorCode::ConcurrentChange => "其他人刚刚修改了这条记录，请刷新后重试。".into(),
            ErrorCode::ImportStale => "导入核对后数据已有变化，请重新上传文件核对。".into(),
            ErrorCode::ImportClosed => "该导入已提交或已结束。".into(),
            ErrorCode::ImportHasErrors => "核对发现错误行：请勾选“跳过错误行”或修改文件后重新上传。".into(),
            _ => format!("操作未完成：{detail}"),
        },
        ApiError::PayloadTooLarge(_) => "文件太大。".into(),
        ApiError::Unavailable(_) => "数据库暂时无法连接，请稍后再试。".into(),
        ApiError::Internal(_) => "系统出错了，请稍后再试；问题已记录。".into(),
        other => format!("请求有误：{other}"),
    }
}

/// A flash of what the last action did, named in the query after a redirect (`?done=…`).
pub fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "approved" => "已通过该申请，住户标签已更新。",
        "rejected" => "已驳回该申请。",
        "tagged" => "已调整住户标签。",
        "reassigned" => "已重新分派任务。",
        "cancelled" => "已取消该任务。",
        "committed" => "已提交导入。",
        _ => return None,
    })
}

impl Console {
    /// A page of the console: the template with the navigation, the CSRF token and the
    /// signed-in account, and the session cookie renewed.
    pub fn page(&self, status: StatusCode, name: &str, ctx: Value) -> Page {
        let me = &self.caller.row;
        let base = context! {
            csrf => self.csrf,
            me => context! { name => me.display_name, username => me.username, role => me.role.as_str() },
            reviewer => matches!(me.role, crate::domain::Role::Admin | crate::domain::Role::Secretary),
            officer => self.caller.is_officer(),
            now => Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m-%d").to_string(),
        };
        let body = render(name, context! { ..ctx, ..base })?;
        let mut res = html(status, body);
        res.add_cookie(&self.renewed()).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
        Ok(res)
    }

    pub fn ok(&self, name: &str, ctx: Value) -> Page {
        self.page(StatusCode::OK, name, ctx)
    }

    /// After a successful form: back to a page (303), the session renewed.
    pub fn redirect(&self, to: &str) -> Page {
        let mut res = HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_owned())).finish();
        res.add_cookie(&self.renewed()).map_err(|e| ApiError::internal(anyhow::anyhow!("cookie: {e}")))?;
        Ok(res)
    }
}

/// Renders a page without a session (the sign-in page).
pub fn anonymous(status: StatusCode, name: &str, ctx: Value) -> Result<HttpResponse, ApiError> {
    Ok(html(status, render(name, ctx)?))
}
