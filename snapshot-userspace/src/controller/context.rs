//! The trigger context of a notice: who fired, what value, and the raw stacks with the
//! process's memory map, read at once (the process may exit) and symbolized later, after the
//! spare is re-armed.

use std::path::Path;

use snapshot_common::Notice;

use super::Controller;
use crate::{
    snapshot::{
        Fired, SequenceFired,
        symbols::{BUILD_ID_STACK_NOT_TAKEN, NO_MAPS_ENV, Stacks},
    },
    sys::comm_str,
};

impl Controller {
    /// The context of notice `n`, with its stacks read from the kernel (and freed there).
    pub(super) fn fired(&mut self, n: &Notice) -> (Fired, Stacks) {
        let probe = self
            .probes()
            .iter()
            .find(|p| p.id == n.probe_id)
            .map_or_else(|| format!("probe{}", n.probe_id), |p| p.name.clone());
        let pid = (n.pid_tgid >> 32) as u32;
        let comm = comm_str(&n.comm);
        let no_maps = std::env::var_os(NO_MAPS_ENV).is_some();
        let stacks = Stacks::read_cached(
            Path::new(if no_maps { "/nonexistent" } else { "/" }),
            (pid, &comm),
            self.session.take_stack(n.kstack.into()),
            self.session.take_stack(n.ustack.into()),
            (!no_maps).then_some(&self.maps_cache),
            n.ts_ns,
        )
        .with_build_ids(
            if self.session.build_id_stacks() {
                n.ustack_build_id.into()
            } else {
                BUILD_ID_STACK_NOT_TAKEN
            },
            self.session.take_build_id_stack(n.ustack_build_id.into()),
        );
        for m in stacks.mappings() {
            self.symbolizer.files().note(&m.path);
        }
        let (number, first_ns) = snapshot_common::sequence::fired_parts(n.sequence);
        let fired = Fired {
            ts_ns: n.ts_ns,
            cpu: n.cpu,
            pid,
            tid: n.pid_tgid as u32,
            comm,
            probe,
            value: n.value as i64,
            post: self.session.rules().post.describe(),
            sequence: (number != 0).then(|| SequenceFired {
                index: number,
                text: self
                    .ctx
                    .sequences
                    .get(number as usize - 1)
                    .cloned()
                    .unwrap_or_default(),
                first_ns,
                then_ns: n.ts_ns,
            }),
            ..Fired::default()
        };
        (fired, stacks)
    }

    /// Reads the memory maps of processes `pids` into the cache the user stacks of processes
    /// gone at their trigger are symbolized with (see [`crate::snapshot::symbols::MapsCache`]), and forgets the dead.
    pub fn refresh_maps(&mut self, pids: impl IntoIterator<Item = u32>) {
        let root = Path::new("/");
        self.maps_cache.retain_alive(root);
        self.maps_cache
            .refresh(root, pids, crate::sys::boot_ns(), self.symbolizer.files());
    }

    /// Notes the files a crash's build-id frames may name before any memory map is read: the
    /// targets' executables (each told apart when it has no build id, and logged), and the
    /// files this process maps (the C library and loader its targets likely share).
    pub fn note_files(&mut self, executables: &[std::path::PathBuf]) {
        let files = self.symbolizer.files();
        for exe in executables {
            if !files.note_target(exe) {
                log::warn!(
                    "{} has no build id (it was linked without --build-id): the user stacks of a crash of it resolve only through a memory map read while it ran",
                    exe.display()
                );
            }
        }
        let own = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        for m in crate::snapshot::symbols::parse_maps(&own) {
            files.note(&m.path);
        }
    }
}
