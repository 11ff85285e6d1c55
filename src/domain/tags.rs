//! The tag reason catalogue and the suggested tag (SPEC §3).
//!
//! The suggestion is advice for the secretary, never applied by itself: it explains, member by
//! member, which facts point to which colour, so a tag that disagrees with it stands out.

use std::cmp::Reverse;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Tag;

/// One reason a household may need care, and the tag it points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct TagReason {
    /// Stable code, stored in `tag_reasons` and tag changes.
    pub code: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
    /// The tag this reason suggests.
    pub suggests: Tag,
}

const fn r(code: &'static str, label_zh: &'static str, label_en: &'static str, suggests: Tag) -> TagReason {
    TagReason { code, label_zh, label_en, suggests }
}

/// Red reasons first, then yellow; this order is also the tie-break in explanations.
static CATALOGUE: [TagReason; 15] = [
    r("elderly_living_alone", "独居老人", "Elderly person living alone", Tag::Red),
    r("severe_disability", "重度残疾（一、二级）", "Severe disability (grade 1-2)", Tag::Red),
    r("serious_illness", "重病", "Serious illness", Tag::Red),
    r("extreme_poverty", "特困人员", "Extreme poverty support (tekun)", Tag::Red),
    r("severe_mental_illness", "严重精神障碍", "Severe mental illness", Tag::Red),
    r("aged_80_plus", "80岁以上高龄老人", "Aged 80 or over", Tag::Yellow),
    r("elderly_couple_only", "空巢老人/纯老户", "Elderly-only household", Tag::Yellow),
    r("moderate_disability", "残疾（三、四级）", "Disability (grade 3-4)", Tag::Yellow),
    r("chronic_illness", "慢性病", "Chronic illness", Tag::Yellow),
    r("low_income", "低保", "Minimum living allowance (dibao)", Tag::Yellow),
    r("unemployed", "失业", "Unemployed", Tag::Yellow),
    r("single_parent", "单亲家庭", "Single-parent family", Tag::Yellow),
    r("left_behind_child", "留守儿童", "Left-behind child", Tag::Yellow),
    r("hardship_child", "困境儿童", "Child in hardship", Tag::Yellow),
    r("neighbour_dispute", "邻里纠纷", "Neighbour dispute", Tag::Yellow),
];

/// The whole reason catalogue, served by `GET /tag-reasons`.
pub fn catalogue() -> &'static [TagReason] {
    &CATALOGUE
}

/// Looks a reason up by code.
pub fn reason(code: &str) -> Option<&'static TagReason> {
    CATALOGUE.iter().find(|r| r.code == code)
}

/// Position in the catalogue, for ordering.
fn rank(code: &str) -> usize {
    CATALOGUE.iter().position(|r| r.code == code).unwrap_or(usize::MAX)
}

/// What the suggestion needs to know about one member. `birth_date` should already fall back
/// to the ID number's birth date when the member's own is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFacts {
    pub member_id: String,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
    pub living_alone: bool,
    pub disability_grade: Option<u8>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    pub low_income: bool,
    pub extreme_poverty: bool,
}

/// One line of the explanation: a reason, and the member it comes from (none for
/// household-level reasons and recorded ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SuggestionItem {
    /// A catalogue reason code.
    pub reason: String,
    pub suggests: Tag,
    pub member_id: Option<String>,
    pub member_name: Option<String>,
    /// Why the reason applies, e.g. `aged 82`.
    pub detail: String,
}

/// The suggested tag of a household and why: the most severe tag among the items, or green
/// with no items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Suggestion {
    pub tag: Tag,
    pub explanation: Vec<SuggestionItem>,
}

/// Age in completed years on `today` (0 if not yet born). Someone born on 29 February turns a
/// year older on 1 March in common years.
pub fn age_on(birth: NaiveDate, today: NaiveDate) -> u32 {
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// The first day after `today` on which someone born on `birth` is a year older, as [`age_on`]
/// counts (29 February's people on 1 March in common years).
pub fn next_birthday(birth: NaiveDate, today: NaiveDate) -> NaiveDate {
    for year in [today.year(), today.year() + 1] {
        let day =
            NaiveDate::from_ymd_opt(year, birth.month(), birth.day()).or_else(|| NaiveDate::from_ymd_opt(year, 3, 1));
        if let Some(day) = day
            && day > today
        {
            return day;
        }
    }
    today.succ_opt().unwrap_or(today)
}

/// The last day a kept suggestion can be good for: 9999-12-31 (stored as text on SQLite, where a
/// later year would not sort as a date).
pub const FOREVER: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// The first day after `today` on which [`suggest`] may answer differently for these members (with
/// the same recorded reasons): their soonest birthday, since ages are in the explanation;
/// [`FOREVER`] when no member's birth date is known.
pub fn suggestion_valid_until(members: &[MemberFacts], today: NaiveDate) -> NaiveDate {
    members.iter().filter_map(|m| m.birth_date).map(|b| next_birthday(b, today)).min().unwrap_or(FOREVER).min(FOREVER)
}

/// Age of an elderly person (老年人) in Chinese law.
const ELDERLY: u32 = 60;
/// 高龄老人.
const VERY_OLD: u32 = 80;

/// Suggests a tag from the members' facts and the household's recorded reason codes.
///
/// Items are ordered by severity, then member order (household-level items after the
/// members'), then catalogue order, so the same input always gives the same explanation.
/// Recorded codes not in the catalogue are ignored; a recorded code already explained by a
/// member's facts is not repeated.
pub fn suggest(members: &[MemberFacts], recorded: &[String], today: NaiveDate) -> Suggestion {
    // (member index, reason code, detail)
    let mut found: Vec<(Option<usize>, &'static str, String)> = Vec::new();
    let ages: Vec<Option<u32>> = members.iter().map(|m| m.birth_date.map(|b| age_on(b, today))).collect();

    for (i, (m, age)) in members.iter().zip(&ages).enumerate() {
        let mut add = |code: &'static str, detail: String| found.push((Some(i), code, detail));
        if let Some(age) = *age {
            if age >= ELDERLY && members.len() == 1 {
                add("elderly_living_alone", format!("the only member of the household, aged {age}"));
            } else if age >= ELDERLY && m.living_alone {
                add("elderly_living_alone", format!("lives alone, aged {age}"));
            }
            if age >= VERY_OLD {
                add("aged_80_plus", format!("aged {age}"));
            }
        }
        match m.disability_grade {
            Some(g @ 1..=2) => add("severe_disability", format!("disability grade {g}")),
            Some(g @ 3..=4) => add("moderate_disability", format!("disability grade {g}")),
            _ => {}
        }
        if m.serious_illness {
            add("serious_illness", "has a serious illness".to_owned());
        }
        if m.extreme_poverty {
            add("extreme_poverty", "receives extreme poverty support (特困)".to_owned());
        }
        if m.chronic_illness {
            add("chronic_illness", "has a chronic illness".to_owned());
        }
        if m.low_income {
            add("low_income", "receives the minimum living allowance (低保)".to_owned());
        }
    }

    if members.len() >= 2 && ages.iter().all(|a| a.is_some_and(|a| a >= ELDERLY)) {
        found.push((None, "elderly_couple_only", format!("all {} members are aged {ELDERLY} or over", members.len())));
    }

    for code in recorded {
        if let Some(reason) = reason(code)
            && !found.iter().any(|(_, c, _)| *c == reason.code)
        {
            found.push((None, reason.code, "recorded reason".to_owned()));
        }
    }

    found.sort_by_key(|(member, code, _)| {
        (Reverse(reason(code).map(|r| r.suggests)), member.unwrap_or(usize::MAX), rank(code))
    });
    let explanation: Vec<SuggestionItem> = found
        .into_iter()
        .map(|(member, code, detail)| SuggestionItem {
            reason: code.to_owned(),
            suggests: reason(code).expect("only catalogue codes are added").suggests,
            member_id: member.map(|i| members[i].member_id.clone()),
            member_name: member.map(|i| members[i].name.clone()),
            detail,
        })
        .collect();
    let tag = explanation.iter().map(|item| item.suggests).max().unwrap_or(Tag::Green);
    Suggestion { tag, explanation }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    const TODAY: (i32, u32, u32) = (2026, 6, 1);

    fn today() -> NaiveDate {
        date(TODAY.0, TODAY.1, TODAY.2)
    }

    /// A member aged `age` on today (birthday long past), or of unknown age.
    fn member(id: &str, age: Option<i32>) -> MemberFacts {
        MemberFacts {
            member_id: id.to_owned(),
            name: format!("name-{id}"),
            birth_date: age.map(|a| date(TODAY.0 - a, 1, 15)),
            ..MemberFacts::default()
        }
    }

    fn run(members: &[MemberFacts], recorded: &[&str]) -> Suggestion {
        let recorded: Vec<String> = recorded.iter().map(|s| s.to_string()).collect();
        suggest(members, &recorded, today())
    }

    /// The explanation as `(reason, member_id)` pairs.
    fn items(s: &Suggestion) -> Vec<(&str, Option<&str>)> {
        s.explanation.iter().map(|i| (i.reason.as_str(), i.member_id.as_deref())).collect()
    }

    #[test]
    fn age_counts_completed_years() {
        let birth = date(1950, 6, 15);
        assert_eq!(age_on(birth, date(2026, 6, 14)), 75);
        assert_eq!(age_on(birth, date(2026, 6, 15)), 76);
        assert_eq!(age_on(birth, date(2026, 12, 31)), 76);
        assert_eq!(age_on(birth, birth), 0);
        assert_eq!(age_on(birth, date(1940, 1, 1)), 0, "not yet born");
        assert_eq!(age_on(date(1950, 12, 31), date(1951, 1, 1)), 0);
    }

    #[test]
    fn leap_day_birthdays() {
        let birth = date(1960, 2, 29);
        assert_eq!(age_on(birth, date(2025, 2, 28)), 64);
        assert_eq!(age_on(birth, date(2025, 3, 1)), 65);
        assert_eq!(age_on(birth, date(2024, 2, 28)), 63);
        assert_eq!(age_on(birth, date(2024, 2, 29)), 64);
    }

    #[test]
    fn a_suggestion_holds_until_the_next_birthday() {
        // Every day of three years against births that end months, fall on 29 February, or lie
        // ahead: the age is the same on every day before the next birthday, and the suggestion
        // (whose explanation quotes ages) with it.
        let births = [date(1950, 6, 15), date(1960, 2, 29), date(1944, 12, 31), date(1966, 1, 1), date(2027, 3, 3)];
        let mut day = date(2026, 1, 1);
        while day < date(2029, 1, 1) {
            for birth in births {
                let next = next_birthday(birth, day);
                assert!(next > day);
                let mut d = day;
                while d < next {
                    assert_eq!(age_on(birth, d), age_on(birth, day), "{birth} on {d} (from {day})");
                    d = d.succ_opt().unwrap();
                }
                if birth <= day {
                    assert_eq!(age_on(birth, next), age_on(birth, day) + 1, "{birth}: a year older on {next}");
                }
            }
            day = day.succ_opt().unwrap();
        }
        let members: Vec<MemberFacts> =
            births.iter().map(|b| MemberFacts { birth_date: Some(*b), ..MemberFacts::default() }).collect();
        assert_eq!(suggestion_valid_until(&members, date(2026, 6, 1)), date(2026, 6, 15));
        assert_eq!(suggestion_valid_until(&members, date(2026, 12, 31)), date(2027, 1, 1));
        assert_eq!(suggestion_valid_until(&members[1..2], date(2027, 2, 28)), date(2027, 3, 1));
        assert_eq!(suggestion_valid_until(&[MemberFacts::default()], date(2026, 6, 1)), FOREVER);
        assert_eq!(suggestion_valid_until(&[], date(2026, 6, 1)), FOREVER);
    }

    #[test]
    fn catalogue_is_complete_and_unique() {
        let red = [
            "elderly_living_alone",
            "severe_disability",
            "serious_illness",
            "extreme_poverty",
            "severe_mental_illness",
        ];
        let yellow = [
            "aged_80_plus",
            "elderly_couple_only",
            "moderate_disability",
            "chronic_illness",
            "low_income",
            "unemployed",
            "single_parent",
            "left_behind_child",
            "hardship_child",
            "neighbour_dispute",
        ];
        for code in red {
            assert_eq!(reason(code).map(|r| r.suggests), Some(Tag::Red), "{code}");
        }
        for code in yellow {
            assert_eq!(reason(code).map(|r| r.suggests), Some(Tag::Yellow), "{code}");
        }
        let codes: std::collections::HashSet<_> = catalogue().iter().map(|r| r.code).collect();
        assert_eq!(codes.len(), catalogue().len());
        assert!(catalogue().iter().all(|r| !r.label_zh.is_empty() && !r.label_en.is_empty()));
        assert!(catalogue().is_sorted_by_key(|r| Reverse(r.suggests)));
        assert_eq!(reason("elderly_living_alone").unwrap().label_zh, "独居老人");
        assert_eq!(reason("nope"), None);
    }

    #[test]
    fn reason_serialises_for_the_api() {
        let json = serde_json::to_value(reason("low_income").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "low_income", "label_zh": "低保", "label_en": "Minimum living allowance (dibao)", "suggests": "yellow"})
        );
    }

    #[test]
    fn ordinary_households_are_green() {
        assert_eq!(run(&[], &[]), Suggestion { tag: Tag::Green, explanation: vec![] });
        let family = [member("a", Some(40)), member("b", Some(38)), member("c", Some(10))];
        assert_eq!(run(&family, &[]), Suggestion { tag: Tag::Green, explanation: vec![] });
    }

    #[test]
    fn single_elderly_member_lives_alone() {
        let s = run(&[member("a", Some(72))], &[]);
        assert_eq!(s.tag, Tag::Red);
        assert_eq!(items(&s), [("elderly_living_alone", Some("a"))]);
        assert_eq!(s.explanation[0].member_name.as_deref(), Some("name-a"));
        assert_eq!(s.explanation[0].detail, "the only member of the household, aged 72");
        assert_eq!(s.explanation[0].suggests, Tag::Red);
    }

    #[test]
    fn elderly_threshold_is_sixty_on_the_day() {
        let mut m = member("a", None);
        m.birth_date = Some(date(1966, 6, 1));
        assert_eq!(run(std::slice::from_ref(&m), &[]).tag, Tag::Red, "60 today");
        m.birth_date = Some(date(1966, 6, 2));
        assert_eq!(run(&[m], &[]).tag, Tag::Green, "60 tomorrow");
        assert_eq!(run(&[member("a", Some(59))], &[]).tag, Tag::Green);
        assert_eq!(run(&[member("a", None)], &[]).tag, Tag::Green, "unknown age suggests nothing");
    }

    #[test]
    fn living_alone_flag_counts_only_for_the_elderly() {
        let mut old = member("b", Some(66));
        old.living_alone = true;
        let s = run(&[member("a", Some(30)), old], &[]);
        assert_eq!(items(&s), [("elderly_living_alone", Some("b"))]);
        assert_eq!(s.explanation[0].detail, "lives alone, aged 66");

        let mut young = member("b", Some(45));
        young.living_alone = true;
        assert_eq!(run(&[member("a", Some(30)), young], &[]).tag, Tag::Green);
    }

    #[test]
    fn single_member_flagged_living_alone_is_listed_once() {
        let mut m = member("a", Some(85));
        m.living_alone = true;
        let s = run(&[m], &[]);
        assert_eq!(s.tag, Tag::Red);
        assert_eq!(items(&s), [("elderly_living_alone", Some("a")), ("aged_80_plus", Some("a"))]);
    }

    #[test]
    fn disability_grades() {
        for (grade, expected) in [
            (1, Some("severe_disability")),
            (2, Some("severe_disability")),
            (3, Some("moderate_disability")),
            (4, Some("moderate_disability")),
            (0, None),
            (5, None),
        ] {
            let mut m = member("a", Some(30));
            m.disability_grade = Some(grade);
            let s = run(&[m, member("b", Some(30))], &[]);
            assert_eq!(s.explanation.first().map(|i| i.reason.as_str()), expected, "grade {grade}");
        }
        let mut m = member("a", Some(30));
        m.disability_grade = Some(2);
        assert_eq!(run(std::slice::from_ref(&m), &[]).tag, Tag::Red);
        m.disability_grade = Some(3);
        assert_eq!(run(&[m], &[]).tag, Tag::Yellow);
    }

    #[test]
    fn member_flags() {
        let flagged = |f: fn(&mut MemberFacts)| {
            let mut m = member("a", Some(40));
            f(&mut m);
            let s = run(&[m, member("b", Some(40))], &[]);
            (s.tag, s.explanation.into_iter().map(|i| i.reason).collect::<Vec<_>>())
        };
        assert_eq!(flagged(|m| m.serious_illness = true), (Tag::Red, vec!["serious_illness".to_owned()]));
        assert_eq!(flagged(|m| m.extreme_poverty = true), (Tag::Red, vec!["extreme_poverty".to_owned()]));
        assert_eq!(flagged(|m| m.chronic_illness = true), (Tag::Yellow, vec!["chronic_illness".to_owned()]));
        assert_eq!(flagged(|m| m.low_income = true), (Tag::Yellow, vec!["low_income".to_owned()]));
    }

    #[test]
    fn very_old_member_in_a_family() {
        let s = run(&[member("a", Some(50)), member("b", Some(81))], &[]);
        assert_eq!(s.tag, Tag::Yellow);
        assert_eq!(items(&s), [("aged_80_plus", Some("b"))]);
        assert_eq!(s.explanation[0].detail, "aged 81");
    }

    #[test]
    fn elderly_only_households() {
        let s = run(&[member("a", Some(70)), member("b", Some(68))], &[]);
        assert_eq!(s.tag, Tag::Yellow);
        assert_eq!(items(&s), [("elderly_couple_only", None)]);
        assert_eq!(s.explanation[0].detail, "all 2 members are aged 60 or over");
        assert_eq!(s.explanation[0].member_name, None);

        let three = run(&[member("a", Some(90)), member("b", Some(65)), member("c", Some(62))], &[]);
        assert_eq!(items(&three), [("aged_80_plus", Some("a")), ("elderly_couple_only", None)]);

        assert_eq!(run(&[member("a", Some(70)), member("b", Some(59))], &[]).tag, Tag::Green);
        assert_eq!(run(&[member("a", Some(70)), member("b", None)], &[]).tag, Tag::Green);
    }

    #[test]
    fn recorded_reasons_count() {
        let s = run(&[member("a", Some(40))], &["unemployed"]);
        assert_eq!(s.tag, Tag::Yellow);
        assert_eq!(items(&s), [("unemployed", None)]);
        assert_eq!(s.explanation[0].detail, "recorded reason");

        let s = run(&[member("a", Some(40))], &["neighbour_dispute", "severe_mental_illness"]);
        assert_eq!(s.tag, Tag::Red);
        assert_eq!(items(&s), [("severe_mental_illness", None), ("neighbour_dispute", None)]);

        // Recorded reasons count even with no members on file.
        assert_eq!(run(&[], &["single_parent"]).tag, Tag::Yellow);
    }

    #[test]
    fn recorded_reasons_are_deduplicated_and_unknown_ones_ignored() {
        let mut m = member("a", Some(40));
        m.low_income = true;
        let s = run(&[m, member("b", Some(12))], &["low_income", "not_a_reason", "unemployed", "unemployed"]);
        assert_eq!(items(&s), [("low_income", Some("a")), ("unemployed", None)]);
        assert_eq!(run(&[], &["", "RED", "Unemployed"]), Suggestion { tag: Tag::Green, explanation: vec![] });
    }

    #[test]
    fn explanation_is_ordered_by_severity_then_member() {
        let mut a = member("a", Some(45));
        a.chronic_illness = true;
        a.disability_grade = Some(3);
        let mut b = member("b", Some(83));
        b.serious_illness = true;
        b.low_income = true;
        let mut c = member("c", Some(20));
        c.disability_grade = Some(1);
        let members = [a, b, c];
        let s = run(&members, &["left_behind_child", "severe_mental_illness"]);
        assert_eq!(s.tag, Tag::Red);
        assert_eq!(
            items(&s),
            [
                ("serious_illness", Some("b")),
                ("severe_disability", Some("c")),
                ("severe_mental_illness", None),
                ("moderate_disability", Some("a")),
                ("chronic_illness", Some("a")),
                ("aged_80_plus", Some("b")),
                ("low_income", Some("b")),
                ("left_behind_child", None),
            ]
        );
        // Deterministic regardless of the order of recorded codes.
        assert_eq!(run(&members, &["severe_mental_illness", "left_behind_child"]), s);
    }

    #[test]
    fn suggestion_serialises_for_the_api() {
        let json = serde_json::to_value(run(&[member("a", Some(72))], &[])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "tag": "red",
                "explanation": [{
                    "reason": "elderly_living_alone",
                    "suggests": "red",
                    "member_id": "a",
                    "member_name": "name-a",
                    "detail": "the only member of the household, aged 72"
                }]
            })
        );
    }
}
