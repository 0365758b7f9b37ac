//! What can be probed: `--probe` specs ([`spec`]) and the strings they capture ([`capture`]),
//! what the running kernel offers ([`kernel`], and its BPF features, probed: [`features`]),
//! tracepoint formats ([`tracefs`]), kernel function prototypes ([`btf`]), names and the
//! closest ones for errors ([`lookup`]), kprobe offsets per architecture ([`offset`]), and the
//! probe table every snapshot carries ([`ProbeInfo`]).

pub mod btf;
pub mod capture;
pub mod features;
pub mod info;
pub mod kernel;
pub mod lookup;
pub mod offset;
pub mod plan;
pub mod report;
pub mod spec;
pub mod tracefs;

pub use info::ProbeInfo;
pub use spec::{ProbeKind, ProbeSpec};
