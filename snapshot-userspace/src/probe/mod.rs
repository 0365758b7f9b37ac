//! What can be probed: `--probe` specs ([`spec`]), what the running kernel offers
//! ([`kernel`], and its BPF features, probed: [`features`], with [`btf`]), tracepoint formats
//! ([`tracefs`]), names and the closest ones for errors ([`lookup`]), kprobe offsets per
//! architecture ([`offset`]), and the probe table every snapshot carries ([`ProbeInfo`]).

pub mod btf;
pub mod features;
pub mod info;
pub mod kernel;
pub mod lookup;
pub mod offset;
pub mod report;
pub mod spec;
pub mod tracefs;

pub use info::ProbeInfo;
pub use spec::{ProbeKind, ProbeSpec};
