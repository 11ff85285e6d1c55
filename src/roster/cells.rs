//! One spreadsheet cell to one value, undoing what spreadsheets do to data: ID numbers stored
//! as numbers (scientific notation, the last digits turned to 0 because Excel keeps 15
//! significant digits), phones that lost their leading 0, dates as serial numbers or written
//! `2026/1/5`, `2026.1.5`, `2026年1月5日`, full-width digits and spaces from Chinese input
//! methods. What cannot be repaired is a [`CellError`] with a code of its own, so the secretary
//! learns what Excel did rather than "invalid".
//!
//! These functions only read cells; whether a value is acceptable (the GB 11643 checksum, a
//! phone's form, lengths, control characters) is decided by the same checks the API runs.

use chrono::{Datelike, NaiveDate};

use crate::domain::{Gender, Relation};

/// A cell as read from either format: CSV cells are all text, an xlsx cell keeps its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// A cell Excel formatted as a date (the time of day, if any, dropped).
    Date(NaiveDate),
    Bool(bool),
}

/// Why a cell could not be read as its column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    pub code: &'static str,
    pub message: String,
}

impl CellError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        CellError { code, message: message.into() }
    }
}

/// A value that is either given in clear or as the mask an export wrote (`138****8000`,
/// `**************1234`): a masked value stands for "what is stored", and is only accepted for
/// a record the import matches and whose stored value has that mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Clear(String),
    Masked(String),
}

/// Full-width ASCII (U+FF01–U+FF5E) to ASCII and the ideographic space to a space: what
/// Chinese input methods type into digits, codes and dates.
pub fn halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Whitespace of every kind, including U+3000 and the invisible characters a copy from a web
/// page brings along, at both ends.
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || crate::domain::text::is_invisible(c))
}

/// A number Excel shows without a fraction, as its digits.
fn integral(n: f64) -> Option<String> {
    (n.is_finite() && n.fract() == 0.0 && n.abs() < 1e18).then(|| format!("{}", n as i64))
}

/// The cell as text, trimmed; none when empty. Numbers read as Excel shows them (integral
/// numbers without `.0`), dates as `YYYY-MM-DD`, booleans as `TRUE`/`FALSE`.
pub fn text(cell: &Cell) -> Option<String> {
    let s = match cell {
        Cell::Empty => return None,
        // What a spreadsheet writer guards against formula injection (`'=…`) reads back as
        // the text it guarded.
        Cell::Text(s) => {
            let s = trim(s);
            match s.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_owned(),
                _ => s.to_owned(),
            }
        }
        Cell::Number(n) => integral(*n).unwrap_or_else(|| n.to_string()),
        Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
        Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
    };
    (!s.is_empty()).then_some(s)
}

/// A code made of digits and ASCII (a grid code, a room number): full-width characters made
/// ASCII, inner spaces removed.
pub fn code(cell: &Cell) -> Option<String> {
    let s: String = halfwidth(&text(cell)?).chars().filter(|c| !c.is_whitespace()).collect();
    (!s.is_empty()).then_some(s)
}

/// A name or a note: trimmed, full-width spaces inside made ordinary ones (the text checks of
/// the API judge the rest).
pub fn words(cell: &Cell) -> Option<String> {
    text(cell).map(|s| s.replace('\u{3000}', " "))
}

fn is_masked(s: &str) -> bool {
    s.contains('*')
}

/// `3.70103E+17`, `3.70103e17`: a number Excel wrote in scientific notation.
fn is_scientific(s: &str) -> bool {
    let Some((mantissa, exponent)) = s.split_once(['e', 'E']) else { return false };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !exponent.is_empty()
        && exponent.chars().all(|c| c.is_ascii_digit())
}

const AS_NUMBER: &str = "the ID number was stored as a number, and Excel keeps only 15 digits of a number: \
     format the column as text (the template does) and type the number again";

/// An ID number cell. Digits only (spaces and full-width forms repaired, `x` made `X`); the
/// checksum and birth date are the API's check. A number cell, scientific notation, or 18
/// digits ending in `000` that fail the checksum are what Excel leaves of a number typed into
/// a general cell: `id_number_as_number`, with how to fix it.
pub fn id_number(cell: &Cell) -> Result<Option<Secret>, CellError> {
    if let Cell::Number(n) = cell {
        return match integral(*n) {
            Some(digits) if digits.len() < 15 => Ok(Some(Secret::Clear(digits))),
            _ => Err(CellError::new("id_number_as_number", AS_NUMBER)),
        };
    }
    let Some(s) = code(cell) else { return Ok(None) };
    let s = s.to_ascii_uppercase();
    if is_masked(&s) {
        return Ok(Some(Secret::Masked(s)));
    }
    if is_scientific(&s) {
        return Err(CellError::new("id_number_as_number", AS_NUMBER));
    }
    if s.len() == 18 && s.bytes().all(|b| b.is_ascii_digit()) && s.ends_with("000") {
        let check = crate::domain::check_char(&s[..17]);
        if check != '0' {
            return Err(CellError::new("id_number_as_number", AS_NUMBER));
        }
    }
    Ok(Some(Secret::Clear(s)))
}

/// A phone cell: spaces, dashes of every width and full-width digits repaired; a number cell
/// that lost the leading 0 of its area code (`531 8261 0000` from `0531-82610000`) gets it
/// back. Whether the result is a phone is the API's check.
pub fn phone(cell: &Cell) -> Result<Option<Secret>, CellError> {
    if let Cell::Number(n) = cell {
        let digits = integral(*n).ok_or_else(|| CellError::new("invalid_format", "a phone number has no fraction"))?;
        // Mobiles start with 1; a landline number that starts with 1-9 lost its 0.
        let restored = if digits.starts_with('1') && digits.len() == 11 { digits } else { format!("0{digits}") };
        return Ok(Some(Secret::Clear(restored)));
    }
    let Some(s) = text(cell) else { return Ok(None) };
    let s: String = halfwidth(&s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if matches!(c, '‐' | '‑' | '–' | '—' | '－') { '-' } else { c })
        .collect();
    if is_masked(&s) {
        return Ok(Some(Secret::Masked(s)));
    }
    let s = s.strip_prefix("+86").unwrap_or(&s).to_owned();
    Ok(Some(Secret::Clear(s)))
}

/// The first day Excel counts from in the 1900 date system (serial 1 = 1900-01-01; the epoch
/// is 1899-12-30 because Excel counts a 29 February 1900 that never was).
fn excel_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1899, 12, 30).expect("a valid date")
}

/// An Excel serial day number as a date (days after 1899-12-30), for serials from 1900-03-01.
pub fn from_serial(serial: f64) -> Option<NaiveDate> {
    if !(61.0..=2_958_465.0).contains(&serial) {
        return None;
    }
    excel_epoch().checked_add_days(chrono::Days::new(serial.floor() as u64))
}

/// A date written as text: `2026-01-05`, `2026/1/5`, `2026.1.5`, `2026年1月5日`, `20260105`,
/// with full-width digits; a time after it is ignored (`2026/1/5 0:00:00`).
fn date_text(s: &str) -> Option<NaiveDate> {
    let s = halfwidth(s);
    let s = s.split_whitespace().next()?;
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    }
    let parts: Vec<&str> = s.trim_end_matches('日').split(['-', '/', '.', '年', '月']).collect();
    let [y, m, d] = parts.as_slice() else { return None };
    if y.len() != 4 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// A date cell: a date-formatted cell, an Excel serial number (a date cell saved as a number,
/// or pasted as values), or text in the forms of [`date_text`]. A four-digit year alone is
/// what a masked export writes for a birth date (`Err` with `year_only` otherwise the date
/// could not be read).
pub fn date(cell: &Cell) -> Result<Option<Day>, CellError> {
    let bad =
        || CellError::new("invalid_date", "not a date: write it as 2026-01-05 (or 2026/1/5, 2026.1.5, 2026年1月5日)");
    match cell {
        Cell::Empty => Ok(None),
        Cell::Date(d) => Ok(Some(Day::Date(*d))),
        Cell::Number(n) if (1900.0..=2100.0).contains(n) && n.fract() == 0.0 => Ok(Some(Day::Year(*n as i32))),
        Cell::Number(n) => from_serial(*n).map(|d| Some(Day::Date(d))).ok_or_else(bad),
        Cell::Bool(_) => Err(bad()),
        Cell::Text(_) => {
            let Some(s) = text(cell) else { return Ok(None) };
            if let Some(d) = date_text(&s) {
                return Ok(Some(Day::Date(d)));
            }
            let s: String = halfwidth(&s).chars().filter(|c| !c.is_whitespace()).collect();
            match s.parse::<u32>() {
                Ok(y) if (1900..=2100).contains(&y) => Ok(Some(Day::Year(y as i32))),
                Ok(serial) if (61..=2_958_465).contains(&serial) => {
                    from_serial(f64::from(serial)).map(|d| Some(Day::Date(d))).ok_or_else(bad)
                }
                _ => Err(bad()),
            }
        }
    }
}

/// A date cell's value: a day, or a year alone (what a masked export shows of a birth date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Date(NaiveDate),
    Year(i32),
}

impl Day {
    pub fn year(self) -> i32 {
        match self {
            Day::Date(d) => d.year(),
            Day::Year(y) => y,
        }
    }
}

/// 是/否 and the ways people write it; blank is no.
pub fn flag(cell: &Cell) -> Result<bool, CellError> {
    match cell {
        Cell::Bool(b) => Ok(*b),
        Cell::Number(n) if *n == 1.0 => Ok(true),
        Cell::Number(n) if *n == 0.0 => Ok(false),
        _ => match code(cell).as_deref().map(str::to_lowercase).as_deref() {
            None | Some("否" | "n" | "no" | "false" | "0" | "无" | "×" | "x") => Ok(false),
            Some("是" | "y" | "yes" | "true" | "1" | "有" | "√" | "✓" | "✔") => Ok(true),
            Some(_) => Err(CellError::new("invalid_choice", "write 是 or 否 (blank is 否)")),
        },
    }
}

/// 男/女 (or `male`/`female`).
pub fn gender(cell: &Cell) -> Result<Option<Gender>, CellError> {
    match code(cell).as_deref().map(str::to_lowercase).as_deref() {
        None => Ok(None),
        Some("男" | "male" | "m") => Ok(Some(Gender::Male)),
        Some("女" | "female" | "f") => Ok(Some(Gender::Female)),
        Some(_) => Err(CellError::new("invalid_choice", "write 男 or 女")),
    }
}

/// The relation to the head of the household, in the words rosters use.
pub fn relation(cell: &Cell) -> Result<Option<Relation>, CellError> {
    let Some(s) = code(cell) else { return Ok(None) };
    let r = match s.to_lowercase().as_str() {
        "户主" | "本人" | "head" => Relation::Head,
        "配偶" | "妻" | "夫" | "妻子" | "丈夫" | "spouse" => Relation::Spouse,
        "子女" | "子" | "女" | "儿子" | "女儿" | "长子" | "长女" | "次子" | "次女" | "child" => {
            Relation::Child
        }
        "父母" | "父" | "母" | "父亲" | "母亲" | "parent" => Relation::Parent,
        "孙子女" | "孙子" | "孙女" | "外孙" | "外孙子" | "外孙女" | "grandchild" => Relation::Grandchild,
        "其他" | "other" => Relation::Other,
        _ => {
            return Err(CellError::new("invalid_choice", "write one of 户主, 配偶, 子女, 父母, 孙子女, 其他"));
        }
    };
    Ok(Some(r))
}

/// The Chinese word a roster writes for a relation (what the template offers and export writes).
pub fn relation_word(r: Relation) -> &'static str {
    match r {
        Relation::Head => "户主",
        Relation::Spouse => "配偶",
        Relation::Child => "子女",
        Relation::Parent => "父母",
        Relation::Grandchild => "孙子女",
        Relation::Other => "其他",
    }
}

/// 残疾等级: 一级…四级 or 1–4; blank or 无 is none. Whether the grade is in range is the API's
/// check.
pub fn disability_grade(cell: &Cell) -> Result<Option<i32>, CellError> {
    if let Cell::Number(n) = cell {
        return integral(*n)
            .and_then(|d| d.parse().ok())
            .map(Some)
            .ok_or_else(|| CellError::new("invalid_choice", "write 一级, 二级, 三级, 四级 or 1–4 (blank is none)"));
    }
    let Some(s) = code(cell) else { return Ok(None) };
    let s = s.trim_end_matches('级');
    let grade = match s {
        "无" | "否" | "" => return Ok(None),
        "一" => 1,
        "二" => 2,
        "三" => 3,
        "四" => 4,
        other => other
            .parse()
            .map_err(|_| CellError::new("invalid_choice", "write 一级, 二级, 三级, 四级 or 1–4 (blank is none)"))?,
    };
    Ok(Some(grade))
}

/// The Chinese word for a disability grade.
pub fn grade_word(grade: i32) -> String {
    match grade {
        1 => "一级".to_owned(),
        2 => "二级".to_owned(),
        3 => "三级".to_owned(),
        4 => "四级".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }

    fn day(y: i32, m: u32, d: u32) -> Option<Day> {
        Some(Day::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap()))
    }

    #[test]
    fn full_width_characters_become_ascii() {
        assert_eq!(halfwidth("３７０１０３"), "370103");
        assert_eq!(halfwidth("１３８\u{3000}００１３\u{3000}８０００"), "138 0013 8000");
        assert_eq!(code(&t(" ３７０１０３\u{3000}００１ ")).as_deref(), Some("370103001"));
        assert_eq!(words(&t("\u{3000}张\u{3000}三\u{200b}")).as_deref(), Some("张 三"));
        assert_eq!(text(&Cell::Number(370103001001.0)).as_deref(), Some("370103001001"));
        assert_eq!(text(&t("   ")), None);
        assert_eq!(text(&t("'=1+1")).as_deref(), Some("=1+1"), "what export guards reads back");
        assert_eq!(text(&t("'s")).as_deref(), Some("'s"));
    }

    #[test]
    fn id_numbers_undo_what_excel_does() {
        let clear = |s: &str| Ok(Some(Secret::Clear(s.to_owned())));
        assert_eq!(id_number(&t("11010519491231002x")), clear("11010519491231002X"));
        assert_eq!(id_number(&t("１１０１０５ １９４９１２３１ ００２Ｘ")), clear("11010519491231002X"));
        assert_eq!(id_number(&t("**************002X")), Ok(Some(Secret::Masked("**************002X".into()))));
        assert_eq!(id_number(&Cell::Empty), Ok(None));
        // Typed into a general cell: a number, shown in scientific notation, 15 digits kept.
        let as_number = |c: &Cell| id_number(c).unwrap_err().code;
        assert_eq!(as_number(&Cell::Number(110105194912310000.0)), "id_number_as_number");
        assert_eq!(as_number(&t("1.10105E+17")), "id_number_as_number");
        assert_eq!(as_number(&t("1.10105194912310e17")), "id_number_as_number");
        assert_eq!(as_number(&t("110105194912310000")), "id_number_as_number");
        // 18 digits ending in 000 whose check character is 0 are a real number.
        let first17 = "11010519491231000";
        let real = format!("{first17}{}", crate::domain::check_char(first17));
        if real.ends_with('0') {
            assert_eq!(id_number(&t(&real)), clear(&real));
        }
        // Short numbers are left to the API's length check.
        assert_eq!(id_number(&Cell::Number(12345.0)), clear("12345"));
    }

    #[test]
    fn phones_get_their_leading_zero_back() {
        let clear = |s: &str| Ok(Some(Secret::Clear(s.to_owned())));
        assert_eq!(phone(&Cell::Number(13800138000.0)), clear("13800138000"));
        assert_eq!(phone(&Cell::Number(53182610000.0)), clear("053182610000"));
        assert_eq!(phone(&t("0531－8261 0000")), clear("0531-82610000"));
        assert_eq!(phone(&t("１３８ ００１３ ８０００")), clear("13800138000"));
        assert_eq!(phone(&t("+8613800138000")), clear("13800138000"));
        assert_eq!(phone(&t("138****8000")), Ok(Some(Secret::Masked("138****8000".into()))));
        assert_eq!(phone(&t("")), Ok(None));
    }

    #[test]
    fn dates_in_every_form_a_roster_holds() {
        assert_eq!(date(&t("2026-01-05")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("2026/1/5")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("2026.1.5")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("2026年1月5日")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("２０２６年１月５日")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("20260105")), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("2026/1/5 0:00:00")), Ok(day(2026, 1, 5)));
        // Serial numbers: 46027 is 2026-01-05; 18264 is 1950-01-01.
        assert_eq!(date(&Cell::Number(46027.0)), Ok(day(2026, 1, 5)));
        assert_eq!(date(&t("18264")), Ok(day(1950, 1, 1)));
        assert_eq!(date(&Cell::Number(46027.75)), Ok(day(2026, 1, 5)));
        assert_eq!(date(&Cell::Date(NaiveDate::from_ymd_opt(1941, 3, 2).unwrap())), Ok(day(1941, 3, 2)));
        // A year alone is what a masked export writes.
        assert_eq!(date(&t("1941")), Ok(Some(Day::Year(1941))));
        assert_eq!(date(&Cell::Number(1941.0)), Ok(Some(Day::Year(1941))));
        assert_eq!(date(&Cell::Empty), Ok(None));
        for bad in ["2026-02-30", "2026/13/1", "yesterday", "5.1.2026", "1/5/2026"] {
            assert_eq!(date(&t(bad)).unwrap_err().code, "invalid_date", "{bad}");
        }
    }

    #[test]
    fn choices_in_chinese_and_english() {
        assert_eq!(flag(&t("是")), Ok(true));
        assert_eq!(flag(&t(" 否 ")), Ok(false));
        assert_eq!(flag(&Cell::Empty), Ok(false));
        assert_eq!(flag(&Cell::Bool(true)), Ok(true));
        assert_eq!(flag(&Cell::Number(1.0)), Ok(true));
        assert_eq!(flag(&t("也许")).unwrap_err().code, "invalid_choice");
        assert_eq!(gender(&t("女")), Ok(Some(Gender::Female)));
        assert_eq!(gender(&t("Male")), Ok(Some(Gender::Male)));
        assert_eq!(gender(&t("未知")).unwrap_err().code, "invalid_choice");
        assert_eq!(relation(&t("户主")), Ok(Some(Relation::Head)));
        assert_eq!(relation(&t("妻子")), Ok(Some(Relation::Spouse)));
        assert_eq!(relation(&t("外孙女")), Ok(Some(Relation::Grandchild)));
        assert_eq!(relation(&t("表哥")).unwrap_err().code, "invalid_choice");
        for r in Relation::ALL {
            assert_eq!(relation(&t(relation_word(*r))), Ok(Some(*r)));
        }
        assert_eq!(disability_grade(&t("二级")), Ok(Some(2)));
        assert_eq!(disability_grade(&t("３")), Ok(Some(3)));
        assert_eq!(disability_grade(&Cell::Number(4.0)), Ok(Some(4)));
        assert_eq!(disability_grade(&t("无")), Ok(None));
        assert_eq!(disability_grade(&t("7")), Ok(Some(7)), "the range is the API's check");
        assert_eq!(disability_grade(&t("重度")).unwrap_err().code, "invalid_choice");
        for g in 1..=4 {
            assert_eq!(disability_grade(&t(&grade_word(g))), Ok(Some(g)));
        }
    }
}
