//! Unit tests of `symbols`.

use super::*;

#[test]
fn kernel_frames_name_the_enclosing_function() {
    let k = KernelSymbols::parse(
        "ffffffff81000000 T _stext\nffffffff81200000 T vfs_read\nffffffff81200100 t helper\n",
    );
    let f = k.frames(&[0xffff_ffff_8120_001a, 0xffff_ffff_8120_0100, 0x10]);
    assert_eq!(f[0].symbol.as_deref(), Some("vfs_read+0x1a"));
    assert_eq!(f[1].symbol.as_deref(), Some("helper"));
    assert_eq!(f[2].symbol, None, "below every symbol");
    assert_eq!(f[2].describe(), "0x10");
}

#[test]
fn hidden_kallsyms_resolve_nothing() {
    let k = KernelSymbols::parse("0000000000000000 T vfs_read\n");
    assert_eq!(k.frames(&[0x1234])[0].symbol, None);
}

#[test]
fn maps_keep_file_backed_mappings() {
    let m = parse_maps(
        "55d0c0000000-55d0c0001000 r--p 00000000 08:01 42 /usr/bin/x\n\
         55d0c0001000-55d0c0005000 r-xp 00001000 08:01 42 /usr/bin/x\n\
         7ffd0000-7ffe0000 rw-p 00000000 00:00 0 [stack]\n\
         7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n",
    );
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].offset, 0x1000);
    assert_eq!(m[1].path, Path::new("/usr/bin/x"));
}

/// The address, symbol name and segment (file offset, size, address) of a test function
/// in the test binary `exe`.
fn test_function(exe: &Path) -> (u64, String, (u64, u64, u64)) {
    let elf = Elf::read(exe).expect("the test binary is an ELF file");
    let (vaddr, _, name) = elf
        .table
        .syms
        .iter()
        .find(|s| s.1 > 8 && s.2.contains("kernel_frames_name_the_enclosing_function"))
        .cloned()
        .expect("the test function has a symbol");
    let &segment = elf
        .segments
        .iter()
        .find(|(_, sz, va)| (*va..va + sz).contains(&vaddr))
        .expect("a segment holds the function");
    (vaddr, name, segment)
}

#[test]
fn user_frames_resolve_through_the_mapping_and_the_elf_segments() {
    // This test binary itself: find a function's address in the ELF, map the file at an
    // arbitrary base as the loader would, and resolve an address inside the function.
    let exe = std::env::current_exe().unwrap();
    let (vaddr, name, (seg_off, seg_size, seg_vaddr)) = test_function(&exe);
    let base = 0x5500_0000_0000;
    let maps = [Mapping {
        start: base,
        end: base + seg_size,
        offset: seg_off,
        path: exe.clone(),
    }];
    let addr = base + (vaddr - seg_vaddr) + 4;
    let f = UserSymbols::default().frames_in(&maps, &[addr, 0x10]);
    let want = format!("{:#}+0x4", rustc_demangle::demangle(&name));
    assert_eq!(f[0].symbol.as_deref(), Some(want.as_str()));
    assert!(
        f[0].describe()
            .contains("kernel_frames_name_the_enclosing_function")
    );
    assert_eq!(f[1].symbol, None);
    assert_eq!(f[1].object, None);
}

/// A crashed process's stack is symbolized on the map cached while it ran, under the same
/// command name only; a started command still running this binary is not cached.
#[test]
fn cached_maps_stand_in_for_a_process_gone() {
    let root = std::env::temp_dir().join(format!("maps-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let proc7 = root.join("proc/7");
    std::fs::create_dir_all(&proc7).unwrap();
    std::fs::create_dir_all(root.join("proc/8")).unwrap();
    std::fs::write(
        proc7.join("maps"),
        "55d0c0000000-55d0c0001000 r-xp 00001000 08:01 42 /usr/bin/work\n",
    )
    .unwrap();
    std::fs::write(proc7.join("comm"), "work\n").unwrap();
    // Process 8 runs this binary (a held command before its exec).
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/snapshot", root.join("proc/self/exe")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/snapshot", root.join("proc/8/exe")).unwrap();
    std::fs::copy(proc7.join("maps"), root.join("proc/8/maps")).unwrap();
    std::fs::write(root.join("proc/8/comm"), "snapshot\n").unwrap();
    let mut cache = MapsCache::default();
    let mut seen = BuildIdIndex::default();
    cache.refresh(&root, [7, 8, 9], 1_000_000, &mut seen);
    assert_eq!(seen.len(), 1, "the one file mapped by 7 is noted");
    assert_eq!(
        cache.entries.len(),
        1,
        "only 7: 8 runs this binary, 9 is gone"
    );
    // Alive: read at the trigger.
    let at = |cache: &MapsCache, pid, comm| {
        Stacks::read_cached(
            &root,
            (pid, comm),
            vec![],
            vec![0x55d0_c000_0010],
            Some(cache),
            121_000_000,
        )
    };
    assert_eq!(at(&cache, 7, "work").source, MapsSource::AtTrigger);
    // Gone: the cached map, under the same name only.
    std::fs::remove_file(proc7.join("maps")).unwrap();
    let gone = at(&cache, 7, "work");
    assert_eq!(gone.source, MapsSource::Cached(1_000_000));
    assert_eq!(gone.maps.len(), 1);
    assert_eq!(
        gone.maps_note(
            &Resolved {
                by_maps: 1,
                ..Resolved::default()
            },
            &[]
        )
        .as_deref(),
        Some("cached 120 ms before the trigger, the process having exited")
    );
    assert_eq!(
        at(&cache, 7, "other").source,
        MapsSource::Missing,
        "an exec since"
    );
    std::fs::remove_file(root.join("proc/8/maps")).unwrap();
    assert_eq!(at(&cache, 8, "snapshot").source, MapsSource::Missing);
    // Refreshing keeps the entry of a process gone; the dead are forgotten on request.
    cache.refresh(&root, [7], 2_000_000, &mut seen);
    assert_eq!(at(&cache, 7, "work").source, MapsSource::Cached(1_000_000));
    std::fs::remove_dir_all(&proc7).unwrap();
    cache.retain_alive(&root);
    assert!(cache.entries.is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

/// A crashed process whose map was never read: its frames resolve through their build id
/// and file offset when a file with that build id is known, show the raw build id when
/// none is, and the note says which way each went.
#[test]
fn frames_without_a_map_resolve_by_build_id() {
    let exe = std::env::current_exe().unwrap();
    let id = buildid::read_build_id(&exe).expect("the test binary has a build id");
    let (vaddr, name, (seg_off, _, seg_vaddr)) = test_function(&exe);
    let offset = vaddr - seg_vaddr + seg_off + 4;
    let mut other = id;
    other[0] ^= 0xff;
    let frames = [
        BuildIdFrame {
            status: BUILD_ID_VALID,
            build_id: id,
            offset_or_ip: offset,
        },
        BuildIdFrame {
            status: BUILD_ID_VALID,
            build_id: other,
            offset_or_ip: 0x1234,
        },
        BuildIdFrame {
            status: BUILD_ID_IP,
            build_id: [0; 20],
            offset_or_ip: 0x7000,
        },
    ];
    let root = Path::new("/nonexistent-root");
    let gone = |frames: &[BuildIdFrame], id| {
        Stacks::read_cached(
            root,
            (7, "work"),
            vec![],
            vec![0x5000, 0x6000, 0x7000],
            None,
            0,
        )
        .with_build_ids(id, frames.to_vec())
    };
    let mut files = BuildIdIndex::default();
    files.note(&exe);
    let mut sym = Symbolizer {
        files,
        ..Symbolizer::default()
    };
    let mut fired = crate::snapshot::Fired::default();
    sym.apply(&mut fired, &gone(&frames, 3));
    let f = &fired.user_stack;
    let want = format!("{:#}+0x4", rustc_demangle::demangle(&name));
    assert_eq!(f[0].symbol.as_deref(), Some(want.as_str()));
    assert_eq!(
        f[0].object,
        exe.file_name().map(|n| n.to_string_lossy().into_owned())
    );
    assert_eq!(f[0].build_id.as_deref(), Some(buildid::hex(&id).as_str()));
    assert_eq!(
        f[1].describe(),
        format!("build-id {}+0x1234", buildid::hex(&other)),
        "no file has it: the raw build id, for later"
    );
    assert_eq!(f[2].describe(), "0x7000");
    assert_eq!(
        fired.user_maps.as_deref(),
        Some(
            "by build id: the process had exited and no map of it was cached; 1 frame by raw build id (no file with it was found: see /usr/lib/debug/.build-id or the binary's `readelf -n`); 1 frame unresolved (no build id: anonymous or JIT code, or a file without one)"
        )
    );
    // A map cached mid-exec puts the address at another file offset than the kernel saw:
    // the build-id frame wins.
    let stale = Stacks {
        user: vec![0x5000],
        maps: vec![Mapping {
            start: 0x5000,
            end: 0x6000,
            offset: 0,
            path: exe.clone(),
        }],
        source: MapsSource::Cached(0),
        ..Stacks::default()
    }
    .with_build_ids(3, frames[..1].to_vec());
    sym.apply(&mut fired, &stale);
    assert_eq!(fired.user_stack[0].symbol.as_deref(), Some(want.as_str()));
    assert_eq!(
        fired.user_maps.as_deref(),
        Some("cached 0 ms before the trigger, the process having exited; 1 frame by build id")
    );
    // Without build-id stacks (an old kernel), the note says why nothing resolved.
    sym.apply(&mut fired, &gone(&[], -95));
    assert!(fired.user_stack.iter().all(|f| f.symbol.is_none()));
    assert_eq!(
        fired.user_maps.as_deref(),
        Some(
            "none: the process had exited and no map of it was cached; 3 frames unresolved (no build-id stack: this kernel has no build-id stack maps)"
        )
    );
    // A trigger that does not watch deaths takes none, and the note says so.
    sym.apply(&mut fired, &gone(&[], BUILD_ID_STACK_NOT_TAKEN));
    assert_eq!(
        fired.user_maps.as_deref(),
        Some(
            "none: the process had exited and no map of it was cached; 3 frames unresolved (no build-id stack: taken for the crash, oom and signal triggers only)"
        )
    );
}
