//! Roster imports: a realistic roster with a deliberate error of every class → the exact error
//! list → commit → re-import changes nothing; stale plans, closed imports, scope, and files
//! that are not rosters at all.

use actix_web::test::TestRequest;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::world::{id_number, ok};
use crate::support::{TestApp, TestResponse};

pub(crate) const HEADER: &str = "网格编码,楼栋,单元,房号,户主姓名,联系电话,户备注,成员姓名,性别,出生日期,身份证号,成员电话,与户主关系,独居,残疾等级,慢性病,重病,低保,特困,备注";

pub(crate) const A1: &str = "37010300100101";
pub(crate) const A2: &str = "37010300100102";

/// One CSV line: the household's 7 cells, then the member's 13 (missing ones blank).
pub(crate) fn line(household: &[&str], member: &[&str]) -> String {
    let mut cells: Vec<String> = Vec::new();
    for i in 0..7 {
        cells.push(household.get(i).copied().unwrap_or("").to_owned());
    }
    for i in 0..13 {
        cells.push(member.get(i).copied().unwrap_or("").to_owned());
    }
    cells
        .iter()
        .map(|c| if c.contains([',', '"']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn csv(lines: &[String]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(HEADER);
    out.push_str("\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn full_width(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c }).collect()
}

/// The roster of the tests: rows 2–6 are good (an existing household with a new member, two new
/// households, spreadsheet damage that is repaired), rows 7–20 each hold one kind of error.
pub(crate) fn roster(taken: &str) -> Vec<u8> {
    let wang = id_number("1950-01-01", 11);
    let zhao = id_number("1952-06-30", 22);
    let bad_check = {
        let n = id_number("1970-01-01", 31);
        let last = if n.ends_with('1') { '2' } else { '1' };
        format!("{}{last}", &n[..17])
    };
    let truncated = format!("{}000", &id_number("1960-01-01", 41)[..15]);
    let female = id_number("1980-02-02", 52);
    let lines = vec![
        // 2: the stored household, unchanged; 3: a new member of it.
        line(
            &[A1, "3号楼", "2单元", "301", "张桂兰", "13912345678"],
            &["张桂兰", "女", "1941-03-02", &id_number("1941-03-02", 2), "13800138000", "户主"],
        ),
        line(&[], &["李强", "男", "", &id_number("1970-05-05", 33), "", "子女"]),
        // 4–5: a new household, a landline, a Chinese date, the following row blank.
        line(
            &[A1, "5号楼", "1单元", "0101", "王五", "0531-82610000"],
            &["王五", "男", "1950年1月1日", &wang, "", "户主", "是", "二级", "是"],
        ),
        line(&[], &["赵六", "女", "1952.6.30", &zhao, "", "配偶"]),
        // 6: a new household in another grid, full-width digits, a serial date, no ID number.
        line(
            &[A2, "6号楼", "1单元", "202", "孙七", &full_width("13700137000")],
            &["孙七", "男", "18264", "", "", "户主"],
        ),
        // 7–20: one error each.
        line(&[A1, "7号楼", "1单元", "1", "甲"], &["甲", "男", "", &bad_check, "", "户主"]),
        line(&[A1, "8号楼", "1单元", "1", "乙"], &["乙", "男", "", "3.70103E+17", "", "户主"]),
        line(&[A1, "9号楼", "1单元", "1", "丙"], &["丙", "男", "", &truncated, "", "户主"]),
        line(&["37010200200101", "10号楼", "1单元", "1", "丁"], &["丁", "男", "", "", "", "户主"]),
        line(&["37010300100199", "11号楼", "1单元", "1", "戊"], &["戊", "男", "", "", "", "户主"]),
        line(&[A1, "12号楼", "1单元", "1", "己", "12345"], &["己", "男", "", "", "", "户主"]),
        line(&[A1, "13号楼", "1单元", "1", "庚"], &["庚", "男", "2026/13/45", "", "", "户主"]),
        line(&[A1, "14号楼", "1单元", "1", "辛"], &["辛", "男", "", &female, "", "户主"]),
        line(&[A1, "15号楼", "1单元", "1", "壬"], &["壬", "男", "", &wang, "", "户主"]),
        line(&[A1, "16号楼", "1单元", "1", "癸"], &["癸", "男", "", taken, "", "户主"]),
        line(&[A1, "17号楼", "1单元", "1", "子"], &["子\u{7}", "男", "", "", "", "户主"]),
        line(&[A1, "18号楼", "1单元", "1", "丑"], &["丑", "男", "", "", "", "表哥"]),
        line(&[A1, "19号楼", "1单元", "1", &"长".repeat(33)], &[]),
        line(&[A1, "20号楼", "1单元", "1", "卯"], &["", "男", "", "", "", "户主"]),
    ];
    csv(&lines)
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    community: &str,
    body: Vec<u8>,
    content_type: &str,
) -> TestResponse {
    let req = TestRequest::post()
        .uri(&format!("/api/v1/imports?community_id={community}&file_name=roster.csv"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", content_type))
        .set_payload(body);
    app.call(req).await
}

pub(crate) async fn commit(app: &TestApp, token: &str, id: &str, skip: bool) -> TestResponse {
    let req = TestRequest::post()
        .uri(&format!("/api/v1/imports/{id}/commit?skip_errors={skip}"))
        .insert_header(("authorization", format!("Bearer {token}")));
    app.call(req).await
}

pub(crate) fn errors(import: &Value) -> Vec<(u64, String, String)> {
    import["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn summary(import: &Value) -> [u64; 7] {
    let s = &import["summary"];
    [
        "households_new",
        "households_changed",
        "households_unchanged",
        "members_new",
        "members_changed",
        "members_unchanged",
        "rows_with_errors",
    ]
    .map(|k| s[k].as_u64().unwrap())
}

pub(crate) async fn household_count(app: &TestApp, token: &str, community: &str) -> usize {
    let res = app.get_as(&format!("/api/v1/households?community_id={community}&limit=500"), token).await;
    ok(&res)["items"].as_array().unwrap().len()
}

async fn roster_is_checked_committed_and_reimported_as_a_no_op(app: TestApp) {
    let w = app.world().await;
    let taken = id_number("1960-07-15", 1); // 李建国's, in household_a2
    let file = roster(&taken);
    let res = upload(&app, &w.sec_a, &w.community_a, file.clone(), "text/csv").await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let import = res.json();
    assert_eq!(import["status"], "validated");
    assert_eq!(import["format"], "csv");
    assert_eq!(import["file_sha256"].as_str().unwrap().len(), 64);
    let expected: Vec<(u64, String, String)> = [
        (7, "身份证号", "checksum"),
        (8, "身份证号", "id_number_as_number"),
        (9, "身份证号", "id_number_as_number"),
        (10, "网格编码", "division_mismatch"),
        (11, "网格编码", "unknown_grid"),
        (12, "联系电话", "invalid_format"),
        (13, "出生日期", "invalid_date"),
        (14, "身份证号", "gender_mismatch"),
        (15, "身份证号", "duplicate_in_file"),
        (16, "身份证号", "id_number_taken"),
        (17, "成员姓名", "control_character"),
        (18, "与户主关系", "invalid_choice"),
        (19, "户主姓名", "too_long"),
        (20, "成员姓名", "required"),
    ]
    .into_iter()
    .map(|(r, c, k)| (r, c.to_owned(), k.to_owned()))
    .collect();
    assert_eq!(errors(&import), expected);
    assert_eq!(import["error_count"], 14);
    // new, changed, unchanged households; new, changed, unchanged members; rows with errors
    assert_eq!(summary(&import), [2, 1, 0, 4, 0, 1, 14]);
    let id = import["id"].as_str().unwrap().to_owned();
    // The dry run wrote nothing.
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 2);
    // Errors page by page.
    let page = ok(&app.get_as(&format!("/api/v1/imports/{id}/errors?limit=10"), &w.sec_a).await);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = ok(&app.get_as(&format!("/api/v1/imports/{id}/errors?limit=10&cursor={cursor}"), &w.sec_a).await);
    assert_eq!(rest["items"].as_array().unwrap().len(), 4);
    assert_eq!(rest["items"][0]["row"], 17);
    assert!(rest["next_cursor"].is_null());

    // Only secretaries of the community and administrators.
    upload(&app, &w.w_a1, &w.community_a, file.clone(), "text/csv").await.assert_problem(403);
    upload(&app, &w.sec_b, &w.community_a, file.clone(), "text/csv").await.assert_problem(404);
    app.get_as(&format!("/api/v1/imports/{id}"), &w.sec_b).await.assert_problem(404);

    // With errors, a commit is refused unless asked to skip them.
    let refused = commit(&app, &w.sec_a, &id, false).await.assert_problem(409);
    assert_eq!(refused["code"], "import_has_errors");
    let done = ok(&commit(&app, &w.sec_a, &id, true).await);
    assert_eq!(done["status"], "committed");
    assert_eq!(
        done["outcome"],
        serde_json::json!({"households_created": 2, "households_updated": 1, "members_created": 4,
                           "members_updated": 0, "households_removed": 0, "rows_skipped": 14})
    );
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 4);
    let again = commit(&app, &w.sec_a, &id, true).await.assert_problem(409);
    assert_eq!(again["code"], "import_closed");
    // Each change is the import's.
    let audit = ok(&app.get_as("/api/v1/audit-events?entity_type=import", &w.sec_a).await);
    assert_eq!(audit["items"][0]["action"], "import.committed");
    assert_eq!(audit["items"][0]["request_id"], format!("import:{id}"));
    let members = ok(&app.get_as("/api/v1/audit-events?entity_type=member&limit=500", &w.sec_a).await);
    let imported =
        members["items"].as_array().unwrap().iter().filter(|e| e["request_id"] == format!("import:{id}")).count();
    assert_eq!(imported, 4);
    // The repaired values are stored as the API stores them.
    let list = ok(&app.get_as(&format!("/api/v1/households?community_id={}&q=5", w.community_a), &w.sec_a).await);
    let wang = &list["items"][0];
    assert_eq!(wang["member_count"], 2);
    assert_eq!(wang["address"]["room"], "0101");
    let hid = wang["id"].as_str().unwrap();
    let pii = ok(&app.get_as(&format!("/api/v1/households/{hid}/pii?reason=test"), &w.sec_a).await);
    assert_eq!(pii["phone"], "0531-82610000");

    // The same file again: nothing to do.
    let second = upload(&app, &w.sec_a, &w.community_a, file, "text/csv").await;
    let second = ok(&second);
    assert_eq!(summary(&second), [0, 0, 3, 0, 0, 5, 14]);
    let none = ok(&commit(&app, &w.sec_a, second["id"].as_str().unwrap(), true).await);
    assert_eq!(
        none["outcome"],
        serde_json::json!({"households_created": 0, "households_updated": 0, "members_created": 0,
                           "members_updated": 0, "households_removed": 0, "rows_skipped": 14})
    );
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 4);
}

async fn a_changed_roster_updates_and_a_stale_plan_is_refused(app: TestApp) {
    let w = app.world().await;
    let head = id_number("1941-03-02", 2);
    let changed = csv(&[line(
        &[A1, "3号楼", "2单元", "301", "张桂兰", "13912345678", "独居老人"],
        &["张桂兰", "女", "", &head, "13800138001", "户主", "是"],
    )]);
    let import = ok(&upload(&app, &w.admin, &w.community_a, changed.clone(), "text/csv").await);
    assert_eq!(summary(&import), [0, 1, 0, 0, 1, 0, 0]);
    // Someone edits the household meanwhile: the plan no longer holds.
    ok(&app
        .patch(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a, serde_json::json!({"notes": "x"}), None)
        .await);
    let stale = commit(&app, &w.admin, import["id"].as_str().unwrap(), false).await.assert_problem(409);
    assert_eq!(stale["code"], "import_stale");
    // A new dry run sees it, and commits.
    let import = ok(&upload(&app, &w.admin, &w.community_a, changed, "text/csv").await);
    let done = ok(&commit(&app, &w.admin, import["id"].as_str().unwrap(), false).await);
    assert_eq!(done["outcome"]["households_updated"], 1);
    assert_eq!(done["outcome"]["members_updated"], 1);
    let m = ok(&app.get_as(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a).await);
    assert_eq!(m["living_alone"], true);
    assert_eq!(m["phone"], "138****8001");
    let h = ok(&app.get_as(&format!("/api/v1/households/{}", w.household_a1), &w.sec_a).await);
    assert_eq!(h["notes"], "独居老人");
}

async fn files_that_are_not_rosters_are_refused_whole(app: TestApp) {
    let w = app.world().await;
    let code = |res: TestResponse, status: u16| {
        let p = res.assert_problem(status);
        p["errors"][0]["code"].as_str().map(str::to_owned).unwrap_or_else(|| p["code"].as_str().unwrap().to_owned())
    };
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, png, "image/png").await, 422), "not_a_spreadsheet");
    let ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
    assert_eq!(
        code(upload(&app, &w.sec_a, &w.community_a, ole, "application/octet-stream").await, 422),
        "encrypted_workbook"
    );
    let headless = "张三,李四\n1,2\n".as_bytes().to_vec();
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, headless, "text/csv").await, 422), "missing_header");
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, vec![], "text/csv").await, 422), "required");

    let book = |f: &dyn Fn(&mut rust_xlsxwriter::Workbook)| {
        let mut wb = rust_xlsxwriter::Workbook::new();
        f(&mut wb);
        wb.save_to_buffer().unwrap()
    };
    let headers = |ws: &mut rust_xlsxwriter::Worksheet| {
        for (i, h) in HEADER.split(',').enumerate() {
            ws.write_string(0, i as u16, h).unwrap();
        }
    };
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let formula = book(&|wb| {
        let ws = wb.add_worksheet();
        headers(ws);
        ws.write_formula(1, 7, "=CONCAT(\"张\",\"三\")").unwrap();
    });
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, formula, xlsx).await, 422), "formula");
    let merged = book(&|wb| {
        let ws = wb.add_worksheet();
        headers(ws);
        ws.merge_range(1, 0, 2, 0, A1, &rust_xlsxwriter::Format::new()).unwrap();
    });
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, merged, xlsx).await, 422), "merged_cells");
    let extra = book(&|wb| {
        headers(wb.add_worksheet());
        wb.add_worksheet().set_name("另一个").unwrap().write_string(0, 0, "x").unwrap();
    });
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, extra, xlsx).await, 422), "extra_sheet");
    // A zip bomb: a few hundred KiB that inflate beyond the limit.
    let bomb = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        let zeros = vec![b' '; 1024 * 1024];
        for _ in 0..260 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 2 * 1024 * 1024, "{}", bomb.len());
    assert_eq!(code(upload(&app, &w.sec_a, &w.community_a, bomb, xlsx).await, 413), "payload_too_large");
    // Nothing was recorded or changed.
    assert_eq!(household_count(&app, &w.sec_a, &w.community_a).await, 2);
    assert!(!app.audit_actions().await.iter().any(|a| a.starts_with("import")));
}

async fn download(app: &TestApp, token: &str, path: &str) -> TestResponse {
    app.get_as(path, token).await
}

async fn exports_read_back_as_a_no_op(app: TestApp) {
    let w = app.world().await;
    // A note that a spreadsheet would run as a formula.
    ok(&app
        .patch(&format!("/api/v1/members/{}", w.member_a1), &w.sec_a, serde_json::json!({"notes": "=1+2"}), None)
        .await);
    let csv_path = format!("/api/v1/exports/households.csv?community_id={}", w.community_a);
    let res = download(&app, &w.sec_a, &csv_path).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    assert!(text.starts_with("\u{feff}网格编码,楼栋,"), "{text}");
    assert!(text.contains("139****5678") && text.contains("**************"), "masked: {text}");
    assert!(!text.contains(&id_number("1941-03-02", 2)), "no ID number in clear: {text}");
    assert!(text.contains(",'=1+2"), "formula neutralised: {text}");
    assert!(text.contains(",1941,"), "a birth year only: {text}");
    let xlsx_path = format!("/api/v1/exports/households.xlsx?community_id={}", w.community_a);
    let xlsx = download(&app, &w.sec_a, &xlsx_path).await;
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.body.starts_with(b"PK"));
    for (body, kind) in [(res.body.to_vec(), "text/csv"), (xlsx.body.to_vec(), "application/octet-stream")] {
        let import = ok(&upload(&app, &w.sec_a, &w.community_a, body, kind).await);
        assert_eq!(summary(&import), [0, 0, 2, 0, 0, 2, 0], "{import}");
        let done = ok(&commit(&app, &w.sec_a, import["id"].as_str().unwrap(), false).await);
        assert_eq!(done["outcome"]["members_updated"], 0);
        assert_eq!(done["outcome"]["households_updated"], 0);
    }
    // In clear, for a reason: secretaries only, audited, never cached.
    let clear = download(&app, &w.sec_a, &format!("{csv_path}&reason=%E6%A0%B8%E5%AF%B9")).await;
    assert_eq!(clear.status, 200);
    assert_eq!(clear.header("cache-control"), Some("no-store"));
    let text = String::from_utf8(clear.body.to_vec()).unwrap();
    assert!(text.contains(&id_number("1941-03-02", 2)) && text.contains("1941-03-02"), "{text}");
    assert!(app.audit_actions().await.contains(&"export.pii_revealed".to_owned()));
    let import = ok(&upload(&app, &w.sec_a, &w.community_a, clear.body.to_vec(), "text/csv").await);
    assert_eq!(summary(&import), [0, 0, 2, 0, 0, 2, 0], "{import}");
    download(&app, &w.admin, &format!("{csv_path}&reason=x")).await.assert_problem(403);
    // Scope: a worker exports their grid, not the community; nobody another community.
    download(&app, &w.w_a1, &csv_path).await.assert_problem(403);
    let grid = download(&app, &w.w_a1, &format!("/api/v1/exports/households.csv?grid_id={}", w.grid_a1)).await;
    assert_eq!(grid.status, 200);
    assert_eq!(String::from_utf8(grid.body.to_vec()).unwrap().lines().count(), 2);
    download(&app, &w.sec_b, &csv_path).await.assert_problem(404);
    download(&app, &w.sec_a, "/api/v1/exports/households.csv").await.assert_problem(422);
    // The template is an empty roster.
    for path in ["/api/v1/imports/template.xlsx", "/api/v1/imports/template.csv"] {
        let t = download(&app, &w.sec_a, path).await;
        assert_eq!(t.status, 200, "{path}");
        let import = ok(&upload(&app, &w.sec_a, &w.community_a, t.body.to_vec(), "application/octet-stream").await);
        assert_eq!(summary(&import), [0, 0, 0, 0, 0, 0, 0]);
    }
}

on_both_backends!(
    exports_read_back_as_a_no_op,
    roster_is_checked_committed_and_reimported_as_a_no_op,
    a_changed_roster_updates_and_a_stale_plan_is_refused,
    files_that_are_not_rosters_are_refused_whole,
);
