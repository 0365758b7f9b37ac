use super::*;
use crate::probe::ProbeSpec;

pub(crate) fn sample() -> Snapshot {
    let spec: ProbeSpec = "tracepoint:syscalls:sys_exit_openat".parse().unwrap();
    let events = (0..5u64)
        .map(|i| Event {
            seq: i + 1,
            ts_ns: 1000 + i,
            pid_tgid: 0x2a_0000_002b,
            args: [i, 0, 0, 0, 0, 0],
            ret: (-2i64) as u64,
            comm: *b"workload\0\0\0\0\0\0\0\0",
            cpu: 1,
            probe_id: 0,
            flags: 3,
            pad: 0,
            ..Event::default()
        })
        .collect();
    Snapshot {
        header: Header {
            seq: 7,
            kind: SnapshotKind::Condition,
            hostname: "host".into(),
            kernel_release: "6.18.0".into(),
            clock: ClockRef {
                boot_ns: 10,
                realtime_ns: 1_700_000_000_000_000_000,
            },
            probes: vec![ProbeInfo::new(0, &spec, vec![])],
            trigger: "sys_exit_openat.ret < 0".into(),
            fired: Some(Fired {
                ts_ns: 1004,
                cpu: 1,
                pid: 42,
                tid: 43,
                comm: "workload".into(),
                probe: "sys_exit_openat".into(),
                value: -2,
                post: Some("3 events".into()),
                kernel_stack: vec![Frame {
                    addr: 0xffff_ffff_8120_001a,
                    symbol: Some("vfs_read+0x1a".into()),
                    object: None,
                    ..Default::default()
                }],
                user_stack: vec![Frame {
                    addr: 0x5500_0000_1234,
                    symbol: None,
                    object: Some("workload".into()),
                    build_id: Some("0102".into()),
                    file_offset: Some(0x1234),
                }],
                user_maps: Some("read at the trigger".into()),
                sequence: None,
            }),
            missed_triggers: 3,
            ncpu: 2,
            capacity: 1024,
            cpus: vec![CpuAccount {
                cpu: 1,
                recorded: 5,
                overwritten: 9,
                dropped: 1,
                torn: 0,
            }],
            lost_snapshots: 0,
            lost_events: 0,
            string_size: 8,
        },
        events,
        strings: sample_strings(),
    }
}

/// One string slot (`--string-size 8`, one string) for the first event: "/etc\0".
fn sample_strings() -> Strings {
    let slot = snapshot_common::strings::payload_size(8, 1);
    let mut data = vec![0u8; slot as usize];
    data[..8].copy_from_slice(&1u64.to_le_bytes());
    data[8..12].copy_from_slice(&1u32.to_le_bytes());
    data[16..20].copy_from_slice(&5i32.to_le_bytes());
    data[32..37].copy_from_slice(b"/etc\0");
    Strings { slot, data }
}

fn decode_err(bytes: &[u8]) -> ReadError {
    decode(bytes, Path::new("x.snap")).expect_err("must be refused")
}

#[test]
fn round_trip() {
    let s = sample();
    let back = decode(&encode(&s), Path::new("x.snap")).unwrap();
    assert_eq!(back, s);
}

#[test]
fn version_1_files_read_as_before() {
    let mut s = sample();
    s.strings = Strings::default();
    s.header.string_size = 0;
    let v1 = encode_version(&s.header, &s.events, &s.strings, 1).concat();
    assert_eq!(&v1[8..12], &1u32.to_le_bytes());
    assert_eq!(
        decode(&v1, Path::new("x.snap")).unwrap(),
        s,
        "no strings section, nothing lost"
    );
    let v2 = encode(&s);
    assert_eq!(
        v2.len(),
        v1.len() + 16,
        "version 2 adds the (empty) strings section"
    );
    assert!(
        !String::from_utf8_lossy(&v1).contains("string_size"),
        "a header without strings does not mention them"
    );
}

#[test]
fn string_slot_corruption() {
    let good = encode(&sample());
    // The slots come right before the trailer: checksum (4), then the trailer (8).
    let slots_end = good.len() - 12;
    let slot = sample_strings().data.len();
    let mut bytes = good.clone();
    bytes[slots_end - slot + 33] ^= 1;
    assert!(matches!(
        decode_err(&bytes),
        ReadError::StringsChecksum { count: 1, .. }
    ));
    let size_at = slots_end - slot - 12;
    let mut bytes = good.clone();
    bytes[size_at..size_at + 4].copy_from_slice(&12u32.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::StringSlotSize { found: 12, .. }
    ));
    let mut bytes = good;
    bytes[size_at + 4..size_at + 12].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::Truncated {
            section: "string slots",
            ..
        }
    ));
}

#[test]
fn every_truncation_is_reported_as_such() {
    let bytes = encode(&sample());
    for len in 1..bytes.len() {
        let err = decode_err(&bytes[..len]);
        assert!(
            matches!(err, ReadError::Truncated { .. }),
            "prefix of {len} bytes gave {err}"
        );
    }
    assert!(matches!(decode_err(&[]), ReadError::NotASnapshot(_)));
}

#[test]
fn not_a_snapshot() {
    let err = decode_err(b"PK\x03\x04 this is a zip file, not a snapshot");
    assert!(matches!(err, ReadError::NotASnapshot(_)));
    assert!(err.to_string().contains("not a snapshot file"));
}

#[test]
fn versions() {
    let mut bytes = encode(&sample());
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let err = decode_err(&bytes);
    assert!(
        matches!(err, ReadError::NewerVersion { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"));
    bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::BadVersion { found: 0, .. }
    ));
}

fn header_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    16..16 + len
}

#[test]
fn header_corruption() {
    let good = encode(&sample());
    let range = header_range(&good);
    let mut bytes = good.clone();
    bytes[range.start + 3] ^= 0x20;
    assert!(matches!(
        decode_err(&bytes),
        ReadError::HeaderChecksum { .. }
    ));

    // Valid checksum over JSON that is not a header.
    let junk = br#"{"not":"a header"}"#;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&good[..12]);
    bytes.extend_from_slice(&(junk.len() as u32).to_le_bytes());
    bytes.extend_from_slice(junk);
    bytes.extend_from_slice(&crc32fast::hash(junk).to_le_bytes());
    bytes.extend_from_slice(&good[range.end + 4..]);
    assert!(matches!(
        decode_err(&bytes),
        ReadError::HeaderInvalid { .. }
    ));

    let mut bytes = good;
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::HeaderTooLarge { .. }
    ));
}

#[test]
fn record_corruption() {
    let good = encode(&sample());
    let after_header = header_range(&good).end + 4;
    let mut bytes = good.clone();
    bytes[after_header..after_header + 4].copy_from_slice(&64u32.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::RecordSize {
            found: 64,
            expected: 128,
            ..
        }
    ));

    let mut bytes = good.clone();
    bytes[after_header + 12 + 40] ^= 1;
    assert!(matches!(
        decode_err(&bytes),
        ReadError::RecordsChecksum { count: 5, .. }
    ));

    let mut bytes = good.clone();
    bytes[after_header + 4..after_header + 12].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        decode_err(&bytes),
        ReadError::Truncated {
            section: "records",
            ..
        }
    ));

    let mut bytes = good.clone();
    let n = bytes.len();
    bytes[n - 2] = b'X';
    assert!(matches!(decode_err(&bytes), ReadError::Trailer { .. }));

    let mut bytes = good;
    bytes.extend_from_slice(b"extra");
    assert!(matches!(decode_err(&bytes), ReadError::TrailingData { .. }));
}

#[test]
fn out_dir_is_private_locked_numbered_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::temp_dir().join(format!("snapfile-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    let mut out = dir::OutDir::prepare(&path.join("out"), false).unwrap();
    let out_path = path.join("out");
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(out.next_seq(), 1);
    let file = out
        .write("snapshot-0001-condition.snap", &[&encode(&sample())])
        .unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read(&file).unwrap(), sample());
    let e = out
        .write("snapshot-0001-condition.snap", &[b"other"])
        .unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::AlreadyExists,
        "never replaced"
    );
    drop(out);
    std::fs::write(out_path.join("snapshot-0041-manual.snap"), b"x").unwrap();
    std::fs::write(out_path.join(".snapshot-0042-manual.snap.tmp"), b"half").unwrap();
    let mut out = dir::OutDir::prepare(&out_path, false).unwrap();
    assert_eq!(
        out.next_seq(),
        42,
        "numbering continues after the highest file"
    );
    assert_eq!(out.cleaned(), 1);
    assert!(!out_path.join(".snapshot-0042-manual.snap.tmp").exists());
    // (A second recorder is refused by the lock: POSIX locks are per process, so that is
    // tested with two processes, in tests/findings.rs.)
    drop(out);
    std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = dir::OutDir::prepare(&out_path, false).unwrap_err();
    assert!(e.to_string().contains("--allow-shared-out"), "{e}");
    dir::OutDir::prepare(&out_path, true).unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}
