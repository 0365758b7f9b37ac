//! What can be probed: `--probe` specs ([`spec`]), what the running kernel offers
//! ([`kernel`]), tracepoint formats ([`tracefs`]), names and the closest ones for errors
//! ([`lookup`]), and the probe table every snapshot carries ([`ProbeInfo`]).

pub mod info;
pub mod kernel;
pub mod lookup;
pub mod spec;
pub mod tracefs;

pub use info::ProbeInfo;
pub use spec::{ProbeKind, ProbeSpec};
