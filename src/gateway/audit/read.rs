//! Reading the audit trail back: a case's or a debtor's records for export,
//! and the check of every chain that names the first altered, deleted,
//! inserted or reordered record (R16).

use serde_json::Value;
use sqlx::AnyPool;

use super::{COLUMNS, GENESIS, Key, PURGE, Stored};

/// Whose records to export.
pub enum Filter {
    /// One case number, as written in the records (normal form).
    Case(String),
    /// One debtor, by keyed hash.
    DebtorKey(String),
}

/// Every record of a case or debtor, oldest first.
pub async fn export(pool: &AnyPool, filter: &Filter) -> Result<Vec<Stored>, sqlx::Error> {
    let (clause, value) = match filter {
        Filter::Case(c) => ("case_number = $1", c.clone()),
        Filter::DebtorKey(k) => ("debtor_keys LIKE $1", format!("%{k}%")),
    };
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit WHERE {clause} ORDER BY at, chain, seq"))
        .bind(value)
        .fetch_all(pool)
        .await?;
    rows.iter().map(Stored::from_row).collect()
}

/// Checks every chain; returns how many records were checked, or the first
/// bad record of the first broken chain, named.
pub async fn verify(pool: &AnyPool, key: &Key) -> Result<Result<usize, String>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit ORDER BY chain, seq")).fetch_all(pool).await?;
    let rows: Vec<Stored> = rows.iter().map(Stored::from_row).collect::<Result<_, _>>()?;
    Ok(check(&rows, key).map(|()| rows.len()))
}

/// The chain checks over records sorted by (chain, seq).
fn check(rows: &[Stored], key: &Key) -> Result<(), String> {
    let anchors: Vec<(String, i64, String)> = rows
        .iter()
        .filter(|r| r.method == PURGE && r.seal(key) == r.hash)
        .filter_map(|r| {
            let d: Value = serde_json::from_str(&r.detail).ok()?;
            Some((d["chain"].as_str()?.to_string(), d["from_seq"].as_i64()?, d["prev"].as_str()?.to_string()))
        })
        .collect();
    let name = |r: &Stored| {
        let by = if r.court.is_empty() { "an unauthenticated caller".into() } else { format!("court {}", r.court) };
        format!("chain {} record {} ({} by {by} at {})", r.chain, r.seq, r.method, time_text(r.at))
    };
    let mut previous: Option<&Stored> = None;
    for r in rows {
        if r.seal(key) != r.hash {
            return Err(format!("{}: its content does not match its seal (altered or moved)", name(r)));
        }
        match previous.filter(|p| p.chain == r.chain) {
            Some(p) if r.seq != p.seq + 1 => {
                return Err(format!("{}: follows record {}; records in between were deleted", name(r), p.seq));
            }
            Some(p) if r.prev != p.hash => {
                return Err(format!("{}: does not follow record {} (inserted or reordered)", name(r), p.seq));
            }
            Some(_) => {}
            None => {
                let starts = (r.seq == 1 && r.prev == GENESIS)
                    || anchors.iter().any(|(c, from, prev)| *c == r.chain && *from == r.seq && *prev == r.prev);
                if !starts {
                    return Err(format!(
                        "{}: the chain's first records are missing, and no sealed purge record accounts for them",
                        name(r)
                    ));
                }
            }
        }
        previous = Some(r);
    }
    Ok(())
}

/// A record's time for people (UTC).
pub fn time_text(at: i64) -> String {
    chrono::DateTime::from_timestamp_micros(at).map_or_else(|| at.to_string(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn chain(key: &Key, n: i64) -> Vec<Stored> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = Stored {
                    chain: "c".into(),
                    seq,
                    at: seq * 1000,
                    court: "京0105".into(),
                    officer: "o1".into(),
                    method: "Search".into(),
                    case_number: "（2024）京0105执1号".into(),
                    debtors: String::new(),
                    debtor_keys: String::new(),
                    detail: "{}".into(),
                    code: "Ok".into(),
                    message: String::new(),
                    prev: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.seal(key);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn r16_any_change_to_a_chain_is_named() {
        let key = Key::new([7; 32]);
        let good = chain(&key, 5);
        assert_eq!(check(&good, &key), Ok(()));

        let mut altered = good.clone();
        altered[2].court = "粤0304".into();
        assert!(check(&altered, &key).unwrap_err().contains("record 3"), "altered");

        let mut deleted = good.clone();
        deleted.remove(2);
        assert!(check(&deleted, &key).unwrap_err().contains("record 4"), "deleted");

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert!(check(&reordered, &key).unwrap_err().contains("record 3"), "reordered");

        let forged_with_other_key = chain(&Key::new([8; 32]), 5);
        assert!(check(&forged_with_other_key, &key).unwrap_err().contains("record 1"), "forged");

        let head_cut = good[2..].to_vec();
        assert!(check(&head_cut, &key).unwrap_err().contains("first records are missing"), "head deleted");
    }
}
