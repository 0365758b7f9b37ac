//! The eBPF object cache, shared by every build of `snapshot-userspace`.
//!
//! `aya_build` builds the eBPF object inside each build's own `OUT_DIR`: the debug build, the
//! test build, clippy's check build and each static release build would each compile `core` for
//! the BPF target and the eBPF crate again (about a minute and a half each on two cores), for
//! the same object. The object depends only on the eBPF and common crates' files, the lock
//! file, the root manifest (the pins, the eBPF profile) and the target's architecture and byte
//! order, so the build script keys it by a hash of exactly those and keeps it under
//! `target/ebpf-object/`; a build whose key is there copies it instead of building.
//!
//! Compiled into both `snapshot-userspace/build.rs` and xtask (whose unit tests check the key).

use std::{
    hash::{DefaultHasher, Hasher as _},
    io,
    path::{Path, PathBuf},
};

/// Objects kept per architecture (the newest): about 30 MB each, with their BTF.
pub const KEEP: usize = 4;

/// The cache key of the object for `arch`/`endian` built from the crates in `dirs` and the
/// files in `files` (contents and relative names; `target` directories are skipped).
/// A missing file hashes as absent, so adding it changes the key.
pub fn key(dirs: &[&Path], files: &[&Path], arch: &str, endian: &str) -> io::Result<u64> {
    let mut h = DefaultHasher::new();
    h.write(arch.as_bytes());
    h.write_u8(0);
    h.write(endian.as_bytes());
    h.write_u8(0);
    for dir in dirs {
        let mut found = Vec::new();
        walk(dir, &mut found)?;
        found.sort();
        h.write(dir.as_os_str().as_encoded_bytes());
        for f in found {
            h.write(
                f.strip_prefix(dir)
                    .unwrap_or(&f)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            h.write_u8(0);
            let bytes = std::fs::read(&f)?;
            h.write_usize(bytes.len());
            h.write(&bytes);
        }
    }
    for f in files {
        h.write(f.as_os_str().as_encoded_bytes());
        match std::fs::read(f) {
            Ok(bytes) => {
                h.write_usize(bytes.len());
                h.write(&bytes);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => h.write_u8(0xff),
            Err(e) => return Err(e),
        }
    }
    Ok(h.finish())
}

/// The regular files under `dir`, not following links, skipping `target` directories.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if entry.file_name() != "target" {
                walk(&path, out)?;
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Where the object of `arch` with `key` is kept in `cache`.
#[must_use]
pub fn entry(cache: &Path, arch: &str, key: u64) -> PathBuf {
    cache.join(format!("snapshot-{arch}-{key:016x}"))
}

/// Keeps `object` as `cached`: written beside it and renamed into place, so a concurrent build
/// sees the whole object or none; then only the [`KEEP`] newest objects of `arch` are kept.
pub fn store(object: &Path, cached: &Path, arch: &str) -> io::Result<()> {
    let dir = cached.parent().ok_or(io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::copy(object, &tmp)?;
    std::fs::rename(&tmp, cached)?;
    let prefix = format!("snapshot-{arch}-");
    let mut kept: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    kept.sort();
    let old = kept.len().saturating_sub(KEEP);
    for (_, path) in &kept[..old] {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_sources_and_nothing_else() {
        let root = std::env::temp_dir().join(format!("object-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let src = root.join("ebpf/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(root.join("ebpf/target")).unwrap();
        std::fs::write(src.join("main.rs"), "fn main() {}").unwrap();
        let lock = root.join("Cargo.lock");
        std::fs::write(&lock, "v1").unwrap();
        let dir = root.join("ebpf");
        let k = || key(&[&dir], &[&lock], "x86_64", "little").unwrap();
        let first = k();
        assert_eq!(k(), first, "the same files give the same key");
        // Build output under `target` does not count.
        std::fs::write(root.join("ebpf/target/out.o"), "x").unwrap();
        assert_eq!(k(), first);
        // A source changed, a file added, the lock changed, another architecture: new keys.
        std::fs::write(src.join("main.rs"), "fn main() { }").unwrap();
        let edited = k();
        assert_ne!(edited, first);
        std::fs::write(src.join("more.rs"), "").unwrap();
        let added = k();
        assert_ne!(added, edited);
        std::fs::write(&lock, "v2").unwrap();
        assert_ne!(k(), added);
        assert_ne!(key(&[&dir], &[&lock], "aarch64", "little").unwrap(), k());
        std::fs::remove_file(&lock).unwrap();
        assert_ne!(k(), added, "a missing file is not an empty one");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_cache_keeps_the_newest_objects_of_each_architecture() {
        let root = std::env::temp_dir().join(format!("object-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let object = root.join("built");
        std::fs::write(&object, "elf").unwrap();
        let cache = root.join("cache");
        let other = entry(&cache, "aarch64", 1);
        store(&object, &other, "aarch64").unwrap();
        for k in 0..KEEP as u64 + 2 {
            store(&object, &entry(&cache, "x86_64", k), "x86_64").unwrap();
            // Distinct modification times, oldest first.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let x86: Vec<u64> = (0..KEEP as u64 + 2)
            .filter(|&k| entry(&cache, "x86_64", k).is_file())
            .collect();
        assert_eq!(x86, (2..KEEP as u64 + 2).collect::<Vec<_>>());
        assert_eq!(
            std::fs::read(&other).unwrap(),
            b"elf",
            "another arch is kept"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
