//! A client's `X-Request-Id` is kept for correlation in the logs, beside the id the server made,
//! which is the one the answer carries (and audit events record).

use crate::server::{Server, Store, report};

#[test]
fn client_ids_are_logged_beside_the_servers() {
    let store = Store::sqlite();
    let server = Server::start(&store, "gridlight", &[("GRIDLIGHT_LOG", "info"), ("GRIDLIGHT_LOG_FORMAT", "json")]);
    let client = server.client();
    let res = client.send("GET", "/healthz", None, None, &[("X-Request-Id", "client-corr-42")]).expect("healthz");
    assert_eq!(res.status, 200);
    let server_id = res.header("x-request-id").expect("a request id").to_owned();
    // A client id that is not a plain token is left out of the logs altogether.
    let odd = client.send("GET", "/healthz", None, None, &[("X-Request-Id", "a\"b c")]).expect("healthz");
    let odd_id = odd.header("x-request-id").expect("a request id").to_owned();
    let lines = server.log_lines(&server_id);
    let odd_lines = server.log_lines(&odd_id);
    report(
        "request_ids::client_ids_are_logged_beside_the_servers",
        &[format!("answered X-Request-Id {server_id}; log lines with it: {lines:?}")],
    );
    assert!(uuid::Uuid::parse_str(&server_id).is_ok_and(|u| u.get_version_num() == 7), "{server_id}");
    assert!(!lines.is_empty(), "no log line names the server's id");
    assert!(lines.iter().all(|l| l.contains("\"client_request_id\":\"client-corr-42\"")), "{lines:#?}");
    assert!(!odd_lines.is_empty() && odd_lines.iter().all(|l| !l.contains("client_request_id")), "{odd_lines:#?}");
}
