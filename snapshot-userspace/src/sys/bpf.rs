//! The few `bpf(2)` commands used outside aya: loading tiny programs to probe what the kernel
//! offers (`probe::features`), creating maps for the same, pushing or popping the tokens
//! of queue maps (`session::control` on kernels without BPF atomics), which aya's `Queue` can
//! only do through a `&mut` borrow of the loaded object, and reading the build-id stack map,
//! whose values aya's `StackTraceMap` cannot decode.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

/// `BPF_MAP_CREATE`.
const MAP_CREATE: libc::c_long = 0;
/// `BPF_MAP_LOOKUP_ELEM` (peek, for a queue).
const MAP_LOOKUP_ELEM: libc::c_long = 1;
/// `BPF_MAP_UPDATE_ELEM` (push, for a queue).
const MAP_UPDATE_ELEM: libc::c_long = 2;
/// `BPF_MAP_DELETE_ELEM`.
const MAP_DELETE_ELEM: libc::c_long = 3;
/// `BPF_PROG_LOAD`.
const PROG_LOAD: libc::c_long = 5;
/// `BPF_RAW_TRACEPOINT_OPEN` (also attaches fentry/fexit programs).
const RAW_TRACEPOINT_OPEN: libc::c_long = 17;
/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (pop, for a queue).
const MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// One BPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// `dst_reg` (low nibble) and `src_reg` (high nibble).
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its fields.
    #[must_use]
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | (dst & 0xf),
            off,
            imm,
        }
    }
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `attach_prog_fd`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    pad: u32,
}

/// The `BPF_MAP_CREATE` part of `union bpf_attr`, up to `map_flags`.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// The `BPF_RAW_TRACEPOINT_OPEN` part of `union bpf_attr`.
#[repr(C)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    pad: u32,
}

/// The element commands' part of `union bpf_attr`.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf(cmd, attr, size)`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised `bpf_attr` prefix of the given size, which the
    // kernel reads (and for some commands writes) only within that size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            core::ptr::from_mut(attr).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What loading a program needs besides its instructions.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgSpec {
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// `BPF_*` attach type (tracing programs).
    pub expected_attach_type: u32,
    /// BTF id of the traced function (tracing programs).
    pub attach_btf_id: u32,
}

/// Loads a GPL program; on refusal, the error and the verifier's log.
pub fn prog_load(spec: ProgSpec, insns: &[Insn]) -> Result<OwnedFd, (io::Error, String)> {
    let mut log = vec![0u8; 16 * 1024];
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: spec.expected_attach_type,
        attach_btf_id: spec.attach_btf_id,
        ..ProgLoadAttr::default()
    };
    match bpf(PROG_LOAD, &mut attr) {
        Ok(fd) => owned(fd).map_err(|e| (e, String::new())),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).trim().to_owned()))
        }
    }
}

/// Attaches a loaded fentry/fexit program to the function it was loaded for (building its BPF
/// trampoline); detached when the returned descriptor closes.
pub fn tracing_attach(prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut attr = RawTracepointOpenAttr {
        name: 0,
        prog_fd: prog.as_raw_fd() as u32,
        pad: 0,
    };
    owned(bpf(RAW_TRACEPOINT_OPEN, &mut attr)?)
}

/// Creates a map.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
    };
    owned(bpf(MAP_CREATE, &mut attr)?)
}

fn queue_op(fd: BorrowedFd<'_>, cmd: libc::c_long, value: &mut u64) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        pad: 0,
        key: 0,
        value: core::ptr::from_mut(value) as u64,
        flags: 0,
    };
    match bpf(cmd, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pushes `value` onto a queue map (`E2BIG` when it is full).
pub fn queue_push(fd: BorrowedFd<'_>, value: u64) -> io::Result<()> {
    let mut v = value;
    queue_op(fd, MAP_UPDATE_ELEM, &mut v).map(drop)
}

/// Pops the oldest value of a queue map (`None` when it is empty).
pub fn queue_pop(fd: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    let mut v = 0;
    Ok(queue_op(fd, MAP_LOOKUP_AND_DELETE_ELEM, &mut v)?.then_some(v))
}

/// The oldest value of a queue map, left in it (`None` when it is empty).
pub fn queue_peek(fd: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    let mut v = 0;
    Ok(queue_op(fd, MAP_LOOKUP_ELEM, &mut v)?.then_some(v))
}

/// Reads the value of `key` in map `fd` into `value`, which must be the map's value size
/// (`false`: no such key).
pub fn map_lookup(fd: BorrowedFd<'_>, key: u32, value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        pad: 0,
        key: core::ptr::from_ref(&key) as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    match bpf(MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `key` from map `fd` (`false`: no such key).
pub fn map_delete(fd: BorrowedFd<'_>, key: u32) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        pad: 0,
        key: core::ptr::from_ref(&key) as u64,
        value: 0,
        flags: 0,
    };
    match bpf(MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(core::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(
            core::mem::offset_of!(ProgLoadAttr, expected_attach_type),
            68
        );
        assert_eq!(core::mem::offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(core::mem::offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(core::mem::offset_of!(MapElemAttr, flags), 24);
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(Insn::new(0xbf, 1, 6, 0, 0).regs, 0x61);
    }
}
