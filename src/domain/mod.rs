//! Pure domain rules: no actix, no diesel.
//!
//! Everything here is "parse, don't validate": a value of a domain type (an [`IdNumber`], a
//! [`Phone`], a [`GridCode`], a [`Tag`]…) can only be obtained through a constructor that
//! checks it, so code further in never has to re-check. The shared vocabulary enums live in this
//! module; their wire form (serde, OpenAPI, database text) is the snake_case string of
//! `as_str()`.

pub mod division;
pub mod grid_code;
pub mod id_number;
pub mod mask;
pub mod period;
pub mod phone;
pub mod ranking;
pub mod schedule;
pub mod tags;
pub mod text;
pub mod visit;

use std::cmp::Ordering;

pub use division::is_division_code;
pub use grid_code::{GridCode, GridCodeError};
pub use id_number::{IdNumber, IdNumberError, check_char};
pub use period::{Period, PeriodKind};
pub use phone::{Phone, PhoneError};
pub use tags::{
    MemberFacts, Suggestion, SuggestionItem, TagReason, age_on, catalogue, reason, suggest, suggestion_valid_until,
};
pub use visit::{Finding, Location};

/// A string that names none of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`; expected one of: {}", .expected.join(", "))]
pub struct ParseEnumError {
    /// What was being parsed, e.g. `tag`.
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Defines a vocabulary enum whose `as_str()`, `FromStr` and serde forms are the same
/// snake_case strings (a unit test checks serde agrees with `as_str()` for every variant).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident as $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The accepted spellings, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The wire form (serde, OpenAPI, database).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the wire form exactly (case-sensitive, no trimming).
            pub fn parse(s: &str) -> Result<Self, ParseEnumError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_owned(), expected: Self::NAMES }),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// How a stored value is read: a value that names no variant is an error, never a
        /// default.
        impl TryFrom<String> for $name {
            type Error = ParseEnumError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        /// How a value is stored.
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }
    };
}

vocabulary! {
    /// The traffic-light tag of a household. Ordered by severity: `Red > Yellow > Green`.
    Tag as "tag" {
        /// 红灯: needs close care.
        Red = "red",
        /// 黄灯: needs attention.
        Yellow = "yellow",
        /// 绿灯: ordinary household.
        Green = "green",
    }
}

impl Tag {
    /// Higher is more severe; the basis of `Ord`.
    pub const fn severity(self) -> u8 {
        match self {
            Tag::Red => 2,
            Tag::Yellow => 1,
            Tag::Green => 0,
        }
    }

    /// Days until an applied tag is due for review (SPEC §3 defaults).
    pub const fn default_review_interval_days(self) -> u32 {
        match self {
            Tag::Red => 30,
            Tag::Yellow => 90,
            Tag::Green => 365,
        }
    }

    /// The Chinese name shown to users.
    pub const fn label_zh(self) -> &'static str {
        match self {
            Tag::Red => "红灯",
            Tag::Yellow => "黄灯",
            Tag::Green => "绿灯",
        }
    }
}

/// Severity order, so `max()` over tags picks the one needing the most care.
impl Ord for Tag {
    fn cmp(&self, other: &Self) -> Ordering {
        self.severity().cmp(&other.severity())
    }
}

impl PartialOrd for Tag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

vocabulary! {
    /// What an account may do.
    Role as "role" {
        /// System administrator: everything.
        Admin = "admin",
        /// Community secretary: everything inside their community.
        Secretary = "secretary",
        /// Grid worker: the households of their assigned grids.
        GridWorker = "grid_worker",
        /// Street officer (街道): reads every community of their street, changes nothing.
        StreetOfficer = "street_officer",
        /// District officer (区): reads every street of their district, changes nothing.
        DistrictOfficer = "district_officer",
    }
}

vocabulary! {
    /// A resident's gender, as recorded on the ID card.
    Gender as "gender" {
        Male = "male",
        Female = "female",
    }
}

vocabulary! {
    /// A member's relation to the head of the household.
    Relation as "relation" {
        Head = "head",
        Spouse = "spouse",
        Child = "child",
        Parent = "parent",
        Grandchild = "grandchild",
        Other = "other",
    }
}

vocabulary! {
    /// The kind of a service template, task or visit.
    ServiceKind as "service kind" {
        /// 入户走访.
        HomeVisit = "home_visit",
        /// 电话问候 (e.g. 平安问候).
        PhoneCall = "phone_call",
        /// Any other delivered service.
        Service = "service",
    }
}

vocabulary! {
    /// Life cycle of a task.
    TaskStatus as "task status" {
        Open = "open",
        Done = "done",
        Cancelled = "cancelled",
    }
}

vocabulary! {
    /// Life cycle of a tag change proposal.
    TagChangeStatus as "tag change status" {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        /// Ended without a decision: its household was removed.
        Cancelled = "cancelled",
    }
}

vocabulary! {
    /// Why a household was (softly) removed.
    RemovalReason as "removal reason" {
        MovedOut = "moved_out",
        Deceased = "deceased",
        Merged = "merged",
        Other = "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// serde, `as_str`, `parse`, `FromStr` and `Display` must all agree, for every variant.
    fn round_trips<T>(all: &[T], names: &[&str])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + serde::Serialize + serde::de::DeserializeOwned,
        T: FromStr<Err = ParseEnumError>,
    {
        assert_eq!(all.len(), names.len());
        for (value, name) in all.iter().zip(names) {
            assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::String(name.to_string()));
            assert_eq!(serde_json::from_value::<T>(serde_json::json!(name)).unwrap(), *value);
            assert_eq!(name.parse::<T>().unwrap(), *value);
            assert_eq!(value.to_string(), *name);
        }
    }

    #[test]
    fn every_vocabulary_round_trips() {
        round_trips(Tag::ALL, Tag::NAMES);
        round_trips(Role::ALL, Role::NAMES);
        round_trips(Gender::ALL, Gender::NAMES);
        round_trips(Relation::ALL, Relation::NAMES);
        round_trips(ServiceKind::ALL, ServiceKind::NAMES);
        round_trips(TaskStatus::ALL, TaskStatus::NAMES);
        round_trips(TagChangeStatus::ALL, TagChangeStatus::NAMES);
        round_trips(RemovalReason::ALL, RemovalReason::NAMES);
    }

    #[test]
    fn as_str_matches_names() {
        assert_eq!(Role::GridWorker.as_str(), "grid_worker");
        assert_eq!(ServiceKind::HomeVisit.as_str(), "home_visit");
        assert_eq!(RemovalReason::MovedOut.as_str(), "moved_out");
        assert_eq!(TagChangeStatus::Pending.as_str(), "pending");
    }

    #[test]
    fn unknown_values_are_rejected_with_a_clear_message() {
        let err = Tag::parse("purple").unwrap_err();
        assert_eq!(err.kind, "tag");
        assert_eq!(err.value, "purple");
        assert_eq!(err.to_string(), "unknown tag `purple`; expected one of: red, yellow, green");
        assert!(Role::from_str("Admin").is_err(), "parsing is case-sensitive");
        assert!(Gender::parse(" male").is_err(), "parsing does not trim");
        assert!(ServiceKind::parse("homevisit").unwrap_err().to_string().contains("home_visit"));
        assert!(serde_json::from_str::<Relation>("\"cousin\"").is_err());
    }

    #[test]
    fn tags_order_by_severity() {
        assert!(Tag::Red > Tag::Yellow);
        assert!(Tag::Yellow > Tag::Green);
        assert_eq!([Tag::Green, Tag::Red, Tag::Yellow].into_iter().max(), Some(Tag::Red));
        let mut tags = vec![Tag::Yellow, Tag::Green, Tag::Red];
        tags.sort();
        assert_eq!(tags, [Tag::Green, Tag::Yellow, Tag::Red]);
    }

    #[test]
    fn review_intervals_follow_the_spec() {
        assert_eq!(Tag::Red.default_review_interval_days(), 30);
        assert_eq!(Tag::Yellow.default_review_interval_days(), 90);
        assert_eq!(Tag::Green.default_review_interval_days(), 365);
        assert_eq!(Tag::Red.label_zh(), "红灯");
    }
}
