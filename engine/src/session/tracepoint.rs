//! Classic tracepoints (`tracepoint/CAT/NAME`): found through tracefs, attached
//! with perf_event_open; any kernel since 4.7. Also the generic
//! `tracepoint:CAT:NAME`, whose one program attaches to any of them.

use aya::programs::TracePoint;
use aya::Ebpf;

use super::instance::{describe, program_mut};
use crate::kernel;

/// Loads `program` (the verifier runs) after checking `category:name` exists.
pub(super) fn load(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), String> {
    let tracefs = kernel::ensure_tracefs().map_err(|e| e.to_string())?;
    if !tracefs.join("events").join(category).join(event).is_dir() {
        return Err(format!(
            "no tracepoint {category}:{event} in {}",
            tracefs.display()
        ));
    }
    program_mut::<TracePoint>(ebpf, name)?
        .load()
        .map_err(|e| describe(&e))
}

/// Attaches the loaded `program` once to `category:event`.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    category: &str,
    event: &str,
) -> Result<(), String> {
    program_mut::<TracePoint>(ebpf, name)?
        .attach(category, event)
        .map_err(|e| describe(&e))?;
    Ok(())
}
