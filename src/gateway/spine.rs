//! The spine every court-facing call walks before its handler and after it:
//! the audit record, the caller's identity and the caller's limits, as tower
//! layers around the court services ([`spine`]), each a [`Step`](crate::gateway::call::Step). Health and
//! reflection, which no court calls, pass through untouched.

use std::sync::Arc;

use tower::{ServiceBuilder, layer::util::Stack};

use crate::gateway::{audit::recorder::Recorder, auth::Identity, call::StepLayer, limits::Limits};

/// The layers of the spine, outermost first.
pub type Spine =
    Stack<StepLayer<Arc<Limits>>, Stack<StepLayer<Identity>, Stack<StepLayer<Recorder>, tower::layer::util::Identity>>>;

/// The spine, in the order a call meets it. The audit record wraps the other
/// two so that every refusal is on the record as well as every answer: it is
/// written last, once identity, limits and the handler have decided, and
/// before the reply leaves (R16). Identity comes before limits because rates,
/// quotas and stream slots are per court, and a caller not yet known has none.
/// (The daily search quota is counted by the search itself, once the search
/// is valid and authorized: a refused search costs the court nothing.)
pub fn spine(recorder: Recorder, identity: Identity, limits: Arc<Limits>) -> ServiceBuilder<Spine> {
    ServiceBuilder::new().layer(StepLayer::new(recorder)).layer(StepLayer::new(identity)).layer(StepLayer::new(limits))
}
