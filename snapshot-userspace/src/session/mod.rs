//! A recording session: one loaded eBPF object, its attached probes, the target filter, and
//! the buffers shared with the kernel ([`buffer`], with the protocol of their control words in
//! [`control`]). The trigger program is compiled above this layer, by the compiler
//! [`SessionConfig::trigger`] gives: once against the probes as planned, before load (its
//! shape, `snapshot_common::shape`, bounds what the verifier walks), and once against the
//! probes as attached, which is the program installed.

pub mod attach;
pub mod buffer;
pub mod control;
pub mod load;
pub mod log;
pub mod mmap;
pub mod patch;
pub mod poison;
pub mod rules;
pub mod strings;
pub mod target;

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, MapData, RingBuf, StackTraceMap},
};
use snapshot_common::{
    BuildIdFrame, FilterMode, MAX_PROBES, MAX_STRINGS, Notice, TriggerProgram, kfeature, names,
    shape::TriggerShape,
};

pub use rules::{Post, PostError, Rules};
pub use target::{CommTooLong, Targets};

use self::{
    attach::AttachContext, buffer::Buffers, control::Tokens, load::LoadConfig, log::KernelLog,
};
use crate::probe::{
    ProbeInfo, ProbeKind,
    btf::Btf,
    features::Features,
    kernel::{self, KernelSupport},
    plan::{self, ProbePlan},
    spec::{self, Location, ProbeSpec},
    tracefs,
};

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not root.
    #[error(
        "recording needs root (loading eBPF programs takes CAP_BPF and CAP_PERFMON): run the same command again as root, e.g. with `sudo`"
    )]
    NotRoot,
    /// Too many probes.
    #[error("{0} probes given, at most {MAX_PROBES} are supported: drop some --probe arguments")]
    TooManyProbes(usize),
    /// A trigger program larger than the one the programs were loaded for.
    #[error(
        "this trigger does not fit the one the probes were loaded for ({loaded:?}, it needs {needed:?}): start a new recording with it"
    )]
    TriggerDoesNotFit {
        /// The shape loaded.
        loaded: TriggerShape,
        /// The trigger's.
        needed: TriggerShape,
    },
}

/// Compiles the trigger program against the probes (from the layer above).
pub type CompileTrigger<'a> = &'a dyn Fn(&[ProbeInfo]) -> anyhow::Result<TriggerProgram>;

/// What a recording session needs.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches of one recording, each named where it is set"
)]
pub struct SessionConfig<'a> {
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
    /// How triggers take snapshots.
    pub rules: Rules,
    /// `--string-size`: bytes kept per captured string (0: none captured).
    pub string_size: u32,
    /// Whether the trigger has a sequence (sizes its per-thread state).
    pub sequences: bool,
    /// Whether a trigger's user stack is also taken as build id + file offset (where the
    /// kernel can): for the triggers that watch deaths (`crash`, `oom`, `signal(…)`), whose
    /// process may be gone before its memory map is read. Reading each frame's build id costs
    /// the flip tens of microseconds, which every other trigger is spared (a `--post` window
    /// opens after the stacks are taken).
    pub build_id_stacks: bool,
    /// The trigger's compiler. Called before load with the probes as planned (a failure there
    /// loads no evaluator: the attach reports the probe's own error first), and after attach
    /// with the probes as attached, whose program is installed.
    pub trigger: CompileTrigger<'a>,
}

/// What a probe is known as before it is attached: the same as after, but for the functions a
/// glob matched and the argument formats, which the trigger does not read.
fn planned_info(id: usize, spec: &ProbeSpec, plan: &ProbePlan) -> ProbeInfo {
    let arg_names = match &spec.location {
        Location::Tracepoint { category, name } => {
            tracefs::read_fields(std::path::Path::new(tracefs::TRACEFS), category, name)
                .map(|fields| tracefs::probe_config(&fields).1)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    probe_info(id, spec, plan, arg_names)
}

/// The description of probe `id` (names, captures, parameters) from its plan.
fn probe_info(id: usize, spec: &ProbeSpec, plan: &ProbePlan, arg_names: Vec<String>) -> ProbeInfo {
    let mut info = ProbeInfo::new(id as u32, spec, arg_names);
    info.captures.clone_from(&plan.captures);
    info.ret_errno = plan.ret_errno;
    if let Some((names, formats)) = &plan.params
        && matches!(
            spec.kind,
            ProbeKind::Kprobe | ProbeKind::Fentry | ProbeKind::Fexit
        )
    {
        info.arg_names.clone_from(names);
        info.arg_formats.clone_from(formats);
        info.named_params = true;
    }
    info
}

/// The plans of every probe (strings, errno returns, parameter names), made before load.
fn plans(config: &SessionConfig<'_>) -> anyhow::Result<Vec<ProbePlan>> {
    if config
        .specs
        .iter()
        .any(|s| matches!(s.location, Location::Tracepoint { .. }))
    {
        tracefs::ensure_mounted()?;
    }
    let btf = if plan::needs_btf(config.specs) {
        Btf::load(std::path::Path::new("/"))
    } else {
        None
    };
    let root = std::path::Path::new(tracefs::TRACEFS);
    Ok(config
        .specs
        .iter()
        .map(|s| plan::plan(s, root, btf.as_ref(), config.string_size))
        .collect::<Result<_, _>>()?)
}

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

/// Per probe slot, the argument words of its kernel function (from the kernel's BTF), for
/// fentry/fexit on kernels without `bpf_get_func_arg`; 0 where unknown (the attach then
/// fails with the function's own error).
fn func_words(specs: &[ProbeSpec]) -> [u32; MAX_PROBES] {
    let mut words = [0; MAX_PROBES];
    let Some(btf) = Btf::load(std::path::Path::new("/")) else {
        return words;
    };
    for (slot, spec) in words.iter_mut().zip(specs) {
        if let Location::Kernel { function, .. } = &spec.location
            && !spec.is_glob()
        {
            *slot = btf.arg_words(function).unwrap_or(0);
        }
    }
    words
}

/// Per probe slot, where the field named by `ProbeSpec::subject_pid` is (1 + its offset).
fn subject_pids(specs: &[ProbeSpec], out: &mut [u32; MAX_PROBES]) -> anyhow::Result<()> {
    for (slot, spec) in out.iter_mut().zip(specs) {
        let Some(field) = &spec.subject_pid else {
            continue;
        };
        let Location::Tracepoint { category, name } = &spec.location else {
            anyhow::bail!(
                "probe `{}` is not a tracepoint: only a tracepoint's events can be filtered by a field",
                spec.text
            );
        };
        tracefs::ensure_mounted()?;
        let fields = tracefs::read_fields(std::path::Path::new(tracefs::TRACEFS), category, name)?;
        let loc = tracefs::subject_pid(&fields, field).with_context(|| {
            format!(
                "tracepoint {category}:{name} has no 4-byte field `{field}` holding a pid: this kernel's format differs"
            )
        })?;
        *slot = u32::from(loc.offset) + 1;
    }
    Ok(())
}

/// A loaded, attached recording session.
pub struct Session {
    ebpf: Ebpf,
    buffers: Buffers,
    probes: Vec<ProbeInfo>,
    rules: Rules,
    /// The kernel side's debug records (`RUST_LOG=debug`), when they are printed.
    log: Option<KernelLog>,
    /// What the loaded programs' trigger may contain.
    trigger_shape: TriggerShape,
    /// Whether the programs take build-id user stacks.
    build_id_stacks: bool,
}

impl Session {
    /// Loads the object, sets the target filter, attaches every probe, maps the buffers and
    /// installs the trigger. Recording starts as soon as the first probe is attached; the
    /// trigger fires once the last one is.
    pub fn start(config: &SessionConfig<'_>) -> anyhow::Result<Self> {
        if !crate::sys::is_root() {
            return Err(SessionError::NotRoot.into());
        }
        if config.specs.len() > MAX_PROBES {
            return Err(SessionError::TooManyProbes(config.specs.len()).into());
        }
        let ncpu = aya::util::nr_cpus()
            .map_err(|(path, e)| anyhow::anyhow!("cannot read the CPU count from {path}: {e}"))?
            .get();
        let features = Features::get();
        features.check_required()?;
        let mut kernel_bits = features.kernel_bits();
        if !config.build_id_stacks {
            kernel_bits &= !kfeature::STACK_BUILD_ID;
        }
        let mut load_config = LoadConfig {
            ncpu,
            capacity: config.capacity,
            rules: config.rules,
            features: kernel_bits,
            sequences: config.sequences,
            ..LoadConfig::default()
        };
        if load_config.features & kfeature::FUNC_ARGS == 0 {
            load_config.func_words = func_words(config.specs);
        }
        filter_config(config.targets, config.follow_forks, &mut load_config)?;
        let plans = plans(config)?;
        for (id, p) in plans.iter().enumerate() {
            for (k, c) in p.captures.iter().enumerate() {
                load_config.strings[id * MAX_STRINGS + k] = c.spec();
            }
            load_config.ret_widen[id] = p.ret_widen;
        }
        load_config.string_size = config.string_size;
        subject_pids(config.specs, &mut load_config.subject_pid)?;
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
        let planned: Vec<ProbeInfo> = (config.specs.iter().enumerate())
            .map(|(id, spec)| planned_info(id, spec, &plans[id]))
            .collect();
        // A trigger that does not compile against the probes as planned does not against them
        // as attached either: the probes load without an evaluator (the full one can exceed
        // the verifier's million instructions), their own errors come first, and then the
        // trigger's, as from the compile after attach.
        load_config.trigger_shape =
            (config.trigger)(&planned).map_or(TriggerShape::EMPTY, |p| TriggerShape::of(&p));
        let mut ebpf = load::load(&load_config)?;
        if let Targets::Processes(pids) = config.targets {
            for &tgid in pids {
                load::add_target(&mut ebpf, tgid)?;
            }
        }
        if config.follow_forks {
            load::attach_follow_forks(&mut ebpf)?;
        }
        let layout = strings::Layout {
            slot: load_config.payload_size(),
            string_size: config.string_size,
        };
        let mut buffers = Buffers::map(&ebpf, ncpu, config.capacity, layout)?;
        if load_config.features & kfeature::ATOMICS == 0 {
            buffers.use_tokens(Tokens::new(&ebpf, load_config.post_tickets())?);
        }
        load::attach_comm_invalidation(&mut ebpf)?;
        let support = KernelSupport::probe(std::path::Path::new("/"))
            .hiding(&std::env::var(kernel::HIDE_ENV).unwrap_or_default());
        let mut cx = AttachContext {
            support: &support,
            btf: None,
            strict: config.strict,
            max_glob: config.max_glob,
            functions: None,
            kfeatures: load_config.features,
            glob_entry: false,
        };
        let mut probes = Vec::with_capacity(config.specs.len());
        for (id, spec) in config.specs.iter().enumerate() {
            let attached = attach::attach(&mut ebpf, id, spec, &mut cx)?;
            let mut info = probe_info(id, spec, &plans[id], attached.arg_names);
            info.functions = attached.functions;
            if !info.named_params {
                info.arg_formats = attached.arg_formats;
            }
            probes.push(info);
        }
        let program = (config.trigger)(&probes)?;
        // Once every program is loaded (see `KernelLog::start`).
        let log = KernelLog::start(&mut ebpf);
        let mut session = Self {
            ebpf,
            buffers,
            probes,
            rules: config.rules,
            log,
            trigger_shape: load_config.trigger_shape,
            build_id_stacks: kernel_bits & kfeature::STACK_BUILD_ID != 0,
        };
        session.set_trigger(&program)?;
        Ok(session)
    }

    /// Installs the trigger program (the empty program: manual snapshots only). It must fit
    /// the shape the programs were loaded for ([`SessionError::TriggerDoesNotFit`]).
    pub fn set_trigger(&mut self, trigger: &TriggerProgram) -> anyhow::Result<()> {
        if !self.trigger_shape.admits(trigger) {
            return Err(SessionError::TriggerDoesNotFit {
                loaded: self.trigger_shape,
                needed: TriggerShape::of(trigger),
            }
            .into());
        }
        load::set_trigger(&mut self.ebpf, trigger)
    }

    /// How triggers take snapshots in this session.
    #[must_use]
    pub const fn rules(&self) -> &Rules {
        &self.rules
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

    /// Whether the programs take a trigger's user stack as build id + file offset too (the
    /// session asked for it and the kernel can).
    #[must_use]
    pub const fn build_id_stacks(&self) -> bool {
        self.build_id_stacks
    }

    /// The frames of build-id stack `id` from the `USTACKS_BUILD_ID` map (build id + file
    /// offset, or the address), which then forgets it. A negative id (no stack) gives none.
    pub fn take_build_id_stack(&mut self, id: i64) -> Vec<BuildIdFrame> {
        let Ok(id) = u32::try_from(id) else {
            return Vec::new();
        };
        let Some(aya::maps::Map::StackTraceMap(map)) = self.ebpf.map(names::USTACKS_BUILD_ID)
        else {
            return Vec::new();
        };
        let fd = std::os::fd::AsFd::as_fd(map.fd());
        let mut frames = vec![BuildIdFrame::default(); snapshot_common::MAX_STACK_DEPTH];
        // SAFETY: `BuildIdFrame` is `#[repr(C)]` integers without padding (asserted in
        // snapshot-common): any bytes the kernel writes are a valid value; the slice covers
        // exactly the vector's initialised elements.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                frames.as_mut_ptr().cast::<u8>(),
                frames.len() * size_of::<BuildIdFrame>(),
            )
        };
        let found = crate::sys::bpf::map_lookup(fd, id, bytes).unwrap_or(false);
        let _ = crate::sys::bpf::map_delete(fd, id);
        if !found {
            return Vec::new();
        }
        let depth = frames
            .iter()
            .position(|f| f.status == snapshot_common::BUILD_ID_EMPTY)
            .unwrap_or(frames.len());
        frames.truncate(depth);
        frames
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
