//! The workloads of a live session: declared by the script (`tcp_rr(..)`,
//! `exec(..)`), started with the session or by a trigger, polled while they
//! run, and finished into results for `workload(name)`, the triggers and the
//! summary.
//!
//! In a lab, a `tcp_rr` without a `target` runs its client in the first guest
//! against a built-in server this module starts in the second guest: the
//! traffic crosses the lab's whole path (guest tap, relay, macvtap, wire).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use vprobe_load::exec::{self, ExecHandle, ExecResult};
use vprobe_load::latency::{LatencySummary, ThresholdCount};
use vprobe_load::tcp_rr::{self, RrHandle, RrResult, ServerHandle, DEFAULT_PORT};
use vprobe_load::Netns;

use super::WorkloadError;
use crate::plan::{RrSpec, WorkloadKind, WorkloadSpec};
use crate::trigger::WorkloadStat;
use vprobe_lab::Lab;

/// A finished workload's result, as the summary shows it under `workloads`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkloadResult {
    /// A `tcp_rr` run.
    TcpRr(RrResult),
    /// An `exec` command.
    Exec(ExecResult),
}

/// Where a lab puts a `tcp_rr` without a target: client in one guest, server
/// in the other.
#[derive(Clone)]
pub struct LabPath {
    /// The client's namespace (the first guest).
    pub client: Netns,
    /// The server's namespace (the second guest).
    pub server: Netns,
    /// The server's address in it.
    pub server_addr: SocketAddr,
}

impl LabPath {
    /// The path across `lab`: from its first guest to its last one.
    pub fn of(lab: &Lab) -> Option<LabPath> {
        let (a, b) = (lab.guests().first()?, lab.guests().last()?);
        if a.name == b.name {
            return None;
        }
        Some(LabPath {
            client: a.netns.clone(),
            server: b.netns.clone(),
            server_addr: SocketAddr::new(IpAddr::V4(b.addr), DEFAULT_PORT),
        })
    }
}

enum State {
    /// Declared, waiting for a trigger (`start: false`).
    Idle,
    Rr(RrHandle),
    Exec(ExecHandle),
    // boxed: a result is much larger than a handle
    Done(Box<WorkloadResult>),
}

struct Entry {
    spec: WorkloadSpec,
    state: State,
}

/// A workload that ended since the last [`Running::poll`].
#[derive(Debug)]
pub struct Ended {
    /// Its name.
    pub name: String,
    /// One line saying how it ended.
    pub line: String,
}

/// The session's workloads, by name, in declaration order.
#[derive(Default)]
pub struct Running {
    entries: Vec<Entry>,
    lab: Option<LabPath>,
    /// Built-in servers, by the address they answer on (one per address).
    servers: BTreeMap<SocketAddr, ServerHandle>,
}

impl Running {
    /// Workloads run across `lab` (a `tcp_rr` without a target) from now on.
    /// What ran across the lab set before goes with it: its `tcp_rr`s are
    /// stopped and waited for (at most [`tcp_rr::END_GRACE`] and a little;
    /// the next [`Running::poll`] reports them), then its built-in server,
    /// which lives in its namespace (and would answer for the next lab's
    /// address from there), is stopped.
    pub fn set_lab(&mut self, lab: Option<LabPath>) {
        if let Some(old) = self.lab.take() {
            fn across(e: &Entry) -> Option<&RrHandle> {
                match (&e.state, &e.spec.kind) {
                    (State::Rr(h), WorkloadKind::TcpRr(rr)) if rr.target.is_none() => Some(h),
                    _ => None,
                }
            }
            // the clients first, so that none sees its server go mid-transaction
            for h in self.entries.iter().filter_map(across) {
                h.stop();
            }
            let deadline = std::time::Instant::now() + tcp_rr::END_GRACE + Duration::from_secs(1);
            while self
                .entries
                .iter()
                .filter_map(across)
                .any(|h| !h.is_finished())
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(server) = self.servers.remove(&old.server_addr) {
                server.join();
            }
        }
        self.lab = lab;
    }

    /// Whether a workload is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Checks `specs` against each other and the declared ones, and that each
    /// can run here (a target, or a lab), without starting anything.
    /// Err: the first spec that cannot run, and why.
    pub fn check<'s>(
        &self,
        specs: &'s [WorkloadSpec],
    ) -> Result<(), (&'s WorkloadSpec, WorkloadError)> {
        for (i, s) in specs.iter().enumerate() {
            if self.contains(&s.name) || specs[..i].iter().any(|o| o.name == s.name) {
                return Err((s, WorkloadError::Duplicate(s.name.clone())));
            }
            if let WorkloadKind::TcpRr(rr) = &s.kind {
                self.target(rr).map_err(|e| {
                    (
                        s,
                        WorkloadError::Target {
                            name: s.name.clone(),
                            why: Box::new(e),
                        },
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Declares `spec`, starting it when it says so.
    pub fn declare(&mut self, spec: WorkloadSpec) -> Result<(), WorkloadError> {
        let start = spec.start;
        let name = spec.name.clone();
        self.entries.push(Entry {
            spec,
            state: State::Idle,
        });
        if start {
            if let Err(e) = self.start(&name) {
                self.entries.pop();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Forgets `name` (stopping it): a REPL line that failed takes back what it declared.
    pub fn remove(&mut self, name: &str) {
        self.stop(name);
        self.entries.retain(|e| e.spec.name != name);
    }

    /// Starts `name` (again, if it ended: the earlier result is replaced).
    /// Starting one that runs does nothing.
    pub fn start(&mut self, name: &str) -> Result<(), WorkloadError> {
        let Some(i) = self.entries.iter().position(|e| e.spec.name == name) else {
            return Err(WorkloadError::Unknown(name.to_string()));
        };
        if matches!(self.entries[i].state, State::Rr(_) | State::Exec(_)) {
            return Ok(());
        }
        let state = match self.entries[i].spec.kind.clone() {
            WorkloadKind::TcpRr(rr) => State::Rr(self.start_rr(&rr)?),
            WorkloadKind::Exec(opts) => State::Exec(exec::spawn(opts, None)?),
        };
        self.entries[i].state = state;
        Ok(())
    }

    /// The server's address, and the namespaces of the client and the
    /// server (a lab's guests).
    fn target(
        &self,
        rr: &RrSpec,
    ) -> Result<(SocketAddr, Option<Netns>, Option<Netns>), WorkloadError> {
        match (&rr.target, &self.lab) {
            (Some(t), _) => {
                let addr = parse_target(t)?;
                Ok((addr, None, None))
            }
            (None, Some(lab)) => Ok((
                lab.server_addr,
                Some(lab.client.clone()),
                Some(lab.server.clone()),
            )),
            (None, None) => Err(WorkloadError::NoTarget),
        }
    }

    fn start_rr(&mut self, rr: &RrSpec) -> Result<RrHandle, WorkloadError> {
        let (target, client_ns, server_ns) = self.target(rr)?;
        // the lab's server, or a local one when asked (`serve: true`)
        if (server_ns.is_some() || rr.serve) && !self.servers.contains_key(&target) {
            self.servers
                .insert(target, tcp_rr::serve(target, server_ns)?);
        }
        Ok(tcp_rr::start(target, rr.options.clone(), client_ns)?)
    }

    /// Stops `name` now; its result covers the time until now. False if unknown.
    pub fn stop(&mut self, name: &str) -> bool {
        match self.entry(name) {
            Some(e) => {
                match &e.state {
                    State::Rr(h) => h.stop(),
                    State::Exec(h) => h.stop(),
                    State::Idle | State::Done(_) => {}
                }
                true
            }
            None => false,
        }
    }

    /// Stops every running workload; returns how many were running.
    pub fn stop_all(&mut self) -> usize {
        let mut n = 0;
        for e in &self.entries {
            match &e.state {
                State::Rr(h) => h.stop(),
                State::Exec(h) => h.stop(),
                State::Idle | State::Done(_) => continue,
            }
            n += 1;
        }
        n
    }

    /// Whether any workload runs.
    pub fn any_running(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.state, State::Rr(_) | State::Exec(_)))
    }

    /// Whether the session's own workloads are over: some started with the
    /// session and none runs any more.
    pub fn all_done(&self) -> bool {
        self.entries.iter().any(|e| e.spec.start) && !self.any_running()
    }

    /// Collects the workloads that ended (their threads are joined).
    pub fn poll(&mut self) -> Vec<Ended> {
        let mut ended = Vec::new();
        for e in &mut self.entries {
            let finished = match &e.state {
                State::Rr(h) => h.is_finished(),
                State::Exec(h) => h.is_finished(),
                State::Idle | State::Done(_) => false,
            };
            if finished {
                let result = match std::mem::replace(&mut e.state, State::Idle) {
                    State::Rr(h) => WorkloadResult::TcpRr(h.join()),
                    State::Exec(h) => WorkloadResult::Exec(h.join()),
                    _ => unreachable!("checked above"),
                };
                ended.push(Ended {
                    name: e.spec.name.clone(),
                    line: ended_line(&e.spec.name, &result),
                });
                e.state = State::Done(Box::new(result));
            }
        }
        ended
    }

    /// Stops everything, waits for it and the servers, and returns every
    /// result (workloads never started are left out).
    pub fn finish(&mut self) -> BTreeMap<String, WorkloadResult> {
        self.stop_all();
        for e in &mut self.entries {
            let result = match std::mem::replace(&mut e.state, State::Idle) {
                State::Rr(h) => WorkloadResult::TcpRr(h.join()),
                State::Exec(h) => WorkloadResult::Exec(h.join()),
                State::Done(r) => *r,
                State::Idle => continue,
            };
            e.state = State::Done(Box::new(result));
        }
        for (_, s) in std::mem::take(&mut self.servers) {
            s.stop();
            s.join();
        }
        self.entries
            .iter()
            .filter_map(|e| match &e.state {
                State::Done(r) => Some((e.spec.name.clone(), (**r).clone())),
                _ => None,
            })
            .collect()
    }

    /// The result of `name` when it ended, else how far it is, as JSON.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        let e = self.entry(name)?;
        let v = match &e.state {
            State::Idle => serde_json::json!({ "phase": "idle" }),
            State::Done(r) => serde_json::to_value(&**r).ok()?,
            State::Rr(h) => {
                let mut v = serde_json::to_value(h.snapshot()).ok()?;
                v["kind"] = "tcp_rr".into();
                v["latency_us"] = serde_json::to_value(h.latency()).ok()?;
                v
            }
            State::Exec(h) => serde_json::json!({
                "kind": "exec",
                "phase": "running",
                "pid": h.pid(),
                "elapsed_s": h.elapsed().as_secs_f64(),
            }),
        };
        Some(v)
    }

    /// One figure of a `tcp_rr` workload for a trigger; `None` when it has no
    /// such figure yet (or is not a `tcp_rr`).
    pub fn stat(&self, name: &str, stat: &WorkloadStat) -> Option<f64> {
        let e = self.entry(name)?;
        match &e.state {
            State::Rr(h) => {
                let latency = || h.latency();
                match stat {
                    WorkloadStat::Tps => Some(h.snapshot().rate),
                    WorkloadStat::Transactions => Some(h.snapshot().transactions as f64),
                    WorkloadStat::Errors => Some(h.snapshot().errors as f64),
                    WorkloadStat::Slow(d) => slow_count(&h.snapshot().thresholds, *d),
                    WorkloadStat::Mean => latency().map(|l| l.mean),
                    WorkloadStat::Max => latency().map(|l| l.max),
                    WorkloadStat::Percentile(p) => latency().and_then(|l| percentile(&l, *p)),
                }
            }
            State::Done(done) => match &**done {
                WorkloadResult::TcpRr(r) => match stat {
                    WorkloadStat::Tps => Some(r.tps),
                    WorkloadStat::Transactions => Some(r.transactions as f64),
                    WorkloadStat::Errors => Some(r.errors.len() as f64),
                    WorkloadStat::Slow(d) => slow_count(&r.thresholds, *d),
                    WorkloadStat::Mean => r.latency_us.as_ref().map(|l| l.mean),
                    WorkloadStat::Max => r.latency_us.as_ref().map(|l| l.max),
                    WorkloadStat::Percentile(p) => {
                        r.latency_us.as_ref().and_then(|l| percentile(l, *p))
                    }
                },
                WorkloadResult::Exec(_) => None,
            },
            _ => None,
        }
    }

    /// Whether `name` is a `tcp_rr` that counts transactions at or above `d`.
    pub fn has_threshold(&self, name: &str, d: Duration) -> Option<bool> {
        match &self.entry(name)?.spec.kind {
            WorkloadKind::TcpRr(rr) => Some(rr.options.thresholds.contains(&d)),
            WorkloadKind::Exec(_) => Some(false),
        }
    }

    /// Live progress of each running `tcp_rr`: (name, elapsed, duration, transactions).
    pub fn progress(&self) -> Vec<WorkloadProgress> {
        self.entries
            .iter()
            .filter_map(|e| match (&e.state, &e.spec.kind) {
                (State::Rr(h), WorkloadKind::TcpRr(rr)) => {
                    let s = h.snapshot();
                    Some(WorkloadProgress {
                        name: e.spec.name.clone(),
                        elapsed: s.elapsed,
                        planned: rr.options.duration.unwrap_or_default(),
                        transactions: s.transactions,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// What each `tcp_rr` (running or done) has counted so far, for `--metrics`.
    pub fn counters(&self) -> Vec<WorkloadCounters> {
        let of = |name: &str, tx: u64, errors: u64, t: &[ThresholdCount]| WorkloadCounters {
            name: name.to_string(),
            transactions: tx,
            errors,
            slow: t
                .iter()
                .map(|t| (Duration::from_micros(t.at_us), t.count))
                .collect(),
        };
        self.entries
            .iter()
            .filter_map(|e| match &e.state {
                State::Rr(h) => {
                    let s = h.snapshot();
                    Some(of(
                        &e.spec.name,
                        s.transactions,
                        s.errors as u64,
                        &s.thresholds,
                    ))
                }
                State::Done(done) => match &**done {
                    WorkloadResult::TcpRr(r) => Some(of(
                        &e.spec.name,
                        r.transactions,
                        r.errors.len() as u64,
                        &r.thresholds,
                    )),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.spec.name == name)
    }
}

/// Counts of one `tcp_rr` workload so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadCounters {
    /// The workload's name.
    pub name: String,
    /// Transactions completed.
    pub transactions: u64,
    /// Failed connections or transactions.
    pub errors: u64,
    /// (threshold, transactions that took at least that long).
    pub slow: Vec<(Duration, u64)>,
}

/// How far a running `tcp_rr` workload is (a terminal's progress bar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadProgress {
    /// The workload's name.
    pub name: String,
    /// Time since it started.
    pub elapsed: Duration,
    /// How long it runs in all.
    pub planned: Duration,
    /// Transactions completed so far.
    pub transactions: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        // handles stop and join their threads when dropped; servers too
        self.stop_all();
    }
}

/// `HOST:PORT`, `HOST` (port 12866) or `[V6]:PORT`; numeric addresses only
/// (a script that resolves names would depend on the host's resolver).
fn parse_target(t: &str) -> Result<SocketAddr, WorkloadError> {
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(WorkloadError::BadTarget(t.to_string()))
}

fn slow_count(thresholds: &[ThresholdCount], d: Duration) -> Option<f64> {
    let us = u64::try_from(d.as_micros()).ok()?;
    thresholds
        .iter()
        .find(|t| t.at_us == us)
        .map(|t| t.count as f64)
}

fn percentile(l: &LatencySummary, p: f64) -> Option<f64> {
    const EPS: f64 = 1e-9;
    Some(match p {
        p if (p - 50.0).abs() < EPS => l.p50,
        p if (p - 90.0).abs() < EPS => l.p90,
        p if (p - 99.0).abs() < EPS => l.p99,
        p if (p - 99.9).abs() < EPS => l.p99_9,
        _ => return None,
    })
}

fn ended_line(name: &str, r: &WorkloadResult) -> String {
    match r {
        WorkloadResult::TcpRr(r) => {
            let slow: Vec<String> = r
                .thresholds
                .iter()
                .map(|t| format!("{} ≥ {} ms", t.count, t.at_us / 1000))
                .collect();
            format!(
                "workload {name} ended: {} transactions in {:.1}s ({:.0}/s), {}{}",
                r.transactions,
                r.duration_s,
                r.tps,
                slow.join(", "),
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(", {} stream errors", r.errors.len())
                }
            )
        }
        WorkloadResult::Exec(x) => format!(
            "workload {name} ended: `{}` {} after {:.1}s",
            x.command.join(" "),
            match (x.exit_code, x.signal) {
                (Some(c), _) => format!("exited {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => "ended".into(),
            },
            x.duration_s
        ),
    }
}

/// A shared handle, for the host that answers the script's queries.
pub type SharedRunning = std::rc::Rc<std::cell::RefCell<Running>>;

#[cfg(test)]
mod tests {
    use vprobe_load::tcp_rr::RrOptions;

    use super::*;

    #[test]
    fn targets_are_numeric_with_a_default_port() {
        assert_eq!(
            parse_target("192.0.2.2").unwrap(),
            "192.0.2.2:12866".parse().unwrap()
        );
        assert_eq!(
            parse_target("[2001:db8::2]:1").unwrap(),
            "[2001:db8::2]:1".parse().unwrap()
        );
        assert!(parse_target("example.com:80").is_err());
    }

    #[test]
    fn a_tcp_rr_without_target_needs_a_lab() {
        let r = Running::default();
        let spec = WorkloadSpec {
            name: "rr".into(),
            kind: WorkloadKind::TcpRr(RrSpec::default()),
            start: true,
            origin: Default::default(),
        };
        let (_, e) = r.check(std::slice::from_ref(&spec)).unwrap_err();
        assert!(e.to_string().contains("--lab"), "{e}");
        let specs = [
            WorkloadSpec {
                kind: WorkloadKind::TcpRr(RrSpec {
                    target: Some("127.0.0.1:1".into()),
                    ..RrSpec::default()
                }),
                ..spec.clone()
            },
            WorkloadSpec {
                kind: WorkloadKind::TcpRr(RrSpec {
                    target: Some("127.0.0.1:1".into()),
                    ..RrSpec::default()
                }),
                ..spec
            },
        ];
        assert!(r
            .check(&specs)
            .unwrap_err()
            .1
            .to_string()
            .contains("already exists"));
    }

    #[test]
    fn a_started_workload_ends_into_its_result() {
        let server = tcp_rr::serve("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let mut r = Running::default();
        let spec = |name: &str, start| WorkloadSpec {
            name: name.into(),
            kind: WorkloadKind::TcpRr(RrSpec {
                target: Some(server.local_addr().to_string()),
                options: RrOptions {
                    duration: Some(Duration::from_millis(300)),
                    ..RrOptions::default()
                },
                ..RrSpec::default()
            }),
            start,
            origin: Default::default(),
        };
        r.declare(spec("later", false)).unwrap();
        assert_eq!(r.json("later").unwrap()["phase"], "idle");
        assert!(!r.all_done(), "nothing started with the session");
        r.declare(spec("rr", true)).unwrap();
        assert!(r.any_running());
        let t0 = std::time::Instant::now();
        let mut ended = Vec::new();
        while ended.is_empty() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
            ended = r.poll();
        }
        assert_eq!(ended.len(), 1);
        assert!(
            ended[0].line.starts_with("workload rr ended: "),
            "{:?}",
            ended
        );
        assert!(r.all_done());
        let tx = r.stat("rr", &WorkloadStat::Transactions).unwrap();
        assert!(tx > 0.0);
        assert_eq!(
            r.stat("rr", &WorkloadStat::Slow(Duration::from_millis(200))),
            Some(0.0)
        );
        assert_eq!(
            r.stat("rr", &WorkloadStat::Slow(Duration::from_millis(7))),
            None
        );
        let results = r.finish();
        assert_eq!(
            results.keys().collect::<Vec<_>>(),
            ["rr"],
            "never-started ones left out"
        );
        let json = serde_json::to_value(&results["rr"]).unwrap();
        assert_eq!(json["kind"], "tcp_rr");
        assert_eq!(json["transactions"].as_f64(), Some(tx));
        server.stop();
        server.join();
    }
}
