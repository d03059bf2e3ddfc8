//! vprobe's attach points: the precompiled eBPF objects (built from `bpf/*.bpf.c`
//! by `build-bpf.sh`, committed under `prebuilt/`), the `#[repr(C)]` mirror of
//! their shared record and settings, and the catalog that describes each attach
//! point. This crate describes; `vprobe-engine` loads and attaches.
#![deny(missing_docs)]

pub mod abi;
pub mod catalog;
pub mod layers;
pub mod object;

pub use catalog::{
    find, generic, suggest, Capture, FieldDef, FieldKind, GenericDef, Mechanism, MechanismKind,
    Object, ProbeDef, RawField, Slot, CATALOG, GENERIC,
};
