//! Finding the file a build-id stack frame belongs to.
//!
//! At a trigger the kernel takes the user stack twice: as addresses (resolved through the
//! process's memory map) and as build id + file offset per frame (`USTACKS_BUILD_ID`, see
//! `snapshot-ebpf/src/flip.rs`). A process that crashed is usually gone, memory map and all,
//! by the time userspace handles its trigger; its build-id frames still name the files. This
//! module finds a file by its build id among:
//!
//! 1. every file seen in a memory map this run, and the executables of the targets known at
//!    start ([`BuildIdIndex::note`]): each file's build id is read once per identity (device,
//!    inode, size, modification time) and read again only when the file changed;
//! 2. executables on `PATH` named as the process's command (its first 15 characters, as the
//!    kernel keeps them): `--comm` and system-wide targets whose maps were never read;
//! 3. the separate debug files under `/usr/lib/debug/.build-id/xx/rest.debug`.
//!
//! Build ids are read from the ELF program headers' `PT_NOTE` segments (the
//! `.note.gnu.build-id` note, as the kernel itself reads them), a few small reads per file.
//! Every table is bounded: a recorder runs for weeks. Paths are read under a root directory,
//! so the unit tests run without root.

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use object::{
    ReadCache,
    elf::{ELF_NOTE_GNU, NT_GNU_BUILD_ID, PT_NOTE},
    read::elf::{FileHeader, ProgramHeader as _},
};
use snapshot_common::BUILD_ID_SIZE;

/// A build id as the kernel reports it: the note's first 20 bytes, zero padded.
pub type BuildId = [u8; BUILD_ID_SIZE];

/// Most files remembered (the oldest noted is forgotten first).
pub const MAX_FILES: usize = 4096;

/// Largest `PT_NOTE` segment read (a build-id note is 36 bytes; the notes of a binary a few
/// hundred).
const MAX_NOTES: u64 = 64 * 1024;

/// Longest command name the kernel keeps (`TASK_COMM_LEN` - 1): a longer executable name
/// shows as its first 15 characters.
const COMM_MAX: usize = 15;

/// `build_id` in lowercase hex, as `readelf -n` and `/usr/lib/debug/.build-id` write it,
/// without the kernel's zero padding of a shorter build id.
#[must_use]
pub fn hex(build_id: &BuildId) -> String {
    use std::fmt::Write as _;
    let len = build_id.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let len = if len <= 16 && len > 0 {
        16
    } else {
        BUILD_ID_SIZE
    };
    build_id[..len].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The GNU build id of the ELF file at `path` (`None`: not readable, not ELF, or no build-id
/// note in its program headers).
#[must_use]
pub fn read_build_id(path: &Path) -> Option<BuildId> {
    let cache = ReadCache::new(File::open(path).ok()?);
    let kind = object::FileKind::parse(&cache).ok()?;
    match kind {
        object::FileKind::Elf64 => note::<object::elf::FileHeader64<object::Endianness>>(&cache),
        object::FileKind::Elf32 => note::<object::elf::FileHeader32<object::Endianness>>(&cache),
        _ => None,
    }
}

/// The build-id note among the `PT_NOTE` segments of the ELF file in `data`.
fn note<H: FileHeader<Endian = object::Endianness>>(data: &ReadCache<File>) -> Option<BuildId> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    for ph in header.program_headers(endian, data).ok()? {
        if ph.p_type(endian) != PT_NOTE || ph.p_filesz(endian).into() > MAX_NOTES {
            continue;
        }
        let Ok(Some(mut notes)) = ph.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(n)) = notes.next() {
            if n.name() == ELF_NOTE_GNU && n.n_type(endian) == NT_GNU_BUILD_ID {
                let mut id = [0; BUILD_ID_SIZE];
                let desc = n.desc();
                let len = desc.len().min(BUILD_ID_SIZE);
                id[..len].copy_from_slice(&desc[..len]);
                return Some(id);
            }
        }
    }
    None
}

/// What identifies one version of a file: a rebuilt or replaced file differs in one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        m.is_file().then(|| Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

/// A file known by path: the version whose build id was read, and that build id.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    stamp: Option<Stamp>,
    id: Option<BuildId>,
}

/// Files by build id (see the module documentation), bounded to [`MAX_FILES`].
#[derive(Debug)]
pub struct BuildIdIndex {
    root: PathBuf,
    /// `PATH`, for executables named as a process's command.
    search: Vec<PathBuf>,
    files: HashMap<PathBuf, Known>,
    /// Paths in the order noted, to forget the oldest.
    order: VecDeque<PathBuf>,
    /// Names of the targets' executables that have no build id (at most [`LACKING`]).
    lacking: Vec<String>,
}

/// Most executables without a build id named in a snapshot.
const LACKING: usize = 8;

impl Default for BuildIdIndex {
    fn default() -> Self {
        Self::new(Path::new("/"), Vec::new())
    }
}

impl BuildIdIndex {
    /// An empty index reading files under `root`, looking for executables in `search`
    /// (absolute directories, as in `PATH`).
    #[must_use]
    pub fn new(root: &Path, search: Vec<PathBuf>) -> Self {
        Self {
            root: root.to_path_buf(),
            search,
            files: HashMap::new(),
            order: VecDeque::new(),
            lacking: Vec::new(),
        }
    }

    /// An index under `/` searching this process's `PATH`.
    #[must_use]
    pub fn from_env() -> Self {
        let search = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        Self::new(Path::new("/"), search)
    }

    /// The path under the root of `path` (absolute, as a memory map names it).
    fn under_root(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Remembers `path` (absolute) as a file a build id may name; its build id is read when
    /// first needed.
    pub fn note(&mut self, path: &Path) {
        if self.files.contains_key(path) {
            return;
        }
        if self.files.len() >= MAX_FILES
            && let Some(old) = self.order.pop_front()
        {
            self.files.remove(&old);
        }
        self.files.insert(path.to_path_buf(), Known::default());
        self.order.push_back(path.to_path_buf());
    }

    /// Notes `path` (absolute), the executable of a target, and reads its build id now:
    /// `false` when it exists and has none (its frames resolve only through its memory map;
    /// [`Self::lacking`] names it).
    pub fn note_target(&mut self, path: &Path) -> bool {
        self.note(path);
        if !self.lacks_build_id(path) {
            return true;
        }
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if self.lacking.len() < LACKING && !self.lacking.contains(&name) {
            self.lacking.push(name);
        }
        false
    }

    /// The targets' executables found without a build id.
    #[must_use]
    pub fn lacking(&self) -> &[String] {
        &self.lacking
    }

    /// Number of files remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The build id of the file noted at `path` as it is now (read again if it changed).
    fn current(&mut self, path: &Path) -> Option<BuildId> {
        let full = self.under_root(path);
        let stamp = Stamp::of(&full);
        let known = self.files.get_mut(path)?;
        if stamp.is_none() || known.stamp != stamp {
            known.id = stamp.and_then(|_| read_build_id(&full));
            known.stamp = stamp;
        }
        known.id
    }

    /// True when the file noted at `path` exists and has no build id (a binary linked
    /// without `--build-id`: its frames cannot be resolved without its memory map).
    #[must_use]
    pub fn lacks_build_id(&mut self, path: &Path) -> bool {
        self.current(path).is_none() && self.files.get(path).is_some_and(|k| k.stamp.is_some())
    }

    /// The file (its path under the root) with build id `id`, looked for among the files
    /// noted, then executables on the search path named as `comm`, then the debug files.
    pub fn find(&mut self, id: &BuildId, comm: &str) -> Option<PathBuf> {
        let paths: Vec<PathBuf> = self.order.iter().cloned().collect();
        for path in paths {
            if self.current(&path).as_ref() == Some(id) {
                return Some(self.under_root(&path));
            }
        }
        for path in self.named(comm) {
            self.note(&path);
            if self.current(&path).as_ref() == Some(id) {
                return Some(self.under_root(&path));
            }
        }
        let hex = hex(id);
        let debug = self.under_root(Path::new(&format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &hex[..2],
            &hex[2..]
        )));
        debug.is_file().then_some(debug)
    }

    /// Executables in the search path whose name is `comm` or, for a command name the kernel
    /// cut to 15 characters, begins with it.
    fn named(&self, comm: &str) -> Vec<PathBuf> {
        if comm.is_empty() || comm.contains('/') {
            return Vec::new();
        }
        let cut = comm.len() >= COMM_MAX;
        let mut found = Vec::new();
        for dir in self.search.iter().filter(|d| d.is_absolute()) {
            if !cut {
                let p = dir.join(comm);
                if self.under_root(&p).is_file() {
                    found.push(p);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(self.under_root(dir)) else {
                continue;
            };
            found.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(comm))
                    .map(|e| dir.join(e.file_name()))
                    .take(16),
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build id `readelf -n` prints for `path`, if it prints one.
    fn readelf_build_id(path: &Path) -> Option<String> {
        let out = std::process::Command::new("readelf")
            .arg("-n")
            .arg(path)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_owned))
    }

    /// A root directory for one test, removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("buildid-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        /// Copies `from` to `at` (absolute) under the root.
        fn put(&self, from: &Path, at: &str) {
            let to = self.0.join(at.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, to).unwrap();
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A minimal little-endian ELF64 file: the header, one `PT_NOTE` program header and a
    /// note of `name` and `kind` holding `desc`.
    fn elf_with_note(name: &[u8], kind: object::elf::NoteType, desc: &[u8]) -> Vec<u8> {
        let mut note = Vec::new();
        let pad = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
        note.extend((name.len() as u32 + 1).to_le_bytes());
        note.extend((desc.len() as u32).to_le_bytes());
        note.extend(kind.0.to_le_bytes());
        note.extend(name);
        note.push(0);
        pad(&mut note);
        note.extend(desc);
        pad(&mut note);
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        (f[4], f[5], f[6]) = (2, 1, 1); // 64-bit, little endian, version 1
        f[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&PT_NOTE.0.to_le_bytes());
        ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        ph[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes()); // p_filesz
        ph[40..48].copy_from_slice(&(note.len() as u64).to_le_bytes()); // p_memsz
        ph[48..56].copy_from_slice(&4u64.to_le_bytes()); // p_align
        f.extend(ph);
        f.extend(note);
        f
    }

    #[test]
    fn the_build_id_note_is_read_from_the_program_headers() {
        let root = Root::new("note");
        let id: Vec<u8> = (1..=20).collect();
        let elf = root.0.join("a.elf");
        std::fs::write(&elf, elf_with_note(b"GNU", NT_GNU_BUILD_ID, &id)).unwrap();
        let got = read_build_id(&elf).expect("a build id");
        assert_eq!(&got[..], &id[..]);
        assert_eq!(hex(&got), "0102030405060708090a0b0c0d0e0f1011121314");
        // A 16-byte id (MD5, UUID) is zero padded as the kernel pads it.
        std::fs::write(&elf, elf_with_note(b"GNU", NT_GNU_BUILD_ID, &id[..16])).unwrap();
        let short = read_build_id(&elf).unwrap();
        assert_eq!(short[16..], [0; 4]);
        assert_eq!(hex(&short), "0102030405060708090a0b0c0d0e0f10");
        // Another owner's note, another note type, not ELF, missing: none.
        std::fs::write(&elf, elf_with_note(b"XYZ", NT_GNU_BUILD_ID, &id)).unwrap();
        assert_eq!(read_build_id(&elf), None);
        std::fs::write(&elf, elf_with_note(b"GNU", object::elf::NoteType(1), &id)).unwrap();
        assert_eq!(read_build_id(&elf), None);
        std::fs::write(&elf, b"#!/bin/sh\n").unwrap();
        assert_eq!(read_build_id(&elf), None);
        assert_eq!(read_build_id(&root.0.join("missing")), None);
    }

    /// The test binary itself (the linker here emits `--build-id`): the id matches
    /// `readelf -n`'s when readelf is installed.
    #[test]
    fn this_test_binary_has_the_build_id_readelf_shows() {
        let exe = std::env::current_exe().unwrap();
        let id = read_build_id(&exe).expect(
            "the test binary has a build id (the linker emits .note.gnu.build-id by default)",
        );
        if let Some(want) = readelf_build_id(&exe) {
            assert_eq!(hex(&id), want);
        }
    }

    #[test]
    fn files_are_found_by_build_id_noted_named_or_in_the_debug_dir() {
        let root = Root::new("index");
        let exe = std::env::current_exe().unwrap();
        let id = read_build_id(&exe).unwrap();
        root.put(&exe, "/opt/app/bin/server");
        let mut index = BuildIdIndex::new(&root.0, vec![PathBuf::from("/opt/app/bin")]);
        // Not noted, and the command name is another: not found.
        assert_eq!(index.find(&id, "other"), None);
        // Named as the process's command, on the search path (cut to 15 characters too).
        let at = root.0.join("opt/app/bin/server");
        assert_eq!(index.find(&id, "server").as_deref(), Some(at.as_path()));
        root.put(&exe, "/opt/app/bin/a-very-long-server-name");
        let long = root.0.join("opt/app/bin/a-very-long-server-name");
        std::fs::remove_file(&at).unwrap();
        let mut index = BuildIdIndex::new(&root.0, vec![PathBuf::from("/opt/app/bin")]);
        assert_eq!(
            index.find(&id, "a-very-long-ser").as_deref(),
            Some(long.as_path())
        );
        // Noted (a memory map listed it): found whatever the command's name.
        let mut index = BuildIdIndex::new(&root.0, Vec::new());
        index.note(Path::new("/opt/app/bin/a-very-long-server-name"));
        assert_eq!(index.find(&id, "x").as_deref(), Some(long.as_path()));
        // Replaced by a file without a build id: read again, no longer found, and said so.
        std::fs::write(&long, b"not an ELF file, and longer than before").unwrap();
        assert_eq!(index.find(&id, "x"), None);
        assert!(!index.note_target(Path::new("/opt/app/bin/a-very-long-server-name")));
        assert_eq!(index.lacking(), ["a-very-long-server-name"]);
        // The separate debug file.
        let hex = hex(&id);
        root.put(
            &exe,
            &format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]),
        );
        assert!(
            index
                .find(&id, "x")
                .is_some_and(|p| p.ends_with(format!("{}.debug", &hex[2..])))
        );
    }

    #[test]
    fn the_index_is_bounded() {
        let mut index = BuildIdIndex::new(Path::new("/nonexistent"), Vec::new());
        for i in 0..MAX_FILES + 10 {
            index.note(Path::new(&format!("/lib/f{i}.so")));
        }
        assert_eq!(index.len(), MAX_FILES);
        assert!(
            !index.files.contains_key(Path::new("/lib/f0.so")),
            "the oldest went"
        );
        assert!(
            index
                .files
                .contains_key(Path::new(&format!("/lib/f{}.so", MAX_FILES + 9)))
        );
        index.note(Path::new("/lib/f20.so"));
        assert_eq!(
            index.len(),
            MAX_FILES,
            "noting a known path again adds nothing"
        );
    }
}
