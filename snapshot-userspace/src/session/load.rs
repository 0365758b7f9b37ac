//! Loading the eBPF object, sized and configured for one recording.

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap},
};
use snapshot_common::{
    FilterMode, MAX_PROBES, MAX_STRINGS, PayloadHeader, ProbeConfig, StringSpec, TriggerProgram,
    kfeature, names, shape::TriggerShape, strings::payload_size,
};

use super::{Post, Rules, patch, poison};

/// The eBPF object, built by `build.rs` with the pinned eBPF toolchain.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/snapshot"));

/// Load-time configuration.
#[derive(Clone, Copy, Debug)]
pub struct LoadConfig {
    /// Possible CPUs (`aya::util::nr_cpus`).
    pub ncpu: u32,
    /// Events per CPU per half.
    pub capacity: u32,
    /// Which tasks are recorded.
    pub filter: FilterMode,
    /// The tgid recorded under [`FilterMode::One`].
    pub target_tgid: u32,
    /// Pair number of each probe slot (see `spec::pairs`).
    pub pairs: [u32; snapshot_common::MAX_PROBES],
    /// Bit mask of probe slots whose events record the function address.
    pub func_ip: u32,
    /// Command name recorded under [`FilterMode::Comm`], NUL padded.
    pub target_comm: [u8; snapshot_common::COMM_LEN],
    /// Offset of `child_pid` in `sched:sched_process_fork` (for `--follow-forks`).
    pub fork_child_offset: u32,
    /// How triggers take snapshots (`--count`, `--holdoff`, `--post`, `--on-no-spare`).
    pub rules: Rules,
    /// The kernel's features the programs may use (`kfeature` bits, from
    /// `probe::features`). Without `kfeature::ATOMICS`, the object's atomic instructions are
    /// poisoned before loading (see `poison`).
    pub features: u32,
    /// Per probe slot, the argument words of the traced function (fentry/fexit without
    /// `kfeature::FUNC_ARGS`).
    pub func_words: [u32; snapshot_common::MAX_PROBES],
    /// Per probe slot, how the return register is widened to 64 bits (a
    /// [`snapshot_common::widen`] code, from the function's BTF return type).
    pub ret_widen: [u32; snapshot_common::MAX_PROBES],
    /// What each probe slot captures (`MAX_STRINGS` per slot, unused ones `kind::NONE`).
    pub strings: [StringSpec; MAX_PROBES * MAX_STRINGS],
    /// `--string-size`.
    pub string_size: u32,
    /// Per probe slot, 1 + the offset of the tracepoint field holding the pid the target filter
    /// tests instead of the current task's (`ProbeSpec::subject_pid`), 0 for none.
    pub subject_pid: [u32; MAX_PROBES],
    /// Whether the trigger has a sequence (`A then B within T`). Without one, `SEQ_STATE` is
    /// created with a single entry instead of preallocating `SEQ_THREADS` (about 1 MiB).
    pub sequences: bool,
    /// What the trigger programs of this load may contain (`snapshot_common::shape`): the
    /// verifier walks only that much of the interpreter. [`TriggerShape::FULL`] admits all.
    pub trigger_shape: TriggerShape,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            ncpu: 0,
            capacity: 0,
            filter: FilterMode::default(),
            target_tgid: 0,
            pairs: [0; MAX_PROBES],
            func_ip: 0,
            target_comm: [0; snapshot_common::COMM_LEN],
            fork_child_offset: 0,
            rules: Rules::default(),
            strings: [StringSpec::default(); MAX_PROBES * MAX_STRINGS],
            string_size: 0,
            features: 0,
            func_words: [0; MAX_PROBES],
            ret_widen: [0; MAX_PROBES],
            sequences: false,
            subject_pid: [0; MAX_PROBES],
            trigger_shape: TriggerShape::FULL,
        }
    }
}

impl LoadConfig {
    /// The tickets of one `--post` window (N, or 1 for a duration; 0 without a window).
    #[must_use]
    pub const fn post_tickets(&self) -> u64 {
        match self.rules.post {
            Post::None => 0,
            Post::Events(n) => n,
            Post::Nanos(_) => 1,
        }
    }

    /// The most strings one probe captures (the payload slots hold that many).
    #[must_use]
    pub fn strings_per_event(&self) -> u32 {
        self.strings
            .chunks(MAX_STRINGS)
            .map(|c| c.iter().filter(|s| s.kind != 0).count() as u32)
            .max()
            .unwrap_or(0)
    }

    /// `max_entries` of `SEQ_STATE`: the threads remembered per sequence when the trigger has
    /// one, else 1 (the map is never touched).
    #[must_use]
    pub const fn seq_state_entries(&self) -> u32 {
        if self.sequences {
            snapshot_common::sequence::SEQ_THREADS
        } else {
            1
        }
    }

    /// Bytes of a payload slot (0: no probe captures strings).
    #[must_use]
    pub fn payload_size(&self) -> u32 {
        match self.strings_per_event() {
            0 => 0,
            n => payload_size(self.string_size, n),
        }
    }
}

/// Additions to what [`load`] patches in (the benchmark's own programs): 64-bit globals and
/// map sizes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra<'a> {
    /// Globals (`u64`) by name.
    pub globals: &'a [(&'a str, u64)],
    /// Map sizes (`max_entries`) by map name.
    pub max_entries: &'a [(&'a str, u32)],
}

/// Loads the object with `config` patched in; no program is loaded or attached yet.
pub fn load(config: &LoadConfig) -> anyhow::Result<Ebpf> {
    load_with(config, &Extra::default())
}

/// As [`load`], with `extra` patched in too.
pub fn load_with(config: &LoadConfig, extra: &Extra<'_>) -> anyhow::Result<Ebpf> {
    let events = u64::from(config.ncpu) * u64::from(config.capacity) * 2;
    let events = u32::try_from(events)
        .context("the buffer is too large for this many CPUs: choose a smaller --buffer-size")?;
    let (post_events, post_ns) = match config.rules.post {
        Post::None => (0u64, 0u64),
        Post::Events(n) => (n, 0),
        Post::Nanos(ns) => (0, ns),
    };
    let (filter, policy, self_tgid) = (
        config.filter as u32,
        config.rules.on_no_spare as u32,
        std::process::id(),
    );
    let log_level = super::log::kernel_level();
    anyhow::ensure!(
        !EBPF_OBJECT.is_empty(),
        "this build has no eBPF object (it was built with AYA_BUILD_SKIP=1, as the fuzz targets are): build it again without AYA_BUILD_SKIP"
    );
    // Payload slots: one per event slot when a probe captures strings, one otherwise.
    let payload = config.payload_size();
    let header = size_of::<PayloadHeader>() as u32;
    let mut object = EBPF_OBJECT.to_vec();
    patch::set_value_size(&mut object, names::PAYLOADS, header, payload.max(header))?;
    let build_ids = config.features & kfeature::STACK_BUILD_ID != 0;
    if build_ids {
        patch::set_build_id_stack(&mut object, names::USTACKS_BUILD_ID)?;
    }
    let mut loader = EbpfLoader::new();
    loader
        .override_global(names::GLOBAL_NCPU, &config.ncpu, true)
        .override_global(names::GLOBAL_CAPACITY, &config.capacity, true)
        .override_global(names::GLOBAL_FILTER, &filter, true)
        .override_global(names::GLOBAL_SELF_TGID, &self_tgid, true)
        .override_global(names::GLOBAL_TARGET_TGID, &config.target_tgid, true)
        .override_global(names::GLOBAL_POLICY, &policy, true)
        .override_global(names::GLOBAL_PAIRS, &config.pairs, true)
        .override_global(names::GLOBAL_COUNT, &config.rules.count, true)
        .override_global(names::GLOBAL_HOLDOFF, &config.rules.holdoff_ns, true)
        .override_global(names::GLOBAL_POST_EVENTS, &post_events, true)
        .override_global(names::GLOBAL_POST_NS, &post_ns, true)
        .override_global(names::GLOBAL_FUNC_IP, &config.func_ip, true)
        .override_global(names::GLOBAL_TARGET_COMM, &config.target_comm, true)
        .override_global(
            names::GLOBAL_FORK_CHILD_OFFSET,
            &config.fork_child_offset,
            true,
        )
        .override_global(names::GLOBAL_FEATURES, &config.features, true)
        .override_global(names::GLOBAL_FUNC_WORDS, &config.func_words, true)
        .override_global(names::GLOBAL_RET_WIDEN, &config.ret_widen, true)
        .override_global(names::GLOBAL_SUBJECT_PID, &config.subject_pid, true)
        .override_global(names::GLOBAL_TRIGGER_LEN, &config.trigger_shape.len, true)
        .override_global(names::GLOBAL_TRIGGER_OPS, &config.trigger_shape.ops, true)
        // The kernel side logs only what this process prints (see `log`); not required to
        // exist: an object without aya-log records the same.
        .override_global(aya_log::LEVEL, &log_level, false)
        .override_global(names::GLOBAL_STRINGS, &config.strings, true)
        .override_global(names::GLOBAL_STRING_SIZE, &config.string_size, true)
        .map_max_entries(names::EVENTS, events)
        .map_max_entries(names::PAYLOADS, if payload == 0 { 1 } else { events })
        .map_max_entries(names::CPU_STATE, config.ncpu)
        .map_max_entries(names::SEQ_STATE, config.seq_state_entries());
    if !build_ids {
        // A plain stack map the programs never touch (the branch is pruned).
        loader.map_max_entries(names::USTACKS_BUILD_ID, 1);
    }
    if config.features & kfeature::ATOMICS == 0 {
        let tickets = u32::try_from(config.post_tickets().max(1))
            .context("--post is too large: keep it below the buffer size")?;
        loader.map_max_entries(names::POST_TICKETS, tickets);
    }
    for (name, value) in extra.globals {
        loader.override_global(name, value, true);
    }
    for (name, n) in extra.max_entries {
        loader.map_max_entries(name, *n);
    }
    let poisoned;
    let object = if config.features & kfeature::ATOMICS == 0 {
        poisoned = poison::without_atomics(&object)?.0;
        poisoned.bytes()
    } else {
        &object
    };
    loader.load(object).context(
        "loading the eBPF object failed (its maps could not be created): check that you are root and the kernel has BPF enabled",
    )
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("map {name} missing from the eBPF object (a build mismatch): rebuild with `cargo xtask build`"))
}

/// Adds `tgid` to the in-kernel target set.
pub fn add_target(ebpf: &mut Ebpf, tgid: u32) -> anyhow::Result<()> {
    let mut targets: HashMap<_, u32, u8> = HashMap::try_from(map_mut(ebpf, names::TARGETS)?)?;
    targets
        .insert(&tgid, &1, 0)
        .with_context(|| format!("cannot add pid {tgid} to the target map"))
}

/// Stores the tracepoint field layout of probe `id`.
pub fn set_probe_config(ebpf: &mut Ebpf, id: u32, config: &ProbeConfig) -> anyhow::Result<()> {
    let mut probes: Array<_, ProbeConfig> = Array::try_from(map_mut(ebpf, names::PROBES)?)?;
    probes
        .set(id, config, 0)
        .with_context(|| format!("cannot store the field layout of probe {id}"))
}

/// Installs the trigger condition.
pub fn set_trigger(ebpf: &mut Ebpf, trigger: &TriggerProgram) -> anyhow::Result<()> {
    let mut map: Array<_, TriggerProgram> = Array::try_from(map_mut(ebpf, names::TRIGGERS)?)?;
    map.set(0, trigger, 0).context("cannot install the trigger")
}

/// Attaches the comm-cache invalidation program to the tracepoints where command names change.
/// Without it, events after an exec or a rename could carry the old name: a failure is an error.
pub fn attach_comm_invalidation(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let prog: &mut aya::programs::RawTracePoint = ebpf
        .program_mut(names::PROG_COMM_CHANGED)
        .context(
            "program comm_changed missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    prog.load()
        .context("cannot load the comm_changed program")?;
    for tp in names::COMM_CHANGE_POINTS {
        prog.attach(tp)
            .with_context(|| format!("cannot attach comm_changed to the {tp} raw tracepoint"))?;
    }
    Ok(())
}

/// Attaches the `--follow-forks` programs: children of targets become targets.
pub fn attach_follow_forks(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let fork: &mut aya::programs::TracePoint = ebpf
        .program_mut(names::PROG_FOLLOW_FORK)
        .context(
            "program follow_fork missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    fork.load().context("cannot load the follow_fork program")?;
    fork.attach("sched", "sched_process_fork")
        .context("cannot attach to sched:sched_process_fork (needed by --follow-forks)")?;
    let exit: &mut aya::programs::RawTracePoint = ebpf
        .program_mut(names::PROG_FOLLOW_EXIT)
        .context(
            "program follow_exit missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    exit.load().context("cannot load the follow_exit program")?;
    exit.attach("sched_process_exit").context(
        "cannot attach to the sched_process_exit raw tracepoint (needed by --follow-forks)",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSymbol as _};
    use snapshot_common::names;

    use super::EBPF_OBJECT;

    /// Every name userspace looks up exists in the built object: maps, globals and programs,
    /// including each probe slot of each family.
    #[test]
    fn every_name_is_in_the_object() {
        let file = object::File::parse(EBPF_OBJECT).expect("the eBPF object is an ELF file");
        let symbols: std::collections::HashSet<&str> =
            file.symbols().filter_map(|s| s.name().ok()).collect();
        let mut wanted = vec![
            names::EVENTS,
            names::CPU_STATE,
            names::CONTROL,
            names::TRIGGERS,
            names::TRIGGER_STATE,
            names::NOTIFY,
            names::TARGETS,
            names::PROBES,
            names::STACKS,
            names::USTACKS_BUILD_ID,
            names::PENDING,
            names::GLOBAL_NCPU,
            names::GLOBAL_CAPACITY,
            names::GLOBAL_FILTER,
            names::GLOBAL_TARGET_TGID,
            names::GLOBAL_SELF_TGID,
            names::GLOBAL_PAIRS,
            names::GLOBAL_FUNC_IP,
            names::GLOBAL_TARGET_COMM,
            names::GLOBAL_FORK_CHILD_OFFSET,
            names::GLOBAL_COUNT,
            names::GLOBAL_HOLDOFF,
            names::GLOBAL_POLICY,
            names::GLOBAL_POST_EVENTS,
            names::GLOBAL_POST_NS,
            names::PAYLOADS,
            names::GLOBAL_STRINGS,
            names::GLOBAL_STRING_SIZE,
            names::PROG_COMM_CHANGED,
            names::PROG_FOLLOW_FORK,
            names::PROG_FOLLOW_EXIT,
            names::PROG_BENCH_EMPTY,
            names::GLOBAL_FEATURES,
            names::GLOBAL_FUNC_WORDS,
            names::GLOBAL_RET_WIDEN,
            names::ARM_TOKEN,
            names::STOP_TOKEN,
            names::POST_TICKETS,
            names::CALL_SITES,
            names::PROG_GLOB_ENTRY,
            names::PROG_BENCH_RINGBUF,
            names::BENCH_RING,
            names::GLOBAL_BENCH_RB_FLAGS,
        ];
        let slots: Vec<String> = names::SLOT_FAMILIES
            .iter()
            .flat_map(|f| (0..snapshot_common::MAX_PROBES).map(move |i| names::slot_program(f, i)))
            .collect();
        wanted.extend(slots.iter().map(String::as_str));
        let missing: Vec<&&str> = wanted.iter().filter(|n| !symbols.contains(**n)).collect();
        assert!(
            missing.is_empty(),
            "missing from the eBPF object: {missing:?}"
        );
    }
}
