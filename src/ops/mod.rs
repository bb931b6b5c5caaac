//! Operations: configuration, logging and trace export, metrics, the
//! network's certificates, the sockets the servers listen on, and the state
//! replicas share. May use [`crate::core`] only.

pub mod config;
pub mod metrics;
pub mod net;
pub mod pki;
pub mod shared;
pub mod telemetry;
