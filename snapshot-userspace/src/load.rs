//! Loading the eBPF object, sized and configured for one recording.

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap},
};
use snapshot_common::{FilterMode, NoSparePolicy, ProbeConfig, TriggerProgram, names};

/// The eBPF object, built by `build.rs` with the pinned eBPF toolchain.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/snapshot"));

/// Load-time configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadConfig {
    /// Possible CPUs (`aya::util::nr_cpus`).
    pub ncpu: u32,
    /// Events per CPU per half.
    pub capacity: u32,
    /// Which tasks are recorded.
    pub filter: FilterMode,
    /// The tgid recorded under [`FilterMode::One`].
    pub target_tgid: u32,
    /// What a trigger does without an armed spare.
    pub policy: NoSparePolicy,
    /// Benchmark only: submit flags and size of the comparison ring buffer.
    pub bench_ring: Option<(u64, u32)>,
    /// Pair number of each probe slot (see `spec::pairs`).
    pub pairs: [u32; snapshot_common::MAX_PROBES],
    /// Bit mask of probe slots whose events record the function address.
    pub func_ip: u32,
    /// Command name recorded under [`FilterMode::Comm`], NUL padded.
    pub target_comm: [u8; snapshot_common::COMM_LEN],
    /// Offset of `child_pid` in `sched:sched_process_fork` (for `--follow-forks`).
    pub fork_child_offset: u32,
    /// Most snapshots the trigger takes (0: no limit).
    pub count: u64,
    /// Minimum ns between two trigger snapshots.
    pub holdoff_ns: u64,
    /// Events recorded after a trigger before the flip (`--post N`).
    pub post_events: u64,
    /// Nanoseconds recorded after a trigger before the flip (`--post DURATION`).
    pub post_ns: u64,
}

/// Loads the object with `config` patched in; no program is loaded or attached yet.
pub fn load(config: &LoadConfig) -> anyhow::Result<Ebpf> {
    let self_tgid = std::process::id();
    let filter = config.filter as u32;
    let policy = config.policy as u32;
    let events = u64::from(config.ncpu) * u64::from(config.capacity) * 2;
    let events = u32::try_from(events)
        .context("the buffer is too large for this many CPUs: choose a smaller --buffer-size")?;
    let (rb_flags, rb_bytes) = config.bench_ring.unwrap_or((0, 4096));
    EbpfLoader::new()
        .override_global("SNAPSHOT_BENCH_RB_FLAGS", &rb_flags, true)
        .map_max_entries("BENCH_RING", rb_bytes)
        .override_global(names::GLOBAL_NCPU, &config.ncpu, true)
        .override_global(names::GLOBAL_CAPACITY, &config.capacity, true)
        .override_global(names::GLOBAL_FILTER, &filter, true)
        .override_global(names::GLOBAL_SELF_TGID, &self_tgid, true)
        .override_global(names::GLOBAL_TARGET_TGID, &config.target_tgid, true)
        .override_global(names::GLOBAL_POLICY, &policy, true)
        .override_global(names::GLOBAL_PAIRS, &config.pairs, true)
        .override_global(names::GLOBAL_COUNT, &config.count, true)
        .override_global(names::GLOBAL_HOLDOFF, &config.holdoff_ns, true)
        .override_global(names::GLOBAL_POST_EVENTS, &config.post_events, true)
        .override_global(names::GLOBAL_POST_NS, &config.post_ns, true)
        .override_global(names::GLOBAL_FUNC_IP, &config.func_ip, true)
        .override_global(names::GLOBAL_TARGET_COMM, &config.target_comm, true)
        .override_global(names::GLOBAL_FORK_CHILD_OFFSET, &config.fork_child_offset, true)
        // The kernel side logs only what this process prints (see `ebpf_log`); not required
        // to exist: an object without aya-log records the same.
        .override_global(aya_log::LEVEL, &crate::ebpf_log::kernel_level(), false)
        .map_max_entries(names::EVENTS, events)
        .map_max_entries(names::CPU_STATE, config.ncpu)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object failed (its maps could not be created): check that you are root and the kernel has BPF enabled")
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
        .program_mut("comm_changed")
        .context(
            "program comm_changed missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    prog.load()
        .context("cannot load the comm_changed program")?;
    for tp in ["sched_process_exec", "task_rename"] {
        prog.attach(tp)
            .with_context(|| format!("cannot attach comm_changed to the {tp} raw tracepoint"))?;
    }
    Ok(())
}

/// Attaches the `--follow-forks` programs: children of targets become targets.
pub fn attach_follow_forks(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let fork: &mut aya::programs::TracePoint = ebpf
        .program_mut("follow_fork")
        .context(
            "program follow_fork missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    fork.load().context("cannot load the follow_fork program")?;
    fork.attach("sched", "sched_process_fork")
        .context("cannot attach to sched:sched_process_fork (needed by --follow-forks)")?;
    let exit: &mut aya::programs::RawTracePoint = ebpf
        .program_mut("follow_exit")
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
