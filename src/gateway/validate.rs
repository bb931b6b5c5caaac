//! Request validation shared by the search and seizure services: every bad
//! field of a request is collected, then the request fails once with all of
//! them (`INVALID_ARGUMENT` with one violation per field), so a court fixes
//! everything in one go. Identifiers follow R20–R22.

use chrono::NaiveDate;
use tracing::warn;

use crate::{
    core::{
        error::{Error, Violation},
        identifiers::{self, CaseNumber, DebtorId},
        proto::{AssetKind, Debtor, debtor},
    },
    ledger::rules::{BANKRUPTCY_TYPES, MAX_AMOUNT},
};

/// The bad fields of one request.
#[derive(Debug, Default)]
pub struct Checks(Vec<Violation>);

impl Checks {
    /// Notes that `field` is bad.
    pub fn bad(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation { field: field.into(), description: description.into() });
    }

    /// An enforcement case number the caller may act under (R20, R15's case types); a bankruptcy
    /// case places no seizures (R27).
    pub fn case(&mut self, field: &str, input: &str) -> Option<CaseNumber> {
        match CaseNumber::parse(input) {
            Ok(case) if BANKRUPTCY_TYPES.contains(&case.case_type.as_str()) => {
                let why = format!(
                    "is a `{}` case: a bankruptcy court searches and reads under it, but places no enforcement \
                     seizures (R27)",
                    case.case_type
                );
                self.bad(field, why);
                None
            }
            _ => CaseNumber::parse_acting(input).map_err(|e| self.bad(field, e)).ok(),
        }
    }

    /// A case a court reads or searches under: an enforcement case, or a bankruptcy case (R27).
    pub fn reading_case(&mut self, field: &str, input: &str) -> Option<CaseNumber> {
        match CaseNumber::parse(input) {
            Ok(case) if BANKRUPTCY_TYPES.contains(&case.case_type.as_str()) => Some(case),
            _ => CaseNumber::parse_acting(input).map_err(|e| self.bad(field, e)).ok(),
        }
    }

    /// A bankruptcy case number (破申 or 破; R20, R25–R27).
    pub fn bankruptcy_case(&mut self, field: &str, input: &str) -> Option<CaseNumber> {
        match CaseNumber::parse(input) {
            Ok(case) if BANKRUPTCY_TYPES.contains(&case.case_type.as_str()) => Some(case),
            Ok(case) => {
                let why =
                    format!("is a `{}` case; a bankruptcy decision is taken under a 破申 or 破 case", case.case_type);
                self.bad(field, why);
                None
            }
            Err(e) => {
                self.bad(field, e);
                None
            }
        }
    }

    /// A court code (R20).
    pub fn court(&mut self, field: &str, input: &str) -> Option<String> {
        identifiers::parse_court_code(input).map_err(|e| self.bad(field, e)).ok()
    }

    /// An amount or quantity: 1 to [`MAX_AMOUNT`] (minor units or units).
    pub fn amount(&mut self, field: &str, value: i64, what: &str) {
        if !(1..=MAX_AMOUNT).contains(&value) {
            self.bad(field, format!("{what}: 1 to {MAX_AMOUNT} minor units or units, not {value}"));
        }
    }

    /// A field that must not be blank.
    pub fn present(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.bad(field, "is required");
        }
    }

    /// An asset kind other than unspecified.
    pub fn kind(&mut self, field: &str, value: i32) -> AssetKind {
        match AssetKind::try_from(value) {
            Ok(k) if k != AssetKind::Unspecified => k,
            _ => {
                self.bad(field, format!("{value} is not an asset kind"));
                AssetKind::Unspecified
            }
        }
    }

    /// One debtor (R21, R22), with its identifier normalised; `today` is the Beijing date.
    pub fn debtor(&mut self, field: &str, d: &Debtor, today: NaiveDate) -> Option<(DebtorId, Debtor)> {
        let (name, parsed) = match &d.id {
            Some(debtor::Id::ResidentId(id)) => (
                "resident_id",
                identifiers::parse_resident_id(id).and_then(|id| identifiers::born_by(&id, today).map(|()| id)),
            ),
            Some(debtor::Id::CreditCode(code)) => ("credit_code", credit_code(code, d.accept_unchecked_credit_code)),
            None => ("id", Err("is missing; set resident_id or credit_code".into())),
        };
        let id = parsed.map_err(|e| self.bad(format!("{field}.{name}"), e)).ok()?;
        Some((id.clone(), Debtor { id: Some(id.to_proto()), ..d.clone() }))
    }

    /// Fails with every bad field, or hands back what was validated.
    pub fn done<T>(self, validated: Option<T>) -> Result<T, Error> {
        match validated {
            Some(v) if self.0.is_empty() => Ok(v),
            // A field that failed always noted a violation; `None` without one is a bug, said as such.
            _ if self.0.is_empty() => Err(Error::Internal("a validated field is missing".into())),
            _ => Err(Error::InvalidArgument(self.0)),
        }
    }
}

/// A single bad field, as an error.
pub fn violation(field: &str, description: &str) -> Error {
    Error::InvalidArgument(vec![Violation { field: field.into(), description: description.into() }])
}

/// A credit code, with the R22 checksum override logged when it is what let the code through.
fn credit_code(code: &str, accept_unchecked: bool) -> Result<DebtorId, String> {
    let strict = identifiers::parse_credit_code(code, false);
    match strict {
        Err(_) if accept_unchecked => {
            let relaxed = identifiers::parse_credit_code(code, true)?;
            warn!(debtor = %relaxed.masked(), "credit code fails its checksum; searched on the caller's override (R22)");
            Ok(relaxed)
        }
        other => other,
    }
}
