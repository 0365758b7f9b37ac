//! Symbolizing addresses: kernel addresses with kallsyms, user addresses through the process's
//! memory map (`/proc/PID/maps`) and the ELF symbols of the mapped file, and user frames no
//! memory map covers (a process gone before its map was read) through the build id and file
//! offset the kernel took with them (see [`super::buildid`]).
//!
//! Stacks are symbolized when the snapshot is taken (the process may be gone by the time
//! someone reads the file, and kallsyms shows addresses only to root); the file keeps both the
//! address and the name.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use snapshot_common::{BUILD_ID_IP, BUILD_ID_VALID, BuildIdFrame};

use super::buildid::{self, BuildIdIndex};

/// Test switch: with this variable set, a trigger's user stack is resolved as if no memory
/// map of its process had been read (none at the trigger, none cached), so that tests see the
/// build-id path whatever the timing of the crash.
pub const NO_MAPS_ENV: &str = "SNAPSHOT_NO_MAPS";

/// Offsets beyond this from the nearest symbol are not trusted (the address lies past the last
/// symbol of a region, or in a gap).
const MAX_OFFSET: u64 = 1 << 20;

/// One stack frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// Instruction address.
    pub addr: u64,
    /// `function+0xoffset`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The file the address belongs to (user frames), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The build id (hex) of the file the kernel found at the address (user frames), when it
    /// could read one: with `file_offset`, enough to symbolize the frame later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The address's offset in that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<u64>,
}

impl Frame {
    /// `symbol`, else `build-id HEX+0xOFFSET`, else the address in hex; with the object for
    /// user frames.
    #[must_use]
    pub fn describe(&self) -> String {
        let what =
            self.symbol
                .clone()
                .unwrap_or_else(|| match (&self.build_id, self.file_offset) {
                    (Some(id), Some(off)) => format!("build-id {id}+{off:#x}"),
                    _ => format!("{:#x}", self.addr),
                });
        match &self.object {
            Some(o) => format!("{what} ({o})"),
            None => what,
        }
    }
}

/// Sorted (address, name) table with a nearest-below lookup.
#[derive(Debug, Default)]
struct Table {
    syms: Vec<(u64, u64, String)>,
}

impl Table {
    /// Builds the table from (address, size, name); size 0 means "up to the next symbol".
    fn new(mut syms: Vec<(u64, u64, String)>) -> Self {
        syms.retain(|s| s.0 != 0);
        syms.sort_by_key(|s| s.0);
        Self { syms }
    }

    /// `name+0xoff` of the symbol containing `addr`.
    fn lookup(&self, addr: u64) -> Option<String> {
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.syms[i];
        let off = addr - start;
        if (*size != 0 && off >= *size) || off > MAX_OFFSET {
            return None;
        }
        let name = format!("{:#}", rustc_demangle::demangle(name));
        Some(if off == 0 {
            name
        } else {
            format!("{name}+{off:#x}")
        })
    }
}

/// The build-id stack id of a snapshot whose trigger does not take one (only the crash, oom
/// and signal triggers do: see `session::SessionConfig::build_id_stacks`).
pub const BUILD_ID_STACK_NOT_TAKEN: i64 = i64::MIN;

/// Kernel symbols from a kallsyms listing.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    table: Table,
}

impl KernelSymbols {
    /// Reads `/proc/kallsyms` under `root` (empty, so nothing resolves, when unreadable or when
    /// the addresses are hidden).
    #[must_use]
    pub fn load(root: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(root.join("proc/kallsyms")).unwrap_or_default())
    }

    /// Builds the table from kallsyms text.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let syms = crate::probe::lookup::parse_kallsyms(text)
            .into_iter()
            .map(|(a, n)| (a, 0, n))
            .collect();
        Self {
            table: Table::new(syms),
        }
    }

    /// Symbolizes a kernel stack.
    #[must_use]
    pub fn frames(&self, ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .map(|&addr| Frame {
                addr,
                symbol: self.table.lookup(addr),
                ..Frame::default()
            })
            .collect()
    }
}

/// One executable mapping of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The mapped file.
    pub path: PathBuf,
}

/// The file-backed mappings of a `/proc/PID/maps` listing.
#[must_use]
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (start, end) = w.next()?.split_once('-')?;
            let _perms = w.next()?;
            let offset = u64::from_str_radix(w.next()?, 16).ok()?;
            let _dev = w.next()?;
            let _inode = w.next()?;
            let path = w.next()?;
            if !path.starts_with('/') {
                return None;
            }
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// An ELF file's function symbols and its loadable segments (file offset → address).
#[derive(Debug, Default)]
struct Elf {
    table: Table,
    /// (file offset, file size, virtual address) of each `PT_LOAD` segment.
    segments: Vec<(u64, u64, u64)>,
}

impl Elf {
    fn read(path: &Path) -> Option<Self> {
        use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let syms = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
            .collect();
        let segments = file
            .segments()
            .map(|s| {
                // A separate debug file keeps the program headers but not the contents.
                let (off, size) = s.file_range();
                (off, if size == 0 { s.size() } else { size }, s.address())
            })
            .collect();
        Some(Self {
            table: Table::new(syms),
            segments,
        })
    }

    /// The symbol at file offset `off`.
    fn lookup(&self, off: u64) -> Option<String> {
        let (seg_off, _, vaddr) = self
            .segments
            .iter()
            .find(|(o, size, _)| (*o..o + size).contains(&off))?;
        self.table.lookup(off - seg_off + vaddr)
    }
}

/// Most ELF files [`UserSymbols`] keeps read (all are dropped when one more is needed).
const ELF_CACHED: usize = 64;

/// User-space symbolizer, caching the ELF files it has read.
#[derive(Debug, Default)]
pub struct UserSymbols {
    files: HashMap<PathBuf, Option<Elf>>,
}

impl UserSymbols {
    /// The symbol at file offset `off` of the ELF file at `path`.
    fn lookup(&mut self, path: &Path, off: u64) -> Option<String> {
        if self.files.len() >= ELF_CACHED && !self.files.contains_key(path) {
            self.files.clear();
        }
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| Elf::read(path))
            .as_ref()?
            .lookup(off)
    }

    /// Symbolizes `ips` against `maps`.
    pub fn frames_in(&mut self, maps: &[Mapping], ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .map(|&addr| {
                let Some(m) = maps.iter().find(|m| (m.start..m.end).contains(&addr)) else {
                    return Frame {
                        addr,
                        ..Frame::default()
                    };
                };
                Frame {
                    addr,
                    symbol: self.lookup(&m.path, addr - m.start + m.offset),
                    object: m.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    ..Frame::default()
                }
            })
            .collect()
    }
}

/// The file-backed mappings of process `pid` under `root` (empty: gone, a zombie, or no
/// file mapped).
fn read_maps(root: &Path, pid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(root.join(format!("proc/{pid}/maps")))
        .map(|t| parse_maps(&t))
        .unwrap_or_default()
}

/// The memory maps of the targets as last seen, for the user stacks of a process that is gone
/// by the time its trigger is handled (a crash: the process exits right after the signal is
/// delivered, usually before userspace hears of it).
#[derive(Debug, Default)]
pub struct MapsCache {
    /// pid → (mappings, when read: boot-time ns, the process's command name then).
    entries: HashMap<u32, (Vec<Mapping>, u64, String)>,
}

/// Most processes cached (a `--follow-forks` tree or a notice storm cannot grow it further).
const MAPS_CACHED: usize = 1024;

impl MapsCache {
    /// Reads the maps of `pids` under `root` now, at boot time `now_ns`, with their command
    /// names; a process whose maps read empty (gone, a zombie) keeps its last entry, and one
    /// still running this binary (a started command not yet past its `exec`) is skipped.
    /// Every file mapped is noted in `seen` (its build id may name it later).
    pub fn refresh(
        &mut self,
        root: &Path,
        pids: impl IntoIterator<Item = u32>,
        now_ns: u64,
        seen: &mut BuildIdIndex,
    ) {
        let exe = |p: &str| std::fs::read_link(root.join(p)).ok();
        let own = exe("proc/self/exe");
        for pid in pids {
            if own.is_some() && exe(&format!("proc/{pid}/exe")) == own {
                continue;
            }
            let maps = read_maps(root, pid);
            let comm = std::fs::read_to_string(root.join(format!("proc/{pid}/comm")))
                .map(|c| c.trim_end_matches('\n').to_owned());
            let (false, Ok(comm)) = (maps.is_empty(), comm) else {
                continue;
            };
            if self.entries.len() >= MAPS_CACHED && !self.entries.contains_key(&pid) {
                continue;
            }
            for m in &maps {
                seen.note(&m.path);
            }
            self.entries.insert(pid, (maps, now_ns, comm));
        }
    }

    /// Forgets processes that are gone (their entries stay until then for their triggers).
    pub fn retain_alive(&mut self, root: &Path) {
        self.entries
            .retain(|pid, _| root.join(format!("proc/{pid}/maps")).exists());
    }
}

/// Where the memory map that symbolized a user stack came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapsSource {
    /// No user stack.
    #[default]
    None,
    /// Read when userspace handled the trigger.
    AtTrigger,
    /// The process was gone: the map cached at this boot time (ns).
    Cached(u64),
    /// The process was gone and no map of it was cached.
    Missing,
}

/// A trigger's stacks as taken: instruction addresses, and the memory map of the process the
/// user stack belongs to (read while it still runs, or cached before it exited); the user
/// stack as build id + file offset per frame too.
#[derive(Debug, Default)]
pub struct Stacks {
    kernel: Vec<u64>,
    user: Vec<u64>,
    maps: Vec<Mapping>,
    source: MapsSource,
    /// When the trigger fired (boot-time ns).
    fired_ns: u64,
    /// The process's command name at the trigger.
    comm: String,
    /// The user stack's frames as build id + file offset (or address).
    build_ids: Vec<BuildIdFrame>,
    /// The build-id stack's id as the notice carried it (negative: an errno, none taken).
    build_id_stack: i64,
}

/// How the frames of a user stack were resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Through the memory map.
    pub by_maps: usize,
    /// Through the build id of a file found.
    pub by_build_id: usize,
    /// With a build id no file found has: shown as `build-id HEX+0xOFFSET`.
    pub raw_build_id: usize,
    /// Not at all: no mapping and no build id.
    pub unresolved: usize,
}

impl Stacks {
    /// The stacks of process `pid`, reading its memory map under `root` now when there is a
    /// user stack, else taking the one `cache` kept of it.
    #[must_use]
    pub fn read(root: &Path, pid: u32, kernel: Vec<u64>, user: Vec<u64>) -> Self {
        Self::read_cached(root, (pid, ""), kernel, user, None, 0)
    }

    /// As [`Self::read`], falling back on `cache` when the process is gone: on the map cached
    /// while it ran under the command name `comm` it had at the trigger (an `exec` since
    /// changes the name: the map of the image before is not used); `fired_ns` is when the
    /// trigger fired (the header says how long before it a cached map was read).
    #[must_use]
    pub fn read_cached(
        root: &Path,
        (pid, comm): (u32, &str),
        kernel: Vec<u64>,
        user: Vec<u64>,
        cache: Option<&MapsCache>,
        fired_ns: u64,
    ) -> Self {
        let (maps, source) = if user.is_empty() {
            (Vec::new(), MapsSource::None)
        } else {
            let maps = read_maps(root, pid);
            match cache.and_then(|c| c.entries.get(&pid)) {
                Some((cached, at, was)) if maps.is_empty() && was == comm => {
                    (cached.clone(), MapsSource::Cached(*at))
                }
                _ if maps.is_empty() => (maps, MapsSource::Missing),
                _ => (maps, MapsSource::AtTrigger),
            }
        };
        Self {
            kernel,
            user,
            maps,
            source,
            fired_ns,
            comm: comm.to_owned(),
            build_ids: Vec::new(),
            build_id_stack: -1,
        }
    }

    /// With the user stack as build id + file offset per frame: `id` as the notice carried it
    /// (negative: none was taken, an errno), `frames` as read from the kernel.
    #[must_use]
    pub fn with_build_ids(mut self, id: i64, frames: Vec<BuildIdFrame>) -> Self {
        self.build_id_stack = id;
        self.build_ids = frames;
        self
    }

    /// The file-backed mappings read or cached for the user stack.
    #[must_use]
    pub fn mappings(&self) -> &[Mapping] {
        &self.maps
    }

    /// How the header describes the map used and how the frames resolved: `read at the
    /// trigger`, `cached 120 ms before the trigger, the process having exited`, `by build
    /// id: the process had exited and no map of it was cached`, with what did not resolve.
    #[must_use]
    pub fn maps_note(&self, r: &Resolved, lacking: &[String]) -> Option<String> {
        let mut note = match self.source {
            MapsSource::None if self.build_ids.is_empty() => return None,
            MapsSource::None => "none".to_owned(),
            MapsSource::AtTrigger => "read at the trigger".to_owned(),
            MapsSource::Cached(at) => format!(
                "cached {} ms before the trigger, the process having exited",
                self.fired_ns.saturating_sub(at) / 1_000_000
            ),
            MapsSource::Missing if r.by_build_id > 0 && r.by_maps == 0 => {
                "by build id: the process had exited and no map of it was cached".to_owned()
            }
            MapsSource::Missing => {
                "none: the process had exited and no map of it was cached".to_owned()
            }
        };
        let frames = |n: usize| {
            if n == 1 {
                "1 frame".to_owned()
            } else {
                format!("{n} frames")
            }
        };
        if r.by_build_id > 0 && (r.by_maps > 0 || self.source != MapsSource::Missing) {
            note += &format!("; {} by build id", frames(r.by_build_id));
        }
        if r.raw_build_id > 0 {
            note += &format!(
                "; {} by raw build id (no file with it was found: see /usr/lib/debug/.build-id or the binary's `readelf -n`)",
                frames(r.raw_build_id)
            );
        }
        if r.unresolved > 0 {
            note += &format!("; {} unresolved", frames(r.unresolved));
            match self.build_id_stack {
                BUILD_ID_STACK_NOT_TAKEN => {
                    note +=
                        " (no build-id stack: taken for the crash, oom and signal triggers only)";
                }
                -95 => note += " (no build-id stack: this kernel has no build-id stack maps)",
                e if e < 0 => note += &format!(" (no build-id stack: the kernel's error {e})"),
                _ if !lacking.is_empty() => {
                    note += &format!(" (no build id: {} linked without one)", lacking.join(", "));
                }
                _ => note += " (no build id: anonymous or JIT code, or a file without one)",
            }
        }
        Some(note)
    }
}

/// Kernel and user symbols, loaded once, and the files that build ids may name.
#[derive(Debug, Default)]
pub struct Symbolizer {
    kernel: KernelSymbols,
    user: UserSymbols,
    files: BuildIdIndex,
}

impl Symbolizer {
    /// Reads kallsyms under `root` (the ELF files of user stacks are read when first needed);
    /// build ids are looked up in `files`.
    #[must_use]
    pub fn load(root: &Path, files: BuildIdIndex) -> Self {
        Self {
            kernel: KernelSymbols::load(root),
            user: UserSymbols::default(),
            files,
        }
    }

    /// The files build ids are looked up in (to note more).
    pub fn files(&mut self) -> &mut BuildIdIndex {
        &mut self.files
    }

    /// Fills the stacks of `fired` from `stacks`, symbolized.
    pub fn apply(&mut self, fired: &mut super::Fired, stacks: &Stacks) {
        fired.kernel_stack = self.kernel.frames(&stacks.kernel);
        let mut user = self.user.frames_in(&stacks.maps, &stacks.user);
        let resolved = self.by_build_id(&mut user, stacks);
        fired.user_stack = user;
        fired.user_maps = stacks.maps_note(&resolved, self.files.lacking());
    }

    /// Resolves the frames of `user` no mapping covered (or one at another file offset than
    /// the kernel saw) through their build-id frames, and records every frame's build id and
    /// file offset.
    fn by_build_id(&mut self, user: &mut Vec<Frame>, stacks: &Stacks) -> Resolved {
        // Without an address stack (its map full, say), the build-id frames stand alone.
        for b in stacks.build_ids.iter().skip(user.len()) {
            user.push(Frame {
                addr: if b.status == BUILD_ID_IP {
                    b.offset_or_ip
                } else {
                    0
                },
                ..Frame::default()
            });
        }
        let mut found: HashMap<buildid::BuildId, Option<PathBuf>> = HashMap::new();
        let mut r = Resolved::default();
        for (i, f) in user.iter_mut().enumerate() {
            let b = stacks
                .build_ids
                .get(i)
                .filter(|b| b.status == BUILD_ID_VALID);
            if let Some(b) = b {
                f.build_id = Some(buildid::hex(&b.build_id));
                f.file_offset = Some(b.offset_or_ip);
            }
            // A map read mid-`exec` (the cache races with the loader) can cover an address
            // with the wrong file offset: the kernel's offset overrides it.
            let agrees = || {
                let m = stacks
                    .maps
                    .iter()
                    .find(|m| (m.start..m.end).contains(&f.addr));
                match (m, b) {
                    (Some(m), Some(b)) => f.addr - m.start + m.offset == b.offset_or_ip,
                    _ => true,
                }
            };
            match b {
                _ if f.object.is_some() && agrees() => r.by_maps += 1,
                None => r.unresolved += 1,
                Some(b) => {
                    let path = found
                        .entry(b.build_id)
                        .or_insert_with(|| self.files.find(&b.build_id, &stacks.comm));
                    if let Some(path) = path {
                        f.symbol = self.user.lookup(path, b.offset_or_ip);
                        f.object = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        r.by_build_id += 1;
                    } else {
                        r.raw_build_id += 1;
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
