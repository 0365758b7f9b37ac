//! The strings a snapshot's events captured: one slot per event that has some (its
//! `PayloadHeader` names the event by CPU and commit word), and what each string reads as.

use std::collections::HashMap;

use snapshot_common::{
    EVENT_HAS_STRINGS, Event, MAX_ARGS, MAX_STRINGS, PayloadHeader,
    strings::{STRING_SIZE_MAX, string_stride},
};

use crate::{
    probe::capture::{Capture, CaptureKind},
    session::strings::header,
};

/// The string slots of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Strings {
    /// Bytes per slot (0: none).
    pub slot: u32,
    /// `count × slot` bytes.
    pub data: Vec<u8>,
}

/// One captured string or buffer, as it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Captured {
    /// The bytes read (a string without its NUL); `truncated` when there were more than
    /// `--string-size`.
    Bytes {
        /// Content.
        bytes: Vec<u8>,
        /// Cut at `--string-size`.
        truncated: bool,
    },
    /// The pointer was NULL.
    Null,
    /// The memory could not be read (the helper's errno).
    Unreadable(i32),
}

impl Strings {
    /// Number of slots.
    #[must_use]
    pub fn count(&self) -> usize {
        (self.data.len())
            .checked_div(self.slot as usize)
            .unwrap_or(0)
    }

    /// Whether a slot size is one a recording writes (a header and up to `MAX_STRINGS`
    /// strings of at most `STRING_SIZE_MAX`).
    #[must_use]
    pub const fn valid_slot(slot: u32) -> bool {
        let header = size_of::<PayloadHeader>() as u32;
        slot >= header
            && slot <= header + MAX_STRINGS as u32 * string_stride(STRING_SIZE_MAX)
            && slot.is_multiple_of(8)
    }

    /// The slots, by the (CPU, commit word) of their event.
    #[must_use]
    pub fn index(&self) -> HashMap<(u32, u64), &[u8]> {
        if self.slot == 0 {
            return HashMap::new();
        }
        self.data
            .chunks_exact(self.slot as usize)
            .filter_map(|s| header(s).map(|h| ((h.cpu, h.seq), s)))
            .collect()
    }
}

/// The event word `w` (an argument, or the return value).
fn word(event: &Event, w: u8) -> u64 {
    match w as usize {
        i if i < MAX_ARGS => event.args[i],
        _ => event.ret,
    }
}

/// What each of `captures` reads as in `event`'s slot (`None` for an event without one).
#[must_use]
pub fn captured(
    slot: Option<&[u8]>,
    captures: &[Capture],
    event: &Event,
    string_size: u32,
) -> Vec<Option<Captured>> {
    let slot = slot.filter(|_| event.flags & EVENT_HAS_STRINGS != 0);
    let Some((slot, h)) = slot.and_then(|s| Some((s, header(s)?))) else {
        return vec![None; captures.len()];
    };
    let stride = string_stride(string_size) as usize;
    captures
        .iter()
        .take(MAX_STRINGS)
        .enumerate()
        .map(|(i, c)| {
            let at = size_of::<PayloadHeader>() + i * stride;
            let area = slot.get(at..at + stride)?;
            let status = h.status[i];
            let addr = word(event, c.word);
            if addr == 0 && c.kind == CaptureKind::Buf {
                // A NULL buffer reads nothing even when its length is 0.
                return Some(Captured::Null);
            }
            if status < 0 {
                let null = addr == 0 && matches!(c.kind, CaptureKind::Str | CaptureKind::Buf);
                return Some(if null {
                    Captured::Null
                } else {
                    Captured::Unreadable(-status)
                });
            }
            let status = status as usize;
            Some(if c.kind == CaptureKind::Buf {
                let wanted = c
                    .len
                    .map_or_else(|| word(event, c.len_word.unwrap_or(0)) as i64, i64::from);
                let n = status.min(stride);
                Captured::Bytes {
                    bytes: area[..n].to_vec(),
                    truncated: wanted > n as i64,
                }
            } else {
                // Strings: `status` counts the NUL; `size + 2` means there was more.
                let size = string_size as usize;
                let truncated = status >= size + 2;
                let n = status.saturating_sub(1).min(size);
                Captured::Bytes {
                    bytes: area[..n].to_vec(),
                    truncated,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(word: u8, kind: CaptureKind) -> Capture {
        let mut c = Capture::new(format!("arg{word}"), word, kind);
        c.len_word = (kind == CaptureKind::Buf).then_some(2);
        c
    }

    fn slot(size: u32, status: [i32; 4], strings: &[&[u8]]) -> Vec<u8> {
        let stride = string_stride(size) as usize;
        let mut out = vec![0u8; 32 + 4 * stride];
        out[..8].copy_from_slice(&9u64.to_le_bytes());
        for (i, s) in status.iter().enumerate() {
            out[16 + 4 * i..20 + 4 * i].copy_from_slice(&s.to_le_bytes());
        }
        for (i, s) in strings.iter().enumerate() {
            out[32 + i * stride..32 + i * stride + s.len()].copy_from_slice(s);
        }
        out
    }

    #[test]
    fn strings_read_with_truncation_null_and_errors() {
        let ev = Event {
            seq: 9,
            args: [0x1000, 0, 20, 0x2000, 0x3000, 0],
            flags: EVENT_HAS_STRINGS,
            ..Event::default()
        };
        let caps = [
            capture(0, CaptureKind::Str),
            capture(1, CaptureKind::Buf),
            capture(3, CaptureKind::Str),
            capture(4, CaptureKind::Str),
        ];
        // size 8: "abcdefgh" exactly (9 with NUL), a NULL buffer, a truncated string, EFAULT.
        let s = slot(8, [9, -14, 10, -14], &[b"abcdefgh\0", b"", b"abcdefghi\0"]);
        let got = captured(Some(&s), &caps, &ev, 8);
        assert_eq!(
            got[0],
            Some(Captured::Bytes {
                bytes: b"abcdefgh".to_vec(),
                truncated: false
            }),
            "exactly the size is complete"
        );
        assert_eq!(got[1], Some(Captured::Null));
        assert_eq!(
            got[2],
            Some(Captured::Bytes {
                bytes: b"abcdefgh".to_vec(),
                truncated: true
            }),
            "one more than the size is cut"
        );
        assert_eq!(got[3], Some(Captured::Unreadable(14)));
        let buf = slot(8, [8, 0, 0, 0], &[b"12345678"]);
        let got = captured(Some(&buf), &[capture(3, CaptureKind::Buf)], &ev, 8);
        assert_eq!(
            got[0],
            Some(Captured::Bytes {
                bytes: b"12345678".to_vec(),
                truncated: true
            }),
            "a 20-byte buffer keeps 8"
        );
        let plain = Event { flags: 0, ..ev };
        assert_eq!(captured(Some(&s), &caps[..1], &plain, 8), [None]);
        let strings = Strings {
            slot: s.len() as u32,
            data: s.clone(),
        };
        assert_eq!(strings.count(), 1);
        assert!(strings.index().contains_key(&(0, 9)));
        assert!(Strings::valid_slot(s.len() as u32));
        assert!(!Strings::valid_slot(12));
    }
}
