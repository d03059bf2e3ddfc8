//! End-to-end tests: the real `vprobe` binary, the real kernel, real drops in
//! network namespaces the tests make themselves.
//!
//! Tests that need root say so loudly (`SKIPPED (needs root): …`) and return
//! when not root; with `CI=true` or `VPROBE_REQUIRE_ROOT=1` they fail instead.
//! Tests that load programs take a lock, so they never overlap even when the
//! harness runs tests in parallel; the README runs them with `--test-threads=1`.

// the test areas, one module each
mod attach;
mod cache;
mod capture;
mod cli;
mod deploy;
mod ending;
mod events;
mod fidelity;
mod generic;
mod json;
mod lab;
mod leftovers;
mod metrics;
mod repl;
mod runtime;
mod scripts;
mod seed;
mod tap;
mod tool;
mod workload;

// what the areas share: processes, namespaces, labs, traffic, kernel views
mod support;
