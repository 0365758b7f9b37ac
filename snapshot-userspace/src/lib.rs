//! The snapshot controller: a flight recorder for the Linux kernel built on eBPF.
//!
//! Data flows through the modules in this order: probe [`spec`] → [`load`] / [`attach`] →
//! [`recorder`] (with the mmapped [`buffer`]) → [`controller`] (arm, flip, drain) →
//! [`snapfile`] (stacks by [`symbols`]) → [`event`] decoding; [`trigger`] compiles the
//! condition; [`target`] picks what is recorded, [`kernel`] and [`tracefs`] read what the
//! running kernel offers; [`status`] is the live status line of `snapshot record`;
//! [`ebpf_log`] prints the eBPF side's debug records (`RUST_LOG=debug`).

pub mod attach;
pub mod bench;
pub mod buffer;
pub mod cli;
pub mod controller;
pub mod ebpf_log;
pub mod event;
pub mod export;
pub mod expr;
pub mod kernel;
pub mod load;
pub mod names;
pub mod recorder;
pub mod size;
pub mod snapfile;
pub mod spec;
pub mod status;
pub mod symbols;
pub mod target;
pub mod tracefs;
