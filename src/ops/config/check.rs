//! Loading a configuration: the file, environment overrides, unknown keys,
//! and the cross-field checks, every problem reported at once with its key.

use std::{collections::HashSet, fmt, path::Path, time::Duration};

use super::{CallPolicy, CallsConfig, Config, ENV_PREFIX, RegistryConfig};
use crate::core::identifiers;

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key concerned, e.g. `registries[1].timeout`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// A problem with `key`.
pub fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { key: key.into(), message: message.into() }
}

impl Config {
    /// How `registry` is called: its own `calls`, then `[calls]`, then the defaults.
    pub fn policy(&self, registry: &RegistryConfig) -> CallPolicy {
        registry.calls.over(self.calls.over(CallPolicy::default()))
    }

    /// Loads a file (or the defaults when `path` is `None`), applies environment
    /// overrides and validates the result.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Problems(vec![problem(p.display().to_string(), format!("cannot read: {e}"))]))?,
            None => String::new(),
        };
        Self::parse(&text, env)
    }

    /// Parses configuration text, applies environment overrides and validates.
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Problems> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Problems(vec![problem("(file)", e.message().to_string() + &at_span(text, e.span()))])
        })?;
        let mut problems = Vec::new();
        for (name, value) in env {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                if let Err(p) = apply_override(&mut table, path, &value) {
                    problems.push(problem(name, p));
                }
            }
        }
        // The registries are read one by one, so a bad one hides nothing of the rest.
        let entries = match table.remove("registries") {
            Some(toml::Value::Array(entries)) => entries,
            None => Vec::new(),
            Some(_) => {
                problems.push(problem("registries", "must be a list of [[registries]] tables"));
                Vec::new()
            }
        };
        let (config, found) = read_all::<Config>(toml::Value::Table(table), "");
        problems.extend(found);
        let (registries, found) = registry_entries("", entries);
        problems.extend(found);
        let Some(mut config) = config else { return Err(Problems(problems)) };
        config.registries = registries.into_iter().map(|(_, r)| r).collect();
        // Cross-field rules hold between values that parsed; a value that did not is at its default.
        problems.extend(config.validate());
        if problems.is_empty() { Ok(config) } else { Err(Problems(problems)) }
    }

    /// Cross-field checks, all of them, so an operator fixes everything in one go.
    fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let s = &self.search;
        if s.deadline.is_zero() {
            out.push(problem("search.deadline", "must be longer than zero"));
        }
        out.extend(self.calls.problems("calls", s.deadline));
        let default = CallPolicy::default().timeout;
        if self.calls.timeout.is_none() && default > s.deadline {
            out.push(problem(
                "calls.timeout",
                format!(
                    "({}, the default) is longer than search.deadline ({}); set a shorter one",
                    human(default),
                    human(s.deadline)
                ),
            ));
        }
        if self.server.max_in_flight == 0 {
            out.push(problem("server.max_in_flight", "must be at least 1"));
        }
        if self.server.keepalive.is_zero() {
            out.push(problem("server.keepalive", "must be longer than zero"));
        }
        if self.shared.redis.as_deref().is_some_and(|url| !url.starts_with("redis://")) {
            out.push(problem("shared.redis", "must be a redis:// URL"));
        }
        if self.shared.timeout.is_zero() {
            out.push(problem("shared.timeout", "must be longer than zero"));
        }
        let c = &self.server.connections;
        for (key, value) in [("handshake_timeout", c.handshake_timeout), ("preface_timeout", c.preface_timeout)] {
            if value.is_zero() {
                out.push(problem(format!("server.connections.{key}"), "must be longer than zero"));
            }
        }
        if c.max_per_address == 0 || c.max_per_address > c.max_connections {
            out.push(problem(
                "server.connections.max_per_address",
                format!("must be between 1 and max_connections ({})", c.max_connections),
            ));
        }
        if s.max_debtors == 0 {
            out.push(problem("search.max_debtors", "must be at least 1"));
        }
        if !(8 * 1024..=64 * 1024 * 1024).contains(&s.max_reply_bytes) {
            out.push(problem("search.max_reply_bytes", "must be between 8 KiB and 64 MiB"));
        }
        if s.list_registries == 0 {
            out.push(problem("search.list_registries", "must be at least 1"));
        }
        if s.job_retention < Duration::from_secs(3600) {
            out.push(problem(
                "search.job_retention",
                "must be at least 1h: courts read settled searches after the fact",
            ));
        }
        if s.max_answer_window < Duration::from_secs(60) {
            out.push(problem(
                "search.max_answer_window",
                "must be at least 1m: registries that answer later take minutes to a day",
            ));
        }
        if self.cache.max_entries == 0 {
            out.push(problem(
                "cache.max_entries",
                "must be at least 1; use max_age = 0 in requests to bypass the cache",
            ));
        }
        if !(self.ledger.url.starts_with("sqlite:") || self.ledger.url.starts_with("postgres")) {
            out.push(problem("ledger.url", "must be sqlite://PATH or postgres://USER@HOST/DB"));
        }
        let t = &self.ledger.terms;
        for (key, months) in [
            ("deposit", t.deposit),
            ("aircraft", t.aircraft),
            ("real_estate", t.real_estate),
            ("ip", t.ip),
            ("securities", t.securities),
        ] {
            if months == 0 || months > 120 {
                out.push(problem(
                    format!("ledger.terms.{key}"),
                    format!("{months} months; a term is 1 to 120 months (R5)"),
                ));
            }
        }
        if self.ledger.first_seizure_bonus_percent > 100 {
            out.push(problem(
                "ledger.first_seizure_bonus_percent",
                "is a percentage of the first seizer's share: 0 to 100",
            ));
        }
        if self.ledger.sweep_interval.is_zero() {
            out.push(problem("ledger.sweep_interval", "must be longer than zero"));
        }
        if self.ledger.request_window < Duration::from_secs(3600) {
            out.push(problem("ledger.request_window", "must be at least an hour; courts retry within it"));
        }
        for (code, o) in &self.limits.courts {
            if let Err(e) = identifiers::parse_court_code(code) {
                out.push(problem(format!("limits.courts.{code}"), e));
            }
            if o.rate == Some(0) {
                out.push(problem(format!("limits.courts.{code}.rate"), "must be at least 1"));
            }
        }
        if self.limits.rate == 0 {
            out.push(problem("limits.rate", "must be at least 1 request per second"));
        }
        if self.limits.watch_streams == 0 {
            out.push(problem("limits.watch_streams", "must be at least 1 stream per court"));
        }
        if self.audit.retention < Duration::from_secs(86_400) {
            out.push(problem("audit.retention", "must be at least a day; supervisors read the trail afterwards"));
        }
        if self.registries.is_empty() && self.network.directory.is_none() {
            out.push(problem(
                "registries",
                "no registry configured; add at least one [[registries]] table or a network.directory file",
            ));
        }
        if self.network.max_connections == 0 {
            out.push(problem("network.max_connections", "must be at least 1"));
        }
        if self.network.search_rate == 0 {
            out.push(problem("network.search_rate", "must be at least 1 search a second"));
        }
        for (key, value) in [("reload_every", self.network.reload_every), ("idle_close", self.network.idle_close)] {
            if value.is_zero() {
                out.push(problem(format!("network.{key}"), "must be longer than zero"));
            }
        }
        let mut names = HashSet::new();
        for (i, r) in self.registries.iter().enumerate() {
            out.extend(self.registry_problems(r, &entry_key("", i, Some(&r.name)), &mut names));
        }
        out
    }

    /// Problems with one registry at `at` (e.g. `registries[3]`); `names` are those listed before it.
    pub(super) fn registry_problems<'a>(
        &self,
        r: &'a RegistryConfig,
        at: &str,
        names: &mut HashSet<&'a str>,
    ) -> Vec<Problem> {
        let mut out = Vec::new();
        let key = |field: &str| format!("{at}.{field}");
        if r.name.trim().is_empty() {
            out.push(problem(key("name"), "must not be empty"));
        } else if !names.insert(r.name.as_str()) {
            out.push(problem(
                key("name"),
                format!("`{}` is used by an earlier registry; names must be unique", r.name),
            ));
        }
        let scheme = if self.tls.plaintext { "http" } else { "https" };
        match r.endpoint.parse::<tonic::transport::Uri>() {
            Ok(uri) if uri.scheme_str() == Some(scheme) && uri.port_u16().is_some() => {}
            Ok(uri) if uri.scheme_str() == Some("http") => out.push(problem(
                key("endpoint"),
                format!("`{}` is plaintext; registries are called over mutual TLS (https://)", r.endpoint),
            )),
            _ => out.push(problem(
                key("endpoint"),
                format!("`{}` is not a URL like {scheme}://127.0.0.1:50061", r.endpoint),
            )),
        }
        out.extend(r.calls.problems(&key("calls"), self.search.deadline));
        if r.search_rate == Some(0) {
            out.push(problem(key("search_rate"), "must be at least 1 search a second; leave it out for the default"));
        }
        if r.asset_kinds.as_ref().is_some_and(Vec::is_empty) {
            out.push(problem(key("asset_kinds"), "is empty; leave it out to use the kind's defaults"));
        }
        if let Some(cert) = &r.certificate {
            let ca = r.ca.as_deref().unwrap_or(&self.tls.ca);
            if let Err(why) = crate::ops::pki::check_certificate(cert, ca, &r.name) {
                out.push(problem(key("certificate"), why));
            }
        }
        out
    }
}

/// `registries.0.colour` → `registries[0].colour`, as the other problems spell keys.
/// Where registry `i` (named `name`, when it has one) of a list is, e.g.
/// `registries[12](bank-0013)`: at the network's width the index alone is hard to find.
pub(super) fn entry_key(file: &str, i: usize, name: Option<&str>) -> String {
    let file = if file.is_empty() { String::new() } else { format!("{file}: ") };
    match name {
        Some(name) => format!("{file}registries[{i}]({name})"),
        None => format!("{file}registries[{i}]"),
    }
}

/// The `[[registries]]` tables `entries`, each read on its own; their problems keyed after `file`.
pub(super) fn registry_entries(file: &str, entries: Vec<toml::Value>) -> (Vec<(String, RegistryConfig)>, Vec<Problem>) {
    let (mut registries, mut problems) = (Vec::new(), Vec::new());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = entry_key(file, i, entry.get("name").and_then(toml::Value::as_str));
        let (parsed, found) = read_all::<RegistryConfig>(entry, &at);
        problems.extend(found);
        registries.extend(parsed.map(|r| (at, r)));
    }
    (registries, problems)
}

/// `value` read as a `T`, with every problem in it: unknown keys, and each value of the wrong type
/// (left out in turn, so its default stands in while the rest is read). `None` when something
/// required is missing or wrong. Keys are given after `at`.
fn read_all<T: serde::de::DeserializeOwned>(mut value: toml::Value, at: &str) -> (Option<T>, Vec<Problem>) {
    let key = |path: &str| match (at.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => at.to_string(),
        (false, false) => format!("{at}.{path}"),
    };
    let (mut problems, mut left_out) = (Vec::new(), None::<String>);
    // Each pass leaves out one more bad value; a table has only so many.
    for _ in 0..256 {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(bracket_indices(&path.to_string()));
        let de = serde_ignored::Deserializer::new(value.clone(), &mut record);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(parsed) => {
                let unknown = unknown.into_iter();
                problems.extend(
                    unknown.map(|k| problem(key(&k), "unknown key; check its spelling against config/assetgw.toml")),
                );
                return (Some(parsed), problems);
            }
            Err(e) => {
                let message = e.inner().message().to_string();
                // A required value left out for its type is missing now: already said.
                if left_out.is_some_and(|field| message == format!("missing field `{field}`")) {
                    return (None, problems);
                }
                problems.push(problem(key(&bracket_indices(&e.path().to_string())), message));
                left_out = leave_out(&mut value, e.path());
                if left_out.is_none() {
                    return (None, problems);
                }
            }
        }
    }
    (None, problems)
}

/// Removes the value at `path` from its table: its key, or `None` when there is none to remove (a
/// missing field, or a value inside a list).
fn leave_out(value: &mut toml::Value, path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return None };
    let mut at = value;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            _ => None,
        };
        at = next?;
    }
    at.as_table_mut()?.remove(key.as_str()).map(|_| key.clone())
}

fn bracket_indices(path: &str) -> String {
    path.split('.').fold(String::new(), |mut out, seg| {
        if seg.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out += &format!("[{seg}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out += seg;
        }
        out
    })
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

fn at_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1))).unwrap_or_default()
}

/// Sets `path` (segments joined by `__`, lower-cased; numbers index arrays) to `value`.
fn apply_override(table: &mut toml::Table, path: &str, value: &str) -> Result<(), String> {
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &path.to_ascii_lowercase(), parsed);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) -> Result<(), String> {
    let mut node = root;
    for seg in path.split("__") {
        node = match node {
            toml::Value::Table(t) => t.entry(seg).or_insert_with(|| toml::Value::Table(toml::Table::new())),
            toml::Value::Array(items) => {
                let len = items.len();
                seg.parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| format!("`{seg}` is not an index of this list of {len}"))?
            }
            _ => return Err(format!("`{seg}` is below a key that is not a table")),
        };
    }
    *node = value;
    Ok(())
}

impl CallsConfig {
    /// Problems with the keys set here; `at` is where they are, e.g. `registries[0].calls`.
    fn problems(&self, at: &str, deadline: Duration) -> Vec<Problem> {
        let mut out = Vec::new();
        let key = |field: &str| format!("{at}.{field}");
        for (field, t) in [("timeout", self.timeout), ("attempt_timeout", self.attempt_timeout)] {
            if t.is_some_and(|t| t.is_zero()) {
                out.push(problem(key(field), "must be longer than zero"));
            }
        }
        if let Some(t) = self.timeout.filter(|t| *t > deadline) {
            out.push(problem(
                key("timeout"),
                format!(
                    "({}) is longer than search.deadline ({}); a registry could never time out on its own",
                    human(t),
                    human(deadline)
                ),
            ));
        }
        if self.concurrency == Some(0) {
            out.push(problem(key("concurrency"), "must be at least 1"));
        }
        if self.max_answer_bytes.is_some_and(|b| !(1024..=4 * 1024 * 1024).contains(&b)) {
            out.push(problem(
                key("max_answer_bytes"),
                "must be 1 KiB to 4 MiB: an answer a court's client could not take is never relayed",
            ));
        }
        if let Some(b) = self.batch {
            if !(1..=256).contains(&b.max_items) {
                out.push(problem(key("batch.max_items"), "must be 1 to 256: the contract's largest batch"));
            }
            if !(1024..=1024 * 1024).contains(&b.max_bytes) {
                out.push(problem(key("batch.max_bytes"), "must be 1 KiB to 1 MiB: the contract's largest batch"));
            }
        }
        if let Some(b) = self.breaker {
            if b.failures == 0 {
                out.push(problem(key("breaker.failures"), "must be at least 1"));
            }
            if b.cool_down.is_zero() {
                out.push(problem(key("breaker.cool_down"), "must be longer than zero"));
            }
        }
        for (field, share) in [("retry_budget", self.retry_budget), ("hedge_budget", self.hedge_budget)] {
            if let Some(share) = share.filter(|s| !(0.0..=1.0).contains(s)) {
                out.push(problem(key(field), format!("{share} is not a share between 0.0 and 1.0")));
            }
        }
        if self.hedge_percentile.is_some_and(|p| !(0.0..1.0).contains(&p)) {
            out.push(problem(key("hedge_percentile"), "must be at least 0.0 (off) and below 1.0, e.g. 0.95"));
        }
        out
    }
}
