//! Library face of the eBPF crate: empty, so that `snapshot-userspace` can name this crate as a
//! build dependency (cargo then rebuilds the object when the programs change).
#![no_std]
