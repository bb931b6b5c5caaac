//! Court, case and debtor identifiers (R20–R22, docs/RULES.md): parsing, validation and
//! masking. Every validator says what is wrong in words an officer can act on,
//! and never repeats a full identifier back.

use std::fmt;

use chrono::NaiveDate;

use crate::core::{
    error::quote,
    proto::{Debtor, debtor},
};

/// Case-type codes of enforcement cases (R20).
const ENFORCEMENT_TYPES: [&str; 7] = ["执", "执恢", "执保", "执异", "执复", "执监", "执协"];

/// Enforcement case types under which a court may query or control assets (R15).
const ACTING_TYPES: [&str; 3] = ["执", "执恢", "执保"];

/// Court-code province abbreviations, plus the Production and Construction
/// Corps (`兵`) and military courts (`军`).
const PROVINCES: &str = "京津冀晋内辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川黔云藏陕甘青宁新兵军";

/// A parsed case number such as `（2024）京0105执1234号`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseNumber {
    /// The year in the brackets.
    pub year: u16,
    /// The court code, e.g. `京0105`, `粤07`, `最高法`.
    pub court_code: String,
    /// The case-type code, e.g. `执`, `执恢`.
    pub case_type: String,
    /// The sequence number (leading zeros of the legacy form removed).
    pub sequence: u32,
}

impl CaseNumber {
    /// Parses any case number of R20's forms; the case need not be an enforcement case.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is empty; give the enforcement case number, e.g. （2024）京0105执1234号".into());
        }
        let rest = s.strip_prefix(['(', '（', '〔']).ok_or("must start with the year in brackets, e.g. （2024）")?;
        let (year, rest) = rest.split_once([')', '）', '〕']).ok_or("has no closing bracket after the year")?;
        let year: u16 = match year.parse() {
            Ok(y) if year.len() == 4 && (1949..=2100).contains(&y) => y,
            Ok(y) if year.len() == 4 => {
                return Err(format!("has year {y}; the year of a case runs from 1949 to 2100"));
            }
            _ => return Err(format!("has year `{}` in brackets; it must be four digits, e.g. 2024", quote(year))),
        };
        let (court_code, rest) = split_court_code(rest)?;
        if rest.starts_with('号') || rest.is_empty() {
            return Err("has no case-type code (e.g. 执) after the court code".into());
        }
        let rest = rest.strip_suffix('号').ok_or("must end with 号 after the sequence number")?;
        let digits_at = rest.find(|c: char| c.is_ascii_digit()).ok_or("has no sequence number before 号")?;
        let (kind, number) = rest.split_at(digits_at);
        let kind = kind.strip_suffix("字第").unwrap_or(kind);
        if kind.is_empty() || kind.chars().count() > 4 || !kind.chars().all(is_cjk) {
            return Err(format!("has case-type code `{}`; expected 1–3 Chinese characters such as 执", quote(kind)));
        }
        let sequence = match number.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ if number.chars().all(|c| c.is_ascii_digit()) => {
                return Err(format!(
                    "has sequence number `{}`; expected a number from 1 to {}",
                    quote(number),
                    u32::MAX
                ));
            }
            _ => return Err(format!("has sequence number `{}`; expected digits only, e.g. 1234", quote(number))),
        };
        // A specialised-trial character may precede the type code; enforcement
        // codes all start with 执, so the code is what follows it.
        let case_type = match kind.find('执') {
            Some(i) if i <= '执'.len_utf8() => kind[i..].to_string(),
            _ => kind.to_string(),
        };
        Ok(CaseNumber { year, court_code, case_type, sequence })
    }

    /// Parses a case number and requires an enforcement case that may query
    /// or control assets (执, 执恢, 执保; R15).
    pub fn parse_acting(input: &str) -> Result<Self, String> {
        let case = Self::parse(input)?;
        if !ENFORCEMENT_TYPES.contains(&case.case_type.as_str()) {
            return Err(format!(
                "is a `{}` case, not an enforcement case; assets are searched under an enforcement case (执, 执恢 or 执保)",
                case.case_type
            ));
        }
        if !ACTING_TYPES.contains(&case.case_type.as_str()) {
            return Err(format!(
                "is a `{}` case; only 执, 执恢 and 执保 cases may search or control assets",
                case.case_type
            ));
        }
        Ok(case)
    }
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

fn split_court_code(s: &str) -> Result<(String, &str), String> {
    if let Some(rest) = s.strip_prefix("最高法") {
        return Ok(("最高法".into(), rest));
    }
    let province = s.chars().next().filter(|c| PROVINCES.contains(*c)).ok_or_else(|| {
        "has no court code after the year; expected e.g. 京0105 (basic court), 粤07 (intermediate) or 京 (high court)"
            .to_string()
    })?;
    let after = &s[province.len_utf8()..];
    let digits = after.chars().take_while(char::is_ascii_digit).count();
    // A run of digits that is the sequence number itself (no type code between) is caught below.
    match digits {
        0 | 2 | 4 => {
            let (code, rest) = s.split_at(province.len_utf8() + digits);
            Ok((code.to_string(), rest))
        }
        _ => Err(format!(
            "has court code `{province}{}`; a court code has 0, 2 or 4 digits after the province",
            quote(&after[..digits])
        )),
    }
}

/// Validates a bare court code such as `京0105`, `粤07`, `京` or `最高法` (R20).
pub fn parse_court_code(input: &str) -> Result<String, String> {
    match split_court_code(input.trim())? {
        (code, "") => Ok(code),
        _ => Err(format!(
            "`{}` is not a court code; expected e.g. 京0105 (basic court), 粤07 (intermediate) or 京 (high court)",
            quote(input.trim())
        )),
    }
}

impl fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "（{}）{}{}{}号", self.year, self.court_code, self.case_type, self.sequence)
    }
}

/// A validated debtor identifier in normal form (upper case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DebtorId {
    /// A natural person's resident identity number (R21).
    Resident(String),
    /// An organisation's unified social credit code (R22).
    Organisation(String),
}

impl DebtorId {
    /// The identifier in normal form.
    pub fn as_str(&self) -> &str {
        match self {
            DebtorId::Resident(s) | DebtorId::Organisation(s) => s,
        }
    }

    /// As the proto carries it.
    pub fn to_proto(&self) -> debtor::Id {
        match self {
            DebtorId::Resident(s) => debtor::Id::ResidentId(s.clone()),
            DebtorId::Organisation(s) => debtor::Id::CreditCode(s.clone()),
        }
    }

    /// The identifier of a debtor already validated (the gateway's own copy); `None` if it has none.
    pub fn of(debtor: &Debtor) -> Option<DebtorId> {
        Some(match debtor.id.as_ref()? {
            debtor::Id::ResidentId(s) => DebtorId::Resident(s.clone()),
            debtor::Id::CreditCode(s) => DebtorId::Organisation(s.clone()),
        })
    }

    /// The masked form for logs and messages, e.g. `110105********1232`.
    pub fn masked(&self) -> Masked<'_> {
        Masked(self.as_str())
    }

    /// Reads a bare identifier, as a person types it: a valid resident
    /// identity number, otherwise a unified social credit code.
    pub fn detect(input: &str) -> Result<Self, String> {
        match parse_resident_id(input) {
            Ok(id) => Ok(id),
            Err(_) if !looks_like_resident_id(input) => parse_credit_code(input, false),
            Err(e) => Err(e),
        }
    }
}

/// Whether `s` has the shape of a resident ID (17 digits and a check character), valid or not.
pub fn looks_like_resident_id(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() == 18 && b[..17].iter().all(u8::is_ascii_digit) && matches!(b[17], b'0'..=b'9' | b'X' | b'x')
}

/// A masking wrapper: keeps the first six and last four characters
/// (R16: `110105********1234`).
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 10 {
            return f.write_str(&"*".repeat(chars.len()));
        }
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        write!(f, "{head}{}{tail}", "*".repeat(chars.len() - 10))
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// The GB 11643 check character of a resident identity number's first 17 digits (ASCII).
pub fn resident_id_check(digits: &[u8]) -> u8 {
    let sum: u32 = digits.iter().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w).sum();
    ID_CHECK[(sum % 11) as usize]
}

/// Validates a resident identity number (R21): 18 characters, a real birth
/// date, and the GB 11643 check character.
pub fn parse_resident_id(input: &str) -> Result<DebtorId, String> {
    let s = input.trim().to_ascii_uppercase();
    if s.chars().count() != 18 {
        return Err(format!(
            "has {} characters; a resident identity number has 18 (17 digits and a check character)",
            s.chars().count()
        ));
    }
    let bytes = s.as_bytes();
    if !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err("must have digits in its first 17 characters".into());
    }
    let birth = &s[6..14];
    let date_ok =
        NaiveDate::parse_from_str(birth, "%Y%m%d").ok().filter(|d| d.format("%Y").to_string().as_str() >= "1900");
    if date_ok.is_none() {
        // The digits themselves are not echoed: they are the part of the number that masking hides.
        return Err("has characters 7–14 that are not a real birth date (YYYYMMDD from 1900 on)".into());
    }
    let expected = resident_id_check(&bytes[..17]);
    if bytes[17] != expected {
        return Err(format!(
            "has check character `{}` but its first 17 digits give `{}`; re-read the number from the ID card",
            bytes[17] as char, expected as char
        ));
    }
    Ok(DebtorId::Resident(s))
}

const CODE_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const CODE_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// R21: a resident was born by `today` (the Beijing date); other debtors pass.
pub fn born_by(id: &DebtorId, today: NaiveDate) -> Result<(), String> {
    let DebtorId::Resident(s) = id else { return Ok(()) };
    match s.get(6..14).and_then(|birth| NaiveDate::parse_from_str(birth, "%Y%m%d").ok()) {
        Some(born) if born > today => {
            Err("has a birth date (characters 7–14) after today; re-read the number from the ID card".into())
        }
        _ => Ok(()),
    }
}

/// Validates a unified social credit code (R22). With `accept_unchecked`, a
/// code whose only fault is its check character is accepted (some early codes
/// legitimately fail it); the caller logs the override.
pub fn parse_credit_code(input: &str, accept_unchecked: bool) -> Result<DebtorId, String> {
    let s = input.trim().to_ascii_uppercase();
    if s.chars().count() != 18 {
        return Err(format!("has {} characters; a unified social credit code has 18", s.chars().count()));
    }
    let mut values = Vec::with_capacity(18);
    for (i, c) in s.chars().enumerate() {
        match CODE_ALPHABET.find(c) {
            Some(v) => values.push(v as u32),
            None => {
                return Err(format!(
                    "has `{c}` at position {}; credit codes use digits and capital letters except I, O, S, V and Z",
                    i + 1
                ));
            }
        }
    }
    let sum: u32 = values[..17].iter().zip(CODE_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    if values[17] != check && !accept_unchecked {
        let expected = CODE_ALPHABET.as_bytes()[check as usize] as char;
        return Err(format!(
            "has check character `{}` but its first 17 characters give `{expected}`; if this is a genuine early code, \
             set accept_unchecked_credit_code",
            &s[17..]
        ));
    }
    Ok(DebtorId::Organisation(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn r21_domain_vectors_are_valid() {
        for id in ["360426199101010071", "34052419800101001X", "34052419800101001x", "110105199001011232"] {
            assert!(parse_resident_id(id).is_ok(), "{id}");
        }
        assert_eq!(parse_resident_id("34052419800101001x").unwrap().as_str(), "34052419800101001X");
    }

    #[test]
    fn r21_rejects_wrong_check_impossible_date_and_length() {
        assert!(parse_resident_id("360426199101010072").unwrap_err().contains("check character"));
        // 1991-02-30 does not exist; check digit recomputed so only the date is wrong.
        let body = "36042619910230007";
        let id = format!("{body}{}", resident_id_check(body.as_bytes()) as char);
        assert!(parse_resident_id(&id).unwrap_err().contains("not a real birth date"));
        assert!(parse_resident_id("3604261991").unwrap_err().contains("18"));
        assert!(parse_resident_id("36042619910101007A").unwrap_err().contains("check character"));
        assert!(parse_resident_id("3604261991A1010071").unwrap_err().contains("digits"));
    }

    #[test]
    fn r22_domain_vector_and_override() {
        assert!(parse_credit_code("91110000600037341L", false).is_ok());
        let err = parse_credit_code("91110000600037341M", false).unwrap_err();
        assert!(err.contains("accept_unchecked_credit_code"), "{err}");
        assert!(parse_credit_code("91110000600037341M", true).is_ok());
        assert!(parse_credit_code("9111000060003734IL", true).unwrap_err().contains("`I`"));
        assert!(parse_credit_code("911100006000", false).unwrap_err().contains("18"));
    }

    #[test]
    fn detect_tells_persons_from_organisations() {
        assert!(matches!(DebtorId::detect("110105199001011232"), Ok(DebtorId::Resident(_))));
        assert!(matches!(DebtorId::detect("91110000600037341L"), Ok(DebtorId::Organisation(_))));
        assert!(DebtorId::detect("110105199001011233").unwrap_err().contains("check character"));
    }

    #[test]
    fn r16_masking_keeps_six_and_four() {
        assert_eq!(Masked("110105199001011232").to_string(), "110105********1232");
        assert_eq!(Masked("91110000600037341L").to_string(), "911100********341L");
        assert_eq!(Masked("123").to_string(), "***");
    }

    #[test]
    fn r20_accepts_the_documented_forms() {
        let c = CaseNumber::parse_acting("（2024）京0105执1234号").unwrap();
        assert_eq!((c.year, c.court_code.as_str(), c.case_type.as_str(), c.sequence), (2024, "京0105", "执", 1234));
        assert_eq!(CaseNumber::parse_acting("(2024)京0105执恢12号").unwrap().case_type, "执恢");
        assert_eq!(CaseNumber::parse_acting("〔2023〕粤0304执保88号").unwrap().court_code, "粤0304");
        assert_eq!(CaseNumber::parse_acting("（2023）粤07执5号").unwrap().court_code, "粤07");
        assert_eq!(CaseNumber::parse_acting("（2023）京执5号").unwrap().court_code, "京");
        assert_eq!(CaseNumber::parse_acting("（2022）最高法执3号").unwrap().court_code, "最高法");
        let legacy = CaseNumber::parse("(2015)苏执复字第00033号").unwrap();
        assert_eq!((legacy.case_type.as_str(), legacy.sequence), ("执复", 33));
        assert_eq!(CaseNumber::parse("（2016）京73知执1号").unwrap().case_type, "执");
    }

    #[test]
    fn r20_court_codes() {
        for good in ["京0105", "粤07", "京", "最高法", "兵0101"] {
            assert_eq!(parse_court_code(good).unwrap(), good);
        }
        for bad in ["", "京010", "X0105", "京0105执"] {
            assert!(parse_court_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn r20_rejects_bad_forms_and_non_enforcement_cases() {
        for (input, why) in [
            ("2024京0105执1234号", "brackets"),
            ("（2024京0105执1234号", "closing bracket"),
            ("（24）京0105执1234号", "four digits"),
            ("（2024）沪01050执1号", "0, 2 or 4 digits"),
            ("（2024）X0105执1号", "court code"),
            ("（2024）京0105执1234", "号"),
            ("（2024）京0105执号", "sequence number"),
            ("（2024）京0105民初1234号", "not an enforcement case"),
            ("（2024）京0105执异1号", "only 执, 执恢 and 执保"),
            ("", "empty"),
        ] {
            let err = CaseNumber::parse_acting(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }

    proptest! {
        #[test]
        fn validators_never_panic(s in "\\PC{0,40}") {
            let _ = CaseNumber::parse_acting(&s);
            let _ = parse_resident_id(&s);
            let _ = parse_credit_code(&s, true);
            let _ = DebtorId::detect(&s);
            let _ = Masked(&s).to_string();
        }

        #[test]
        fn one_changed_digit_is_always_caught(pos in 0usize..17, delta in 1u8..10) {
            let id = b"110105199001011232".to_vec();
            let mut bad = id.clone();
            bad[pos] = b'0' + (id[pos] - b'0' + delta) % 10;
            let bad = String::from_utf8(bad).unwrap();
            prop_assert!(parse_resident_id(&bad).is_err());
        }

        #[test]
        fn case_numbers_round_trip(year in 1990u16..2100, court in "[京粤沪][0-9]{4}", seq in 1u32..100000,
                                   kind in prop::sample::select(vec!["执", "执恢", "执保"])) {
            let text = format!("（{year}）{court}{kind}{seq}号");
            let parsed = CaseNumber::parse_acting(&text).unwrap();
            prop_assert_eq!(parsed.to_string(), text);
        }
    }
}
