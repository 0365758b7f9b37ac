//! A recording session: the loaded object, its attached probes, the trigger, and the mapped
//! buffers.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use snapshot_common::{FilterMode, MAX_PROBES, NoSparePolicy, names};

use crate::{
    attach::{self, AttachContext},
    buffer::Buffers,
    event::ProbeInfo,
    kernel::{self, KernelSupport},
    load::{self, LoadConfig},
    spec::ProbeSpec,
    trigger::TriggerExpr,
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

/// What a recording needs.
pub struct RecorderConfig<'a> {
    /// Probe specs, in probe-id order.
    pub specs: &'a [ProbeSpec],
    /// Events per CPU per half.
    pub capacity: u32,
    /// Target tgids (empty: every process).
    pub targets: &'a [u32],
    /// What a trigger does without an armed spare.
    pub policy: NoSparePolicy,
    /// The trigger.
    pub trigger: &'a TriggerExpr,
}

/// A loaded, attached recorder.
pub struct Recorder {
    ebpf: Ebpf,
    buffers: Buffers,
    probes: Vec<ProbeInfo>,
}

impl Recorder {
    /// Loads the object, sets the target filter, attaches every probe, installs the trigger
    /// and maps the buffers. Recording starts as soon as the first probe is attached.
    pub fn start(config: &RecorderConfig<'_>) -> anyhow::Result<Self> {
        if !kernel::is_root() {
            return Err(SessionError::NotRoot.into());
        }
        if config.specs.len() > MAX_PROBES {
            return Err(SessionError::TooManyProbes(config.specs.len()).into());
        }
        let ncpu = aya::util::nr_cpus()
            .map_err(|(path, e)| anyhow::anyhow!("cannot read the CPU count from {path}: {e}"))?
            .get();
        let filter = match config.targets {
            [] => FilterMode::All,
            [_] => FilterMode::One,
            _ => FilterMode::Targets,
        };
        let mut ebpf = load::load(&LoadConfig {
            ncpu,
            capacity: config.capacity,
            filter,
            policy: config.policy,
            target_tgid: config.targets.first().copied().unwrap_or(0),
            bench_ring: None,
        })?;
        for &tgid in config.targets {
            load::add_target(&mut ebpf, tgid)?;
        }
        let buffers = Buffers::map(&ebpf, ncpu, config.capacity)?;
        load::attach_comm_invalidation(&mut ebpf)?;
        let support = KernelSupport::probe(std::path::Path::new("/"))
            .hiding(&std::env::var(kernel::HIDE_ENV).unwrap_or_default());
        let mut cx = AttachContext {
            support: &support,
            btf: None,
        };
        let mut probes = Vec::with_capacity(config.specs.len());
        for (id, spec) in config.specs.iter().enumerate() {
            let names = attach::attach(&mut ebpf, id, spec, &mut cx)?;
            probes.push(ProbeInfo::new(id as u32, spec, names));
        }
        let trigger = config.trigger.compile(&probes)?;
        load::set_trigger(&mut ebpf, &trigger)?;
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

    /// The mapped buffers and control word.
    #[must_use]
    pub const fn buffers(&self) -> &Buffers {
        &self.buffers
    }

    /// Takes the notification ring buffer out of the object (once).
    pub fn take_notify(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(names::NOTIFY)
            .context("the NOTIFY ring buffer was already taken or is missing")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Detaches every probe and frees the maps.
    pub fn close(self) {
        drop(self.buffers);
        drop(self.ebpf);
    }
}
