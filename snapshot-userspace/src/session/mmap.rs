//! Shared mappings of `BPF_F_MMAPABLE` array maps: the records and per-CPU states are read
//! through volatile copies, the control words through atomics.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    ptr::NonNull,
    sync::atomic::AtomicU64,
};

/// A shared mapping of a `BPF_F_MMAPABLE` array map: read-only for the records and the
/// per-CPU states, read-write for the control words.
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of the map behind `fd`, read-only.
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        Self::map_with(fd, len, libc::PROT_READ)
    }

    /// Maps `len` bytes of the map behind `fd`, read-write.
    pub fn map_rw(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        Self::map_with(fd, len, libc::PROT_READ | libc::PROT_WRITE)
    }

    fn map_with(fd: BorrowedFd<'_>, len: usize, prot: i32) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a valid fd; the kernel checks `len` against the map's
        // size and fails with EINVAL rather than mapping beyond it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }

    /// Reads element `index` of type `T` (the map's value type) with a volatile copy: the
    /// kernel may be writing other elements concurrently.
    ///
    /// # Panics
    /// If the element lies outside the mapping (a caller bug).
    #[must_use]
    pub fn read<T: Copy>(&self, index: usize) -> T {
        let offset = index * size_of::<T>();
        assert!(
            offset + size_of::<T>() <= self.len,
            "read beyond the mapping"
        );
        // SAFETY: in bounds (checked above); map values are 8-byte aligned and T is a Pod map
        // value type, valid for any bit pattern.
        unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset).cast::<T>()) }
    }
}

impl Mmap {
    /// The `index`th 64-bit word of the mapping, for atomic access shared with BPF programs.
    ///
    /// # Panics
    /// If the word lies outside the mapping (a caller bug).
    #[must_use]
    pub fn word(&self, index: usize) -> &AtomicU64 {
        assert!((index + 1) * 8 <= self.len, "word beyond the mapping");
        // SAFETY: in bounds, 8-byte aligned (page-aligned mapping), and the memory lives as long
        // as `self`; all accesses from this process go through atomics.
        #[allow(
            clippy::cast_ptr_alignment,
            reason = "mmap returns page-aligned memory"
        )]
        unsafe {
            AtomicU64::from_ptr(self.ptr.as_ptr().cast::<u64>().add(index))
        }
    }
}

impl Mmap {
    /// Elements `start..start + len` of type `T` (the map's value type), borrowed.
    ///
    /// # Safety
    /// `T` is valid for any bit pattern, and nothing (the kernel included) writes these
    /// elements while the slice lives.
    ///
    /// # Panics
    /// If the elements lie outside the mapping (a caller bug).
    #[must_use]
    pub unsafe fn slice<T: Copy>(&self, start: usize, len: usize) -> &[T] {
        assert!(
            (start + len) * size_of::<T>() <= self.len,
            "slice beyond the mapping"
        );
        // SAFETY: in bounds (checked above), aligned (a page-aligned mapping of 8-byte
        // aligned values), and the caller guarantees the contents are valid and unchanging.
        #[allow(
            clippy::cast_ptr_alignment,
            reason = "mmap returns page-aligned memory"
        )]
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().cast::<T>().add(start), len)
        }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `map`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: the mapping is only read through volatile copies, and written only through atomics
// (`Mmap::word`), so sharing it between threads races no more than the kernel already does.
unsafe impl Send for Mmap {}
// SAFETY: as above.
unsafe impl Sync for Mmap {}
