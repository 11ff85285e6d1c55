//! Household rosters (户籍/常住人口台账) as spreadsheets: reading an upload ([`read`]) into
//! cells, the cells into households and their members ([`parse`], repairing what spreadsheets
//! do to data, see [`cells`]), and the columns both directions share ([`columns`]).
//!
//! Nothing here touches the database or decides what is acceptable: the API's own checks judge
//! the values (`crate::api::imports`), so an imported member is held to exactly the rules of
//! `POST /households/{id}/members`.

pub mod cells;
pub mod columns;
pub mod read;
pub mod write;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Gender, Relation};
use cells::{Cell, CellError, Day, Secret};
use columns::{COLUMNS, Column};

/// One problem of one cell (or of a row, when `column` is none), as a secretary fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// The spreadsheet's row number (the header is row 1).
    #[schema(example = 7)]
    pub row: u32,
    /// The column's header, e.g. `身份证号`; none for a problem of the whole row.
    #[schema(example = "身份证号")]
    pub column: Option<String>,
    /// A stable machine-readable code, e.g. `checksum`, `id_number_as_number`, `invalid_date`.
    #[schema(example = "checksum")]
    pub code: String,
    #[schema(example = "the ID number's check character is wrong (expected 7)")]
    pub message: String,
}

impl RowError {
    pub fn new(row: u32, column: Option<Column>, code: impl Into<String>, message: impl Into<String>) -> Self {
        RowError { row, column: column.map(|c| c.header().to_owned()), code: code.into(), message: message.into() }
    }

    fn cell(row: u32, column: Column, e: CellError) -> Self {
        RowError::new(row, Some(column), e.code, e.message)
    }
}

/// A member as the roster gives it; `None` where the cell was blank (or unreadable: then the
/// row has an error).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub row: u32,
    pub name: Option<String>,
    pub gender: Option<Gender>,
    pub birth_date: Option<Day>,
    pub id_number: Option<Secret>,
    pub phone: Option<Secret>,
    pub relation: Option<Relation>,
    pub living_alone: bool,
    pub disability_grade: Option<i32>,
    pub chronic_illness: bool,
    pub serious_illness: bool,
    pub low_income: bool,
    pub extreme_poverty: bool,
    pub notes: Option<String>,
}

/// A household and the rows it spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Household {
    /// Every row of the household, the first one first.
    pub rows: Vec<u32>,
    pub grid_code: String,
    pub building: String,
    pub unit: String,
    pub room: String,
    pub head_name: Option<String>,
    pub phone: Option<Secret>,
    pub notes: Option<String>,
    pub members: Vec<Member>,
}

/// A roster read: its households in file order, and the problems found in its cells.
#[derive(Debug, Default)]
pub struct Roster {
    pub households: Vec<Household>,
    pub errors: Vec<RowError>,
    /// Data rows that were not blank.
    pub rows: u32,
}

/// Why a file is not a roster at all (answered as one 4xx; nothing is recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the first row must hold the column headers; missing: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("the column {0} appears twice")]
    Twice(&'static str),
    #[error("unknown columns: {} (download the template for the expected headers)", .0.join(", "))]
    Unknown(Vec<String>),
}

/// Where each column is in the sheet.
struct Layout(HashMap<Column, usize>);

impl Layout {
    fn of(header: &[Cell]) -> Result<Layout, HeaderError> {
        let mut at = HashMap::new();
        let mut unknown = Vec::new();
        for (i, cell) in header.iter().enumerate() {
            let Some(text) = cells::text(cell) else { continue };
            match Column::from_header(&text) {
                Some(c) if at.insert(c, i).is_some() => return Err(HeaderError::Twice(c.header())),
                Some(_) => {}
                None => unknown.push(text),
            }
        }
        let missing: Vec<&'static str> =
            COLUMNS.iter().filter(|s| s.required && !at.contains_key(&s.column)).map(|s| s.header).collect();
        if !missing.is_empty() {
            return Err(HeaderError::Missing(missing));
        }
        if !unknown.is_empty() {
            return Err(HeaderError::Unknown(unknown));
        }
        Ok(Layout(at))
    }

    fn cell<'a>(&self, row: &'a [Cell], c: Column) -> &'a Cell {
        const EMPTY: &Cell = &Cell::Empty;
        self.0.get(&c).and_then(|&i| row.get(i)).unwrap_or(EMPTY)
    }
}

/// Reads a value, recording the cell's error.
fn take<T>(errors: &mut Vec<RowError>, row: u32, column: Column, r: Result<T, CellError>) -> Option<T> {
    r.map_err(|e| errors.push(RowError::cell(row, column, e))).ok()
}

/// The households of a sheet whose first row is the header. A row whose address columns are
/// all blank belongs to the household above it; a row that repeats an address seen before adds
/// to that household (and must not contradict its head, phone or notes).
pub fn parse(sheet: &[Vec<Cell>]) -> Result<Roster, HeaderError> {
    let Some((header, data)) = sheet.split_first() else {
        return Err(HeaderError::Missing(COLUMNS.iter().filter(|s| s.required).map(|s| s.header).collect()));
    };
    let layout = Layout::of(header)?;
    let mut roster = Roster::default();
    let mut index: HashMap<(String, String, String, String), usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for (i, row) in data.iter().enumerate() {
        let n = u32::try_from(i + 2).unwrap_or(u32::MAX);
        if row.iter().all(|c| cells::text(c).is_none()) {
            continue;
        }
        roster.rows += 1;
        let errors = &mut roster.errors;
        let address = [Column::GridCode, Column::Building, Column::Unit, Column::Room];
        let [grid, building, unit, room] = address.map(|c| match c {
            Column::GridCode | Column::Room => cells::code(layout.cell(row, c)),
            _ => cells::words(layout.cell(row, c)),
        });
        let head_name = cells::words(layout.cell(row, Column::HeadName));
        let phone =
            take(errors, n, Column::HouseholdPhone, cells::phone(layout.cell(row, Column::HouseholdPhone))).flatten();
        let notes = cells::text(layout.cell(row, Column::HouseholdNotes));
        let at = match (grid, building, unit, room) {
            (None, None, None, None) => {
                if current.is_none() {
                    let message = "the first row of a household needs its 网格编码, 楼栋, 单元 and 房号";
                    errors.push(RowError::new(n, Some(Column::GridCode), "required", message));
                    continue;
                }
                current
            }
            (Some(g), Some(b), Some(u), Some(r)) => {
                let key = (g.clone(), b.clone(), u.clone(), r.clone());
                Some(*index.entry(key).or_insert_with(|| {
                    roster.households.push(Household {
                        rows: vec![],
                        grid_code: g,
                        building: b,
                        unit: u,
                        room: r,
                        head_name: None,
                        phone: None,
                        notes: None,
                        members: vec![],
                    });
                    roster.households.len() - 1
                }))
            }
            (g, b, u, r) => {
                for (c, v) in address.into_iter().zip([g, b, u, r]) {
                    if v.is_none() {
                        errors.push(RowError::new(n, Some(c), "required", "the address is incomplete"));
                    }
                }
                current = None;
                continue;
            }
        };
        current = at;
        let Some(h) = at.map(|i| &mut roster.households[i]) else { continue };
        h.rows.push(n);
        agree(errors, n, Column::HeadName, &mut h.head_name, head_name);
        agree(errors, n, Column::HouseholdPhone, &mut h.phone, phone);
        agree(errors, n, Column::HouseholdNotes, &mut h.notes, notes);
        if let Some(m) = member(&layout, row, n, errors) {
            h.members.push(m);
        }
    }
    Ok(roster)
}

/// The rows of a sheet that a fix needs, each with its row number and its cells' text in the
/// template's column order: the rows in `wanted`, and every row of a household that has one
/// (a household is skipped whole, so it is sent again whole).
pub fn lines_of(sheet: &[Vec<Cell>], wanted: &HashSet<u32>) -> Result<Vec<(u32, Vec<String>)>, HeaderError> {
    let roster = parse(sheet)?;
    let layout = Layout::of(&sheet[0])?;
    let mut rows: Vec<u32> = wanted.iter().copied().collect();
    for h in roster.households.iter().filter(|h| h.rows.iter().any(|r| wanted.contains(r))) {
        rows.extend(&h.rows);
    }
    rows.sort_unstable();
    rows.dedup();
    Ok(rows
        .into_iter()
        .filter_map(|n| {
            let row = sheet.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            let cells = COLUMNS.iter().map(|s| cells::text(layout.cell(row, s.column)).unwrap_or_default());
            Some((n, cells.collect()))
        })
        .collect())
}

/// Takes a household's value from the first row that gives it; a later row that gives another
/// one is an error.
fn agree<T: PartialEq>(errors: &mut Vec<RowError>, n: u32, column: Column, stored: &mut Option<T>, given: Option<T>) {
    match (stored.as_ref(), given) {
        (_, None) => {}
        (None, given) => *stored = given,
        (Some(s), Some(v)) if *s == v => {}
        (Some(_), Some(_)) => errors.push(RowError::new(
            n,
            Some(column),
            "inconsistent_household",
            "differs from the household's earlier rows",
        )),
    }
}

/// The member on a row, or none when its member columns are all blank (a household alone).
fn member(layout: &Layout, row: &[Cell], n: u32, errors: &mut Vec<RowError>) -> Option<Member> {
    let own = COLUMNS.iter().filter(|s| !s.household);
    if own.clone().all(|s| cells::text(layout.cell(row, s.column)).is_none()) {
        return None;
    }
    let cell = |c: Column| layout.cell(row, c);
    let mut flag = |c: Column| take(errors, n, c, cells::flag(cell(c))).unwrap_or(false);
    let (living_alone, chronic_illness, serious_illness, low_income, extreme_poverty) = (
        flag(Column::LivingAlone),
        flag(Column::ChronicIllness),
        flag(Column::SeriousIllness),
        flag(Column::LowIncome),
        flag(Column::ExtremePoverty),
    );
    let gender = take(errors, n, Column::Gender, cells::gender(cell(Column::Gender))).flatten();
    let relation = take(errors, n, Column::Relation, cells::relation(cell(Column::Relation))).flatten();
    let member = Member {
        row: n,
        name: cells::words(cell(Column::Name)),
        birth_date: take(errors, n, Column::BirthDate, cells::date(cell(Column::BirthDate))).flatten(),
        id_number: take(errors, n, Column::IdNumber, cells::id_number(cell(Column::IdNumber))).flatten(),
        phone: take(errors, n, Column::MemberPhone, cells::phone(cell(Column::MemberPhone))).flatten(),
        disability_grade: take(
            errors,
            n,
            Column::DisabilityGrade,
            cells::disability_grade(cell(Column::DisabilityGrade)),
        )
        .flatten(),
        notes: cells::text(cell(Column::Notes)),
        gender,
        relation,
        living_alone,
        chronic_illness,
        serious_illness,
        low_income,
        extreme_poverty,
    };
    Some(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<Cell> {
        cells.iter().map(|s| if s.is_empty() { Cell::Empty } else { Cell::Text((*s).to_owned()) }).collect()
    }

    fn header() -> Vec<Cell> {
        row(&COLUMNS.iter().map(|s| s.header).collect::<Vec<_>>())
    }

    /// A row in template order: the household's 7 columns, then the member's 13.
    fn line(household: [&str; 7], member: [&str; 13]) -> Vec<Cell> {
        row(&household.iter().chain(member.iter()).copied().collect::<Vec<_>>())
    }

    const NO_ONE: [&str; 13] = ["", "", "", "", "", "", "", "", "", "", "", "", ""];

    #[test]
    fn rows_group_into_households() {
        let h1 = ["37010300100101", "3号楼", "2单元", "301", "张桂兰", "13800138000", ""];
        let blank = ["", "", "", "", "", "", ""];
        let head = ["张桂兰", "女", "1941/3/2", "", "", "户主", "是", "二级", "", "", "", "", ""];
        let son = ["李强", "男", "", "", "", "子女", "", "", "", "", "", "", "在外地"];
        let h2 = ["37010300100101", "3号楼", "2单元", "302", "王五", "", ""];
        let sheet = vec![
            header(),
            line(h1, head),
            line(blank, son),
            row(&[]),
            line(h2, NO_ONE),
            line(h1, ["李红", "女", "", "", "", "孙子女", "", "", "", "", "", "", ""]),
        ];
        let r = parse(&sheet).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.rows, 4);
        assert_eq!(r.households.len(), 2);
        let h = &r.households[0];
        assert_eq!(h.rows, [2, 3, 6]);
        assert_eq!(h.head_name.as_deref(), Some("张桂兰"));
        assert_eq!(
            h.members.iter().map(|m| m.name.as_deref().unwrap()).collect::<Vec<_>>(),
            ["张桂兰", "李强", "李红"]
        );
        assert_eq!(h.members[0].disability_grade, Some(2));
        assert!(h.members[0].living_alone);
        assert_eq!(h.members[1].notes.as_deref(), Some("在外地"));
        assert!(r.households[1].members.is_empty());
    }

    #[test]
    fn headers_are_checked() {
        assert!(parse(&[]).unwrap_err().to_string().contains("网格编码"));
        let mut partial = header();
        partial.truncate(3);
        assert!(matches!(parse(&[partial]), Err(HeaderError::Missing(m)) if m.contains(&"房号")));
        let mut extra = header();
        extra.push(Cell::Text("籍贯".into()));
        assert_eq!(parse(&[extra]).unwrap_err(), HeaderError::Unknown(vec!["籍贯".into()]));
        let mut twice = header();
        twice.push(Cell::Text("房号".into()));
        assert_eq!(parse(&[twice]).unwrap_err(), HeaderError::Twice("房号"));
        // Full-width forms and a required marker are fine, and the order is free.
        let mut shuffled = header();
        shuffled.reverse();
        shuffled[0] = Cell::Text(" 备注* ".into());
        assert!(parse(&[shuffled]).is_ok());
    }

    #[test]
    fn cells_and_rows_report_their_problems() {
        let h = ["37010300100101", "3号楼", "2单元", "301", "张桂兰", "", ""];
        let sheet = vec![
            header(),
            line(["", "", "", "", "", "", ""], ["孤儿", "男", "", "", "", "户主", "", "", "", "", "", "", ""]),
            line(h, ["张桂兰", "女", "1941/13/2", "1.10105E+17", "", "户主", "也许", "", "", "", "", "", ""]),
            line(["37010300100101", "3号楼", "", "302", "王五", "", ""], NO_ONE),
            line(["37010300100101", "3号楼", "2单元", "301", "张三", "", ""], NO_ONE),
        ];
        let r = parse(&sheet).unwrap();
        let got: Vec<(u32, Option<&str>, &str)> =
            r.errors.iter().map(|e| (e.row, e.column.as_deref(), e.code.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, Some("网格编码"), "required"),
                (3, Some("独居"), "invalid_choice"),
                (3, Some("出生日期"), "invalid_date"),
                (3, Some("身份证号"), "id_number_as_number"),
                (4, Some("单元"), "required"),
                (5, Some("户主姓名"), "inconsistent_household"),
            ]
        );
    }
}
