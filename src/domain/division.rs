//! GB/T 2260 administrative division codes: 2-digit province + 2-digit city + 2-digit county.

/// Province-level parts in use (GB/T 2260), 11 北京 … 82 澳门.
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", // 华北
    "21", "22", "23", // 东北
    "31", "32", "33", "34", "35", "36", "37", // 华东
    "41", "42", "43", "44", "45", "46", // 中南
    "50", "51", "52", "53", "54", // 西南
    "61", "62", "63", "64", "65", // 西北
    "71", "81", "82", // 台湾, 香港, 澳门
];

/// Whether `s` is a division code a community can sit in: 6 ASCII digits, a real province part
/// (11–82), and below province level (the last 4 digits are not `0000`, so `370000` 山东省 is
/// rejected while `370103` 市中区 and `441900` 东莞市, a city without counties, are accepted).
pub fn is_division_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) && PROVINCES.contains(&&s[..2]) && &s[2..] != "0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_codes() {
        for code in ["370103", "370102", "110101", "441900", "820001", "650102", "370100"] {
            assert!(is_division_code(code), "{code}");
        }
    }

    #[test]
    fn rejects_malformed_codes() {
        for code in ["", "37010", "3701030", "37010a", "３70103", " 370103", "370-03"] {
            assert!(!is_division_code(code), "{code:?}");
        }
    }

    #[test]
    fn rejects_unknown_provinces_and_province_level_codes() {
        for code in ["000000", "100103", "160103", "830000", "830101", "990101", "370000", "110000"] {
            assert!(!is_division_code(code), "{code}");
        }
    }
}
