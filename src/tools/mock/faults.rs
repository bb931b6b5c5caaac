//! A mock registry's faults as a call meets them: the time it takes (drawn once per call, a batch being
//! one call) and the errors it answers (drawn per search).

use std::time::Duration;

use rand::Rng;
use tonic::Status;

use super::{MockConfig, MockRegistry};

impl MockRegistry {
    /// Latency, tail spikes, hangs, downtime and injected errors, as currently
    /// set; the settings applied, for the rest of the call.
    pub(super) async fn faults(&self) -> Result<MockConfig, Status> {
        let f = self.wait().await;
        self.failure(&f)?;
        Ok(f)
    }

    /// The time a call takes (latency, a tail spike, a hang), drawn once per call: a batch is one
    /// call, answered when its registry has worked through it; the settings, for the rest of the call.
    pub(super) async fn wait(&self) -> MockConfig {
        let f = self.current();
        let delay = {
            let mut rng = rand::rng();
            let spike = if rng.random_bool(f.spike_rate.clamp(0.0, 1.0)) { f.spike } else { Duration::ZERO };
            f.latency.sample(&mut rng) + spike
        };
        if f.hang {
            futures::future::pending::<()>().await;
        }
        // A timer rounds up to its next tick (a millisecond): no latency is no timer.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        f
    }

    /// Downtime and injected errors, drawn per search: each item of a batch fails on its own.
    pub(super) fn failure(&self, f: &MockConfig) -> Result<(), Status> {
        if f.down {
            return Err(Status::unavailable(format!("{} is down for maintenance", self.name)));
        }
        if rand::rng().random_bool(f.error_rate.clamp(0.0, 1.0)) {
            return Err(Status::new(f.error_code.into(), format!("{} injected fault", self.name)));
        }
        Ok(())
    }
}
