//! Grid codes after CJ/T 349-2010: 6-digit division code, 3-digit street, 3-digit community and
//! 2-digit grid sequence, 14 digits in all. A grid belongs to a community, so its code must
//! start with that community's division code, and then its street's 3 digits (a street's code
//! is the division code + those digits) — unless the street is a district's placeholder
//! (`<division>000`, 默认街道, where a database without streets put its communities), which has
//! no street digits of its own to hold a grid code to.

/// Why a string is not an acceptable grid code for the community.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridCodeError {
    #[error("a grid code has 14 digits, not {0} characters")]
    Length(usize),
    #[error("a grid code consists of digits only")]
    Format,
    #[error("the grid sequence (last 2 digits) of a grid code may not be 00")]
    ZeroSequence,
    #[error("the grid code starts with {found}, but the community's division code is {expected}")]
    DivisionMismatch { expected: String, found: String },
    #[error("the grid code's street digits are {found}, but the community's street code is {expected}")]
    StreetMismatch { expected: String, found: String },
}

impl GridCodeError {
    /// A stable machine-readable code for validation error lists.
    pub const fn code(&self) -> &'static str {
        match self {
            GridCodeError::Length(_) => "length",
            GridCodeError::Format => "format",
            GridCodeError::ZeroSequence => "zero_sequence",
            GridCodeError::DivisionMismatch { .. } => "division_mismatch",
            GridCodeError::StreetMismatch { .. } => "street_mismatch",
        }
    }
}

/// A valid 14-digit grid code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GridCode(String);

impl GridCode {
    /// Parses a grid code of the community with `community_division_code`; surrounding
    /// whitespace is ignored.
    pub fn parse(code: &str, community_division_code: &str) -> Result<GridCode, GridCodeError> {
        let code = Self::check_form(code)?;
        if &code[..6] != community_division_code {
            return Err(GridCodeError::DivisionMismatch {
                expected: community_division_code.to_owned(),
                found: code[..6].to_owned(),
            });
        }
        Ok(GridCode(code.to_owned()))
    }

    /// Parses a grid code of a community of `community_division_code` in the street with the
    /// 9-digit `street_code`: [`GridCode::parse`], then the street digits (7-9) are the street's,
    /// unless the street is a placeholder ([`is_placeholder_street`]).
    pub fn parse_in_street(
        code: &str,
        community_division_code: &str,
        street_code: &str,
    ) -> Result<GridCode, GridCodeError> {
        let parsed = Self::parse(code, community_division_code)?;
        if !is_placeholder_street(street_code) && street_code.get(6..9) != Some(parsed.street_code()) {
            return Err(GridCodeError::StreetMismatch {
                expected: street_code.to_owned(),
                found: parsed.street_code().to_owned(),
            });
        }
        Ok(parsed)
    }

    /// The checks that need no community (14 digits, sequence not `00`), for a request that is
    /// checked before its community is read; returns the code without surrounding whitespace.
    pub fn check_form(code: &str) -> Result<&str, GridCodeError> {
        let code = code.trim();
        let len = code.chars().count();
        if len != 14 {
            return Err(GridCodeError::Length(len));
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GridCodeError::Format);
        }
        if &code[12..] == "00" {
            return Err(GridCodeError::ZeroSequence);
        }
        Ok(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// GB/T 2260 division code (digits 1-6).
    pub fn division_code(&self) -> &str {
        &self.0[..6]
    }

    /// Street (街道) code (digits 7-9).
    pub fn street_code(&self) -> &str {
        &self.0[6..9]
    }

    /// Community (社区) code (digits 10-12).
    pub fn community_code(&self) -> &str {
        &self.0[9..12]
    }

    /// Grid sequence within the community (digits 13-14), `01`-`99`.
    pub fn sequence(&self) -> &str {
        &self.0[12..]
    }
}

/// Whether a 9-digit street code is a district's placeholder street (`<division>000`, 默认街道):
/// no CJ/T 349 street has the digits `000`, so its communities' grid codes keep whatever
/// street digits they had before streets existed.
pub fn is_placeholder_street(street_code: &str) -> bool {
    street_code.len() == 9 && street_code.ends_with("000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_exposes_parts() {
        let code = GridCode::parse("37010300200103", "370103").unwrap();
        assert_eq!(code.as_str(), "37010300200103");
        assert_eq!(code.division_code(), "370103");
        assert_eq!(code.street_code(), "002");
        assert_eq!(code.community_code(), "001");
        assert_eq!(code.sequence(), "03");
        assert_eq!(GridCode::parse(" 37010300200199\n", "370103").unwrap().sequence(), "99");
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(GridCode::parse("", "370103"), Err(GridCodeError::Length(0)));
        assert_eq!(GridCode::parse("3701030020010", "370103"), Err(GridCodeError::Length(13)));
        assert_eq!(GridCode::parse("370103002001031", "370103"), Err(GridCodeError::Length(15)));
        assert_eq!(GridCode::parse("370103-002-001-03", "370103"), Err(GridCodeError::Length(17)));
    }

    #[test]
    fn rejects_non_digits() {
        assert_eq!(GridCode::parse("3701030020010A", "370103"), Err(GridCodeError::Format));
        assert_eq!(GridCode::parse("370103 0200103", "370103"), Err(GridCodeError::Format));
        assert_eq!(GridCode::parse("３7010300200103", "370103"), Err(GridCodeError::Format));
    }

    #[test]
    fn rejects_sequence_zero() {
        assert_eq!(GridCode::parse("37010300200100", "370103"), Err(GridCodeError::ZeroSequence));
    }

    #[test]
    fn the_form_is_checked_without_a_community() {
        assert_eq!(GridCode::check_form(" 37010200200103 "), Ok("37010200200103"));
        assert_eq!(GridCode::check_form("3701030020010"), Err(GridCodeError::Length(13)));
        assert_eq!(GridCode::check_form("37010300200100"), Err(GridCodeError::ZeroSequence));
    }

    #[test]
    fn rejects_another_communitys_division() {
        let err = GridCode::parse("37010200200103", "370103").unwrap_err();
        assert_eq!(err, GridCodeError::DivisionMismatch { expected: "370103".into(), found: "370102".into() });
        assert_eq!(err.to_string(), "the grid code starts with 370102, but the community's division code is 370103");
        assert_eq!(err.code(), "division_mismatch");
    }

    #[test]
    fn error_codes_are_distinct() {
        assert_eq!(GridCodeError::Length(3).code(), "length");
        assert_eq!(GridCodeError::Format.code(), "format");
        assert_eq!(GridCodeError::ZeroSequence.code(), "zero_sequence");
        assert!(GridCodeError::Length(3).to_string().contains("14 digits"));
    }

    #[test]
    fn street_digits_follow_the_street() {
        let code = GridCode::parse_in_street("37010300601201", "370103", "370103006").unwrap();
        assert_eq!(code.street_code(), "006");
        let err = GridCode::parse_in_street("37010300101201", "370103", "370103006").unwrap_err();
        assert_eq!(err.code(), "street_mismatch");
        assert_eq!(err, GridCodeError::StreetMismatch { expected: "370103006".into(), found: "001".into() });
        // The division is checked first; a placeholder street holds any street digits.
        let err = GridCode::parse_in_street("37010200601201", "370103", "370103006").unwrap_err();
        assert_eq!(err.code(), "division_mismatch");
        assert!(GridCode::parse_in_street("37010300101201", "370103", "370103000").is_ok());
        assert!(is_placeholder_street("370103000") && !is_placeholder_street("370103006"));
    }
}
