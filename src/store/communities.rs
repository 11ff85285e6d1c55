//! Communities.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::communities;

pub fn exists(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(communities::table.find(id))).get_result(conn)
}
