//! Deterministic synthetic registry data. The same (registry, debtor) gives the
//! same assets on every run and every machine: the random generator is seeded
//! from a SHA-256 of the two names, and ChaCha's output is fixed by its spec.

use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::core::proto::{
    Aircraft, Asset, BankDeposit, Encumbrance, EncumbranceKind, Money, Patent, RealEstate, RegistryKind,
    SecuritiesHolding, Trademark, asset::Detail,
};

/// How much a debtor owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Nothing at any registry.
    None,
    /// One or two assets per registry.
    Few,
    /// Four to eight per registry.
    Many,
}

/// A named demo debtor from `config/demo-debtors.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoDebtor {
    /// Resident ID or credit code.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Asset profile.
    pub profile: Profile,
    /// What the debtor demonstrates.
    pub note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    debtors: Vec<DemoDebtor>,
}

/// The demo debtors, compiled in so every mock and every machine agree.
pub fn demo_debtors() -> Result<Vec<DemoDebtor>, toml::de::Error> {
    Ok(toml::from_str::<Fixture>(include_str!("../../../config/demo-debtors.toml"))?.debtors)
}

/// A generator seeded by `parts`: the same parts, the same draws, on every machine.
pub fn seeded(parts: &[&str]) -> ChaCha8Rng {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Whether `registry` holds anything for `debtor`, for a registry that holds
/// for `share` of debtors: the same answer every time.
pub fn holds(registry: &str, debtor: &str, share: f64) -> bool {
    seeded(&["holds", registry, debtor]).random_bool(share.clamp(0.0, 1.0))
}

/// The profile of a debtor not in the fixture: 30% none, 50% few, 20% many.
pub fn profile_of(debtor: &str, demo: &[DemoDebtor]) -> Profile {
    if let Some(d) = demo.iter().find(|d| d.id == debtor) {
        return d.profile;
    }
    match seeded(&["profile", debtor]).random_range(0..10) {
        0..=2 => Profile::None,
        3..=7 => Profile::Few,
        _ => Profile::Many,
    }
}

fn count(rng: &mut impl Rng, profile: Profile) -> usize {
    match profile {
        Profile::None => 0,
        Profile::Few => rng.random_range(0..=2),
        Profile::Many => rng.random_range(4..=8),
    }
}

/// Every asset `registry` holds for `debtor`.
pub fn assets(registry: &str, kind: RegistryKind, debtor: &str, profile: Profile) -> Vec<Asset> {
    let mut rng = seeded(&[registry, debtor]);
    let n = count(&mut rng, profile);
    let mut out: Vec<Asset> = match kind {
        RegistryKind::Bank => {
            let code = institution_code(registry);
            (0..n).map(|_| deposit(&mut rng, &code)).collect()
        }
        RegistryKind::RealEstate => (0..n).map(|_| real_estate(&mut rng)).collect(),
        RegistryKind::Ip => (0..n).map(|_| ip_right(&mut rng)).collect(),
        RegistryKind::Aviation => (0..n.div_ceil(3)).map(|_| aircraft(&mut rng)).collect(),
        RegistryKind::Securities => (0..n).map(|_| stock(&mut rng, debtor)).collect(),
        RegistryKind::Unspecified => Vec::new(),
    };
    // Fund units are known to the depository and, often, to the bank that sold them:
    // the same asset from two registries, which the gateway merges.
    let funds = fund_holdings(debtor, profile);
    match kind {
        RegistryKind::Securities => out.extend(funds),
        RegistryKind::Bank => out
            .extend(funds.into_iter().filter(|f| seeded(&[registry, debtor, &f.registry_reference]).random_bool(0.7))),
        _ => {}
    }
    out
}

/// A bank's 3-digit CNAPS code, derived from its registry name.
fn institution_code(registry: &str) -> String {
    format!("{}", seeded(&["bank", registry]).random_range(102..=999))
}

fn digits(rng: &mut impl Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

fn pick<'a>(rng: &mut impl Rng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn deposit(rng: &mut impl Rng, bank_code: &str) -> Asset {
    let account = format!("6222{}", digits(rng, 15));
    let currency = if rng.random_bool(0.85) { "CNY" } else { pick(rng, &["USD", "HKD", "EUR"]) };
    // Log-uniform balances: most accounts hold little, a few hold millions.
    let balance = 10f64.powf(rng.random_range(0.0..9.0)) as i64;
    let account_type = pick(rng, &["活期", "定期", "通知存款"]);
    let branch = format!("{}支行", pick(rng, &["朝阳", "海淀", "福田", "南山", "浦东", "天河", "西湖"]));
    Asset {
        registry_reference: format!("ACC{}", digits(rng, 10)),
        description: format!("{account_type}账户 {}…{} {currency}", &account[..4], &account[account.len() - 4..]),
        detail: Some(Detail::Deposit(BankDeposit {
            bank_code: bank_code.to_string(),
            account_number: account,
            account_type: account_type.into(),
            balance: Some(Money { currency: currency.into(), minor_units: balance }),
            branch,
        })),
        encumbrances: Vec::new(),
    }
}

fn real_estate(rng: &mut impl Rng) -> Asset {
    let (city, prefix, districts): (&str, &str, &[&str]) = *[
        ("北京", "京", &["朝阳区", "海淀区", "东城区"][..]),
        ("上海", "沪", &["浦东新区", "徐汇区", "静安区"][..]),
        ("深圳", "粤", &["南山区", "福田区", "宝安区"][..]),
        ("杭州", "浙", &["西湖区", "滨江区", "上城区"][..]),
    ]
    .choose(rng)
    .unwrap_or(&("北京", "京", &["朝阳区"][..]));
    let district = pick(rng, districts);
    let unit = format!("{}GB{}F{}", digits(rng, 12), digits(rng, 5), digits(rng, 8));
    let land_use = pick(rng, &["住宅", "住宅", "商业", "办公", "工业"]);
    let address = format!(
        "{city}市{district}{}路{}号{}栋{}室",
        pick(rng, &["建国", "人民", "解放", "中山", "学院"]),
        rng.random_range(1..300),
        rng.random_range(1..20),
        rng.random_range(101..2800)
    );
    Asset {
        registry_reference: format!("RE{}", digits(rng, 10)),
        description: format!("{land_use} {address}"),
        detail: Some(Detail::RealEstate(RealEstate {
            certificate_number: format!(
                "{prefix}({}){district}不动产权第{}号",
                rng.random_range(2016..2025),
                digits(rng, 7)
            ),
            unit_number: unit.clone(),
            address,
            area_square_metres: f64::from(rng.random_range(3_000u32..30_000)) / 100.0,
            land_use: land_use.into(),
            share_basis_points: *[10_000u32, 10_000, 5_000, 3_000].choose(rng).unwrap_or(&10_000),
        })),
        encumbrances: mortgage(&unit),
    }
}

/// A unit's mortgage, if it has one: half the units, read off the unit number (not drawn, so the
/// rest of the debtor's data stays as it was).
fn mortgage(unit: &str) -> Vec<Encumbrance> {
    let n: u64 = unit.chars().rev().take(6).filter_map(|c| c.to_digit(10)).fold(0, |n, d| n * 10 + u64::from(d));
    let lenders = ["中国建设银行", "中国工商银行", "招商银行", "中国银行"];
    let registered =
        chrono::DateTime::from_timestamp(1_451_606_400 + i64::try_from(n % 3_000).unwrap_or(0) * 86_400, 0);
    match n % 2 {
        0 => vec![Encumbrance {
            kind: EncumbranceKind::Mortgage as i32,
            holder: lenders[usize::try_from(n % 4).unwrap_or(0)].into(),
            amount: Some(Money {
                currency: "CNY".into(),
                minor_units: i64::try_from(n % 300 + 50).unwrap_or(50) * 1_000_000,
            }),
            registered_at: registered.map(crate::core::proto::ts),
        }],
        _ => Vec::new(),
    }
}

fn ip_right(rng: &mut impl Rng) -> Asset {
    let reference = format!("IP{}", digits(rng, 10));
    if rng.random_bool(0.6) {
        let (kind_digit, patent_type) =
            *[(1, "发明"), (2, "实用新型"), (3, "外观设计")].choose(rng).unwrap_or(&(1, "发明"));
        let body = format!("{}{kind_digit}{}", rng.random_range(2005..2025), digits(rng, 7));
        let number = format!("ZL{body}.{}", patent_check_digit(&body));
        let title = format!(
            "一种{}{}",
            pick(rng, &["高效", "低功耗", "可折叠", "智能", "模块化"]),
            pick(rng, &["电池管理装置", "图像识别方法", "输送机构", "密封结构", "数据压缩方法"])
        );
        Asset {
            registry_reference: reference,
            description: format!("{patent_type}专利 {title}"),
            detail: Some(Detail::Patent(Patent {
                patent_number: number,
                title,
                patent_type: patent_type.into(),
                status: pick(rng, &["专利权维持", "专利权维持", "质押"]).into(),
            })),
            encumbrances: Vec::new(),
        }
    } else {
        let mark = pick(rng, &["云帆", "金穗", "星辰", "HUAXIA", "青禾"]).to_string();
        let class = rng.random_range(1..=45);
        Asset {
            registry_reference: reference,
            description: format!("商标 {mark} 第{class}类"),
            detail: Some(Detail::Trademark(Trademark {
                registration_number: rng.random_range(1_000_000..60_000_000u32).to_string(),
                mark,
                nice_class: class,
                status: "注册".into(),
            })),
            encumbrances: Vec::new(),
        }
    }
}

/// The check digit of a CNIPA application number (weights 2–9 repeating, mod 11, 10 → X).
fn patent_check_digit(body: &str) -> char {
    let sum: u32 =
        body.bytes().zip([2, 3, 4, 5, 6, 7, 8, 9].iter().cycle()).map(|(b, w)| u32::from(b - b'0') * w).sum();
    match sum % 11 {
        10 => 'X',
        d => char::from(b'0' + d as u8),
    }
}

fn aircraft(rng: &mut impl Rng) -> Asset {
    let (manufacturer, types): (&str, &[&str]) = *[
        ("Airbus", &["A320-214", "A321-231", "A330-343"][..]),
        ("Boeing", &["737-800", "787-9"][..]),
        ("COMAC", &["ARJ21-700", "C919"][..]),
        ("Cessna", &["172S", "208B"][..]),
    ]
    .choose(rng)
    .unwrap_or(&("COMAC", &["C919"][..]));
    let aircraft_type = pick(rng, types);
    let mark = format!("B-{}", digits(rng, 4));
    Asset {
        registry_reference: format!("AC{}", digits(rng, 8)),
        description: format!("{manufacturer} {aircraft_type} {mark}"),
        detail: Some(Detail::Aircraft(Aircraft {
            registration_mark: mark,
            aircraft_type: aircraft_type.into(),
            serial_number: digits(rng, 5),
            manufacturer: manufacturer.into(),
        })),
        encumbrances: Vec::new(),
    }
}

const STOCKS: [(&str, &str, &str); 6] = [
    ("600519", "贵州茅台", "SSE"),
    ("601318", "中国平安", "SSE"),
    ("000001", "平安银行", "SZSE"),
    ("300750", "宁德时代", "SZSE"),
    ("688981", "中芯国际", "SSE"),
    ("830799", "艾融软件", "BSE"),
];

fn stock(rng: &mut impl Rng, debtor: &str) -> Asset {
    let (code, name, market) = *STOCKS.choose(rng).unwrap_or(&STOCKS[0]);
    // One securities account per debtor and market, as the depository assigns them.
    let account =
        format!("{}{}", if market == "SSE" { "A" } else { "0" }, digits(&mut seeded(&["account", market, debtor]), 9));
    holding(format!("SEC{}", digits(rng, 10)), account, code, name, rng.random_range(1..2000) * 100, market)
}

/// Fund units held in the debtor's fund account, identical wherever reported.
fn fund_holdings(debtor: &str, profile: Profile) -> Vec<Asset> {
    let mut rng = seeded(&["funds", debtor]);
    let n = match profile {
        Profile::None => 0,
        Profile::Few => rng.random_range(0..=1),
        Profile::Many => rng.random_range(1..=2),
    };
    let account = format!("F{}", digits(&mut rng, 11));
    (0..n)
        .map(|_| {
            let (code, name) = *[("110011", "易方达中小盘"), ("000961", "天弘沪深300"), ("161725", "招商中证白酒")]
                .choose(&mut rng)
                .unwrap_or(&("110011", "易方达中小盘"));
            holding(format!("FUND-{code}"), account.clone(), code, name, rng.random_range(1_000..500_000), "OF")
        })
        .collect()
}

fn holding(reference: String, account: String, code: &str, name: &str, quantity: i64, market: &str) -> Asset {
    Asset {
        registry_reference: reference,
        description: format!("{name}({code}) {quantity} 份/股"),
        detail: Some(Detail::Securities(SecuritiesHolding {
            account,
            security_code: code.into(),
            security_name: name.into(),
            quantity,
            market: market.into(),
        })),
        encumbrances: pledge(quantity, market),
    }
}

/// A listed holding's pledge, if it has one: a fifth of them, read off the quantity.
fn pledge(quantity: i64, market: &str) -> Vec<Encumbrance> {
    match (market, quantity % 5) {
        ("OF", _) | (_, 1..) => Vec::new(),
        _ => vec![Encumbrance {
            kind: EncumbranceKind::Pledge as i32,
            holder: "中信证券股份有限公司".into(),
            amount: Some(Money { currency: "CNY".into(), minor_units: quantity * 500 }),
            registered_at: chrono::DateTime::from_timestamp(1_600_000_000 + quantity * 60, 0)
                .map(crate::core::proto::ts),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_registry_and_debtor_give_the_same_assets() {
        let a = assets("bank-a", RegistryKind::Bank, "110105199001011232", Profile::Many);
        assert_eq!(a, assets("bank-a", RegistryKind::Bank, "110105199001011232", Profile::Many));
        assert!(!a.is_empty());
        assert_ne!(a, assets("bank-b", RegistryKind::Bank, "110105199001011232", Profile::Many));
    }

    #[test]
    fn none_profile_has_nothing_anywhere() {
        for kind in RegistryKind::ALL {
            assert!(assets("r", kind, "360426199101010071", Profile::None).is_empty());
        }
    }

    #[test]
    fn fixture_parses_and_ids_are_valid() {
        let demo = demo_debtors().unwrap();
        assert!(demo.len() >= 5);
        for d in &demo {
            crate::core::identifiers::DebtorId::detect(&d.id).unwrap();
            assert_eq!(profile_of(&d.id, &demo), d.profile);
        }
    }

    #[test]
    fn patent_numbers_carry_a_valid_check_digit() {
        // 2·2+0·3+0·4+4·5+1·6+0·7+0·8+1·9+6·2+8·3+2·4+0·5 = 83, and 83 mod 11 = 6.
        assert_eq!(patent_check_digit("200410016820"), '6');
        // 2·2+0·3+1·4+9·5+1·6+0·7+1·8+2·9+3·2+4·3+5·4+6·5 = 153, 153 mod 11 = 10 → X.
        assert_eq!(patent_check_digit("201910123456"), 'X');
    }
}
