//! The seizure ledger's configuration: where it lives, how often it is swept
//! and verified, and the legal settings its rules take (terms and promotion,
//! R3–R6; enterprise legal persons and lifting, R24–R25; series designation,
//! R23; distribution and its objection periods, R28–R29; re-searches of
//! terminated cases, R30).

use std::time::Duration;

use serde::Deserialize;

use chrono::NaiveDate;

use crate::core::{
    clock::{BeijingHours, Holidays},
    proto::AssetKind,
};

/// The seizure ledger's storage and legal terms.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LedgerConfig {
    /// `sqlite://data/ledger.db` (embedded; the directory is created) or
    /// `postgres://user@host/db` (shared by many gateway replicas).
    pub url: String,
    /// How often lapsed seizures are swept into events (reads apply lapses anyway).
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How long a court's request id is remembered: a retry within it is answered from the stored reply, a
    /// reuse after it is a new request. Purged by the sweeper.
    #[serde(with = "humantime_serde")]
    pub request_window: Duration,
    /// How often the gateway verifies every asset's invariants (what `assetgw ledger verify` checks) and
    /// exports what it finds as a metric; `0s` never. It reads the whole ledger: on a large one, hourly or less.
    #[serde(with = "humantime_serde")]
    pub verify_interval: Duration,
    /// Credit-code prefixes of enterprise legal persons, whom bankruptcy law reaches (R24–R27): `91`
    /// enterprises and `93` farmers' cooperatives; `92` individual businesses follow the rules for persons.
    pub enterprise_prefixes: Vec<String>,
    /// Who lifts the seizures on a debtor whose bankruptcy is accepted (R25).
    pub bankruptcy_lifting: Lifting,
    /// Whether a series designation moves the preservation cases (执保) it does not list (R23).
    pub series_with_preservation: bool,
    /// Re-searches of a debtor due within this of one already due are brought forward and served by
    /// the same registry calls (R30).
    #[serde(with = "humantime_serde")]
    pub research_window: Duration,
    /// Re-searches a court starts per Beijing day, apart from its daily search quota (R30); the
    /// rest start the next day.
    pub research_allowance: u32,
    /// The Beijing hours the day's due re-searches are spread over, such as `22:00-06:00` (the
    /// night); unset: any hour, as fast as the registries' rates allow (R30).
    pub research_hours: Option<BeijingHours>,
    /// The first seizer's bonus under pro-rata sharing, in percent of its share (R28; default 0, some high
    /// courts allow up to 20).
    pub first_seizure_bonus_percent: u32,
    /// Public holidays (Beijing dates) an objection period does not end on, beside weekends (R29).
    pub holidays: Vec<NaiveDate>,
    /// Saturdays and Sundays worked in place of holidays (调休): a period may end on them (R29).
    pub working_weekends: Vec<NaiveDate>,
    /// Maximum terms in months by asset class (R5) and the promotion convention (R3).
    pub terms: Terms,
}

impl LedgerConfig {
    /// The calendar R29's periods end by.
    pub fn holidays(&self) -> Holidays {
        Holidays { dates: self.holidays.clone(), working_weekends: self.working_weekends.clone() }
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/ledger.db".into(),
            sweep_interval: Duration::from_secs(60),
            request_window: Duration::from_secs(7 * 86_400),
            verify_interval: Duration::from_secs(3600),
            enterprise_prefixes: vec!["91".into(), "93".into()],
            bankruptcy_lifting: Lifting::HoldingCourts,
            series_with_preservation: false,
            research_window: Duration::from_secs(7 * 86_400),
            research_allowance: 2000,
            research_hours: None,
            first_seizure_bonus_percent: 0,
            holidays: Vec::new(),
            working_weekends: Vec::new(),
            terms: Terms::default(),
        }
    }
}

/// Maximum terms in months by asset class (R5) and the promotion convention (R3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Terms {
    /// Bank deposits (default 12: one year).
    pub deposit: u32,
    /// Registered movables such as aircraft (default 24).
    pub aircraft: u32,
    /// Real estate (default 36).
    pub real_estate: u32,
    /// Patents and trademarks (default 36; IP preservation has used 6-month rounds).
    pub ip: u32,
    /// Securities and fund units (default 36).
    pub securities: u32,
    /// Term of a seizure promoted from waiting: `fresh` or `order_end`.
    pub on_promotion: PromotionTerm,
}

impl Default for Terms {
    fn default() -> Self {
        Self { deposit: 12, aircraft: 24, real_estate: 36, ip: 36, securities: 36, on_promotion: PromotionTerm::Fresh }
    }
}

impl Terms {
    /// The term for an asset kind, in months.
    pub fn months(&self, kind: AssetKind) -> u32 {
        match kind {
            AssetKind::Deposit => self.deposit,
            AssetKind::Aircraft => self.aircraft,
            AssetKind::RealEstate => self.real_estate,
            AssetKind::Patent | AssetKind::Trademark => self.ip,
            AssetKind::Securities | AssetKind::Unspecified => self.securities,
        }
    }
}

/// When a promoted seizure's term starts (R3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionTerm {
    /// A fresh full term from the moment of promotion (the default).
    Fresh,
    /// The end date written in the court's order: placement plus one term.
    OrderEnd,
}

/// Who lifts the seizures on a bankrupt debtor's assets (R25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifting {
    /// Each holding court lifts its own within 7 days; the rest are listed as overdue (the default).
    HoldingCourts,
    /// The acceptance lifts them all, with a release order to every registry (径行解封).
    AtOnce,
}
