//! A tracefs instance of the test's own: trace events as ftrace records them,
//! the witness of what happened in the kernel where no BPF program ran (see
//! docs/DESIGN.md, "Counter fidelity"). Removed on drop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TRACEFS: &str = "/sys/kernel/tracing";

/// One recorded event: which task was current, where and when, and its fields.
#[derive(Debug, Clone)]
pub struct Event {
    pub pid: u32,
    pub cpu: u32,
    /// CLOCK_MONOTONIC, ns (ftrace prints µs: the last three digits are 0)
    pub ts_ns: u64,
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl Event {
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} has no field {name}: {self:?}", self.name))
    }

    pub fn num(&self, name: &str) -> i64 {
        self.field(name)
            .parse()
            .unwrap_or_else(|e| panic!("{name} of {self:?}: {e}"))
    }
}

/// `/sys/kernel/tracing/instances/vprobe-e2e-TAG-PID-N`, stamping events with
/// CLOCK_MONOTONIC (the clock of vprobe's `ts_ns`).
pub struct Instance {
    dir: PathBuf,
    /// PID 1's threads when recording started and stopped (they may change).
    init: RefCell<Vec<u32>>,
}

impl Instance {
    pub fn new(tag: &str) -> Instance {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(format!(
            "{TRACEFS}/instances/vprobe-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("create tracefs instance {}: {e}", dir.display()));
        let i = Instance {
            dir,
            init: RefCell::new(Vec::new()),
        };
        i.write("tracing_on", "0");
        i.write("trace_clock", "mono");
        i.write("buffer_size_kb", "2048");
        i
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write `{value}` to {}: {e}", path.display()));
    }

    /// Records `event` (`tcp/tcp_retransmit_skb`) where `filter` holds (an
    /// ftrace filter expression; "" for all).
    pub fn enable(&self, event: &str, filter: &str) {
        if !filter.is_empty() {
            self.write(&format!("events/{event}/filter"), filter);
        }
        self.write(&format!("events/{event}/enable"), "1");
    }

    pub fn on(&self) {
        self.write("tracing_on", "1");
        self.init.borrow_mut().extend(init_threads());
    }

    pub fn off(&self) {
        self.write("tracing_on", "0");
        self.init.borrow_mut().extend(init_threads());
    }

    /// Whether the task current at `e` was a thread of PID 1 while recording
    /// (then no BPF program saw it on the host this was measured on).
    pub fn by_init(&self, e: &Event) -> bool {
        self.init.borrow().contains(&e.pid)
    }

    /// PID 1's threads while recording, for messages.
    pub fn init(&self) -> Vec<u32> {
        self.init.borrow().clone()
    }

    /// Events in the ring that no record was lost from (the test fails
    /// otherwise: a witness with holes proves nothing).
    pub fn events(&self) -> Vec<Event> {
        for cpu in std::fs::read_dir(self.dir.join("per_cpu")).expect("per_cpu") {
            let stats = std::fs::read_to_string(cpu.expect("cpu").path().join("stats"))
                .expect("per_cpu stats");
            for line in stats.lines() {
                if let Some((k, v)) = line.split_once(": ") {
                    if matches!(k, "overrun" | "commit overrun" | "dropped events") {
                        assert_eq!(v.trim(), "0", "ftrace lost events: {stats}");
                    }
                }
            }
        }
        let text = std::fs::read_to_string(self.dir.join("trace")).expect("read trace");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(parse)
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("tracing_on"), "0");
        // an instance is removed with its events; retry while a reader lingers
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("tracefs instance {} not removed", self.dir.display());
    }
}

/// `           <comm>-<pid>     [001] ..s2. 53505.220597: <name>: k=v k=v ...`
fn parse(line: &str) -> Option<Event> {
    let lb = line.find(" [")?;
    let rb = lb + line[lb..].find(']')?;
    let (_, pid) = line[..lb].trim().rsplit_once('-')?;
    let cpu = line[lb + 2..rb].parse().ok()?;
    let after = &line[rb + 1..];
    let (stamp, rest) = after.split_once(": ")?;
    let ts = stamp.split_whitespace().last()?;
    let (secs, frac) = ts.split_once('.')?;
    let frac = format!("{frac:0<9}");
    let ts_ns = secs.parse::<u64>().ok()? * 1_000_000_000 + frac[..9].parse::<u64>().ok()?;
    let (name, body) = rest.split_once(": ")?;
    let fields = body
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Event {
        pid: pid.parse().ok()?,
        cpu,
        ts_ns,
        name: name.to_string(),
        fields,
    })
}

/// The threads of PID 1 now (the VM's init and agent on a Firecracker guest).
fn init_threads() -> Vec<u32> {
    std::fs::read_dir("/proc/1/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ftrace_line() {
        let e = parse(" tokio-rt-worker-81      [000] ..s2. 53505.220597: tcp_retransmit_skb: skbaddr=00000000f90e4063 skaddr=0000000010905242 family=AF_INET sport=56302 dport=12877 state=TCP_ESTABLISHED err=0").unwrap();
        assert_eq!((e.pid, e.cpu, e.ts_ns), (81, 0, 53_505_220_597_000));
        assert_eq!(e.name, "tcp_retransmit_skb");
        assert_eq!(
            (e.num("sport"), e.num("dport"), e.num("err")),
            (56302, 12877, 0)
        );
        let e = parse("          <idle>-0       [001] ..s2. 1.5: x: a=b").unwrap();
        assert_eq!((e.pid, e.cpu, e.ts_ns), (0, 1, 1_500_000_000));
    }
}
