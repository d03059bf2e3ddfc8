//! Classic tracepoints (`tracepoint/CAT/NAME`): found through tracefs, attached
//! with perf_event_open; any kernel since 4.7.

use aya::programs::TracePoint;
use aya::Ebpf;

use super::features;

fn program<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut TracePoint, String> {
    ebpf.program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{e}"))
}

/// Loads `program` (the verifier runs) after checking `category:name` exists.
pub(super) fn load(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), String> {
    let tracefs = features::ensure_tracefs()?;
    if !tracefs.join("events").join(category).join(event).is_dir() {
        return Err(format!(
            "no tracepoint {category}:{event} in {}",
            tracefs.display()
        ));
    }
    program(ebpf, name)?
        .load()
        .map_err(|e| super::instance::describe(&e))
}

/// Loads `program` and attaches it once to `category:event`.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    category: &str,
    event: &str,
) -> Result<(), String> {
    load(ebpf, name, category, event)?;
    program(ebpf, name)?
        .attach(category, event)
        .map_err(|e| super::instance::describe(&e))?;
    Ok(())
}
