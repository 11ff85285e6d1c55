//! How domain values are stored: vocabulary enums and JSON lists as text, read back strictly.
//!
//! Rows hold `Tag`, `Role`, `Vec<Finding>`… rather than strings: diesel writes them as text
//! and reads them with the domain's own parser, so a stored value that names no variant (or a
//! list that is not JSON) is a deserialisation error — logged and answered 500 — never quietly
//! a default. Each type gets the impls the `MultiConnection` backend needs: `FromSql`/`ToSql`
//! for PostgreSQL and SQLite (the multi-backend delegates to them) and for the multi-backend
//! itself, `Queryable` for single-column selects, and `AsExpression` for binds.

use std::io::Write;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Date, Nullable, Text, Timestamp};
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

/// Columns read without chrono's format-string parser: SQLite keeps timestamps and dates as text
/// in diesel's layouts (`2026-11-29 16:25:53.213627`, the fraction left out when zero;
/// `2026-11-29`), and reading 50 households' timestamps and dates through `parse_from_str`'s
/// format machinery was ~6 % of a households page. Those layouts are read directly; anything else
/// (another layout, a Julian day number) goes to diesel's own reading, so what is read never
/// differs. PostgreSQL's binary values are diesel's. For a row field:
/// `#[diesel(deserialize_as = Stamp)]` (`OptStamp` for a nullable one), `Day` / `OptDay` for
/// dates.
macro_rules! read_directly {
    ($wrapper:ident, $optional:ident, $sql:ty, $value:ty, $layout:ident) => {
        #[derive(Debug, Clone, Copy)]
        pub struct $wrapper($value);

        #[derive(Debug, Clone, Copy)]
        pub struct $optional(Option<$value>);

        impl From<$wrapper> for $value {
            fn from(s: $wrapper) -> $value {
                s.0
            }
        }

        impl From<$optional> for Option<$value> {
            fn from(s: $optional) -> Option<$value> {
                s.0
            }
        }

        impl<DB: diesel::backend::Backend> Queryable<$sql, DB> for $wrapper
        where
            $wrapper: FromSql<$sql, DB>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }

        impl<DB: diesel::backend::Backend> Queryable<Nullable<$sql>, DB> for $optional
        where
            $optional: FromSql<Nullable<$sql>, DB>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }

        impl FromSql<$sql, Sqlite> for $wrapper {
            fn from_sql(mut bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                match $layout(bytes.read_text()) {
                    Some(t) => Ok($wrapper(t)),
                    None => Ok($wrapper(<$value as FromSql<$sql, Sqlite>>::from_sql(bytes)?)),
                }
            }
        }

        impl FromSql<$sql, Pg> for $wrapper {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                Ok($wrapper(<$value as FromSql<$sql, Pg>>::from_sql(bytes)?))
            }
        }

        impl FromSql<$sql, MultiBackend> for $wrapper {
            fn from_sql(bytes: MultiRawValue<'_>) -> deserialize::Result<Self> {
                bytes.from_sql::<Self, $sql>()
            }
        }

        impl FromSql<Nullable<$sql>, Sqlite> for $optional {
            fn from_sql(bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                Ok($optional(Some(<$wrapper as FromSql<$sql, Sqlite>>::from_sql(bytes)?.0)))
            }

            fn from_nullable_sql(bytes: Option<SqliteValue<'_, '_, '_>>) -> deserialize::Result<Self> {
                bytes.map_or(Ok($optional(None)), <Self as FromSql<Nullable<$sql>, Sqlite>>::from_sql)
            }
        }

        impl FromSql<Nullable<$sql>, Pg> for $optional {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                Ok($optional(Some(<$value as FromSql<$sql, Pg>>::from_sql(bytes)?)))
            }

            fn from_nullable_sql(bytes: Option<PgValue<'_>>) -> deserialize::Result<Self> {
                bytes.map_or(Ok($optional(None)), <Self as FromSql<Nullable<$sql>, Pg>>::from_sql)
            }
        }

        impl FromSql<Nullable<$sql>, MultiBackend> for $optional {
            fn from_sql(bytes: MultiRawValue<'_>) -> deserialize::Result<Self> {
                bytes.from_sql::<Self, Nullable<$sql>>()
            }

            fn from_nullable_sql(bytes: Option<MultiRawValue<'_>>) -> deserialize::Result<Self> {
                bytes.map_or(Ok($optional(None)), <Self as FromSql<Nullable<$sql>, MultiBackend>>::from_sql)
            }
        }
    };
}

read_directly!(Stamp, OptStamp, Timestamp, NaiveDateTime, fixed_layout);
read_directly!(Day, OptDay, Date, NaiveDate, day_layout);

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
}

/// `YYYY-MM-DD`; `None` for anything else.
fn day_layout(text: &str) -> Option<NaiveDate> {
    day_bytes(text.as_bytes())
}

fn day_bytes(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1–9 digits; `None` for anything else.
fn fixed_layout(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = day_bytes(&b[0..10])?;
    let time = NaiveTime::from_hms_nano_opt(digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?, nanos)?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod stamp_tests {
    use super::*;
    use chrono::{Datelike, Duration, NaiveDate};

    /// The direct reading agrees with chrono's for every layout diesel writes (all fraction
    /// lengths, zero fraction left out), and declines what it does not know.
    #[test]
    fn fixed_layout_reads_what_diesel_writes() {
        let start = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap().and_hms_nano_opt(23, 59, 58, 0).unwrap();
        let mut t = start;
        for i in 0..20_000i64 {
            t += Duration::nanoseconds(i * 7_919_113_337 + i % 10 * 1_000);
            for text in
                [t.format("%F %T%.f").to_string(), t.format("%F %T").to_string(), t.format("%F %T%.3f").to_string()]
            {
                let chrono = NaiveDateTime::parse_from_str(&text, "%F %T%.f").unwrap();
                assert_eq!(fixed_layout(&text), Some(chrono), "{text}");
            }
        }
        for other in [
            "2026-11-29T16:25:53",
            "2026-11-29 16:25",
            "2026-11-29 16:25:53.",
            "2026-11-29 16:25:53.1234567890",
            "2026-02-30 00:00:00",
            "2026-11-29 24:00:00",
            "2026-11-29 16:25:60",
            "2026-11-29 16:25:53Z",
            "+026-11-29 16:25:53",
            "2461008.5",
            "",
        ] {
            assert_eq!(fixed_layout(other), None, "{other}");
        }
    }

    /// Dates likewise: every day of four centuries as chrono reads them, and what is not the
    /// layout declined.
    #[test]
    fn day_layout_reads_what_diesel_writes() {
        let mut d = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        while d.year() < 2200 {
            let text = d.format("%F").to_string();
            assert_eq!(day_layout(&text), Some(NaiveDate::parse_from_str(&text, "%F").unwrap()), "{text}");
            d = d.succ_opt().unwrap();
        }
        for other in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "2026-11-29 ",
            "26-11-29",
            "2026/11/29",
            "2461008.5",
            "",
        ] {
            assert_eq!(day_layout(other), None, "{other}");
        }
    }
}
