//! Sizing a map's values at load time: aya sets a map's `max_entries` but not its value
//! size, so the value size of a legacy map definition (`maps` section: type, key size, value
//! size, max entries, flags) is patched in a copy of the object before aya reads it. The
//! payload slots (`PAYLOADS`) are sized this way, to the `--string-size` and the most strings
//! one probe captures; the programs only touch what the verifier can prove lies inside.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// `BPF_MAP_TYPE_ARRAY`.
const ARRAY: u32 = 2;

/// Why the object could not be patched (a build mismatch).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Not an ELF object.
    #[error("the eBPF object is not an ELF file ({0}): rebuild with `cargo xtask build`")]
    Parse(String),
    /// No such map definition.
    #[error(
        "map {0} is missing from the eBPF object or is not an array of the expected value size: rebuild with `cargo xtask build`"
    )]
    Map(String),
}

/// Sets the value size of array map `name` in `obj`, whose definition declares `expected`.
pub fn set_value_size(
    obj: &mut [u8],
    name: &str,
    expected: u32,
    size: u32,
) -> Result<(), PatchError> {
    let at = {
        let file = object::File::parse(&*obj).map_err(|e| PatchError::Parse(e.to_string()))?;
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .ok_or_else(|| PatchError::Map(name.to_owned()))?;
        let section = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .ok_or_else(|| PatchError::Map(name.to_owned()))?;
        let (start, len) = section
            .file_range()
            .ok_or_else(|| PatchError::Map(name.to_owned()))?;
        if section.name() != Ok("maps") || sym.address() + 12 > len {
            return Err(PatchError::Map(name.to_owned()));
        }
        (start + sym.address()) as usize
    };
    let word = |obj: &[u8], i: usize| {
        obj.get(at + 4 * i..at + 4 * i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if word(obj, 0) != Some(ARRAY) || word(obj, 2) != Some(expected) {
        return Err(PatchError::Map(name.to_owned()));
    }
    obj[at + 8..at + 12].copy_from_slice(&size.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::load::EBPF_OBJECT;
    use snapshot_common::{PayloadHeader, names};

    #[test]
    fn patches_the_payload_value_size() {
        let mut obj = EBPF_OBJECT.to_vec();
        let header = size_of::<PayloadHeader>() as u32;
        set_value_size(&mut obj, names::PAYLOADS, header, 4096).unwrap();
        assert!(
            set_value_size(&mut obj, names::PAYLOADS, header, 8).is_err(),
            "the definition now declares 4096"
        );
        set_value_size(&mut obj, names::PAYLOADS, 4096, 136).unwrap();
        assert!(matches!(
            set_value_size(&mut obj, "NOPE", header, 8),
            Err(PatchError::Map(_))
        ));
        assert!(matches!(
            set_value_size(&mut [0u8; 16], names::PAYLOADS, header, 8),
            Err(PatchError::Parse(_))
        ));
    }
}
