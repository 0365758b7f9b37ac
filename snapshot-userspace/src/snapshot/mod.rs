//! Snapshot file, version 2 (version 1 files are read as before: they have no strings).
//!
//! ```text
//! magic        8 bytes  "EBPFSNAP"
//! version      u32 LE   2 (or 1)
//! header_len   u32 LE
//! header       header_len bytes of JSON (`Header`)
//! header_crc   u32 LE   CRC-32 of the header bytes
//! record_size  u32 LE   size of one record (`Event`, 128)
//! count        u64 LE   number of records
//! records      count × record_size bytes, `Event` in native (LE) layout, time ordered
//! records_crc  u32 LE   CRC-32 of the record bytes
//! -- version 2 only --
//! slot_size    u32 LE   size of one string slot (0 when no probe captures strings)
//! slot_count   u64 LE   number of string slots
//! slots        slot_count × slot_size bytes: `PayloadHeader` (the event's seq and cpu, a
//!              status per string), then the strings, `string_stride(header.string_size)`
//!              bytes each (see `snapshot_common::strings`)
//! slots_crc    u32 LE   CRC-32 of the slot bytes
//! --
//! trailer      8 bytes  "SNAPEND\0"
//! ```
//!
//! Files are written to a temporary name (`O_EXCL | O_NOFOLLOW`, mode 0600), synced, then
//! renamed into place without replacing anything ([`dir::OutDir`]), so a reader never sees a
//! partial snapshot and no snapshot is ever overwritten.
//!
//! Reading checks every part before anything is shown: the checksums, and then what the
//! display relies on in the header ([`Header::check`]); a file is opened only if it is a
//! regular file. Later versions add a case to [`decode`] and keep reading version 1.

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use snapshot_common::{Event, MAX_ARGS};

use crate::{probe::ProbeInfo, session::buffer::CpuAccount, sys::clock_ns};

pub mod buildid;
pub mod dir;
pub mod strings;
pub mod symbols;

pub use strings::Strings;
use symbols::Frame;

/// File magic.
pub const MAGIC: &[u8; 8] = b"EBPFSNAP";
/// Trailer magic.
pub const TRAILER: &[u8; 8] = b"SNAPEND\0";
/// Format version written (and the newest read).
pub const VERSION: u32 = 2;
/// The first version with string slots.
const VERSION_STRINGS: u32 = 2;
/// Largest header accepted (a corrupted length must not allocate gigabytes).
const MAX_HEADER: u32 = 16 << 20;

/// Boot-time to wall-clock reference, taken once at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockRef {
    /// `CLOCK_BOOTTIME` in ns.
    pub boot_ns: u64,
    /// `CLOCK_REALTIME` in ns at the same moment.
    pub realtime_ns: u64,
}

impl ClockRef {
    /// Reads both clocks now.
    #[must_use]
    pub fn now() -> Self {
        Self {
            boot_ns: clock_ns(libc::CLOCK_BOOTTIME),
            realtime_ns: clock_ns(libc::CLOCK_REALTIME),
        }
    }

    /// Wall-clock ns of a boot-time timestamp.
    #[must_use]
    pub const fn to_realtime(&self, boot_ns: u64) -> u64 {
        self.realtime_ns
            .wrapping_add(boot_ns)
            .wrapping_sub(self.boot_ns)
    }
}

/// Why a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// The trigger condition fired in the kernel.
    Condition,
    /// SIGUSR1 or `snapshot trigger`.
    Manual,
    /// A trigger found no armed spare under `--on-no-spare stop`: the final, permanent snapshot.
    NoSpareStop,
    /// The live half written at exit (`--dump-on-exit`).
    Exit,
}

/// What fired the trigger.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fired {
    /// When (boot-time ns).
    pub ts_ns: u64,
    /// CPU.
    pub cpu: u32,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Command name.
    pub comm: String,
    /// Probe name (or `manual`).
    pub probe: String,
    /// The field value that satisfied the condition.
    pub value: i64,
    /// `--post`: the window recorded after the trigger before the flip (`100 events`, `10ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    /// Kernel stack at the trigger, innermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_stack: Vec<Frame>,
    /// User stack at the trigger, innermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_stack: Vec<Frame>,
    /// Where the memory map that symbolized the user stack came from: `read at the trigger`,
    /// or cached before the process exited (a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_maps: Option<String>,
    /// The sequence trigger that fired, when one did (`ts_ns` is then its B's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceFired>,
}

/// A sequence trigger `A then B within T` that fired: which, and when each step held.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceFired {
    /// Its number among the recording's sequences (1, 2, …).
    pub index: u32,
    /// The sequence as written.
    pub text: String,
    /// When A held on the thread (boot-time ns).
    pub first_ns: u64,
    /// When B held and completed it (boot-time ns; the trigger's time).
    pub then_ns: u64,
}

/// Everything about a snapshot but its records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Snapshot sequence number in this recording (1, 2, …).
    pub seq: u64,
    /// Why it was taken.
    pub kind: SnapshotKind,
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel_release: String,
    /// Clock reference.
    pub clock: ClockRef,
    /// Probe table.
    pub probes: Vec<ProbeInfo>,
    /// The trigger expression as given.
    pub trigger: String,
    /// Context of the trigger that froze this snapshot, when one did.
    pub fired: Option<Fired>,
    /// Triggers that found no armed spare since the previous snapshot.
    pub missed_triggers: u64,
    /// CPUs the buffer is laid out for.
    pub ncpu: u32,
    /// Events per CPU per half.
    pub capacity: u32,
    /// Per-CPU accounting of this snapshot.
    pub cpus: Vec<CpuAccount>,
    /// Snapshots taken since the previous one that could not be written and were dropped
    /// (the disk refused them and more than `--max-pending` was waiting): absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_snapshots: u64,
    /// The events those lost snapshots held.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_events: u64,
    /// `--string-size` of the recording (0: no strings; version 1 files have none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub string_size: u32,
}

/// For serde's `skip_serializing_if` (which passes a reference): a zero counter is left out.
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Most CPUs a header may describe.
const MAX_CPUS: usize = 1 << 16;

impl Header {
    /// Sum over the CPUs of one accounting counter (saturating: a header is input).
    #[must_use]
    pub fn total(&self, counter: fn(&CpuAccount) -> u64) -> u64 {
        self.cpus.iter().map(counter).fold(0, u64::saturating_add)
    }

    /// What a reader relies on beyond the JSON's shape: the probe table describes no more
    /// argument words than an event carries, the CPU list is bounded. `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        for p in &self.probes {
            if p.arg_names.len() > MAX_ARGS {
                return Err(format!(
                    "probe `{}` lists {} argument names; an event carries at most {MAX_ARGS}",
                    p.name,
                    p.arg_names.len()
                ));
            }
            if p.arg_formats.chars().count() > MAX_ARGS {
                return Err(format!(
                    "probe `{}` lists {} argument formats; an event carries at most {MAX_ARGS}",
                    p.name,
                    p.arg_formats.chars().count()
                ));
            }
        }
        if self.cpus.len() > MAX_CPUS {
            return Err(format!(
                "{} per-CPU accounts, more than {MAX_CPUS}",
                self.cpus.len()
            ));
        }
        Ok(())
    }
}

/// A snapshot in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Header.
    pub header: Header,
    /// Records, time ordered.
    pub events: Vec<Event>,
    /// The captured strings of the events that have some.
    pub strings: Strings,
}

/// Why a file could not be read as a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a regular file (a FIFO would block the reader, a device would be read forever).
    #[error("{path} is not a regular file ({what}): snapshot files are regular files")]
    NotRegular {
        /// File.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// I/O error.
    #[error("cannot read {path}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Wrong magic.
    #[error("{0} is not a snapshot file (no EBPFSNAP magic at its start)")]
    NotASnapshot(PathBuf),
    /// Newer version than this reader knows.
    #[error(
        "{path} is a version {found} snapshot; this build reads version {VERSION}: upgrade the snapshot tool"
    )]
    NewerVersion {
        /// File.
        path: PathBuf,
        /// Version in the file.
        found: u32,
    },
    /// Version 0 or garbage.
    #[error("{path} has an invalid format version {found}: the file is corrupt")]
    BadVersion {
        /// File.
        path: PathBuf,
        /// Version in the file.
        found: u32,
    },
    /// The file ends early.
    #[error(
        "{path} is truncated: it ends inside the {section} (the recorder may have been killed while writing, or the copy is incomplete)"
    )]
    Truncated {
        /// File.
        path: PathBuf,
        /// Where it ends.
        section: &'static str,
    },
    /// Header length out of range.
    #[error(
        "{path} declares a {len}-byte header, more than the {MAX_HEADER} allowed: the file is corrupt"
    )]
    HeaderTooLarge {
        /// File.
        path: PathBuf,
        /// Declared length.
        len: u32,
    },
    /// Header checksum mismatch.
    #[error("{path}: header checksum mismatch: the header is corrupt")]
    HeaderChecksum {
        /// File.
        path: PathBuf,
    },
    /// Header is not the expected JSON.
    #[error(
        "{path}: the header is not valid ({msg}): the file is corrupt or from an incompatible build"
    )]
    HeaderInvalid {
        /// File.
        path: PathBuf,
        /// Parser message.
        msg: String,
    },
    /// Record size differs from this build's.
    #[error("{path} has {found}-byte records; this build reads {expected}-byte records")]
    RecordSize {
        /// File.
        path: PathBuf,
        /// In the file.
        found: u32,
        /// Expected.
        expected: u32,
    },
    /// Records checksum mismatch.
    #[error("{path}: record checksum mismatch: some of the {count} records are corrupt")]
    RecordsChecksum {
        /// File.
        path: PathBuf,
        /// Declared count.
        count: u64,
    },
    /// String slot size out of range.
    #[error(
        "{path} declares {found}-byte string slots, which no recording writes: the file is corrupt"
    )]
    StringSlotSize {
        /// File.
        path: PathBuf,
        /// In the file.
        found: u32,
    },
    /// String slots checksum mismatch.
    #[error("{path}: string checksum mismatch: some of the {count} string slots are corrupt")]
    StringsChecksum {
        /// File.
        path: PathBuf,
        /// Declared count.
        count: u64,
    },
    /// Missing trailer.
    #[error("{path}: the end-of-file marker is missing or wrong: the file is corrupt")]
    Trailer {
        /// File.
        path: PathBuf,
    },
    /// Bytes after the trailer.
    #[error("{path}: unexpected data after the end-of-file marker")]
    TrailingData {
        /// File.
        path: PathBuf,
    },
}

/// A message about input, kept short: what the parser quotes of the file is clipped.
fn clip(msg: &str) -> String {
    const MOST: usize = 300;
    if msg.len() <= MOST {
        return msg.to_owned();
    }
    let mut end = MOST;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &msg[..end])
}

fn event_bytes(events: &[Event]) -> &[u8] {
    // SAFETY: Event is repr(C) plain integers without padding (asserted in snapshot-common);
    // viewing the slice as bytes is valid for its whole length.
    unsafe {
        std::slice::from_raw_parts(events.as_ptr().cast::<u8>(), std::mem::size_of_val(events))
    }
}

/// Serialises a snapshot to bytes.
#[must_use]
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    encode_parts(&snapshot.header, &snapshot.events, &snapshot.strings).concat()
}

/// A file in parts: the records and string slots are borrowed, not copied.
pub struct Parts<'a> {
    prefix: Vec<u8>,
    records: &'a [u8],
    middle: Vec<u8>,
    strings: &'a [u8],
    suffix: Vec<u8>,
}

impl Parts<'_> {
    /// The parts in file order.
    #[must_use]
    pub fn slices(&self) -> [&[u8]; 5] {
        [
            &self.prefix,
            self.records,
            &self.middle,
            self.strings,
            &self.suffix,
        ]
    }

    /// The whole file.
    #[must_use]
    pub fn concat(&self) -> Vec<u8> {
        self.slices().concat()
    }
}

/// The file (the current version) in parts.
#[must_use]
pub fn encode_parts<'a>(header: &Header, events: &'a [Event], strings: &'a Strings) -> Parts<'a> {
    encode_version(header, events, strings, VERSION)
}

/// The file in parts as format `version` writes it (1: without the strings), for tests of
/// older readers' files.
#[must_use]
pub fn encode_version<'a>(
    header: &Header,
    events: &'a [Event],
    strings: &'a Strings,
    version: u32,
) -> Parts<'a> {
    let header = serde_json::to_vec(header).expect("a Header always serialises");
    let records = event_bytes(events);
    let mut prefix = Vec::with_capacity(header.len() + 32);
    prefix.extend_from_slice(MAGIC);
    prefix.extend_from_slice(&version.to_le_bytes());
    prefix.extend_from_slice(&(header.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&header);
    prefix.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    prefix.extend_from_slice(&(size_of::<Event>() as u32).to_le_bytes());
    prefix.extend_from_slice(&(events.len() as u64).to_le_bytes());
    let mut middle = Vec::with_capacity(16);
    middle.extend_from_slice(&crc32fast::hash(records).to_le_bytes());
    let slots: &[u8] = if version >= VERSION_STRINGS {
        middle.extend_from_slice(&strings.slot.to_le_bytes());
        middle.extend_from_slice(&(strings.count() as u64).to_le_bytes());
        &strings.data
    } else {
        &[]
    };
    let mut suffix = Vec::with_capacity(12);
    if version >= VERSION_STRINGS {
        suffix.extend_from_slice(&crc32fast::hash(slots).to_le_bytes());
    }
    suffix.extend_from_slice(TRAILER);
    Parts {
        prefix,
        records,
        middle,
        strings: slots,
        suffix,
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, section: &'static str) -> Result<&'a [u8], ReadError> {
        if self.data.len() < n {
            return Err(ReadError::Truncated {
                path: self.path.to_owned(),
                section,
            });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u32(&mut self, section: &'static str) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(
            self.take(4, section)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, section: &'static str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(
            self.take(8, section)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Parses snapshot bytes; `path` only names the file in errors.
pub fn decode(data: &[u8], path: &Path) -> Result<Snapshot, ReadError> {
    let p = || path.to_owned();
    let mut c = Cursor { data, path };
    if data.len() < MAGIC.len() {
        return if MAGIC.starts_with(data) && !data.is_empty() {
            Err(ReadError::Truncated {
                path: p(),
                section: "magic",
            })
        } else {
            Err(ReadError::NotASnapshot(p()))
        };
    }
    if c.take(8, "magic")? != MAGIC {
        return Err(ReadError::NotASnapshot(p()));
    }
    let version = c.u32("version")?;
    if version > VERSION {
        return Err(ReadError::NewerVersion {
            path: p(),
            found: version,
        });
    }
    if version == 0 {
        return Err(ReadError::BadVersion {
            path: p(),
            found: version,
        });
    }
    let len = c.u32("header length")?;
    if len > MAX_HEADER {
        return Err(ReadError::HeaderTooLarge { path: p(), len });
    }
    let header = c.take(len as usize, "header")?;
    if c.u32("header checksum")? != crc32fast::hash(header) {
        return Err(ReadError::HeaderChecksum { path: p() });
    }
    let header: Header = serde_json::from_slice(header).map_err(|e| ReadError::HeaderInvalid {
        path: p(),
        msg: clip(&e.to_string()),
    })?;
    header.check().map_err(|msg| ReadError::HeaderInvalid {
        path: p(),
        msg: clip(&msg),
    })?;
    let record_size = c.u32("record size")?;
    if record_size as usize != size_of::<Event>() {
        return Err(ReadError::RecordSize {
            path: p(),
            found: record_size,
            expected: size_of::<Event>() as u32,
        });
    }
    let count = c.u64("record count")?;
    let bytes = count
        .checked_mul(u64::from(record_size))
        .and_then(|b| usize::try_from(b).ok())
        .filter(|&b| b <= c.data.len())
        .ok_or_else(|| ReadError::Truncated {
            path: p(),
            section: "records",
        })?;
    let records = c.take(bytes, "records")?;
    if c.u32("records checksum")? != crc32fast::hash(records) {
        return Err(ReadError::RecordsChecksum { path: p(), count });
    }
    let strings = if version >= VERSION_STRINGS {
        decode_strings(&mut c, path)?
    } else {
        Strings::default()
    };
    if c.data.len() < TRAILER.len() {
        return Err(ReadError::Truncated {
            path: p(),
            section: "end-of-file marker",
        });
    }
    if c.take(8, "end-of-file marker")? != TRAILER {
        return Err(ReadError::Trailer { path: p() });
    }
    if !c.data.is_empty() {
        return Err(ReadError::TrailingData { path: p() });
    }
    let (chunks, _) = records.as_chunks::<{ size_of::<Event>() }>();
    let events = chunks
        .iter()
        // SAFETY: each chunk is exactly one Event's bytes; Event is valid for any bit pattern
        // and read_unaligned copes with the byte buffer's alignment.
        .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<Event>()) })
        .collect();
    Ok(Snapshot {
        header,
        events,
        strings,
    })
}

/// The string slots section (version 2).
fn decode_strings(c: &mut Cursor<'_>, path: &Path) -> Result<Strings, ReadError> {
    let slot = c.u32("string slot size")?;
    if slot != 0 && !Strings::valid_slot(slot) {
        return Err(ReadError::StringSlotSize {
            path: path.to_owned(),
            found: slot,
        });
    }
    let count = c.u64("string slot count")?;
    let bytes = count
        .checked_mul(u64::from(slot))
        .and_then(|b| usize::try_from(b).ok())
        .filter(|&b| b <= c.data.len())
        .ok_or_else(|| ReadError::Truncated {
            path: path.to_owned(),
            section: "string slots",
        })?;
    let data = c.take(bytes, "string slots")?;
    if c.u32("string slots checksum")? != crc32fast::hash(data) {
        return Err(ReadError::StringsChecksum {
            path: path.to_owned(),
            count,
        });
    }
    Ok(Strings {
        slot,
        data: data.to_vec(),
    })
}

/// The snapshot files (`*.snap`) of `dir`, sorted by name (so by sequence number). Any kind
/// of entry with the name is listed: [`read`] says when one is not a regular file.
pub fn list_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and checks a snapshot file; only a regular file is read (a link to one is
/// followed: the user named it).
pub fn read(path: &Path) -> Result<Snapshot, ReadError> {
    let io_err = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err)?;
    let kind = file.metadata().map_err(io_err)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
            what: crate::sys::dir::describe(&kind),
        });
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io_err)?;
    decode(&data, path)
}

#[cfg(test)]
pub(crate) mod tests;
