//! Roster imports beyond the dry run: the error workbook, multipart uploads, removing the
//! households a roster leaves out, progress and commits stopped by a restart, concurrent
//! commits, scope, control characters, and the uploaded file cleared once the import ends.

use std::io::{Cursor, Read};

use actix_web::test::TestRequest;
use actix_web::web;
use calamine::{Data, Reader, Xlsx};
use diesel::prelude::*;
use gridlight::db::schema::imports;

use crate::imports::{A1, A2, commit, csv, errors, household_count, line, roster, summary, upload};
use crate::on_both_backends;
use crate::support::world::{id_number, ok};
use crate::support::{TestApp, TestResponse};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The stored file of an import (empty once cleared).
async fn stored_file(app: &TestApp, id: &str) -> Vec<u8> {
    let id = id.to_owned();
    app.state.db.read(move |c| Ok(imports::table.find(id).select(imports::file).first::<Vec<u8>>(c)?)).await.unwrap()
}

/// The cells of a workbook's first sheet, as text.
fn sheet_of(book: &[u8]) -> Vec<Vec<String>> {
    let mut xlsx: Xlsx<_> = Xlsx::new(Cursor::new(book.to_vec())).unwrap();
    let first = xlsx.sheet_names()[0].clone();
    let range = xlsx.worksheet_range(&first).unwrap();
    let (rows, cols) = range.get_size();
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| match range.get((r, c)) {
                    Some(Data::Empty) | None => String::new(),
                    Some(d) => d.to_string(),
                })
                .collect()
        })
        .collect()
}

/// A part of the workbook's zip, as text.
fn part(book: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(book.to_vec())).unwrap();
    let mut text = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut text).unwrap();
    text
}

async fn the_error_workbook_marks_each_cell_and_reads_back(app: TestApp) {
    let w = app.world().await;
    let taken = id_number("1960-07-15", 1);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, roster(&taken), "text/csv").await);
    let id = import["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/imports/{id}/errors.xlsx");
    let res = app.get_as(&path, &w.sec_a).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.header("content-type"), Some(XLSX));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let book = res.body.to_vec();
    let sheet = sheet_of(&book);
    // The header, then rows 7–20 of the file (each a household of its own), in order.
    assert_eq!(sheet.len(), 15, "{sheet:?}");
    assert_eq!(sheet[0][0], "网格编码*");
    assert_eq!(sheet[1][..5], [A1, "7号楼", "1单元", "1", "甲"]);
    assert_eq!(sheet[2][10], "3.70103E+17", "the value as typed");
    assert_eq!(sheet[4][0], "37010200200101");
    assert_eq!(sheet[14][1], "20号楼");
    assert_eq!(sheet[14][7], "", "the missing name stays blank, and marked");
    // Each erroneous cell carries a note with its row and message, and a red fill.
    let comments = part(&book, "xl/comments1.xml");
    for (cell, text) in [
        ("K2", "第 7 行"),
        ("K2", "(checksum)"),
        ("A5", "(division_mismatch)"),
        ("E14", "第 19 行"),
        ("E14", "(too_long)"),
        ("H15", "(required)"),
    ] {
        let at = comments.find(&format!("ref=\"{cell}\"")).unwrap_or_else(|| panic!("no note on {cell}: {comments}"));
        let end = comments[at..].find("</comment>").unwrap() + at;
        assert!(comments[at..end].contains(text), "{cell} lacks {text}: {}", &comments[at..end]);
    }
    assert_eq!(comments.matches("<comment ").count(), 14);
    assert!(part(&book, "xl/styles.xml").contains("FFC7CE"), "a red fill");
    // Fixed in Excel or not, it uploads again as a roster: the same errors, at its own rows,
    // but for row 15's ID number, which was a duplicate of a row not in this workbook.
    let again = ok(&upload(&app, &w.sec_a, &w.community_a, book, XLSX).await);
    assert_eq!(summary(&again)[6], 13, "{again}");
    assert!(!errors(&again).iter().any(|e| e.0 == 10), "{again}");
    assert_eq!(errors(&again)[0], (2, "身份证号".to_owned(), "checksum".to_owned()));

    // Committed with the errors skipped: the file is cleared, the error workbook stays.
    ok(&commit(&app, &w.sec_a, &id, true).await);
    assert!(stored_file(&app, &id).await.is_empty(), "the roster in clear is not kept");
    let kept = app.get_as(&path, &w.sec_a).await;
    assert_eq!(kept.status, 200);
    assert_eq!(sheet_of(&kept.body).len(), 15);
    // Only the community's secretaries and administrators see it.
    app.get_as(&path, &w.sec_b).await.assert_problem(404);
    app.get_as(&path, &w.w_a1).await.assert_problem(403);
    assert_eq!(app.get_as(&path, &w.admin).await.status, 200);
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = file_name.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

async fn post_form(app: &TestApp, token: &str, community: &str, body: Vec<u8>) -> TestResponse {
    let req = TestRequest::post()
        .uri(&format!("/api/v1/imports?community_id={community}"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "multipart/form-data; boundary=XyZ"))
        .set_payload(body);
    app.call(req).await
}

async fn a_multipart_upload_is_an_upload(app: TestApp) {
    let w = app.world().await;
    let file = csv(&[line(&[A1, "5号楼", "1单元", "101", "王五"], &["王五", "男", "", "", "", "户主"])]);
    let body = multipart("XyZ", &[("note", None, b"ignored"), ("file", Some("roster-form.csv"), &file)]);
    let res = post_form(&app, &w.sec_a, &w.community_a, body).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let import = res.json();
    assert_eq!(import["file_name"], "roster-form.csv");
    assert_eq!(import["format"], "csv");
    assert_eq!(summary(&import), [1, 0, 0, 1, 0, 0, 0]);
    // The same file as the body: the same import.
    let raw = ok(&upload(&app, &w.sec_a, &w.community_a, file.clone(), "text/csv").await);
    assert_eq!(raw["file_sha256"], import["file_sha256"]);
    // No part `file`, two of them, a broken body, a file that is no roster, and the scope.
    let none = post_form(&app, &w.sec_a, &w.community_a, multipart("XyZ", &[("other", None, &file)])).await;
    assert_eq!(none.assert_problem(422)["errors"][0]["code"], "required");
    let two = multipart("XyZ", &[("file", Some("a.csv"), &file), ("file", Some("b.csv"), &file)]);
    assert_eq!(
        post_form(&app, &w.sec_a, &w.community_a, two).await.assert_problem(422)["errors"][0]["code"],
        "duplicate"
    );
    let unreadable = post_form(&app, &w.sec_a, &w.community_a, b"--XyZ\r\nnonsense".to_vec()).await.assert_problem(422);
    assert_eq!(
        (unreadable["errors"][0]["field"].as_str(), unreadable["errors"][0]["code"].as_str()),
        (Some("file"), Some("unreadable"))
    );
    let png = multipart("XyZ", &[("file", Some("x.png"), b"\x89PNG\r\n\x1a\n\0\0")]);
    let refused = post_form(&app, &w.sec_a, &w.community_a, png).await.assert_problem(422);
    assert_eq!(refused["errors"][0]["code"], "not_a_spreadsheet");
    let form = multipart("XyZ", &[("file", Some("r.csv"), &file)]);
    post_form(&app, &w.sec_b, &w.community_a, form.clone()).await.assert_problem(404);
    post_form(&app, &w.w_a1, &w.community_a, form).await.assert_problem(403);
}

async fn households_missing_from_the_file_go_only_when_asked(app: TestApp) {
    let w = app.world().await;
    // The file lists household_a1 only; household_a2 (grid A2) is missing from it.
    let file = csv(&[line(&[A1, "3号楼", "2单元", "301", "张桂兰"], &[])]);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file.clone(), "text/csv").await);
    assert_eq!(import["summary"]["households_missing"], 1, "{import}");
    let id = import["id"].as_str().unwrap().to_owned();
    let commit_with = |query: &'static str| {
        let req = TestRequest::post()
            .uri(&format!("/api/v1/imports/{id}/commit?{query}"))
            .insert_header(("authorization", format!("Bearer {}", w.sec_a)));
        app.call(req)
    };
    // A removal needs its reason, and a reason needs the removal.
    let p = commit_with("remove_missing=true").await.assert_problem(422);
    assert_eq!(p["errors"][0]["field"], "removal_reason");
    commit_with("remove_missing=true&removal_reason=gone").await.assert_problem(422);
    commit_with("removal_reason=moved_out").await.assert_problem(422);
    // Someone edits the missing household meanwhile: removing it now would remove what the
    // dry run did not show.
    ok(&app
        .patch(&format!("/api/v1/households/{}", w.household_a2), &w.sec_a, serde_json::json!({"notes": "x"}), None)
        .await);
    let stale = commit_with("remove_missing=true&removal_reason=moved_out").await.assert_problem(409);
    assert_eq!(stale["code"], "import_stale");
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file.clone(), "text/csv").await);
    let id = import["id"].as_str().unwrap().to_owned();
    let req = TestRequest::post()
        .uri(&format!(
            "/api/v1/imports/{id}/commit?remove_missing=true&removal_reason=moved_out&removal_note=%E6%A0%B8%E5%AF%B9"
        ))
        .insert_header(("authorization", format!("Bearer {}", w.sec_a)));
    let done = ok(&app.call(req).await);
    assert_eq!(done["outcome"]["households_removed"], 1, "{done}");
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 1);
    let gone = ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a2), &w.sec_a).await);
    assert_eq!(gone["removed_reason"], "moved_out");
    // Audited as the import's.
    let audit = ok(&app.get_as(&format!("/api/v1/audit-events?entity_id={}", w.household_a2), &w.sec_a).await);
    let removed = audit["items"].as_array().unwrap().iter().find(|e| e["action"] == "household.removed").unwrap();
    assert_eq!(removed["request_id"], format!("import:{id}"));
    // Without the flag nothing goes: the same file again is a no-op with nothing missing.
    let again = ok(&upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await);
    assert_eq!(again["summary"]["households_missing"], 0);
}

/// A roster of `n` new households of one member each.
fn many(n: usize) -> Vec<u8> {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let room = format!("{}", 1000 + i);
            let head = format!("住户{i}");
            line(&[A2, "8号楼", "1单元", &room, &head], &[&head, "女", "", "", "", "户主"])
        })
        .collect();
    csv(&lines)
}

async fn progress_shows_and_a_commit_stopped_by_a_restart_is_failed(app: TestApp) {
    let w = app.world().await;
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, many(600), "text/csv").await);
    assert!(import["progress"].is_null());
    let id = import["id"].as_str().unwrap().to_owned();
    let done = ok(&commit(&app, &w.sec_a, &id, false).await);
    assert_eq!(done["progress"], serde_json::json!({"done": 600, "total": 600}));
    assert_eq!(done["outcome"]["households_created"], 600);

    // An import whose commit was under way when the server stopped.
    let stopped = ok(&upload(&app, &w.sec_a, &w.community_a, many(3), "text/csv").await);
    let id = stopped["id"].as_str().unwrap().to_owned();
    let at = id.clone();
    app.state
        .db
        .write(move |c| {
            diesel::update(imports::table.find(at))
                .set((
                    imports::status.eq("committing"),
                    imports::progress_done.eq(250),
                    imports::progress_total.eq(1000),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let seen = ok(&app.get_as(&format!("/api/v1/imports/{id}"), &w.sec_a).await);
    assert_eq!(seen["status"], "committing");
    assert_eq!(seen["progress"], serde_json::json!({"done": 250, "total": 1000}));
    // Start-up: what serve runs before it listens.
    let db = app.state.db.clone();
    let ended = web::block(move || gridlight::jobs::end_abandoned_imports(&db, std::time::Duration::ZERO))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, std::slice::from_ref(&id));
    let failed = ok(&app.get_as(&format!("/api/v1/imports/{id}"), &w.sec_a).await);
    assert_eq!(failed["status"], "failed");
    let why = failed["failure"].as_str().unwrap();
    assert!(why.contains("stopped") && why.contains("250 of 1000"), "{why}");
    assert!(stored_file(&app, &id).await.is_empty());
    assert_eq!(commit(&app, &w.sec_a, &id, false).await.assert_problem(409)["code"], "import_closed");
    assert!(app.audit_actions().await.contains(&"import.failed".to_owned()));
    // A validated import is left alone.
    let db = app.state.db.clone();
    let none = web::block(move || gridlight::jobs::end_abandoned_imports(&db, std::time::Duration::ZERO))
        .await
        .unwrap()
        .unwrap();
    assert!(none.is_empty());
}

async fn two_commits_at_once_apply_once(app: TestApp) {
    let w = app.world().await;
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, many(300), "text/csv").await);
    let id = import["id"].as_str().unwrap().to_owned();
    let (a, b) = futures_util::join!(commit(&app, &w.sec_a, &id, false), commit(&app, &w.admin, &id, false));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", String::from_utf8_lossy(&a.body), String::from_utf8_lossy(&b.body));
    let loser = if a.status == 409 { a } else { b };
    assert_eq!(loser.json()["code"], "import_closed");
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 2 + 300);
}

async fn another_communitys_secretary_sees_no_import(app: TestApp) {
    let w = app.world().await;
    let file = csv(&[line(&[A1, "5号楼", "1单元", "101", "王五"], &["王五", "男", "", "", "", "户主"])]);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await);
    let id = import["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/imports/{id}"),
        format!("/api/v1/imports/{id}/errors.xlsx"),
        format!("/api/v1/imports/{id}/errors"),
    ] {
        app.get_as(&path, &w.sec_b).await.assert_problem(404);
    }
    commit(&app, &w.sec_b, id, false).await.assert_problem(404);
    // Still uncommitted for its own secretary.
    assert_eq!(ok(&commit(&app, &w.sec_a, id, false).await)["status"], "committed");
}

async fn control_characters_are_refused_row_by_row(app: TestApp) {
    let w = app.world().await;
    let file = csv(&[
        line(&[A1, "5号楼", "1单元", "101", "王五"], &["王\u{0}五", "男", "", "", "", "户主"]),
        line(
            &[A1, "5号楼", "1单元", "102", "赵六"],
            &["赵六", "女", "", "", "", "户主", "", "", "", "", "", "", "备\u{1b}注"],
        ),
        line(&[A2, "6号楼", "1单元", "202", "孙七\u{8}"], &["孙七", "男", "", "", "", "户主"]),
        line(&[A2, "6号楼", "1单元", "203", "周八"], &["周八", "男", "", "", "", "户主"]),
    ]);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await);
    let got = errors(&import);
    assert_eq!(
        got,
        [
            (2, "成员姓名".to_owned(), "control_character".to_owned()),
            (3, "备注".to_owned(), "control_character".to_owned()),
            (4, "户主姓名".to_owned(), "control_character".to_owned()),
        ]
    );
    assert_eq!(summary(&import), [1, 0, 0, 1, 0, 0, 3]);
    let done = ok(&commit(&app, &w.sec_a, import["id"].as_str().unwrap(), true).await);
    assert_eq!(done["outcome"]["households_created"], 1);
}

/// The open tasks of a household, by kind.
async fn open_task_kinds(app: &TestApp, token: &str, household: &str) -> Vec<String> {
    let tasks = ok(&app.get_as(&format!("/api/v1/tasks?household_id={household}&status=open"), token).await);
    let mut kinds: Vec<String> =
        tasks["items"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    kinds
}

/// New households are written a batch at a time (`ops::households::register_many`) under the
/// rules of one registration: an ID number a resident of another community holds is an error
/// of the dry run that says nothing of where, and one registered elsewhere after the dry run
/// makes its plan stale; the households get their plan's first
/// tasks, their member counts and an audit event per household and member.
async fn a_batch_of_new_households_keeps_the_rules_of_one(app: TestApp) {
    let w = app.world().await;
    let elsewhere = id_number("1950-01-20", 4); // 王秀英's, in community B
    let later = id_number("1977-07-07", 12);
    let file = csv(&[
        line(&[A1, "5号楼", "1单元", "101", "王五"], &["王五", "男", "", &id_number("1951-05-05", 31), "", "户主"]),
        line(&[], &["王小五", "女", "", &later, "", "子女"]),
        line(&[A2, "6号楼", "1单元", "101", "钱八"], &["钱八", "女", "", &elsewhere, "", "户主"]),
    ]);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file.clone(), "text/csv").await);
    assert_eq!(errors(&import), vec![(4, "身份证号".to_owned(), "id_number_taken".to_owned())]);
    let message = import["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, "a resident with this ID number is already registered");

    // Registered in community B after the dry run: the commit plans again, finds the new error
    // and refuses the stale plan, applying nothing.
    let id = import["id"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"name": "周九", "gender": "female", "id_number": later, "relation": "spouse"});
    app.create_member(&w.sec_b, &w.household_b1, body).await;
    let refused = commit(&app, &w.sec_a, &id, true).await.assert_problem(409);
    assert_eq!(refused["code"], "import_stale");
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 2);

    // Without it: committed like households and members registered one by one.
    let file = csv(&[
        line(&[A1, "5号楼", "1单元", "101", "王五"], &["王五", "男", "", &id_number("1951-05-05", 31), "", "户主"]),
        line(&[], &["王小五", "女", "", &id_number("1979-09-09", 22), "", "子女"]),
    ]);
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await);
    let id = import["id"].as_str().unwrap().to_owned();
    let done = ok(&commit(&app, &w.sec_a, &id, false).await);
    assert_eq!(done["outcome"]["members_created"], 2);
    let list = ok(&app
        .get_as(&format!("/api/v1/households?community_id={}&q=%E7%8E%8B%E4%BA%94", w.community_a), &w.sec_a)
        .await);
    let imported = &list["items"][0];
    assert_eq!(imported["member_count"], 2);
    assert_eq!(imported["tag"], "green");
    let typed = app.create_household(&w.sec_a, &w.grid_a1, "孙七").await;
    let kinds = open_task_kinds(&app, &w.sec_a, imported["id"].as_str().unwrap()).await;
    assert!(!kinds.is_empty());
    assert_eq!(kinds, open_task_kinds(&app, &w.sec_a, &typed).await);
    let audit = ok(&app.get_as("/api/v1/audit-events?limit=500", &w.sec_a).await);
    let of_import: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request_id"] == format!("import:{id}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for (action, n) in [("household.created", 1), ("member.created", 2), ("import.committed", 1)] {
        assert_eq!(of_import.iter().filter(|a| **a == action).count(), n, "{action}: {of_import:?}");
    }
}

on_both_backends!(
    a_batch_of_new_households_keeps_the_rules_of_one,
    the_error_workbook_marks_each_cell_and_reads_back,
    a_multipart_upload_is_an_upload,
    households_missing_from_the_file_go_only_when_asked,
    progress_shows_and_a_commit_stopped_by_a_restart_is_failed,
    two_commits_at_once_apply_once,
    another_communitys_secretary_sees_no_import,
    control_characters_are_refused_row_by_row,
);
