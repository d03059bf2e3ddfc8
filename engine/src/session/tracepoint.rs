//! Classic tracepoints (`tracepoint/CAT/NAME`): found through tracefs, attached
//! with perf_event_open; any kernel since 4.7.

use aya::programs::TracePoint;
use aya::Ebpf;

use super::features;

/// Loads `program` and attaches it once to `category:name`.
pub(super) fn attach(ebpf: &mut Ebpf, program: &str, category: &str, name: &str) -> Result<(), String> {
    let tracefs = features::ensure_tracefs()?;
    if !tracefs.join("events").join(category).join(name).is_dir() {
        return Err(format!("no tracepoint {category}:{name} in {}", tracefs.display()));
    }
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    prog.load().map_err(|e| super::instance::describe(&e))?;
    prog.attach(category, name).map_err(|e| super::instance::describe(&e))?;
    Ok(())
}
