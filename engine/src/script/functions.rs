//! The script API as help, completion and "no such function" errors list it.

/// One function of the script API, for help, completion and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiFunction {
    /// Its name.
    pub name: &'static str,
    /// A method of a probe (`probe(..).filter(..)`) rather than a free function.
    pub method: bool,
    /// How it is called.
    pub usage: &'static str,
    /// What it does, in one line.
    pub about: &'static str,
}

const fn free(name: &'static str, usage: &'static str, about: &'static str) -> ApiFunction {
    ApiFunction {
        name,
        method: false,
        usage,
        about,
    }
}

const fn method(name: &'static str, usage: &'static str, about: &'static str) -> ApiFunction {
    ApiFunction {
        name,
        method: true,
        usage,
        about,
    }
}

/// Every function the script modules register (keep in step: a test compares
/// them), with Rhai's `print` that vprobe redirects.
pub const API: &[ApiFunction] = &[
    free(
        "probe",
        "probe(\"skb.drop\")",
        "an attach point, to filter and consume",
    ),
    method(
        "filter",
        ".filter(field, value | [values] | lo..hi)",
        "keep only events whose field matches (in the kernel)",
    ),
    method(
        "rate",
        ".rate(100) or .rate(\"10/100ms\")",
        "let at most this many events or captures out per period (in the kernel; the rest are counted)",
    ),
    method(
        "capture",
        ".capture(\"file.pcapng\") or .capture(file, #{snaplen: 128})",
        "write each event's packet to a pcapng file (reason, location, ring state in its comment)",
    ),
    method(
        "count",
        ".count(name) or .count(name, [keys])",
        "count events per key into the aggregation `name`",
    ),
    method(
        "hist",
        ".hist(name, field) or .hist(name, field, [keys])",
        "log2 histogram of a numeric field",
    ),
    method(
        "lhist",
        ".lhist(name, field, step) or .lhist(name, field, step, [keys])",
        "linear histogram of a numeric field",
    ),
    method(
        "on_event",
        ".on_event(|e| ...)",
        "call a closure with each event (through a ring buffer); reading a field the event lacks is an error",
    ),
    method(
        "to_map",
        "e.to_map()",
        "an event's fields as a plain map (whose missing keys read as ())",
    ),
    free(
        "every",
        "every(\"1s\", || ...)",
        "call a closure periodically",
    ),
    free(
        "on_end",
        "on_end(|| ...)",
        "call a closure when the session ends",
    ),
    free(
        "print",
        "print(name or text)",
        "print an aggregation by name, or any text",
    ),
    free(
        "print_delta",
        "print_delta(name)",
        "print what changed in an aggregation since it was last printed",
    ),
    free("clear", "clear(name)", "empty an aggregation"),
    free(
        "exit",
        "exit() or exit(code)",
        "end the session (code 0, 1 or 10-125)",
    ),
    free(
        "verdict",
        "verdict(ok)",
        "the script's check passed (true) or failed (false: vprobe exits 1)",
    ),
    free(
        "report",
        "report(key, value)",
        "add a value to the summary's reports",
    ),
    free(
        "metric",
        "metric(name, #{name, help, unit, scale})",
        "how an aggregation or report appears at --metrics",
    ),
    free(
        "emit",
        "emit(event)",
        "write an event (from on_event) as a line",
    ),
    free(
        "param",
        "param(name, default) or param(name)",
        "a -p key=value parameter",
    ),
    // workloads.rs, triggers.rs, queries.rs
    free(
        "tcp_rr",
        "tcp_rr(#{streams: 16, duration: \"10s\", target: \"HOST:PORT\"})",
        "a TCP request/response workload (netperf TCP_RR), started with the session",
    ),
    free(
        "exec",
        "exec(#{cmd: [\"iperf3\", \"-c\", \"HOST\"], timeout: \"30s\"})",
        "an external command as a workload (needs --allow exec)",
    ),
    free(
        "trigger",
        "trigger(\"drops > 0\").log(text).snapshot(agg).start(w).stop(w).exit(code).call(|| ..).once()",
        "a condition over aggregations or workload results, and what to do when it becomes true",
    ),
    method("log", ".log(text)", "trigger action: print a line"),
    method(
        "snapshot",
        ".snapshot(aggregation)",
        "trigger action: print an aggregation",
    ),
    method("start", ".start(workload)", "trigger action: start a workload"),
    method("stop", ".stop(workload)", "trigger action: stop a workload"),
    method("call", ".call(|| ..)", "trigger action: call a closure"),
    method("once", ".once()", "fire the trigger only the first time"),
    free(
        "total",
        "total(aggregation)",
        "the sum of an aggregation's counts now (warns once if its map is full)",
    ),
    free(
        "lost",
        "lost()",
        "what the session lost so far: #{events, map_full, callback_errors, undelivered}",
    ),
    free(
        "entries",
        "entries(aggregation)",
        "an aggregation's keys and values now",
    ),
    free(
        "workload",
        "workload(name)",
        "a workload's result (or its progress while it runs)",
    ),
    free(
        "dev_stat",
        "dev_stat(device, \"rx_dropped\")",
        "a network device's statistic (in the lab: found in its namespaces)",
    ),
    free("lab", "lab()", "the lab of the run: guests, devices, namespaces"),
    free(
        "devices",
        "devices(\"macvtap*\")",
        "names of the network devices matching a name or prefix glob (the lab's, in a lab)",
    ),
    free(
        "correlate",
        "correlate(#{drops, retransmits, duplicates, slow, server})",
        "match dropped segments with their retransmissions, and both with slow transactions",
    ),
];

/// How each API function is called, for "function not found" errors.
pub(super) fn usage(name: &str) -> Option<&'static str> {
    API.iter().find(|f| f.name == name).map(|f| f.usage)
}
