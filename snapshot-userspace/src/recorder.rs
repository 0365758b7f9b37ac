//! A recording session: the loaded object, its attached probes, the trigger, and the mapped
//! buffers.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, MapData, RingBuf, StackTraceMap},
};
use snapshot_common::{FilterMode, MAX_PROBES, NoSparePolicy, Notice, names};

use crate::{
    attach::{self, AttachContext},
    buffer::Buffers,
    ebpf_log::KernelLog,
    event::ProbeInfo,
    kernel::{self, KernelSupport},
    load::{self, LoadConfig},
    spec::{self, ProbeSpec},
    tracefs,
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
    /// Which tasks are recorded.
    pub targets: &'a Targets,
    /// Children of target processes become targets (`--follow-forks`).
    pub follow_forks: bool,
    /// Refuse instead of falling back between kprobes and fentry/fexit.
    pub strict: bool,
    /// Cap on the functions one glob may attach to.
    pub max_glob: usize,
    /// Most snapshots the trigger takes (0: no limit).
    pub count: u64,
    /// Minimum ns between two trigger snapshots.
    pub holdoff_ns: u64,
    /// What to record after a trigger before the flip (`--post`).
    pub post: Post,
    /// What a trigger does without an armed spare.
    pub policy: NoSparePolicy,
    /// Trigger expressions (any one firing takes a snapshot; `manual` alone: none).
    pub triggers: &'a [String],
}

/// `--post`: what a trigger keeps recording into the snapshot before it flips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Post {
    /// Flip at once.
    #[default]
    None,
    /// The next N recorded events.
    Events(u64),
    /// Everything recorded in the next N nanoseconds.
    Nanos(u64),
}

impl Post {
    /// How a snapshot header describes the window (`None` when there is none).
    #[must_use]
    pub fn describe(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Events(n) => Some(format!("{n} events")),
            Self::Nanos(ns) => Some(crate::size::format_duration(ns)),
        }
    }
}

/// Which tasks are recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Every task but the controller.
    All,
    /// These processes (tgids), every thread.
    Processes(Vec<u32>),
    /// One thread.
    Thread(u32),
    /// Tasks with this command name.
    Comm(String),
}

/// Why a comm target was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "--comm `{0}` is longer than the kernel's 15-character command names: give its first 15 characters"
)]
pub struct CommTooLong(pub String);

/// The load-time filter settings for `targets`.
fn filter_config(
    targets: &Targets,
    follow_forks: bool,
    config: &mut LoadConfig,
) -> anyhow::Result<()> {
    match targets {
        Targets::All => config.filter = FilterMode::All,
        Targets::Processes(pids) if pids.len() == 1 && !follow_forks => {
            config.filter = FilterMode::One;
            config.target_tgid = pids[0];
        }
        Targets::Processes(_) => config.filter = FilterMode::Targets,
        Targets::Thread(tid) => {
            config.filter = FilterMode::Tid;
            config.target_tgid = *tid;
        }
        Targets::Comm(name) => {
            if name.len() >= snapshot_common::COMM_LEN {
                return Err(CommTooLong(name.clone()).into());
            }
            config.filter = FilterMode::Comm;
            config.target_comm[..name.len()].copy_from_slice(name.as_bytes());
        }
    }
    Ok(())
}

/// A loaded, attached recorder.
pub struct Recorder {
    ebpf: Ebpf,
    buffers: Buffers,
    probes: Vec<ProbeInfo>,
    /// The kernel side's debug records (`RUST_LOG=debug`), when they are printed.
    log: Option<KernelLog>,
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
        let mut load_config = LoadConfig {
            ncpu,
            capacity: config.capacity,
            policy: config.policy,
            count: config.count,
            holdoff_ns: config.holdoff_ns,
            post_events: if let Post::Events(n) = config.post {
                n
            } else {
                0
            },
            post_ns: if let Post::Nanos(n) = config.post {
                n
            } else {
                0
            },
            ..LoadConfig::default()
        };
        filter_config(config.targets, config.follow_forks, &mut load_config)?;
        let pairs = spec::pairs(config.specs);
        load_config.pairs[..pairs.len()].copy_from_slice(&pairs);
        for (id, s) in config.specs.iter().enumerate() {
            if s.is_glob() {
                load_config.func_ip |= 1 << id;
            }
        }
        if config.follow_forks {
            tracefs::ensure_mounted()?;
            let fields = tracefs::read_fields(
                std::path::Path::new(tracefs::TRACEFS),
                "sched",
                "sched_process_fork",
            )?;
            let child = fields.iter().find(|f| f.name == "child_pid").context("sched:sched_process_fork has no child_pid field: --follow-forks cannot work on this kernel")?;
            load_config.fork_child_offset = u32::from(child.offset);
        }
        let mut ebpf = load::load(&load_config)?;
        if let Targets::Processes(pids) = config.targets {
            for &tgid in pids {
                load::add_target(&mut ebpf, tgid)?;
            }
        }
        if config.follow_forks {
            load::attach_follow_forks(&mut ebpf)?;
        }
        let buffers = Buffers::map(&ebpf, ncpu, config.capacity)?;
        load::attach_comm_invalidation(&mut ebpf)?;
        let support = KernelSupport::probe(std::path::Path::new("/"))
            .hiding(&std::env::var(kernel::HIDE_ENV).unwrap_or_default());
        let mut cx = AttachContext {
            support: &support,
            btf: None,
            strict: config.strict,
            max_glob: config.max_glob,
            functions: None,
        };
        let mut probes = Vec::with_capacity(config.specs.len());
        for (id, spec) in config.specs.iter().enumerate() {
            let attached = attach::attach(&mut ebpf, id, spec, &mut cx)?;
            let mut info = ProbeInfo::new(id as u32, spec, attached.arg_names);
            info.functions = attached.functions;
            info.arg_formats = attached.arg_formats;
            probes.push(info);
        }
        let trigger = crate::expr::compile(config.triggers, &probes)?;
        load::set_trigger(&mut ebpf, &trigger)?;
        // Once every program is loaded (see `KernelLog::start`).
        let log = KernelLog::start(&mut ebpf);
        Ok(Self {
            ebpf,
            buffers,
            probes,
            log,
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

    /// The instruction addresses of stack `id` from the `STACKS` map, which then forgets it
    /// (its bucket is free for the next trigger). A negative id (no stack) gives none.
    pub fn take_stack(&mut self, id: i64) -> Vec<u64> {
        let Ok(id) = u32::try_from(id) else {
            return Vec::new();
        };
        let Some(map) = self.ebpf.map_mut(names::STACKS) else {
            return Vec::new();
        };
        let Ok(mut stacks) = StackTraceMap::try_from(map) else {
            return Vec::new();
        };
        let ips = stacks
            .get(&id, 0)
            .map(|s| s.frames().iter().map(|f| f.ip).collect())
            .unwrap_or_default();
        let _ = stacks.remove(&id);
        ips
    }

    /// The notice kept for the open `--post` window.
    pub fn pending_notice(&self) -> anyhow::Result<Notice> {
        let map = self.ebpf.map(names::PENDING).context(
            "map PENDING missing from the eBPF object: rebuild with `cargo xtask build`",
        )?;
        Ok(Array::<_, Notice>::try_from(map)?.get(&0, 0)?)
    }

    /// Prints the kernel side's debug records written so far.
    pub fn flush_log(&self) {
        if let Some(log) = &self.log {
            log.flush();
        }
    }

    /// Detaches every probe and frees the maps, then prints the kernel side's last records.
    pub fn close(self) {
        drop(self.buffers);
        drop(self.ebpf);
        drop(self.log);
    }
}
