//! How domain values are stored: vocabulary enums and JSON lists as text, read back strictly.
//!
//! Rows hold `Tag`, `Role`, `Vec<Finding>`… rather than strings: diesel writes them as text
//! and reads them with the domain's own parser, so a stored value that names no variant (or a
//! list that is not JSON) is a deserialisation error — logged and answered 500 — never quietly
//! a default. Each type gets the impls the `MultiConnection` backend needs: `FromSql`/`ToSql`
//! for PostgreSQL and SQLite (the multi-backend delegates to them) and for the multi-backend
//! itself, `Queryable` for single-column selects, and `AsExpression` for binds.

use std::io::Write;

use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::db::{MultiBackend, MultiRawValue};
use crate::domain::{Gender, Relation, RemovalReason, Role, ServiceKind, Tag, TagChangeStatus, TaskStatus};
use crate::store::JsonText;

/// The backend-independent parts: read from and bind as text, for a type with a text form.
macro_rules! stored_as_text {
    ($ty:ty $(, $generic:ident : $bound:path)?) => {
        impl$(<$generic: $bound>)? FromSql<Text, MultiBackend> for $ty {
            fn from_sql(bytes: MultiRawValue<'_>) -> deserialize::Result<Self> {
                bytes.from_sql::<Self, Text>()
            }
        }

        impl$(<$generic: $bound>)? ToSql<Text, MultiBackend> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }

        impl<DB: diesel::backend::Backend $(, $generic: $bound)?> Queryable<Text, DB> for $ty
        where
            $ty: FromSql<Text, DB>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    };
}

/// A vocabulary enum (see `crate::domain`): its `as_str()` form, parsed back with `parse`.
macro_rules! vocabulary_as_text {
    ($($ty:ty),+ $(,)?) => {$(
        stored_as_text!($ty);

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                Ok(<$ty>::parse(std::str::from_utf8(bytes.as_bytes())?)?)
            }
        }

        impl FromSql<Text, Sqlite> for $ty {
            fn from_sql(mut bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                Ok(<$ty>::parse(bytes.read_text())?)
            }
        }

        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl ToSql<Text, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <str as ToSql<Text, Sqlite>>::to_sql(self.as_str(), out)
            }
        }

        impl AsExpression<Text> for $ty {
            type Expression = <&'static str as AsExpression<Text>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Text>>::as_expression(self.as_str())
            }
        }

        impl AsExpression<Text> for &$ty {
            type Expression = <&'static str as AsExpression<Text>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Text>>::as_expression(self.as_str())
            }
        }

        impl AsExpression<Nullable<Text>> for $ty {
            type Expression = <&'static str as AsExpression<Nullable<Text>>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Nullable<Text>>>::as_expression(self.as_str())
            }
        }

        impl AsExpression<Nullable<Text>> for &$ty {
            type Expression = <&'static str as AsExpression<Nullable<Text>>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Nullable<Text>>>::as_expression(self.as_str())
            }
        }
    )+};
}

vocabulary_as_text!(Tag, Role, Gender, Relation, ServiceKind, TaskStatus, TagChangeStatus, RemovalReason);

stored_as_text!(JsonText<T>, T: JsonValue);

/// What a JSON column holds.
pub trait JsonValue: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static {}
impl<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static> JsonValue for T {}

impl<T: JsonValue> FromSql<Text, Pg> for JsonText<T> {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(JsonText(serde_json::from_slice(bytes.as_bytes())?))
    }
}

impl<T: JsonValue> FromSql<Text, Sqlite> for JsonText<T> {
    fn from_sql(mut bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(JsonText(serde_json::from_str(bytes.read_text())?))
    }
}

impl<T: JsonValue> ToSql<Text, Pg> for JsonText<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        serde_json::to_writer(&mut *out, &self.0)?;
        out.flush()?;
        Ok(IsNull::No)
    }
}

impl<T: JsonValue> ToSql<Text, Sqlite> for JsonText<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: JsonValue> AsExpression<Text> for JsonText<T> {
    type Expression = <String as AsExpression<Text>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <String as AsExpression<Text>>::as_expression(String::from(self))
    }
}

impl<T: JsonValue> AsExpression<Text> for &JsonText<T> {
    type Expression = <String as AsExpression<Text>>::Expression;
    fn as_expression(self) -> Self::Expression {
        let text = serde_json::to_string(&self.0).expect("lists of strings and findings serialise");
        <String as AsExpression<Text>>::as_expression(text)
    }
}
