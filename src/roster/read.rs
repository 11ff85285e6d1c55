//! An uploaded file to a sheet of cells, refusing what is not a plain roster before anything
//! reads it in earnest: not a spreadsheet, an encrypted (or legacy `.xls`) workbook, a zip
//! whose contents inflate beyond the limit (a zip bomb), too many rows, macros, formulas,
//! merged cells, a second sheet with data.
//!
//! The xlsx is inflated once entry by entry with a running count before calamine sees it, so
//! a bomb costs at most the limit in memory and time; CSV is read as UTF-8 (with or without
//! the BOM Excel writes) or, failing that, as GB18030, which Excel in a Chinese locale saves.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, SheetVisible, Xlsx};

use super::cells::{Cell, from_serial};

/// What an upload may be; the defaults are for a street's rosters in one file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows after the header.
    pub max_rows: usize,
    /// The xlsx's contents, inflated.
    pub max_inflated: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_rows: 100_000, max_inflated: 256 * 1024 * 1024 }
    }
}

/// The two formats a roster comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Xlsx,
    Csv,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Xlsx => "xlsx",
            Format::Csv => "csv",
        }
    }
}

/// Why an upload is refused whole. Each has a code of its own for the problem answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is neither an .xlsx workbook nor a CSV text file")]
    NotASpreadsheet,
    #[error("the workbook is password-protected or an old .xls file: save it as .xlsx without a password")]
    Encrypted,
    #[error("the workbook inflates to more than {0} MiB")]
    TooBig(u64),
    #[error("the file has more than {0} rows; split it")]
    TooManyRows(usize),
    #[error("the workbook contains macros: save it as .xlsx (not .xlsm)")]
    Macros,
    #[error("cell {0} holds a formula: copy the sheet and paste values only")]
    Formula(String),
    #[error("cells {0} are merged: unmerge them and repeat the value on each row (or leave the following rows blank)")]
    Merged(String),
    #[error("the sheet {0} holds data: a roster is the first sheet only (plus the template's 说明)")]
    ExtraSheet(String),
    #[error("the workbook cannot be read: {0}")]
    Damaged(String),
}

impl FileError {
    pub fn code(&self) -> &'static str {
        match self {
            FileError::NotASpreadsheet => "not_a_spreadsheet",
            FileError::Encrypted => "encrypted_workbook",
            FileError::TooBig(_) => "file_too_big",
            FileError::TooManyRows(_) => "too_many_rows",
            FileError::Macros => "macros",
            FileError::Formula(_) => "formula",
            FileError::Merged(_) => "merged_cells",
            FileError::ExtraSheet(_) => "extra_sheet",
            FileError::Damaged(_) => "damaged_file",
        }
    }
}

/// The name of the explanation sheet the template carries; ignored on upload.
pub const HELP_SHEET: &str = "说明";

const ZIP: &[u8] = b"PK\x03\x04";
/// An OLE compound file: an encrypted OOXML workbook, or a legacy `.xls`.
const OLE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// The sheet of an upload, by its first bytes.
pub fn read(bytes: &[u8], limits: Limits) -> Result<(Format, Vec<Vec<Cell>>), FileError> {
    if bytes.starts_with(ZIP) {
        xlsx(bytes, limits).map(|s| (Format::Xlsx, s))
    } else if bytes.starts_with(OLE) {
        Err(FileError::Encrypted)
    } else {
        csv(bytes, limits).map(|s| (Format::Csv, s))
    }
}

/// `A1`-style name of a zero-based cell.
pub fn cell_name(row: u32, col: u32) -> String {
    let mut letters = Vec::new();
    let mut c = col + 1;
    while c > 0 {
        let rem = (c - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        c = (c - 1) / 26;
    }
    letters.iter().rev().collect::<String>() + &(row + 1).to_string()
}

/// Inflates every entry with a running total; more than the limit is a bomb. Macros are refused
/// here too (a `vbaProject.bin` in any directory).
fn inflate_within(bytes: &[u8], limit: u64) -> Result<(), FileError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| FileError::NotASpreadsheet)?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| FileError::Damaged(e.to_string()))?;
        if entry.encrypted() {
            return Err(FileError::Encrypted);
        }
        if entry.name().map(|n| n.to_ascii_lowercase().ends_with("vbaproject.bin")).unwrap_or(false) {
            return Err(FileError::Macros);
        }
        let left = limit.saturating_sub(total);
        let n = std::io::copy(&mut (&mut entry).take(left + 1), &mut std::io::sink())
            .map_err(|e| FileError::Damaged(e.to_string()))?;
        total += n;
        if total > limit {
            return Err(FileError::TooBig(limit / (1024 * 1024)));
        }
    }
    Ok(())
}

fn xlsx(bytes: &[u8], limits: Limits) -> Result<Vec<Vec<Cell>>, FileError> {
    inflate_within(bytes, limits.max_inflated)?;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| match e {
        calamine::XlsxError::Zip(_) => FileError::NotASpreadsheet,
        other => FileError::Damaged(other.to_string()),
    })?;
    let sheets: Vec<(String, bool)> =
        book.sheets_metadata().iter().map(|s| (s.name.clone(), s.visible == SheetVisible::Visible)).collect();
    let Some((first, _)) = sheets.first().cloned() else { return Err(FileError::Damaged("no sheet".into())) };
    for (name, _) in sheets.iter().skip(1).filter(|(n, _)| n != HELP_SHEET) {
        let range = book.worksheet_range(name).map_err(|e| FileError::Damaged(e.to_string()))?;
        if range.used_cells().any(|(_, _, d)| !matches!(d, Data::Empty)) {
            return Err(FileError::ExtraSheet(name.clone()));
        }
    }
    let range = book.worksheet_range(&first).map_err(|e| FileError::Damaged(e.to_string()))?;
    let (start_row, start_col) = range.start().unwrap_or((0, 0));
    if range.height() > limits.max_rows + 1 {
        return Err(FileError::TooManyRows(limits.max_rows));
    }
    let formulas = book.worksheet_formula(&first).map_err(|e| FileError::Damaged(e.to_string()))?;
    if let Some((r, c, _)) = formulas.used_cells().find(|(_, _, f)| !f.is_empty()) {
        let (fr, fc) = formulas.start().unwrap_or((0, 0));
        return Err(FileError::Formula(cell_name(fr + r as u32, fc + c as u32)));
    }
    let merged = book.merge_cells_by_sheet_name(&first).map_err(|e| FileError::Damaged(e.to_string()))?;
    if let Some(m) = merged.first() {
        let name = format!("{}:{}", cell_name(m.start.0, m.start.1), cell_name(m.end.0, m.end.1));
        return Err(FileError::Merged(name));
    }
    // Rows and columns before the used range are blank: keep row numbers as Excel shows them.
    let mut sheet: Vec<Vec<Cell>> = vec![Vec::new(); start_row as usize];
    for row in range.rows() {
        let mut cells = vec![Cell::Empty; start_col as usize];
        cells.extend(row.iter().map(cell));
        sheet.push(cells);
    }
    Ok(sheet)
}

fn cell(d: &Data) -> Cell {
    match d {
        Data::Empty | Data::Error(_) => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) if dt.is_datetime() => {
            from_serial(dt.as_f64()).map_or(Cell::Number(dt.as_f64()), Cell::Date)
        }
        Data::DateTime(dt) => Cell::Number(dt.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
    }
}

fn csv(bytes: &[u8], limits: Limits) -> Result<Vec<Vec<Cell>>, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // A binary file (or UTF-16 text) is full of NUL bytes; a stray one in a cell of a text file
    // is that row's error (a control character), not the file's.
    let nuls = bytes.iter().filter(|b| **b == 0).count();
    if nuls * 100 > bytes.len() {
        return Err(FileError::NotASpreadsheet);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            let (s, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                return Err(FileError::NotASpreadsheet);
            }
            s
        }
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut sheet = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|_| FileError::NotASpreadsheet)?;
        if sheet.len() > limits.max_rows {
            return Err(FileError::TooManyRows(limits.max_rows));
        }
        sheet.push(record.iter().map(|s| if s.is_empty() { Cell::Empty } else { Cell::Text(s.to_owned()) }).collect());
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_names_are_excels() {
        assert_eq!(cell_name(0, 0), "A1");
        assert_eq!(cell_name(9, 25), "Z10");
        assert_eq!(cell_name(0, 26), "AA1");
    }

    #[test]
    fn csv_in_utf8_with_bom_or_gb18030() {
        let (f, s) = read("\u{feff}网格编码,楼栋\n370103,\"3号楼\"\n".as_bytes(), Limits::default()).unwrap();
        assert_eq!(f, Format::Csv);
        assert_eq!(s[0][0], Cell::Text("网格编码".into()));
        assert_eq!(s[1][1], Cell::Text("3号楼".into()));
        assert_eq!(s[1].len(), 2);
        let (gbk, _, _) = encoding_rs::GB18030.encode("网格编码,楼栋\n");
        let (_, s) = read(&gbk, Limits::default()).unwrap();
        assert_eq!(s[0][1], Cell::Text("楼栋".into()));
    }

    #[test]
    fn what_is_not_a_roster_is_refused() {
        let no = |b: &[u8]| read(b, Limits::default()).unwrap_err();
        assert_eq!(no(b"\x89PNG\r\n\x1a\n\0\0\0IHDR"), FileError::NotASpreadsheet);
        assert_eq!(no(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0]), FileError::Encrypted);
        assert_eq!(no(b"PK\x03\x04garbage"), FileError::NotASpreadsheet);
        let rows = "a\n".repeat(12);
        assert_eq!(
            read(rows.as_bytes(), Limits { max_rows: 10, ..Limits::default() }).unwrap_err(),
            FileError::TooManyRows(10)
        );
    }
}
