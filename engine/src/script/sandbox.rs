//! The limits every script runs under.

use rhai::Engine;

/// Operations per evaluation: the top level, one REPL line, or one callback.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Nested function calls.
pub const MAX_CALL_LEVELS: usize = 64;
/// Expression nesting at the top level and inside functions.
pub const MAX_EXPR_DEPTHS: (usize, usize) = (64, 32);
/// Bytes in one string.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Elements in one array, entries in one map.
pub const MAX_COLLECTION_SIZE: usize = 100_000;
/// Modules imported by one evaluation.
pub const MAX_MODULES: usize = 64;

/// Sets every limit a script runs under. The engine registers no file or
/// process access: a script reaches the outside only through the vprobe API
/// (and `import`, which reads modules from the script library only:
/// `imports.rs`).
pub fn harden(engine: &mut Engine) {
    // Rhai counts operations per `eval`/call; the script module resets the
    // count before each evaluation so the budget is per callback.
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(MAX_EXPR_DEPTHS.0, MAX_EXPR_DEPTHS.1);
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(MAX_COLLECTION_SIZE);
    engine.set_max_map_size(MAX_COLLECTION_SIZE);
    engine.set_max_modules(MAX_MODULES);
}
