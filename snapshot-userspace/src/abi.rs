//! Names of the Linux ABI's numbers, as strace shows them: errno values, `open` flags,
//! `mmap` protections and flags, signals, `AT_FDCWD`, file modes. The tables are Linux's
//! x86-64 (generic) values; the trigger language reads errno names from here too.

/// errno names by value (Linux, asm-generic), 1 to 133 (41 and 58 are unused; their places
/// hold the aliases EWOULDBLOCK and EDEADLOCK).
pub const ERRNOS: [(&str, i64); 133] = [
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("ENOTBLK", 15),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOTTY", 25),
    ("ETXTBSY", 26),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EPIPE", 32),
    ("EDOM", 33),
    ("ERANGE", 34),
    ("EDEADLK", 35),
    ("ENAMETOOLONG", 36),
    ("ENOLCK", 37),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ELOOP", 40),
    ("EWOULDBLOCK", 11),
    ("ENOMSG", 42),
    ("EIDRM", 43),
    ("ECHRNG", 44),
    ("EL2NSYNC", 45),
    ("EL3HLT", 46),
    ("EL3RST", 47),
    ("ELNRNG", 48),
    ("EUNATCH", 49),
    ("ENOCSI", 50),
    ("EL2HLT", 51),
    ("EBADE", 52),
    ("EBADR", 53),
    ("EXFULL", 54),
    ("ENOANO", 55),
    ("EBADRQC", 56),
    ("EBADSLT", 57),
    ("EDEADLOCK", 35),
    ("EBFONT", 59),
    ("ENOSTR", 60),
    ("ENODATA", 61),
    ("ETIME", 62),
    ("ENOSR", 63),
    ("ENONET", 64),
    ("ENOPKG", 65),
    ("EREMOTE", 66),
    ("ENOLINK", 67),
    ("EADV", 68),
    ("ESRMNT", 69),
    ("ECOMM", 70),
    ("EPROTO", 71),
    ("EMULTIHOP", 72),
    ("EDOTDOT", 73),
    ("EBADMSG", 74),
    ("EOVERFLOW", 75),
    ("ENOTUNIQ", 76),
    ("EBADFD", 77),
    ("EREMCHG", 78),
    ("ELIBACC", 79),
    ("ELIBBAD", 80),
    ("ELIBSCN", 81),
    ("ELIBMAX", 82),
    ("ELIBEXEC", 83),
    ("EILSEQ", 84),
    ("ERESTART", 85),
    ("ESTRPIPE", 86),
    ("EUSERS", 87),
    ("ENOTSOCK", 88),
    ("EDESTADDRREQ", 89),
    ("EMSGSIZE", 90),
    ("EPROTOTYPE", 91),
    ("ENOPROTOOPT", 92),
    ("EPROTONOSUPPORT", 93),
    ("ESOCKTNOSUPPORT", 94),
    ("EOPNOTSUPP", 95),
    ("EPFNOSUPPORT", 96),
    ("EAFNOSUPPORT", 97),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETDOWN", 100),
    ("ENETUNREACH", 101),
    ("ENETRESET", 102),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOBUFS", 105),
    ("EISCONN", 106),
    ("ENOTCONN", 107),
    ("ESHUTDOWN", 108),
    ("ETOOMANYREFS", 109),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTDOWN", 112),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
    ("ESTALE", 116),
    ("EUCLEAN", 117),
    ("ENOTNAM", 118),
    ("ENAVAIL", 119),
    ("EISNAM", 120),
    ("EREMOTEIO", 121),
    ("EDQUOT", 122),
    ("ENOMEDIUM", 123),
    ("EMEDIUMTYPE", 124),
    ("ECANCELED", 125),
    ("ENOKEY", 126),
    ("EKEYEXPIRED", 127),
    ("EKEYREVOKED", 128),
    ("EKEYREJECTED", 129),
    ("EOWNERDEAD", 130),
    ("ENOTRECOVERABLE", 131),
    ("ERFKILL", 132),
    ("EHWPOISON", 133),
];

/// The kernel's own restart codes, seen in return values of interrupted calls.
const KERNEL_ERRNOS: [(&str, i64); 4] = [
    ("ERESTARTSYS", 512),
    ("ERESTARTNOINTR", 513),
    ("ERESTARTNOHAND", 514),
    ("ERESTART_RESTARTBLOCK", 516),
];

/// The value of errno `name` (`ENOENT` → 2).
#[must_use]
pub fn errno_value(name: &str) -> Option<i64> {
    ERRNOS
        .iter()
        .chain(&KERNEL_ERRNOS)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// The name of errno `value` (2 → `ENOENT`); the first name of a value with two.
#[must_use]
pub fn errno_name(value: i64) -> Option<&'static str> {
    ERRNOS
        .iter()
        .chain(&KERNEL_ERRNOS)
        .find(|(_, v)| *v == value)
        .map(|(n, _)| *n)
}

/// A return value's errno name when it is one (-4095 ..= -1).
#[must_use]
pub fn errno_of_ret(ret: i64) -> Option<&'static str> {
    (-4095..0)
        .contains(&ret)
        .then(|| errno_name(-ret))
        .flatten()
}

/// `AT_FDCWD`.
pub const AT_FDCWD: i64 = -100;

const OPEN_FLAGS: [(&str, u64); 19] = [
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100_000),
    ("O_DIRECTORY", 0o200_000),
    ("O_NOFOLLOW", 0o400_000),
    ("O_NOATIME", 0o1_000_000),
    ("O_CLOEXEC", 0o2_000_000),
    // O_SYNC is __O_SYNC | O_DSYNC: shown when both bits are there.
    ("O_SYNC", 0o4_010_000),
    ("O_PATH", 0o10_000_000),
    ("O_TMPFILE", 0o20_200_000),
    ("O_RDWR", 2),
    ("O_WRONLY", 1),
];

/// Names `value` as `A|B|0x40`, taking each name's bits once, most bits first.
fn bits(value: u64, table: &[(&str, u64)], zero: &str) -> String {
    let mut sorted: Vec<&(&str, u64)> = table.iter().collect();
    sorted.sort_by_key(|(_, v)| std::cmp::Reverse(v.count_ones()));
    let mut rest = value;
    let mut names = Vec::new();
    for (name, v) in sorted {
        if *v != 0 && rest & v == *v {
            names.push((*v, *name));
            rest &= !v;
        }
    }
    names.sort_by_key(|(v, _)| *v);
    let mut out: Vec<String> = names.into_iter().map(|(_, n)| n.to_owned()).collect();
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        zero.to_owned()
    } else {
        out.join("|")
    }
}

/// `open` flags: `O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC` (the access mode first, `O_RDONLY`
/// when it is 0).
#[must_use]
pub fn open_flags(value: u64) -> String {
    let access = match value & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = bits(value & !3, &OPEN_FLAGS[..17], "");
    if rest.is_empty() {
        access.to_owned()
    } else {
        format!("{access}|{rest}")
    }
}

const PROT: [(&str, u64); 6] = [
    ("PROT_READ", 1),
    ("PROT_WRITE", 2),
    ("PROT_EXEC", 4),
    ("PROT_SEM", 8),
    ("PROT_GROWSDOWN", 0x0100_0000),
    ("PROT_GROWSUP", 0x0200_0000),
];

/// `mmap`/`mprotect` protection: `PROT_READ|PROT_WRITE`, `PROT_NONE`.
#[must_use]
pub fn mmap_prot(value: u64) -> String {
    bits(value, &PROT, "PROT_NONE")
}

const MAP: [(&str, u64); 17] = [
    ("MAP_SHARED", 1),
    ("MAP_PRIVATE", 2),
    ("MAP_SHARED_VALIDATE", 3),
    ("MAP_FIXED", 0x10),
    ("MAP_ANONYMOUS", 0x20),
    ("MAP_32BIT", 0x40),
    ("MAP_GROWSDOWN", 0x100),
    ("MAP_DENYWRITE", 0x800),
    ("MAP_EXECUTABLE", 0x1000),
    ("MAP_LOCKED", 0x2000),
    ("MAP_NORESERVE", 0x4000),
    ("MAP_POPULATE", 0x8000),
    ("MAP_NONBLOCK", 0x1_0000),
    ("MAP_STACK", 0x2_0000),
    ("MAP_HUGETLB", 0x4_0000),
    ("MAP_SYNC", 0x8_0000),
    ("MAP_FIXED_NOREPLACE", 0x10_0000),
];

/// `mmap` flags: `MAP_PRIVATE|MAP_ANONYMOUS`.
#[must_use]
pub fn mmap_flags(value: u64) -> String {
    bits(value, &MAP, "0")
}

const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A signal number: `SIGTERM`, `SIGRT_3`, `0` (no signal: the existence check of `kill`).
#[must_use]
pub fn signal(value: i64) -> String {
    match value {
        1..=31 => SIGNALS[value as usize - 1].to_owned(),
        32..=64 => format!("SIGRT_{}", value - 32),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_strace() {
        assert_eq!(errno_of_ret(-9), Some("EBADF"));
        assert_eq!(errno_of_ret(-11), Some("EAGAIN"));
        assert_eq!(errno_of_ret(-512), Some("ERESTARTSYS"));
        assert_eq!(errno_of_ret(3), None);
        assert_eq!(errno_of_ret(-5000), None);
        assert_eq!(errno_value("EWOULDBLOCK"), Some(11));
        assert_eq!(
            open_flags(0o1 | 0o100 | 0o1000 | 0o2_000_000),
            "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
        );
        assert_eq!(open_flags(0o2_000_000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0o4_010_002), "O_RDWR|O_SYNC");
        assert_eq!(open_flags(0x8000_0000), "O_RDONLY|0x80000000");
        assert_eq!(mmap_prot(3), "PROT_READ|PROT_WRITE");
        assert_eq!(mmap_prot(0), "PROT_NONE");
        assert_eq!(mmap_flags(0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(signal(15), "SIGTERM");
        assert_eq!(signal(35), "SIGRT_3");
        assert_eq!(signal(0), "0");
    }
}
