//! Rosters written: the template and exports, as xlsx and CSV, in the columns an upload reads,
//! so that an export imported again changes nothing.
//!
//! Every cell the service writes is text, and text that a spreadsheet would run as a formula
//! (`=`, `+`, `-`, `@` first) gets a leading apostrophe, which the importer takes off again
//! (formula injection: names and notes are typed by users). The CSV starts with a UTF-8 byte
//! order mark, without which Excel reads it in the local code page and garbles the Chinese.

use std::borrow::Cow;

use rust_xlsxwriter::{DataValidation, Format, FormatBorder, Note, Workbook, XlsxError};

use super::RowError;
use super::columns::{COLUMNS, Column};
use super::read::{HELP_SHEET, Limits};

/// The data sheet's name.
pub const ROSTER_SHEET: &str = "户籍名册";

/// The UTF-8 byte order mark.
const BOM: &str = "\u{feff}";

/// How many rows of the template carry the list validations of the enumerations.
const VALIDATED_ROWS: u32 = 20_000;

/// A cell's text made safe to open in a spreadsheet.
pub fn guard(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// One row of a roster, a cell per column in [`COLUMNS`] order.
pub type Line = Vec<String>;

/// The roster as CSV (RFC 4180, CRLF), with the header and a byte order mark.
pub fn csv(lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + lines.len() * 160);
    out.extend_from_slice(BOM.as_bytes());
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
    let write = |w: &mut csv::Writer<Vec<u8>>, cells: &mut dyn Iterator<Item = Cow<'_, str>>| {
        w.write_record(cells.map(|c| c.into_owned())).expect("writing to memory")
    };
    write(&mut writer, &mut COLUMNS.iter().map(|s| Cow::Borrowed(s.header)));
    for line in lines {
        write(&mut writer, &mut line.iter().map(|c| guard(c)));
    }
    writer.into_inner().expect("writing to memory")
}

/// The roster as a workbook: the data sheet (text-formatted columns, so Excel keeps ID numbers
/// and leading zeros as typed; a list of the allowed values on each enumeration), and the
/// explanation sheet.
pub fn xlsx(lines: &[Line]) -> Result<Vec<u8>, XlsxError> {
    marked_xlsx(lines, &[])
}

/// A cell to mark in a workbook: the line (an index into the lines) and column (none: the
/// whole row, marked on its first cell), and the note to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub column: Option<usize>,
    pub note: String,
}

/// The fill of a marked cell (Excel's "bad" red).
const MARKED_FILL: &str = "#FFC7CE";

/// [`xlsx`] with some cells filled red and carrying a note.
pub fn marked_xlsx(lines: &[Line], marks: &[Mark]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let header = Format::new().set_bold().set_background_color("#DDEBF7").set_border(FormatBorder::Thin);
    let text = Format::new().set_num_format("@");
    let sheet = book.add_worksheet().set_name(ROSTER_SHEET)?;
    for (i, spec) in COLUMNS.iter().enumerate() {
        let col = u16::try_from(i).expect("a few columns");
        sheet.set_column_format(col, &text)?;
        sheet.set_column_width(col, if spec.household { 14 } else { 12 })?;
        let title = if spec.required { format!("{}*", spec.header) } else { spec.header.to_owned() };
        sheet.write_string_with_format(0, col, &title, &header)?;
        if !spec.choices.is_empty() {
            let rule = DataValidation::new()
                .allow_list_strings(spec.choices)?
                .set_error_title("不在可选范围")?
                .set_error_message(format!("可填: {}", spec.choices.join("、")))?;
            sheet.add_data_validation(1, col, VALIDATED_ROWS, col, &rule)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    for (r, line) in lines.iter().enumerate() {
        let row = u32::try_from(r + 1).unwrap_or(u32::MAX);
        for (c, value) in line.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            sheet.write_string(row, u16::try_from(c).expect("a few columns"), guard(value))?;
        }
    }
    let marked = text.clone().set_background_color(MARKED_FILL);
    let mut notes: std::collections::BTreeMap<(usize, usize), Vec<&str>> = std::collections::BTreeMap::new();
    for m in marks {
        notes.entry((m.line, m.column.unwrap_or(0))).or_default().push(&m.note);
    }
    for ((line, col), texts) in notes {
        let row = u32::try_from(line + 1).unwrap_or(u32::MAX);
        let col16 = u16::try_from(col).expect("a few columns");
        match lines.get(line).and_then(|l| l.get(col)).filter(|v| !v.is_empty()) {
            Some(value) => sheet.write_string_with_format(row, col16, guard(value), &marked)?,
            None => sheet.write_blank(row, col16, &marked)?,
        };
        sheet.insert_note(row, col16, &Note::new(texts.join("\n")).set_author("Gridlight").add_author_prefix(false))?;
    }
    let help = book.add_worksheet().set_name(HELP_SHEET)?;
    for (c, title) in ["列名", "属于", "必填", "可填的值", "说明"].iter().enumerate() {
        help.write_string_with_format(0, c as u16, *title, &header)?;
    }
    for (r, spec) in COLUMNS.iter().enumerate() {
        let row = r as u32 + 1;
        help.write_string(row, 0, spec.header)?;
        help.write_string(row, 1, if spec.household { "户" } else { "成员" })?;
        help.write_string(row, 2, if spec.required { "是" } else { "否" })?;
        help.write_string(row, 3, spec.choices.join("、"))?;
        help.write_string(row, 4, spec.help)?;
    }
    let notes = [
        "每位成员一行；同一户的后续行可重复户的各列，也可留空。",
        "只有户的各列、没有成员各列的一行，是一户没有成员登记。",
        "请不要使用公式、合并单元格或另加工作表；导入前会先试运行，列出每个错误的行和列。",
        "再次导入同一文件不会重复登记：户按网格编码和地址对应，成员按身份证号 (没有时按户内姓名) 对应；留空的格不改变已有数据。",
    ];
    for (i, note) in notes.iter().enumerate() {
        help.write_string(COLUMNS.len() as u32 + 2 + i as u32, 0, *note)?;
    }
    help.set_column_width(0, 14)?;
    help.set_column_width(3, 30)?;
    help.set_column_width(4, 80)?;
    book.save_to_buffer()
}

/// The error workbook of an upload: the rows with errors (and the other rows of their
/// households) in the template's format, each erroneous cell filled red with a note saying
/// what is wrong, so a secretary fixes them in Excel and uploads the workbook again.
pub fn errors_xlsx(file: &[u8], errors: &[RowError]) -> anyhow::Result<Vec<u8>> {
    let (_, sheet) = super::read::read(file, Limits::default())?;
    let wanted = errors.iter().map(|e| e.row).collect();
    let numbered = super::lines_of(&sheet, &wanted)?;
    let at: std::collections::HashMap<u32, usize> = numbered.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    let marks = errors
        .iter()
        .filter_map(|e| {
            let column = e.column.as_deref().and_then(Column::from_header).map(position);
            Some(Mark {
                line: *at.get(&e.row)?, column, note: format!("第 {} 行: {} ({})", e.row, e.message, e.code)
            })
        })
        .collect::<Vec<_>>();
    let lines: Vec<Line> = numbered.into_iter().map(|(_, l)| l).collect();
    Ok(marked_xlsx(&lines, &marks)?)
}

/// A member column's position, for building lines.
pub fn position(c: Column) -> usize {
    COLUMNS.iter().position(|s| s.column == c).expect("every column is in COLUMNS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::cells::Cell;
    use crate::roster::read::{Limits, read};

    fn sample() -> Vec<Line> {
        let mut line = vec![String::new(); COLUMNS.len()];
        line[position(Column::GridCode)] = "37010300100101".into();
        line[position(Column::Building)] = "3号楼".into();
        line[position(Column::Unit)] = "2单元".into();
        line[position(Column::Room)] = "0301".into();
        line[position(Column::HeadName)] = "=HYPERLINK(\"http://x\")".into();
        line[position(Column::Name)] = "-张三".into();
        line[position(Column::IdNumber)] = "11010519491231002X".into();
        vec![line]
    }

    #[test]
    fn formulas_are_neutralised_and_read_back_as_written() {
        assert_eq!(guard("=1+1"), "'=1+1");
        assert_eq!(guard("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(guard("张三"), "张三");
        for bytes in [csv(&sample()), xlsx(&sample()).unwrap()] {
            let (_, sheet) = read(&bytes, Limits::default()).unwrap();
            let row = &sheet[1];
            let text = |c: Column| crate::roster::cells::text(&row[position(c)]);
            assert_eq!(text(Column::HeadName).as_deref(), Some("=HYPERLINK(\"http://x\")"));
            assert_eq!(text(Column::Name).as_deref(), Some("-张三"));
            assert_eq!(row[position(Column::Room)], Cell::Text("0301".into()));
            assert_eq!(text(Column::IdNumber).as_deref(), Some("11010519491231002X"));
            let roster = crate::roster::parse(&sheet).unwrap();
            assert_eq!(roster.households.len(), 1);
        }
        let text = String::from_utf8(csv(&sample())).unwrap();
        assert!(text.starts_with("\u{feff}网格编码,"), "{text}");
        assert!(text.contains("\"'=HYPERLINK"), "quoted and guarded: {text}");
    }

    #[test]
    fn the_template_reads_as_an_empty_roster() {
        for bytes in [csv(&[]), xlsx(&[]).unwrap()] {
            let (_, sheet) = read(&bytes, Limits::default()).unwrap();
            let roster = crate::roster::parse(&sheet).unwrap();
            assert!(roster.households.is_empty() && roster.errors.is_empty());
        }
    }
}
