//! How a mock registry behaves: latency, spikes, injected errors, downtime,
//! deferred answers.
//! Set per registry in the `mock` table of `assetgw dev`'s configuration, by
//! `assetgw mock-registry` flags, or at run time through the admin service.

use std::{fmt, str::FromStr, time::Duration};

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde::Deserialize;

use super::Deferral;
use crate::ops::config::{Config, Problem, problem};

/// How long a mock takes to answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between two bounds.
    Uniform(Duration, Duration),
    /// Log-normal with this median and 99th percentile: most calls are quick, a few very slow.
    LongTail {
        /// Median latency.
        median: Duration,
        /// 99th-percentile latency.
        p99: Duration,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(Duration::ZERO)
    }
}

impl Latency {
    /// Draws one latency.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => rng.random_range(lo..=hi),
            Latency::LongTail { median, p99 } => {
                // z(0.99) ≈ 2.326 standard deviations separate the median from p99.
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / 2.326;
                LogNormal::new(median.as_secs_f64().ln(), sigma)
                    .map(|d| Duration::from_secs_f64(d.sample(rng).min(3600.0)))
                    .unwrap_or(median)
            }
        }
    }
}

/// A duration such as `5ms` or `2h`.
fn duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim()).map_err(|e| format!("`{v}`: {e}"))
}

/// A range of durations such as `2ms..20ms`, its lower bound not above its upper.
pub(super) fn duration_range(v: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = v.split_once("..").ok_or_else(|| format!("`{v}` is not a range like 2ms..20ms"))?;
    let (a, b) = (duration(a)?, duration(b)?);
    if a > b { Err(format!("`{v}`: the lower bound is above the upper")) } else { Ok((a, b)) }
}

impl FromStr for Latency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("fixed", v)) => Ok(Latency::Fixed(duration(v)?)),
            Some(("uniform", v)) => duration_range(v).map(|(a, b)| Latency::Uniform(a, b)),
            Some(("longtail", v)) => match duration_range(v)? {
                (m, p) if !m.is_zero() && p > m => Ok(Latency::LongTail { median: m, p99: p }),
                _ => Err(format!("`{v}`: a long tail needs 0 < median < p99")),
            },
            _ => Err(format!("`{s}` is not a latency; use fixed:5ms, uniform:2ms..20ms or longtail:10ms..200ms")),
        }
    }
}

impl TryFrom<String> for Latency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = humantime::format_duration;
        match *self {
            Latency::Fixed(d) => write!(f, "fixed:{}", h(d)),
            Latency::Uniform(a, b) => write!(f, "uniform:{}..{}", h(a), h(b)),
            Latency::LongTail { median, p99 } => write!(f, "longtail:{}..{}", h(median), h(p99)),
        }
    }
}

/// Behaviour of a mock registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MockConfig {
    /// Answer latency of a call (a batch is one call): `fixed:5ms`, `uniform:2ms..20ms` or
    /// `longtail:10ms..200ms` (median..p99).
    pub latency: Latency,
    /// Share of calls (a batch is one call), 0.0 to 1.0, that take `spike` longer.
    pub spike_rate: f64,
    /// Extra latency of a tail spike.
    #[serde(with = "humantime_serde")]
    pub spike: Duration,
    /// Share of searches (each item of a batch on its own) and other calls answered with an injected error,
    /// 0.0 to 1.0.
    pub error_rate: f64,
    /// The gRPC code of injected errors.
    pub error_code: FaultCode,
    /// Never answer.
    pub hang: bool,
    /// Answer every call with `UNAVAILABLE`, as a registry down for maintenance.
    pub down: bool,
    /// Answer searches that accept it later, with a ticket: `30s..2h` (ready at a time drawn from the
    /// range) or `next 06:00` (in the next day's batch, China Standard Time). Unset: always at once.
    pub deferred: Option<Deferral>,
    /// Share of debtors, 0.0 to 1.0, this registry holds anything for (most of a fleet's banks hold
    /// nothing for a given debtor). Unset: every debtor its profile gives assets.
    pub holders: Option<f64>,
    /// How far the mock's clock runs behind the real one: its tickets' times and `as_of` are read
    /// off it (a registry whose `ask_after` is always in the gateway's past).
    #[serde(with = "humantime_serde")]
    pub clock_behind: Duration,
    /// Pads every answer to about this many bytes more (an answer larger than the gateway takes);
    /// 0: none.
    pub answer_bytes: u64,
    /// The searches per second it declares it accepts (`Describe`); 0: declares none.
    pub search_rate: u32,
    /// Answers `SearchAssetsBatch` with `UNIMPLEMENTED`, as a registry that takes one search a call.
    pub unbatched: bool,
}

/// The faults as a person reads them, one `key value` per fault, in the configuration's words.
impl fmt::Display for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = humantime::format_duration;
        let later = self.deferred.map_or("no".to_string(), |d| d.to_string());
        write!(
            f,
            "latency {}, spike_rate {} (spike {}), error_rate {} ({}), hang {}, down {}, deferred {later}, \
             clock_behind {}, answer_bytes {}",
            self.latency,
            self.spike_rate,
            h(self.spike),
            self.error_rate,
            self.error_code.as_str(),
            self.hang,
            self.down,
            h(self.clock_behind),
            self.answer_bytes
        )
    }
}

/// gRPC codes a mock can inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultCode {
    /// `UNAVAILABLE`: the registry is overloaded or restarting.
    #[default]
    Unavailable,
    /// `INTERNAL`: the registry has a bug.
    Internal,
    /// `RESOURCE_EXHAUSTED`: the registry sheds load.
    ResourceExhausted,
    /// `INVALID_ARGUMENT`: the registry rejects the request.
    InvalidArgument,
}

impl FaultCode {
    /// The name in configuration and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultCode::Unavailable => "unavailable",
            FaultCode::Internal => "internal",
            FaultCode::ResourceExhausted => "resource_exhausted",
            FaultCode::InvalidArgument => "invalid_argument",
        }
    }
}

impl std::str::FromStr for FaultCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [FaultCode::Unavailable, FaultCode::Internal, FaultCode::ResourceExhausted, FaultCode::InvalidArgument]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not one of unavailable, internal, resource_exhausted, invalid_argument"))
    }
}

impl From<FaultCode> for tonic::Code {
    fn from(code: FaultCode) -> Self {
        match code {
            FaultCode::Unavailable => tonic::Code::Unavailable,
            FaultCode::Internal => tonic::Code::Internal,
            FaultCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            FaultCode::InvalidArgument => tonic::Code::InvalidArgument,
        }
    }
}

impl MockConfig {
    /// The mock settings of every registry of `config` that has them, with
    /// every problem in them reported at once, keyed as in the file.
    pub fn of(config: &Config) -> Result<Vec<Option<MockConfig>>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for (i, r) in config.registries.iter().enumerate() {
            let Some(table) = &r.mock else {
                out.push(None);
                continue;
            };
            let key = |field: &str| format!("registries[{i}].mock{field}");
            let mut unknown = Vec::new();
            let mut record = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
            let de = serde_ignored::Deserializer::new(toml::Value::Table(table.clone()), &mut record);
            let parsed: Result<MockConfig, _> = serde_path_to_error::deserialize(de);
            problems.extend(unknown.iter().map(|k| problem(key(&format!(".{k}")), "unknown key")));
            match parsed {
                Ok(m) => {
                    let holders = m.holders.unwrap_or(1.0);
                    for (field, rate) in
                        [(".error_rate", m.error_rate), (".spike_rate", m.spike_rate), (".holders", holders)]
                    {
                        if !(0.0..=1.0).contains(&rate) {
                            problems.push(problem(key(field), format!("{rate} is not between 0.0 and 1.0")));
                        }
                    }
                    out.push(Some(m));
                }
                Err(e) => problems.push(problem(key(&format!(".{}", e.path())), e.inner().to_string())),
            }
        }
        if problems.is_empty() { Ok(out) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mock_problem_is_reported_with_its_key() {
        let text = r#"
            [[registries]]
            name = "a"
            kind = "bank"
            endpoint = "https://127.0.0.1:1"
            [[registries]]
            name = "b"
            kind = "ip"
            endpoint = "https://127.0.0.1:2"
            [registries.mock]
            error_rate = 2.0
            latency = "fast"
            colour = "red"
            [[registries]]
            name = "c"
            kind = "ip"
            endpoint = "https://127.0.0.1:3"
            mock = { spike_rate = -0.5, latency = "fixed:5ms" }
        "#;
        let config = Config::parse(text, []).unwrap();
        let keys: Vec<String> = MockConfig::of(&config).unwrap_err().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["registries[1].mock.colour", "registries[1].mock.latency", "registries[2].mock.spike_rate"]);
        let shipped = Config::parse(include_str!("../../../config/assetgw.toml"), []).unwrap();
        let mocks = MockConfig::of(&shipped).unwrap();
        assert_eq!(mocks.iter().flatten().count(), 6, "every shipped registry runs as a mock under `dev`");
    }
}
