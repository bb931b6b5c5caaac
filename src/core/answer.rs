//! The field rules of a registry's answer, by asset kind: what a partner
//! must send (`docs/PARTNERS.md`) and what the gateway relays to courts. The
//! gateway's registry clients drop a record that breaks one (the rest of the
//! answer stands) and `assetgw conformance` checks partners against the same
//! function.

use crate::core::proto::{Asset, AssetKind, Encumbrance, EncumbranceKind, Money, asset::Detail};

/// Most characters of a free-text field (a description, an address, a title).
const TEXT_CHARS: usize = 512;

/// Most characters of a code or a reference.
const CODE_CHARS: usize = 64;

/// Currencies a deposit may be held in (ISO 4217).
const CURRENCIES: [&str; 12] = ["CNY", "USD", "EUR", "HKD", "JPY", "GBP", "MOP", "TWD", "AUD", "CAD", "CHF", "SGD"];

/// Securities markets: Shanghai, Shenzhen, Beijing, and open-end funds.
const MARKETS: [&str; 4] = ["SSE", "SZSE", "BSE", "OF"];

/// The first field rule a record breaks, with its facts; said for a partner.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Broken {
    /// No detail, so no kind and no identity.
    #[error("an asset has no detail")]
    NoDetail,
    /// The fields that identify an asset of its kind are empty.
    #[error("a {} asset lacks its identifying fields", .0.short_name())]
    Unidentified(AssetKind),
    /// Free text over its length.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its most characters.
        max: usize,
    },
    /// Free text with a character that hides or reorders what is shown.
    #[error("{field} holds the control or bidirectional character U+{code:04X}")]
    Hidden {
        /// The field.
        field: &'static str,
        /// The character's code point.
        code: u32,
    },
    /// An identifier not of its documented form.
    #[error("{field} is not {} characters of its documented form", length(*.min, *.max))]
    Form {
        /// The field.
        field: &'static str,
        /// Its fewest characters.
        min: usize,
        /// Its most characters.
        max: usize,
    },
    /// A patent number not `ZL` + 8 to 12 digits + `.` + a check character.
    #[error("patent.patent_number is not `ZL` + 8 to 12 digits + `.` + a check character")]
    PatentNumber,
    /// An aircraft mark not `B-` and four digits or capitals.
    #[error("aircraft.registration_mark is not `B-` and 4 digits or capital letters")]
    RegistrationMark,
    /// A required field is missing.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A currency outside ISO 4217's that deposits are held in.
    #[error("{0}.currency is not one of {currencies}", currencies = CURRENCIES.join(", "))]
    Currency(&'static str),
    /// A market that is none of the securities markets.
    #[error("securities.market is not one of {}", MARKETS.join(", "))]
    Market,
    /// A number outside its range.
    #[error("{field} is {value}; {range}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// What it holds.
        value: String,
        /// Its range, said for a partner.
        range: &'static str,
    },
    /// A record of a kind the registry does not declare.
    #[error("a {} asset, which this registry does not declare", .0.short_name())]
    Undeclared(AssetKind),
}

fn length(min: usize, max: usize) -> String {
    if min == max { format!("{min}") } else { format!("{min} to {max}") }
}

fn out_of_range(field: &'static str, value: impl ToString, range: &'static str) -> Broken {
    Broken::OutOfRange { field, value: value.to_string(), range }
}

/// Whether `asset` keeps every field rule of its kind, and its encumbrances theirs; the first broken one.
pub fn check(asset: &Asset) -> Result<(), Broken> {
    text("registry_reference", &asset.registry_reference, CODE_CHARS)?;
    text("description", &asset.description, TEXT_CHARS)?;
    detail(asset)?;
    asset.encumbrances.iter().try_for_each(encumbrance)
}

/// A claim secured on the asset: its kind, a holder, an amount and a registration time.
fn encumbrance(e: &Encumbrance) -> Result<(), Broken> {
    if e.kind() == EncumbranceKind::Unspecified {
        return Err(Broken::Missing("encumbrances.kind"));
    }
    if e.holder.trim().is_empty() {
        return Err(Broken::Missing("encumbrances.holder"));
    }
    text("encumbrances.holder", &e.holder, TEXT_CHARS)?;
    money("encumbrances.amount", e.amount.as_ref())?;
    e.registered_at.as_ref().map(|_| ()).ok_or(Broken::Missing("encumbrances.registered_at"))
}

/// The detail's rules, by its kind.
fn detail(asset: &Asset) -> Result<(), Broken> {
    match &asset.detail {
        None => Err(Broken::NoDetail),
        Some(Detail::Deposit(d)) => {
            code("deposit.bank_code", &d.bank_code, 3, 3, |c| c.is_ascii_digit())?;
            code("deposit.account_number", &d.account_number, 1, 34, |c| c.is_ascii_digit())?;
            text("deposit.account_type", &d.account_type, CODE_CHARS)?;
            text("deposit.branch", &d.branch, TEXT_CHARS)?;
            money("deposit.balance", d.balance.as_ref())
        }
        Some(Detail::RealEstate(r)) => {
            code("real_estate.unit_number", &r.unit_number, 28, 28, |c| c.is_ascii_digit() || c.is_ascii_uppercase())?;
            text("real_estate.certificate_number", &r.certificate_number, CODE_CHARS)?;
            text("real_estate.address", &r.address, TEXT_CHARS)?;
            text("real_estate.land_use", &r.land_use, CODE_CHARS)?;
            if !(r.area_square_metres.is_finite() && r.area_square_metres >= 0.0) {
                return Err(out_of_range(
                    "real_estate.area_square_metres",
                    r.area_square_metres,
                    "an area is 0 or more",
                ));
            }
            if !(1..=10_000).contains(&r.share_basis_points) {
                return Err(out_of_range(
                    "real_estate.share_basis_points",
                    r.share_basis_points,
                    "a share is 1 to 10000",
                ));
            }
            Ok(())
        }
        Some(Detail::Patent(p)) => {
            let well_formed =
                p.patent_number.strip_prefix("ZL").and_then(|n| n.split_once('.')).is_some_and(|(body, check)| {
                    (8..=12).contains(&body.len())
                        && body.chars().all(|c| c.is_ascii_digit())
                        && check.len() == 1
                        && check.chars().all(|c| c.is_ascii_digit() || c == 'X')
                });
            if !well_formed {
                return Err(Broken::PatentNumber);
            }
            text("patent.title", &p.title, TEXT_CHARS)?;
            text("patent.patent_type", &p.patent_type, CODE_CHARS)?;
            text("patent.status", &p.status, CODE_CHARS)
        }
        Some(Detail::Trademark(t)) => {
            code("trademark.registration_number", &t.registration_number, 1, 10, |c| c.is_ascii_digit())?;
            text("trademark.mark", &t.mark, TEXT_CHARS)?;
            text("trademark.status", &t.status, CODE_CHARS)?;
            if !(1..=45).contains(&t.nice_class) {
                return Err(out_of_range("trademark.nice_class", t.nice_class, "Nice classes run 1 to 45"));
            }
            Ok(())
        }
        Some(Detail::Aircraft(a)) => {
            let mark = a.registration_mark.strip_prefix("B-").unwrap_or_default();
            if mark.len() != 4 || !mark.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
                return Err(Broken::RegistrationMark);
            }
            text("aircraft.aircraft_type", &a.aircraft_type, CODE_CHARS)?;
            text("aircraft.serial_number", &a.serial_number, CODE_CHARS)?;
            text("aircraft.manufacturer", &a.manufacturer, CODE_CHARS)
        }
        Some(Detail::Securities(s)) => {
            code("securities.account", &s.account, 1, 20, |c| c.is_ascii_alphanumeric())?;
            code("securities.security_code", &s.security_code, 6, 6, |c| c.is_ascii_digit())?;
            text("securities.security_name", &s.security_name, CODE_CHARS)?;
            if s.quantity < 0 {
                return Err(out_of_range("securities.quantity", s.quantity, "a holding is 0 or more"));
            }
            if !MARKETS.contains(&s.market.as_str()) {
                return Err(Broken::Market);
            }
            Ok(())
        }
    }
}

/// Free text: at most `max` characters, none of them a control or bidirectional-formatting character.
fn text(field: &'static str, value: &str, max: usize) -> Result<(), Broken> {
    if value.chars().count() > max {
        return Err(Broken::TooLong { field, max });
    }
    if let Some(c) = value.chars().find(|c| c.is_control() || is_bidi(*c)) {
        return Err(Broken::Hidden { field, code: u32::from(c) });
    }
    Ok(())
}

/// An identifier: `min` to `max` characters, each allowed by `allowed`.
fn code(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), Broken> {
    let n = value.chars().count();
    if !(min..=max).contains(&n) || !value.chars().all(allowed) {
        return Err(Broken::Form { field, min, max });
    }
    Ok(())
}

fn money(field: &'static str, value: Option<&Money>) -> Result<(), Broken> {
    let m = value.ok_or(Broken::Missing(field))?;
    if !CURRENCIES.contains(&m.currency.as_str()) {
        return Err(Broken::Currency(field));
    }
    if m.minor_units < 0 {
        return Err(out_of_range(field, m.minor_units, "an amount is 0 or more"));
    }
    Ok(())
}

/// Characters that reorder text on screen (an account number shown reversed).
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::proto::BankDeposit;

    fn deposit(account: &str, minor_units: i64, currency: &str) -> Asset {
        Asset {
            detail: Some(Detail::Deposit(BankDeposit {
                bank_code: "102".into(),
                account_number: account.into(),
                balance: Some(Money { currency: currency.into(), minor_units }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn each_broken_rule_is_named() {
        assert_eq!(check(&deposit("6222001", 5, "CNY")), Ok(()));
        let said = |a: &Asset| check(a).unwrap_err().to_string();
        assert!(said(&deposit("6222001", -5, "CNY")).contains("0 or more"));
        assert_eq!(
            check(&deposit("6222\u{202E}001", 5, "CNY")),
            Err(Broken::Form { field: "deposit.account_number", min: 1, max: 34 })
        );
        assert_eq!(check(&deposit("6222001", 5, "XXX")), Err(Broken::Currency("deposit.balance")));
        let long = Asset { description: "x".repeat(5_000), ..deposit("6222001", 5, "CNY") };
        assert!(said(&long).contains("description is longer"));
        let bidi = Asset { description: "abc\u{202E}def".into(), ..deposit("6222001", 5, "CNY") };
        assert_eq!(check(&bidi), Err(Broken::Hidden { field: "description", code: 0x202E }));
        assert!(said(&bidi).contains("U+202E"));
    }

    #[test]
    fn an_encumbrance_names_its_kind_holder_amount_and_registration() {
        let mortgage = Encumbrance {
            kind: EncumbranceKind::Mortgage as i32,
            holder: "中国建设银行".into(),
            amount: Some(Money { currency: "CNY".into(), minor_units: 100_000_000 }),
            registered_at: Some(prost_types::Timestamp { seconds: 1_600_000_000, nanos: 0 }),
        };
        let with = |e: Encumbrance| Asset { encumbrances: vec![e], ..deposit("6222001", 5, "CNY") };
        assert_eq!(check(&with(mortgage.clone())), Ok(()));
        let broken = [
            (Encumbrance { kind: 0, ..mortgage.clone() }, Broken::Missing("encumbrances.kind")),
            (Encumbrance { holder: "  ".into(), ..mortgage.clone() }, Broken::Missing("encumbrances.holder")),
            (Encumbrance { registered_at: None, ..mortgage.clone() }, Broken::Missing("encumbrances.registered_at")),
            (
                Encumbrance { amount: Some(Money { currency: "CNY".into(), minor_units: -1 }), ..mortgage.clone() },
                out_of_range("encumbrances.amount", -1, "an amount is 0 or more"),
            ),
        ];
        for (e, why) in broken {
            assert_eq!(check(&with(e)), Err(why));
        }
    }
}
