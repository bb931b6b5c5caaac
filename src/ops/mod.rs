//! Operations: configuration, logging and trace export, metrics, the
//! network's certificates, the sockets the servers listen on, the state
//! replicas share, and sealing what is kept outside memory. May use [`crate::core`] only.

pub mod config;
pub mod metrics;
pub mod net;
pub mod pki;
pub mod seal;
pub mod shared;
pub mod telemetry;
