//! The review console in a real browser (headless Chromium through chromedriver) against
//! `gridlight serve --demo`: a secretary signs in, approves a pending proposal, sees the
//! household turn red with its new tasks, reveals a member's phone for a reason, finds the
//! reveal in the household's record, and signs out; then the same pages on a 390×844 phone
//! screen. Every page is saved as a screenshot (`target/tmp/console-screenshots/`).

use std::path::PathBuf;

use crate::server::{Server, Store};
use crate::webdriver::{Browser, Driver};

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

fn sign_in(b: &Browser<'_>, base: &str, user: &str) {
    b.go(&format!("{base}/console/"));
    assert!(b.url().ends_with("/console/login"), "not sent to the sign-in page: {}", b.url());
    b.type_into(&b.find("#username"), user);
    b.type_into(&b.find("#password"), "gridlight-demo");
    b.submit(&b.find("form button[type=submit]"));
    assert!(!b.url().ends_with("/console/login"), "still on the sign-in page: {}", b.page_text());
}

/// Waits (up to 10 s) until the browser is on a page whose URL ends so.
fn wait_for(b: &Browser<'_>, suffix: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.url().ends_with(suffix) {
        assert!(std::time::Instant::now() < deadline, "not on {suffix}: {}", b.url());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// No part of the page is wider than the screen (nothing to scroll sideways but tables).
fn fits(b: &Browser<'_>, what: &str) {
    let wide = b.script("return document.documentElement.scrollWidth").as_i64().unwrap_or(0);
    let screen = b.script("return window.innerWidth").as_i64().unwrap_or(0);
    assert!(wide <= screen, "{what}: the page is {wide} px wide on a {screen} px screen");
}

#[test]
fn secretary_reviews_reveals_and_signs_out() {
    let Some(driver) = Driver::start() else { return };
    let store = Store::sqlite();
    let server =
        Server::start_with(&store, "console", &["serve", "--demo"], &[("GRIDLIGHT_CONSOLE_PLAIN_HTTP", "true")]);
    let base = format!("http://{}", server.addr);
    let dir = shots();

    let b = driver.session(false);
    b.go(&format!("{base}/console/login"));
    b.screenshot(&dir.join("desktop-1-login.png"));
    sign_in(&b, &base, "jianxin.sec");
    assert!(b.text(&b.find("h1")).starts_with("今日概览"), "{}", b.page_text());
    assert!(b.find_all("svg.chart").len() >= 4, "the overview has its charts");
    b.screenshot(&dir.join("desktop-2-overview.png"));

    // The review queue: a proposal to red, approved in place.
    b.go(&format!("{base}/console/review"));
    b.screenshot(&dir.join("desktop-3-review.png"));
    let proposal = b
        .find_all("article.proposal")
        .into_iter()
        .find(|p| b.text(&b.find_in(p, ".change")).contains("→ 红灯"))
        .unwrap_or_else(|| panic!("no pending proposal to red in the demo data:\n{}", b.page_text()));
    let household = b.attribute(&b.find_in(&proposal, "h2 a"), "href");
    b.submit(&b.find_in(&proposal, "form[action$='/approve'] button"));
    assert!(b.text(&b.find(".flash")).contains("已通过"), "{}", b.page_text());

    // The household is red now, with the red plan's tasks.
    let url = if household.starts_with("http") { household.clone() } else { format!("{base}{household}") };
    b.go(&url);
    assert_eq!(b.text(&b.find("h1 .chip")), "红灯");
    let tasks = b.text(&b.find("#open-tasks"));
    assert!(tasks.contains("红灯") && tasks.contains("电话问候") && tasks.contains("入户走访"), "tasks: {tasks}");
    b.screenshot(&dir.join("desktop-4-household-red.png"));

    // A member's phone, revealed for a reason; the reveal is in the household's record.
    let reason = "核实独居老人紧急联系电话";
    let row = b.find_all("form[action^='/console/members/']").into_iter().next().expect("a member to reveal");
    b.type_into(&b.find_in(&row, "input[name=reason]"), reason);
    b.submit(&b.find_in(&row, "button"));
    let phone = b.text(&b.find("#revealed-phone"));
    assert!(phone.len() >= 7 && !phone.contains('*'), "the phone is shown in full: {phone}");
    assert!(b.text(&b.find("#reveals")).contains(reason), "the reveal is listed: {}", b.page_text());
    b.screenshot(&dir.join("desktop-5-revealed.png"));
    // A fresh page shows the phone masked again, and the reveal still listed.
    b.go(&url);
    assert!(b.try_find("#revealed-phone").is_none());
    assert!(b.text(&b.find("#reveals")).contains(reason));

    for (name, path) in [
        ("tasks", "/console/tasks"),
        ("households", "/console/households"),
        ("report", "/console/report"),
        ("import", "/console/import"),
    ] {
        b.go(&format!("{base}{path}"));
        assert!(b.try_find("h1").is_some(), "{path}: {}", b.page_text());
        b.screenshot(&dir.join(format!("desktop-6-{name}.png")));
    }

    // Sign out: back to the sign-in page, and the console is closed.
    b.submit(&b.find(".signout button"));
    wait_for(&b, "/console/login");
    b.go(&format!("{base}/console/review"));
    assert!(b.url().ends_with("/console/login"), "still signed in: {}", b.url());
    b.screenshot(&dir.join("desktop-7-signed-out.png"));
    drop(b);

    // The same on a phone.
    let m = driver.session(true);
    sign_in(&m, &base, "jianxin.sec");
    assert_eq!(m.script("return window.innerWidth").as_i64(), Some(390), "a phone-sized viewport");
    for (name, path) in [
        ("overview", "/console/"),
        ("review", "/console/review"),
        ("households", "/console/households"),
        ("tasks", "/console/tasks"),
        ("report", "/console/report"),
    ] {
        m.go(&format!("{base}{path}"));
        fits(&m, path);
        m.screenshot(&dir.join(format!("mobile-{name}.png")));
    }
    m.go(&url);
    fits(&m, "household");
    m.screenshot(&dir.join("mobile-household.png"));
    m.submit(&m.find(".signout button"));
    wait_for(&m, "/console/login");
    assert!(server.logged_errors().is_empty(), "{:?}", server.logged_errors());
    eprintln!("\n[console] screenshots in {}\n", dir.display());
}
