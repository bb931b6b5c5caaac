//! The seizure ledger: which court holds the first seizure on every asset and
//! who waits behind it, kept right through releases, lapses, renewals,
//! deductions, disposals and transfers (DOMAIN R1–R14).

pub mod rules;
