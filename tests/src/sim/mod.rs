//! `mes-sim`: many devices, injected faults, proof of convergence (docs/tester-guide.md).
//!
//! - [`scenario`]: the TOML scenario files;
//! - [`trace`]: the explicit inputs of a run, generated from a seed or read from a file;
//! - [`det`]: the deterministic mode (real relay handler and sync cores, simulated
//!   network, disk and clock);
//! - [`real`]: the real-socket mode (QUIC on loopback through a fault-injecting UDP
//!   proxy, `mesd` processes killed with SIGKILL);
//! - [`report`]: the checker's oracle and the report.

pub mod det;
pub mod real;
pub mod report;
pub mod scenario;
pub mod trace;

pub mod udp_proxy;

/// What a run returns: the report and the end of its event log.
pub type RunOutput = (report::Report, Vec<String>);
