use actix_web::test::TestRequest;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(unknown_route_is_404_problem, wrong_method_is_405_problem);

async fn unknown_route_is_404_problem(app: TestApp) {
    let body = app.get("/api/v1/nothing-here").await.assert_problem(404);
    assert_eq!(body["type"], "urn:gridlight:problem:not-found");
}

async fn wrong_method_is_405_problem(app: TestApp) {
    let res = app.call(TestRequest::delete().uri("/healthz")).await;
    res.assert_problem(405);
    assert_eq!(res.header("allow"), Some("GET"));
}
