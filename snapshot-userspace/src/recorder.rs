//! A recording session: the loaded object, its attached probes and its mapped buffers.

use std::time::Duration;

use anyhow::Context as _;
use aya::Ebpf;
use snapshot_common::{Control, Event, FilterMode, MAX_PROBES};

use crate::{
    attach::{self, AttachContext},
    buffer::{Buffers, CpuAccount},
    event::ProbeInfo,
    kernel::{self, KernelSupport},
    load::{self, LoadConfig},
    spec::ProbeSpec,
};

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not root.
    #[error(
        "loading eBPF programs needs root (CAP_BPF and CAP_PERFMON): run again with sudo, e.g. `sudo -E cargo xtask run -- …`"
    )]
    NotRoot,
    /// Too many probes.
    #[error("{0} probes given, at most {MAX_PROBES} are supported: drop some --probe arguments")]
    TooManyProbes(usize),
}

/// A loaded, attached recorder.
pub struct Recorder {
    ebpf: Ebpf,
    buffers: Buffers,
    probes: Vec<ProbeInfo>,
}

impl Recorder {
    /// Loads the object, sets the target filter, attaches every probe and maps the buffers.
    /// Recording starts as soon as the first probe is attached.
    pub fn start(specs: &[ProbeSpec], capacity: u32, targets: &[u32]) -> anyhow::Result<Self> {
        if !kernel::is_root() {
            return Err(SessionError::NotRoot.into());
        }
        if specs.len() > MAX_PROBES {
            return Err(SessionError::TooManyProbes(specs.len()).into());
        }
        let ncpu = aya::util::nr_cpus()
            .map_err(|(path, e)| anyhow::anyhow!("cannot read the CPU count from {path}: {e}"))?
            .get();
        let filter = if targets.is_empty() {
            FilterMode::All
        } else {
            FilterMode::Targets
        };
        let mut ebpf = load::load(&LoadConfig {
            ncpu,
            capacity,
            filter,
        })?;
        for &tgid in targets {
            load::add_target(&mut ebpf, tgid)?;
        }
        load::set_control(&mut ebpf, &Control::default())?;
        let support = KernelSupport::probe(std::path::Path::new("/"));
        let mut cx = AttachContext {
            support: &support,
            btf: None,
        };
        let mut probes = Vec::with_capacity(specs.len());
        for (id, spec) in specs.iter().enumerate() {
            let names = attach::attach(&mut ebpf, id, spec, &mut cx)?;
            probes.push(ProbeInfo::new(id as u32, spec, names));
        }
        let buffers = Buffers::map(&ebpf, ncpu, capacity)?;
        Ok(Self {
            ebpf,
            buffers,
            probes,
        })
    }

    /// The probe table.
    #[must_use]
    pub fn probes(&self) -> &[ProbeInfo] {
        &self.probes
    }

    /// Stops recording, waits for in-flight writers and takes the live half.
    pub fn stop_and_drain(&mut self) -> anyhow::Result<(Vec<Event>, Vec<CpuAccount>)> {
        load::set_control(
            &mut self.ebpf,
            &Control {
                active: 0,
                stopped: 1,
            },
        )?;
        if !self.buffers.wait_writers(Duration::from_secs(1)) {
            log::warn!(
                "a writer was still busy after 1 s; records it was writing are counted as torn"
            );
        }
        Ok(self.buffers.drain(0))
    }

    /// Detaches every probe and frees the maps.
    pub fn close(self) -> anyhow::Result<()> {
        drop(self.buffers);
        drop(self.ebpf);
        Ok(())
    }

    /// The controller state map, for diagnostics.
    pub fn control(&mut self) -> anyhow::Result<Control> {
        let map = self
            .ebpf
            .map(snapshot_common::names::CONTROL)
            .context("control map missing")?;
        let array: aya::maps::Array<_, Control> = aya::maps::Array::try_from(map)?;
        Ok(array.get(&0, 0)?)
    }
}
