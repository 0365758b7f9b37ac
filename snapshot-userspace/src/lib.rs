//! The snapshot controller: a flight recorder for the Linux kernel built on eBPF.
//!
//! The modules follow the data, and each imports only the ones above it in this list:
//!
//! 1. [`units`] and [`sys`]: sizes, durations and times as people write them; the few facts
//!    read from the running system (root, clocks).
//! 2. [`probe`]: what can be probed: the `--probe` specs, what the kernel offers, tracepoint
//!    formats, names and the closest ones, and the probe table every snapshot carries.
//! 3. [`session`]: one loaded eBPF object: load, attach, the target filter, and the buffers
//!    shared with the kernel with the protocol of their [`Control`](snapshot_common::Control)
//!    words ([`session::control`]).
//! 4. [`trigger`]: the trigger language, compiled against the probe table into the bytecode
//!    program the kernel evaluates on every event.
//! 5. [`snapshot`]: the snapshot file (format, writing, reading) and the stacks it carries.
//! 6. [`controller`]: arms the spare, handles flips, drains frozen halves into snapshot files,
//!    and runs a recording from start to stop.
//! 7. [`export`]: snapshots as text, JSON, Chrome trace JSON and Perfetto traces.
//! 8. [`cli`]: the command line; it parses and prints, nothing more.
//!
//! [`testing`] holds what the unit and integration tests share (random expressions).

pub mod sys;
pub mod units;

pub mod probe;

pub mod session;

pub mod trigger;

pub mod snapshot;

pub mod controller;

pub mod export;

pub mod cli;

pub mod testing;
