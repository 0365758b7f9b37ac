//! A snapshot's events decoded like strace: captured strings (escaped, truncation and NULL
//! shown), errno names of negative returns, `open`/`mmap` flags, signals, `AT_FDCWD`, modes
//! in octal, and file descriptors annotated with the path this snapshot saw them opened with
//! (`strace -y`): an `open*` entry's path and its return's fd, per process, until `close`.

use std::collections::HashMap;

use snapshot_common::Event;

use super::event::{self, EventView};
use crate::{
    abi,
    probe::{ProbeInfo, ProbeKind, ProbeSpec, capture::CaptureKind, spec::Location},
    snapshot::{
        Snapshot,
        strings::{Captured, captured},
    },
};

/// Bytes as text: printable ASCII and valid UTF-8 as they are; `"` `\` and control bytes
/// escaped C-style (`\n`, `\t`, `\0`, `\xNN`), as are bytes that are not UTF-8.
#[must_use]
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The syscall a probe is on (`sys_enter_openat` → `openat`, `do_sys_openat2` → `openat2`,
/// `__x64_sys_read` → `read`), and whether its events are the call's entry.
fn syscall(probe: &ProbeInfo) -> (Option<String>, bool) {
    const PREFIXES: [&str; 6] = [
        "__x64_sys_",
        "__arm64_sys_",
        "__se_sys_",
        "__do_sys_",
        "do_sys_",
        "ksys_",
    ];
    let entry = matches!(
        probe.kind,
        ProbeKind::Kprobe | ProbeKind::Fentry | ProbeKind::Uprobe
    );
    let Ok(spec) = probe.spec.parse::<ProbeSpec>() else {
        return (None, entry);
    };
    match &spec.location {
        Location::Tracepoint { category, name } if category == "syscalls" => {
            match name.strip_prefix("sys_enter_") {
                Some(call) => (Some(call.to_owned()), true),
                None => (name.strip_prefix("sys_exit_").map(str::to_owned), false),
            }
        }
        Location::Kernel { function, .. } => (
            PREFIXES
                .iter()
                .find_map(|p| function.strip_prefix(p))
                .map(str::to_owned),
            entry,
        ),
        _ => (None, entry),
    }
}

const OPENS: [&str; 4] = ["open", "openat", "openat2", "creat"];
const MODES: [&str; 10] = [
    "open", "openat", "creat", "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat", "mknod",
    "mknodat",
];
const SIGNALS: [&str; 7] = [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigaction",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_send_signal",
];

/// Per probe, what decoding needs, worked out once.
struct ProbeFacts<'a> {
    info: &'a ProbeInfo,
    syscall: Option<String>,
    entry: bool,
}

/// Decodes every event of a snapshot, in order.
#[must_use]
pub fn views(s: &Snapshot) -> Vec<EventView> {
    let index = s.strings.index();
    let facts: Vec<ProbeFacts<'_>> = s
        .header
        .probes
        .iter()
        .map(|info| {
            let (syscall, entry) = syscall(info);
            ProbeFacts {
                info,
                syscall,
                entry,
            }
        })
        .collect();
    let mut fds = Fds::default();
    s.events
        .iter()
        .map(|e| {
            let mut v = event::view(e, &s.header.probes);
            if let Some(f) = facts.iter().find(|f| f.info.id == e.probe_id) {
                let slot = index.get(&(e.cpu, e.seq)).copied();
                add_strings(&mut v, e, f.info, slot, s.header.string_size);
                add_decoded(&mut v, f, &mut fds);
            }
            v
        })
        .collect()
}

fn add_strings(v: &mut EventView, e: &Event, p: &ProbeInfo, slot: Option<&[u8]>, size: u32) {
    for (c, got) in p.captures.iter().zip(captured(slot, &p.captures, e, size)) {
        match got {
            Some(Captured::Bytes { bytes, truncated }) => {
                v.strings.insert(c.name.clone(), Some(escape(&bytes)));
                if truncated {
                    v.truncated.push(c.name.clone());
                }
            }
            Some(Captured::Null) => {
                v.strings.insert(c.name.clone(), None);
                v.unreadable.insert(c.name.clone(), "NULL".to_owned());
            }
            Some(Captured::Unreadable(errno)) => {
                v.strings.insert(c.name.clone(), None);
                let why = abi::errno_name(i64::from(errno))
                    .map_or_else(|| format!("errno {errno}"), str::to_owned);
                v.unreadable.insert(c.name.clone(), why);
            }
            None => {}
        }
    }
}

/// File descriptors seen opened: (pid, fd) → path; open entries waiting for their return.
#[derive(Default)]
struct Fds {
    open: HashMap<(u32, i64), String>,
    pending: HashMap<u32, String>,
}

/// The path an `open*` event names: its first captured string (`filename`, `pathname`).
fn opened_path(v: &EventView, p: &ProbeInfo) -> Option<String> {
    p.captures
        .iter()
        .filter(|c| c.kind != CaptureKind::Buf)
        .find_map(|c| v.strings.get(&c.name).cloned().flatten())
}

fn add_decoded(v: &mut EventView, f: &ProbeFacts<'_>, fds: &mut Fds) {
    let p = f.info;
    if p.ret_errno
        && let Some(errno) = v.ret.and_then(abi::errno_of_ret)
    {
        v.decoded.insert("ret".to_owned(), errno.to_owned());
    }
    let call = f.syscall.as_deref().unwrap_or("");
    let names: Vec<String> = (0..v.args.len())
        .map(|i| {
            p.arg_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("arg{i}"))
        })
        .collect();
    for (name, &raw) in names.iter().zip(&v.args) {
        if v.strings.contains_key(name) {
            continue;
        }
        let int = i64::from(raw as u32 as i32);
        let decoded = match name.as_str() {
            "dfd" | "olddfd" | "newdfd" if int == abi::AT_FDCWD => Some("AT_FDCWD".to_owned()),
            "fd" | "dfd" | "olddfd" | "newdfd" => fds.open.get(&(v.pid, int)).cloned(),
            "flags" if OPENS.contains(&call) => Some(abi::open_flags(raw & 0xffff_ffff)),
            "flags" if call == "mmap" => Some(abi::mmap_flags(raw)),
            "prot" if matches!(call, "mmap" | "mprotect" | "pkey_mprotect") => {
                Some(abi::mmap_prot(raw))
            }
            "mode" if MODES.contains(&call) => Some(match raw & 0o7777 {
                0 => "0".to_owned(),
                m => format!("0{m:o}"),
            }),
            "sig" if SIGNALS.contains(&call) || p.spec.contains("tracepoint:signal:") => {
                Some(abi::signal(int))
            }
            _ => None,
        };
        if let Some(d) = decoded {
            v.decoded.insert(name.clone(), d);
        }
    }
    // strace -y: remember what open* calls returned, forget closed fds.
    if OPENS.contains(&call) {
        let path = opened_path(v, p);
        let has_ret = v.ret.is_some() && (p.kind.is_return() || !f.entry);
        if f.entry && !has_ret {
            if let Some(path) = path {
                fds.pending.insert(v.tid, path);
            }
        } else if let Some(ret) = v.ret.filter(|_| has_ret) {
            let path = path.or_else(|| fds.pending.remove(&v.tid));
            if let Some(path) = path.filter(|_| ret >= 0) {
                fds.open.insert((v.pid, ret), path);
            }
        }
    } else if call == "close"
        && f.entry
        && let Some(&fd) = v.args.first()
    {
        fds.open.remove(&(v.pid, i64::from(fd as u32 as i32)));
    }
}

#[cfg(test)]
mod tests;
