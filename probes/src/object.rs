//! The precompiled eBPF objects, embedded so that a build needs no clang.

use std::fmt;

/// One precompiled eBPF object (`prebuilt/NAME.o`, built from `bpf/NAME.bpf.c`):
/// the programs of one or more attach points and the maps they share.
pub struct Object {
    /// File name without `.o` (`skb_drop`).
    pub name: &'static str,
    bytes: &'static [u8],
}

impl Object {
    /// The ELF bytes, 8-byte aligned (aya parses them in place).
    pub fn bytes(&self) -> &'static [u8] {
        self.bytes
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Object {}

#[repr(C, align(8))]
pub(crate) struct Aligned<B: ?Sized>(pub B);

pub(crate) const fn embedded(name: &'static str, aligned: &'static Aligned<[u8]>) -> Object {
    Object {
        name,
        bytes: &aligned.0,
    }
}

/// `object!("skb_drop")`: the [`Object`] embedding `prebuilt/skb_drop.o`.
macro_rules! object {
    ($name:literal) => {
        $crate::object::embedded($name, {
            const BYTES: &$crate::object::Aligned<[u8]> =
                &$crate::object::Aligned(*include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/prebuilt/",
                    $name,
                    ".o"
                )));
            BYTES
        })
    };
}
pub(crate) use object;
