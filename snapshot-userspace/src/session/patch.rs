//! Sizing a map's values at load time: aya sets a map's `max_entries` but not its value
//! size, so the value size of a legacy map definition (`maps` section: type, key size, value
//! size, max entries, flags) is patched in a copy of the object before aya reads it. The
//! payload slots (`PAYLOADS`) are sized this way, to the `--string-size` and the most strings
//! one probe captures; the programs only touch what the verifier can prove lies inside.
//! The build-id stack map (`USTACKS_BUILD_ID`) gets its value size and `BPF_F_STACK_BUILD_ID`
//! the same way ([`set_build_id_stack`]), only on a kernel that can create one.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use snapshot_common::{BUILD_ID_STACK_VALUE, F_STACK_BUILD_ID};

/// `BPF_MAP_TYPE_ARRAY`.
const ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_STACK_TRACE`.
const STACK_TRACE: u32 = 7;

/// Why the object could not be patched (a build mismatch).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Not an ELF object.
    #[error("the eBPF object is not an ELF file ({0}): rebuild with `cargo xtask build`")]
    Parse(String),
    /// No such map definition.
    #[error(
        "map {0} is missing from the eBPF object or is not a map of the expected type and value size: rebuild with `cargo xtask build`"
    )]
    Map(String),
}

/// The file offset of map `name`'s legacy definition (type, key size, value size, max
/// entries, flags: five words) in `obj`, checked to declare `map_type` and `value_size`.
fn definition(obj: &[u8], name: &str, map_type: u32, value_size: u32) -> Result<usize, PatchError> {
    let at = {
        let file = object::File::parse(obj).map_err(|e| PatchError::Parse(e.to_string()))?;
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
        if section.name() != Ok("maps") || sym.address() + 20 > len {
            return Err(PatchError::Map(name.to_owned()));
        }
        (start + sym.address()) as usize
    };
    let word = |i: usize| {
        obj.get(at + 4 * i..at + 4 * i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if word(0) != Some(map_type) || word(2) != Some(value_size) {
        return Err(PatchError::Map(name.to_owned()));
    }
    Ok(at)
}

/// Sets the value size of array map `name` in `obj`, whose definition declares `expected`.
pub fn set_value_size(
    obj: &mut [u8],
    name: &str,
    expected: u32,
    size: u32,
) -> Result<(), PatchError> {
    let at = definition(obj, name, ARRAY, expected)?;
    obj[at + 8..at + 12].copy_from_slice(&size.to_le_bytes());
    Ok(())
}

/// Makes stack map `name` in `obj` (declared with `u64` frames, as aya-ebpf's `StackTrace`)
/// a build-id stack map: frames of `struct bpf_stack_build_id`, `BPF_F_STACK_BUILD_ID` set.
pub fn set_build_id_stack(obj: &mut [u8], name: &str) -> Result<(), PatchError> {
    let plain = (snapshot_common::MAX_STACK_DEPTH * size_of::<u64>()) as u32;
    let at = definition(obj, name, STACK_TRACE, plain)?;
    obj[at + 8..at + 12].copy_from_slice(&BUILD_ID_STACK_VALUE.to_le_bytes());
    let flags = u32::from_le_bytes(obj[at + 16..at + 20].try_into().expect("4 bytes"));
    obj[at + 16..at + 20].copy_from_slice(&(flags | F_STACK_BUILD_ID).to_le_bytes());
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

    #[test]
    fn makes_the_user_stack_map_a_build_id_stack_map() {
        let mut obj = EBPF_OBJECT.to_vec();
        set_build_id_stack(&mut obj, names::USTACKS_BUILD_ID).unwrap();
        let at = definition(&obj, names::USTACKS_BUILD_ID, STACK_TRACE, 127 * 32).unwrap();
        let flags = u32::from_le_bytes(obj[at + 16..at + 20].try_into().unwrap());
        assert_eq!(flags, F_STACK_BUILD_ID);
        assert!(
            set_build_id_stack(&mut obj, names::USTACKS_BUILD_ID).is_err(),
            "patched once only"
        );
        assert!(
            set_build_id_stack(&mut obj, names::PAYLOADS).is_err(),
            "not a stack map"
        );
    }
}
