//! Taking an event's strings out of its payload slot (see `snapshot_common::strings`): the
//! slot is checked against the event (same commit word and CPU) and copied with the bytes
//! after each string zeroed, so a snapshot holds what the event captured and nothing older
//! that the slot still held.

use snapshot_common::{
    EVENT_HAS_STRINGS, Event, MAX_STRINGS, PayloadHeader, strings::string_stride,
};

/// Where a payload slot's parts are, for one `--string-size`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per slot (0: no probe captures strings).
    pub slot: u32,
    /// `--string-size`.
    pub string_size: u32,
}

impl Layout {
    /// Bytes per string.
    #[must_use]
    pub const fn stride(&self) -> usize {
        string_stride(self.string_size) as usize
    }

    /// Strings per slot.
    #[must_use]
    pub fn strings(&self) -> usize {
        (self.slot as usize)
            .saturating_sub(size_of::<PayloadHeader>())
            .checked_div(self.stride())
            .unwrap_or(0)
            .min(MAX_STRINGS)
    }
}

/// The header of a slot's bytes (`None` when too short).
#[must_use]
pub fn header(slot: &[u8]) -> Option<PayloadHeader> {
    let bytes = slot.get(..size_of::<PayloadHeader>())?;
    // SAFETY: exactly the header's size; PayloadHeader is plain integers, valid for any bit
    // pattern, and read_unaligned copes with the byte buffer's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<PayloadHeader>()) })
}

/// Appends `event`'s strings from its `slot` to `out`, each string's unused bytes zeroed.
/// Returns false (and appends nothing) when the slot does not belong to the event: the
/// caller then drops the event's strings flag.
pub fn take(layout: Layout, event: &Event, slot: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(h) = header(slot) else {
        return false;
    };
    if h.seq != event.seq || h.cpu != event.cpu || slot.len() != layout.slot as usize {
        return false;
    }
    let from = out.len();
    out.extend_from_slice(slot);
    let stride = layout.stride();
    let strings = &mut out[from + size_of::<PayloadHeader>()..];
    for (i, chunk) in strings.chunks_mut(stride).enumerate() {
        let status = h.status.get(i).copied().unwrap_or(0);
        let keep = usize::try_from(status).unwrap_or(0).min(chunk.len());
        chunk[keep..].fill(0);
    }
    true
}

/// Takes the strings of every event of `events` that has them; `slot_of` gives an event's
/// slot bytes. Returns how many had a slot that was not theirs (kept without strings).
pub fn take_all<'a>(
    layout: Layout,
    events: &mut [Event],
    slot_of: impl Fn(&Event) -> &'a [u8],
    out: &mut Vec<u8>,
) -> u64 {
    let mut lost = 0;
    for e in events
        .iter_mut()
        .filter(|e| e.flags & EVENT_HAS_STRINGS != 0)
    {
        if !take(layout, e, slot_of(e), out) {
            e.flags &= !EVENT_HAS_STRINGS;
            lost += 1;
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(layout: Layout, seq: u64, cpu: u32, strings: &[&[u8]]) -> Vec<u8> {
        let mut h = PayloadHeader {
            seq,
            cpu,
            ..PayloadHeader::default()
        };
        let mut bytes = vec![0xaa; layout.slot as usize];
        for (i, s) in strings.iter().enumerate() {
            h.status[i] = s.len() as i32;
            let at = size_of::<PayloadHeader>() + i * layout.stride();
            bytes[at..at + s.len()].copy_from_slice(s);
        }
        // SAFETY: a plain-integer header written into a byte buffer of at least its size.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<PayloadHeader>(), h) };
        bytes
    }

    #[test]
    fn takes_the_event_s_strings_and_zeroes_the_rest() {
        let layout = Layout {
            slot: snapshot_common::strings::payload_size(8, 2),
            string_size: 8,
        };
        assert_eq!((layout.stride(), layout.strings()), (16, 2));
        let bytes = slot(layout, 5, 1, &[b"/etc\0", b"ab"]);
        let ev = Event {
            seq: 5,
            cpu: 1,
            flags: EVENT_HAS_STRINGS,
            ..Event::default()
        };
        let mut out = Vec::new();
        assert!(take(layout, &ev, &bytes, &mut out));
        let s0 = &out[32..48];
        assert_eq!(&s0[..5], b"/etc\0");
        assert!(s0[5..].iter().all(|&b| b == 0), "stale bytes are zeroed");
        assert_eq!(&out[48..50], b"ab");
        let mut other = vec![Event { seq: 6, ..ev }, ev];
        let mut out = Vec::new();
        assert_eq!(
            take_all(layout, &mut other, |_| bytes.as_slice(), &mut out),
            1
        );
        assert_eq!(other[0].flags, 0, "a slot of another event is not taken");
        assert_eq!(other[1].flags, EVENT_HAS_STRINGS);
        assert_eq!(out.len(), layout.slot as usize);
    }
}
