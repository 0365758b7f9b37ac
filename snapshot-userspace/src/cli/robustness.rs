//! Property: a snapshot file whose header or records were edited, with the checksums
//! recomputed (so the edit passes them), gives a clear error or a correct display on every
//! subcommand's path (`show`, `show --json`, `list`, each `export`), never a panic.
//!
//! The files edited are the committed real ones (the golden v1 file and the fuzz seeds). Header
//! edits are made on the JSON tree (any node replaced by a value of another type, an extreme
//! number, a long string or array; a key removed or added) and on its raw bytes; record edits
//! overwrite random bytes.

use std::path::Path;

use serde_json::{Value, json};

use super::{export, list, show};
use crate::{
    export::event,
    snapshot::{self, ReadError, Snapshot},
    testing::Rng,
};

const PATH: &str = "edited.snap";

/// The parts of a file: header JSON, record size, count, record bytes.
struct Parts {
    header: Vec<u8>,
    record_size: u32,
    count: u64,
    records: Vec<u8>,
}

fn split(file: &[u8]) -> Parts {
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    let len = u32_at(12) as usize;
    let header = file[16..16 + len].to_vec();
    let at = 16 + len + 4;
    let record_size = u32_at(at);
    let count = u64::from_le_bytes(file[at + 4..at + 12].try_into().unwrap());
    let records = file[at + 12..file.len() - 12].to_vec();
    Parts {
        header,
        record_size,
        count,
        records,
    }
}

/// A file from its parts, with its checksums computed: version 1 (the files these are read
/// from), or 2 with an empty strings section.
fn join(p: &Parts, version: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(snapshot::MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(p.header.len() as u32).to_le_bytes());
    out.extend_from_slice(&p.header);
    out.extend_from_slice(&crc32fast::hash(&p.header).to_le_bytes());
    out.extend_from_slice(&p.record_size.to_le_bytes());
    out.extend_from_slice(&p.count.to_le_bytes());
    out.extend_from_slice(&p.records);
    out.extend_from_slice(&crc32fast::hash(&p.records).to_le_bytes());
    if version >= 2 {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
    }
    out.extend_from_slice(snapshot::TRAILER);
    out
}

/// A value of any type, at the edges.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.next_u64() % 14 {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!(1e300),
        7 => json!(""),
        8 => json!("x".repeat(5000)),
        9 => json!([]),
        10 => json!({}),
        11 => json!((0..40).map(|i| format!("f{i}")).collect::<Vec<_>>()),
        12 => json!("dddddddddddddd"),
        _ => json!([[1, "a"], [u64::MAX, "b"], [0, ""]]),
    }
}

/// Replaces a random node of `v` (or removes or adds a key) in place.
fn edit(v: &mut Value, rng: &mut Rng) {
    let descend = !rng.next_u64().is_multiple_of(4);
    match v {
        Value::Object(map) if descend && !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[(rng.next_u64() % keys.len() as u64) as usize];
            match rng.next_u64() % 8 {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert("unknown_field".into(), odd_value(rng));
                }
                _ => edit(map.get_mut(key).unwrap(), rng),
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let i = (rng.next_u64() % items.len() as u64) as usize;
            if rng.next_u64().is_multiple_of(6) {
                let copy = items[i].clone();
                items.extend(std::iter::repeat_n(copy, 70));
            } else {
                edit(&mut items[i], rng);
            }
        }
        _ => *v = odd_value(rng),
    }
}

/// Every display path; what it checks of a snapshot that decoded.
fn display_is_correct(s: &Snapshot) {
    let mut out = Vec::new();
    show::render(s, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), s.events.len(), "one line per event");
    for (line, e) in lines.iter().zip(&s.events) {
        let v = event::view(e, &s.header.probes);
        assert_eq!(
            (v.ts_ns, v.cpu, v.pid, v.tid),
            (e.ts_ns, e.cpu, e.tgid(), e.tid())
        );
        assert!(line.contains(&format!("[{:03}]", e.cpu)), "{line}");
        assert!(v.args.len() <= snapshot_common::MAX_ARGS);
    }
    let mut out = Vec::new();
    show::render(s, true, &mut out).unwrap();
    let json = String::from_utf8(out).unwrap();
    let mut json_lines = json.lines();
    let header: snapshot::Header =
        serde_json::from_str(json_lines.next().unwrap()).expect("the header line reads back");
    assert_eq!(header, s.header, "show --json prints the header as read");
    assert_eq!(json_lines.count(), s.events.len());
    assert!(list::line(PATH, s).contains(&format!("events {}", s.events.len())));
    for format in [
        export::Format::Text,
        export::Format::ChromeJson,
        export::Format::Perfetto,
    ] {
        export::render(s, format).unwrap();
    }
}

fn check(bytes: &[u8], what: &str) {
    match snapshot::decode(bytes, Path::new(PATH)) {
        Ok(s) => display_is_correct(&s),
        Err(e) => {
            assert!(!matches!(e, ReadError::Io { .. }), "{what}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(PATH) && msg.len() < 2000, "{what}: {msg}");
        }
    }
}

#[test]
fn edited_headers_and_records_with_checksums_recomputed_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("tests/data/golden-v1.snap")];
    for entry in std::fs::read_dir(root.join("fuzz/seeds/snapshot_reader")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut rng = Rng(0x5eed_0f11_2026_1129);
    let (mut shown, mut refused) = (0, 0);
    for file in &files {
        let original = std::fs::read(file).unwrap();
        let base = split(&original);
        let tree: Value = serde_json::from_slice(&base.header).unwrap();
        for round in 0..400 {
            let mut p = Parts {
                header: base.header.clone(),
                records: base.records.clone(),
                ..base
            };
            match round % 4 {
                0 | 1 => {
                    let mut t = tree.clone();
                    for _ in 0..=rng.next_u64() % 3 {
                        edit(&mut t, &mut rng);
                    }
                    p.header = serde_json::to_vec(&t).unwrap();
                }
                2 => {
                    for _ in 0..=rng.next_u64() % 4 {
                        let i = (rng.next_u64() % p.header.len() as u64) as usize;
                        p.header[i] = rng.next_u64() as u8;
                    }
                }
                _ => {
                    if p.records.is_empty() {
                        continue;
                    }
                    for _ in 0..=rng.next_u64() % 16 {
                        let i = (rng.next_u64() % p.records.len() as u64) as usize;
                        p.records[i] = rng.next_u64() as u8;
                    }
                }
            }
            let what = format!("{} round {round}", file.display());
            check(&join(&p, 2), &what);
            let bytes = join(&p, 1);
            check(&bytes, &what);
            if snapshot::decode(&bytes, Path::new(PATH)).is_ok() {
                shown += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        shown > 500 && refused > 500,
        "both outcomes are exercised: {shown} shown, {refused} refused"
    );
}
