//! Operations: configuration, logging and trace export, metrics, the
//! network's certificates, and the sockets the servers listen on. May use
//! [`crate::core`] only.

pub mod config;
pub mod metrics;
pub mod net;
pub mod pki;
pub mod telemetry;
