//! Names the user may have meant: kernel functions, ELF symbols, tracepoints, and the closest
//! matches for an error message.

use std::path::Path;

/// Levenshtein distance, bounded: returns `None` once it must exceed `max`.
#[must_use]
pub fn distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut best = cur[0];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            best = best.min(cur[j + 1]);
        }
        if best > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|&d| d <= max)
}

/// Up to `n` candidates closest to `target` (substring matches first, then by edit distance).
#[must_use]
pub fn closest<'a>(
    target: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let max = (target.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            if c.contains(target) || (target.len() >= 4 && target.contains(c) && c.len() >= 4) {
                Some((0, c))
            } else {
                distance(target, c, max).map(|d| (d, c))
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.len().cmp(&b.1.len()))
            .then(a.1.cmp(b.1))
    });
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// "; did you mean `a`, `b`?" or "" when there is nothing close.
#[must_use]
pub fn suggestion(close: &[&str]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Kernel functions that can be probed: tracefs's `available_filter_functions` where the
/// kernel has the function tracer, else the text symbols of `/proc/kallsyms` (under `root`).
#[must_use]
pub fn kernel_functions(root: &Path) -> Vec<String> {
    if let Ok(text) =
        std::fs::read_to_string(root.join("sys/kernel/tracing/available_filter_functions"))
    {
        return text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
    }
    parse_kallsyms(&std::fs::read_to_string(root.join("proc/kallsyms")).unwrap_or_default())
        .into_iter()
        .map(|(_, name)| name)
        .collect()
}

/// Where the ftrace patch site of `function` is, as an offset from its symbol: tracefs's
/// `available_filter_functions_addrs` (Linux 6.5+) against `/proc/kallsyms` (under `root`).
/// `None` when the kernel does not say, or the function is not traceable.
#[must_use]
pub fn ftrace_site(root: &Path, function: &str) -> Option<u64> {
    let sites =
        std::fs::read_to_string(root.join("sys/kernel/tracing/available_filter_functions_addrs"))
            .ok()?;
    let site = sites.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let addr = u64::from_str_radix(w.next()?, 16).ok()?;
        (w.next()? == function).then_some(addr)
    })?;
    let symbols = std::fs::read_to_string(root.join("proc/kallsyms")).ok()?;
    // A static function may have namesakes: the symbol the site is in, just before it.
    parse_kallsyms(&symbols)
        .into_iter()
        .filter(|(addr, name)| name == function && *addr <= site && site - *addr < 64)
        .map(|(addr, _)| site - addr)
        .min()
}

/// Text symbols of a kallsyms listing: (address, name), module symbols included.
#[must_use]
pub fn parse_kallsyms(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = u64::from_str_radix(w.next()?, 16).ok()?;
            let kind = w.next()?;
            let name = w.next()?;
            matches!(kind, "t" | "T").then(|| (addr, name.to_owned()))
        })
        .collect()
}

/// Tracepoints (`category:name`) from tracefs's `available_events` under `tracefs`.
#[must_use]
pub fn tracepoints(tracefs: &Path) -> Vec<String> {
    std::fs::read_to_string(tracefs.join("available_events"))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Function symbols of an ELF file (static and dynamic tables).
pub fn elf_functions(path: &Path) -> std::io::Result<Vec<String>> {
    use object::{Object as _, ObjectSymbol as _};
    let data = std::fs::read(path)?;
    let file = object::File::parse(&*data).map_err(|e| {
        std::io::Error::other(format!("{} is not an ELF file: {e}", path.display()))
    })?;
    let mut names: Vec<String> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Matches a glob with `*` and `?` against a name.
#[must_use]
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("vfs_read", "vfs_read", 2), Some(0));
        assert_eq!(distance("vfs_raed", "vfs_read", 2), Some(2));
        assert_eq!(distance("vfs_read", "do_sys_open", 2), None);
    }

    #[test]
    fn closest_prefers_substrings_then_small_edits() {
        let names = [
            "vfs_read",
            "vfs_readv",
            "vfs_write",
            "ksys_read",
            "do_sys_open",
        ];
        assert_eq!(closest("vfs_raed", names, 3), ["vfs_read"]);
        assert_eq!(closest("vfs_rea", names, 2), ["vfs_read", "vfs_readv"]);
        assert!(closest("zzzzzz", names, 3).is_empty());
        assert_eq!(suggestion(&["a", "b"]), "; did you mean `a`, `b`?");
    }

    #[test]
    fn globs() {
        assert!(glob_match("vfs_*", "vfs_read"));
        assert!(glob_match("*_read", "vfs_read"));
        assert!(glob_match("vfs_rea?", "vfs_read"));
        assert!(!glob_match("vfs_*", "do_vfs_read"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn kallsyms_text_symbols() {
        let k = "ffffffff81000000 T _stext\nffffffff81001000 t do_one\nffffffff82000000 D some_data\nffffffffc0000000 t mod_fn\t[mymod]\n";
        assert_eq!(
            parse_kallsyms(k),
            [
                (0xffff_ffff_8100_0000, "_stext".to_owned()),
                (0xffff_ffff_8100_1000, "do_one".to_owned()),
                (0xffff_ffff_c000_0000, "mod_fn".to_owned())
            ]
        );
    }

    #[test]
    fn ftrace_sites_from_a_fake_root() {
        let root = std::env::temp_dir().join(format!("snapshot-lookup-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sys/kernel/tracing")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        assert_eq!(ftrace_site(&root, "vfs_write"), None, "no tracefs file");
        // Debian's arm64 6.12: the call site is the symbol's second instruction.
        std::fs::write(
            root.join("proc/kallsyms"),
            "ffffaebeb164f000 t helper\nffffaebeb164f088 T vfs_write\nffffaebeb1700000 t helper\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sys/kernel/tracing/available_filter_functions_addrs"),
            "ffffaebeb164f08c vfs_write\nffffaebeb1700004 helper\n",
        )
        .unwrap();
        assert_eq!(ftrace_site(&root, "vfs_write"), Some(4));
        assert_eq!(
            ftrace_site(&root, "helper"),
            Some(4),
            "the namesake it is in"
        );
        assert_eq!(ftrace_site(&root, "vfs_read"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn elf_functions_of_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let names = elf_functions(&exe).unwrap();
        assert!(names.iter().any(|n| n == "main"), "{} symbols", names.len());
        assert!(elf_functions(Path::new("/etc/passwd")).is_err());
    }
}
