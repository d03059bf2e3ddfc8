//! The TCP_RR client: a thread per stream, a supervisor that ends the run,
//! live snapshots and the result.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use vprobe_time::monotonic_ns;

use super::protocol::{read_full, HELLO_OK};
use super::RrOptions;
use crate::latency::{Latencies, LatencyBucket, LatencySummary, ThresholdCount};
use crate::{enter, lock, pin, HandshakeError, LoadError, Netns};

/// How long a transaction in flight at the end of a run may still take.
pub const END_GRACE: Duration = Duration::from_secs(2);

/// How often the rate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The window of the live rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Most [`SlowTransaction`]s one run keeps, all streams together; the ones
/// after are only counted ([`RrResult::slow_dropped`]).
pub const MAX_SLOW_RECORDS: u64 = 10_000;

/// A stream that ended with an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamError {
    /// Stream index (0-based).
    pub stream: usize,
    /// What happened, and after how many transactions.
    pub message: String,
}

/// A measured transaction that took at least the smallest of
/// [`RrOptions::thresholds`].
///
/// The times are CLOCK_MONOTONIC nanoseconds, the clock of
/// `bpf_ktime_get_ns()`, so they compare with the timestamps of kernel events:
/// `start_ns` is taken just before the request is written, `end_ns` just after
/// the last byte of the response is read, the same instants the latency is
/// measured between.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlowTransaction {
    /// Stream index (0-based).
    pub stream: usize,
    /// Before the request was written, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// After the response was read in full, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// `end_ns - start_ns`, µs (rounded down).
    pub latency_us: u64,
    /// The client socket's address, `ip:port` (`[v6]:port`).
    pub local: String,
    /// The server's address as the socket sees it, `ip:port` (`[v6]:port`).
    pub remote: String,
}

/// The outcome of a TCP_RR run. Warm-up transactions are not in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RrResult {
    /// Server address.
    pub target: String,
    /// Streams.
    pub streams: usize,
    /// Bytes per request.
    pub request_size: usize,
    /// Bytes per response.
    pub response_size: usize,
    /// Measured time (warm-up excluded), seconds.
    pub duration_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Transactions measured, all streams.
    pub transactions: u64,
    /// Transactions per second, all streams.
    pub tps: f64,
    /// Transactions of each stream.
    pub transactions_per_stream: Vec<u64>,
    /// Transactions per second of each stream.
    pub tps_per_stream: Vec<f64>,
    /// Latency figures, µs; null without transactions.
    pub latency_us: Option<LatencySummary>,
    /// Transactions at or above each threshold.
    pub thresholds: Vec<ThresholdCount>,
    /// Transactions still waiting for their response when the run ended
    /// (after [`END_GRACE`]), not counted.
    pub unfinished: u64,
    /// Streams that ended with an error.
    pub errors: Vec<StreamError>,
    /// The latency histogram: non-empty log-linear buckets, ascending.
    pub buckets: Vec<LatencyBucket>,
    /// Transactions at or above the smallest threshold, by `start_ns`; the
    /// first [`MAX_SLOW_RECORDS`] of them (empty without thresholds).
    pub slow: Vec<SlowTransaction>,
    /// Slow transactions beyond [`MAX_SLOW_RECORDS`]: counted, not kept.
    pub slow_dropped: u64,
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RrPhase {
    /// Transactions are not counted yet.
    WarmingUp,
    /// Measuring.
    Running,
    /// The end has come; transactions in flight are finishing.
    Ending,
    /// Every stream has stopped; [`RrHandle::join`] returns at once.
    Done,
}

/// A live view of a run, cheap enough to take every tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RrSnapshot {
    /// Where the run is.
    pub phase: RrPhase,
    /// Measured time so far (seconds in JSON).
    #[serde(rename = "elapsed_s", serialize_with = "as_seconds")]
    pub elapsed: Duration,
    /// Transactions measured so far.
    pub transactions: u64,
    /// Transactions measured so far by each stream.
    pub per_stream: Vec<u64>,
    /// Transactions per second over about the last second (warm-up included).
    pub rate: f64,
    /// Measured transactions at or above each threshold so far.
    pub thresholds: Vec<ThresholdCount>,
    /// Streams that ended with an error so far.
    pub errors: usize,
    /// Measured transactions at or above the smallest threshold so far
    /// (kept or not).
    pub slow: u64,
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// One stream's counters; aligned so that streams do not share cache lines.
#[repr(align(128))]
struct Slot {
    stats: Mutex<StreamStats>,
    /// A dup of the stream's socket, so the run can shut it down.
    sock: Mutex<Option<TcpStream>>,
    /// Set when the run shut the socket down itself.
    cut: AtomicBool,
}

struct StreamStats {
    measured: Latencies,
    warmup: u64,
    error: Option<String>,
    unfinished: bool,
    slow: Vec<SlowTransaction>,
    /// Slow transactions not kept (over [`MAX_SLOW_RECORDS`]).
    slow_dropped: u64,
}

enum Go {
    Wait,
    Start(Instant),
    Abort,
}

struct Shared {
    slots: Vec<Slot>,
    stop: AtomicBool,
    go: Mutex<Go>,
    go_cv: Condvar,
    /// The end of the measurement, once decided.
    end: Mutex<Option<Instant>>,
    /// (time, transactions including warm-up), over the last [`RATE_WINDOW`].
    samples: Mutex<VecDeque<(Instant, u64)>>,
    thresholds: Vec<Duration>,
    /// Slow transactions seen so far, all streams; the first
    /// [`MAX_SLOW_RECORDS`] are kept.
    slow_seen: AtomicU64,
}

impl Shared {
    fn set_go(&self, go: Go) {
        *lock(&self.go) = go;
        self.go_cv.notify_all();
    }

    /// Blocks until the run starts (its start time) or is aborted (None).
    fn wait_go(&self) -> Option<Instant> {
        let mut g = lock(&self.go);
        loop {
            match *g {
                Go::Wait => g = self.go_cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Go::Start(t) => return Some(t),
                Go::Abort => return None,
            }
        }
    }

    fn all_transactions(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| {
                let st = lock(&s.stats);
                st.warmup + st.measured.count()
            })
            .sum()
    }

    fn sample(&self) {
        let now = Instant::now();
        let total = self.all_transactions();
        let mut s = lock(&self.samples);
        s.push_back((now, total));
        while s.len() > 2 && s[1].0 + RATE_WINDOW <= now {
            s.pop_front();
        }
    }

    fn rate(&self) -> f64 {
        let s = lock(&self.samples);
        match (s.front(), s.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Messages to the supervisor.
enum Msg {
    Stop,
    StreamDone,
}

/// A running TCP_RR client. Dropping it stops the run and waits for its threads.
pub struct RrHandle {
    shared: Arc<Shared>,
    control: Sender<Msg>,
    supervisor: Option<JoinHandle<RrResult>>,
    measure_start: Instant,
}

/// A run: its options, and where it runs.
struct Run {
    target: SocketAddr,
    netns: Option<Netns>,
    options: RrOptions,
}

/// Connects every stream to `target` (a [`serve`](super::serve)) and starts
/// the run; returns once all are connected (at most twice `connect_timeout`:
/// connection, then hello), or with the first stream's error. The client
/// sockets are made in `netns` when given. Blocks: call it from a thread
/// that may wait.
///
/// ```no_run
/// use vprobe_load::tcp_rr::{start, RrOptions};
/// let o = RrOptions {
///     streams: 16,
///     ..RrOptions::default()
/// };
/// let result = start("198.51.100.1:12866".parse().unwrap(), o, None)?.join();
/// println!("{} transactions/s, p99 {:?} µs", result.tps, result.latency_us.map(|l| l.p99));
/// # Ok::<(), vprobe_load::LoadError>(())
/// ```
pub fn start(
    target: SocketAddr,
    options: RrOptions,
    netns: Option<Netns>,
) -> Result<RrHandle, LoadError> {
    options.validate()?;
    let run = Arc::new(Run {
        target,
        netns,
        options,
    });
    let shared = Arc::new(Shared {
        slots: (0..run.options.streams)
            .map(|_| Slot {
                stats: Mutex::new(StreamStats {
                    measured: Latencies::new(&run.options.thresholds),
                    warmup: 0,
                    error: None,
                    unfinished: false,
                    slow: Vec::new(),
                    slow_dropped: 0,
                }),
                sock: Mutex::new(None),
                cut: AtomicBool::new(false),
            })
            .collect(),
        stop: AtomicBool::new(false),
        go: Mutex::new(Go::Wait),
        go_cv: Condvar::new(),
        end: Mutex::new(None),
        samples: Mutex::new(VecDeque::new()),
        thresholds: run.options.thresholds.clone(),
        slow_seen: AtomicU64::new(0),
    });
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), LoadError>>();
    let (control, control_rx) = mpsc::channel::<Msg>();
    let mut threads = Vec::with_capacity(run.options.streams);
    let abort = |shared: &Shared, threads: Vec<JoinHandle<()>>| {
        shared.stop.store(true, Ordering::Release);
        shared.set_go(Go::Abort);
        for t in threads {
            let _ = t.join();
        }
    };
    for i in 0..run.options.streams {
        let (o, sh, ready, done) = (
            run.clone(),
            shared.clone(),
            ready_tx.clone(),
            control.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("vprobe-rr-{i}"))
            .spawn(move || stream_main(i, &o, &sh, ready, done));
        match spawned {
            Ok(t) => threads.push(t),
            Err(source) => {
                abort(&shared, threads);
                return Err(LoadError::Spawn {
                    what: format!("the thread of stream {i}"),
                    source,
                });
            }
        }
    }
    drop(ready_tx);
    let mut first_error = None;
    for _ in 0..run.options.streams {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error = Some(e);
                break;
            }
            Err(_) => {
                first_error = Some(LoadError::Spawn {
                    what: "a stream (its thread ended before connecting)".into(),
                    source: io::Error::other("thread ended"),
                });
                break;
            }
        }
    }
    if let Some(e) = first_error {
        abort(&shared, threads);
        return Err(e);
    }
    let started = Instant::now();
    let measure_start = started + run.options.warmup;
    let deadline = run.options.duration.map(|d| measure_start + d);
    let sup_shared = shared.clone();
    let sup_run = run.clone();
    let spawned = std::thread::Builder::new()
        .name("vprobe-rr".into())
        .spawn(move || {
            supervise(
                &sup_shared,
                &sup_run,
                threads,
                &control_rx,
                measure_start,
                deadline,
            )
        });
    let supervisor = match spawned {
        Ok(t) => t,
        Err(source) => {
            // The stream threads went with the closure; tell them to end.
            shared.stop.store(true, Ordering::Release);
            shared.set_go(Go::Abort);
            return Err(LoadError::Spawn {
                what: "the supervisor thread".into(),
                source,
            });
        }
    };
    shared.set_go(Go::Start(started));
    Ok(RrHandle {
        shared,
        control,
        supervisor: Some(supervisor),
        measure_start,
    })
}

impl RrHandle {
    /// Counts and rate so far (no percentiles: see [`RrHandle::latency`]).
    pub fn snapshot(&self) -> RrSnapshot {
        let now = Instant::now();
        let end = *lock(&self.shared.end);
        let phase = if self.is_finished() {
            RrPhase::Done
        } else if end.is_some() {
            RrPhase::Ending
        } else if now < self.measure_start {
            RrPhase::WarmingUp
        } else {
            RrPhase::Running
        };
        let upto = end.map_or(now, |e| e.min(now));
        let mut per_stream = Vec::with_capacity(self.shared.slots.len());
        let mut thresholds: Vec<ThresholdCount> = Vec::new();
        let mut errors = 0;
        let mut slow = 0;
        for s in &self.shared.slots {
            let st = lock(&s.stats);
            per_stream.push(st.measured.count());
            errors += usize::from(st.error.is_some());
            slow += st.slow.len() as u64 + st.slow_dropped;
            let t = st.measured.thresholds();
            if thresholds.is_empty() {
                thresholds = t;
            } else {
                for (a, b) in thresholds.iter_mut().zip(t) {
                    a.count += b.count;
                }
            }
        }
        if thresholds.is_empty() {
            thresholds = Latencies::new(&self.shared.thresholds).thresholds();
        }
        RrSnapshot {
            phase,
            elapsed: upto.saturating_duration_since(self.measure_start),
            transactions: per_stream.iter().sum(),
            per_stream,
            rate: self.shared.rate(),
            thresholds,
            errors,
            slow,
        }
    }

    /// Latency figures of the transactions measured so far (merges every
    /// stream's histogram: a few hundred µs for 16 streams).
    pub fn latency(&self) -> Option<LatencySummary> {
        let mut all = Latencies::new(&self.shared.thresholds);
        for s in &self.shared.slots {
            all.merge(&lock(&s.stats).measured);
        }
        all.summary()
    }

    /// Ends the run now (the result covers the time until now). Returns at
    /// once; [`RrHandle::join`] waits for the streams.
    pub fn stop(&self) {
        let _ = self.control.send(Msg::Stop);
    }

    /// Whether every thread of the run has ended.
    pub fn is_finished(&self) -> bool {
        self.supervisor.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the end (the duration, or [`RrHandle::stop`]) and returns the result.
    pub fn join(mut self) -> RrResult {
        let t = self.supervisor.take().expect("joined once");
        t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for RrHandle {
    fn drop(&mut self) {
        if let Some(t) = self.supervisor.take() {
            let _ = self.control.send(Msg::Stop);
            let _ = t.join();
        }
    }
}

/// Ends the run at its deadline, on stop, or when every stream has ended;
/// then lets transactions in flight finish, cuts the rest, and sums up.
fn supervise(
    shared: &Shared,
    run: &Run,
    threads: Vec<JoinHandle<()>>,
    control: &Receiver<Msg>,
    measure_start: Instant,
    deadline: Option<Instant>,
) -> RrResult {
    let mut alive = threads.len();
    let end = loop {
        shared.sample();
        let now = Instant::now();
        if alive == 0 || deadline.is_some_and(|d| now >= d) {
            break deadline.map_or(now, |d| d.min(now));
        }
        let wait = deadline.map_or(SAMPLE_EVERY, |d| (d - now).min(SAMPLE_EVERY));
        match control.recv_timeout(wait) {
            Ok(Msg::StreamDone) => alive -= 1,
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break Instant::now(),
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    *lock(&shared.end) = Some(end);
    shared.stop.store(true, Ordering::Release);
    let grace_end = Instant::now() + END_GRACE;
    while alive > 0 {
        let left = grace_end.saturating_duration_since(Instant::now());
        match control.recv_timeout(left) {
            Ok(Msg::StreamDone) => alive -= 1,
            Ok(Msg::Stop) => {}
            Err(_) => break,
        }
    }
    if alive > 0 {
        for s in &shared.slots {
            s.cut.store(true, Ordering::Release);
            if let Some(sock) = lock(&s.sock).as_ref() {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    shared.sample();
    result(shared, run, end.saturating_duration_since(measure_start))
}

fn result(shared: &Shared, run: &Run, measured: Duration) -> RrResult {
    let secs = measured.as_secs_f64();
    let per_s = |n: u64| {
        if secs > 0.0 {
            (n as f64 / secs * 100.0).round() / 100.0
        } else {
            0.0
        }
    };
    let mut all = Latencies::new(&run.options.thresholds);
    let mut per_stream = Vec::with_capacity(shared.slots.len());
    let mut errors = Vec::new();
    let mut unfinished = 0;
    let mut slow = Vec::new();
    let mut slow_dropped = 0;
    for (i, s) in shared.slots.iter().enumerate() {
        let st = lock(&s.stats);
        all.merge(&st.measured);
        per_stream.push(st.measured.count());
        unfinished += u64::from(st.unfinished);
        slow.extend_from_slice(&st.slow);
        slow_dropped += st.slow_dropped;
        if let Some(m) = &st.error {
            errors.push(StreamError {
                stream: i,
                message: m.clone(),
            });
        }
    }
    slow.sort_unstable_by_key(|s: &SlowTransaction| (s.start_ns, s.stream));
    RrResult {
        target: run.target.to_string(),
        streams: run.options.streams,
        request_size: run.options.request_size,
        response_size: run.options.response_size,
        duration_s: secs,
        warmup_s: run.options.warmup.as_secs_f64(),
        transactions: all.count(),
        tps: per_s(all.count()),
        tps_per_stream: per_stream.iter().map(|&n| per_s(n)).collect(),
        transactions_per_stream: per_stream,
        latency_us: all.summary(),
        thresholds: all.thresholds(),
        unfinished,
        errors,
        buckets: all.buckets(),
        slow,
        slow_dropped,
    }
}

/// Tells the supervisor a stream ended, however it ended.
struct DoneGuard(Sender<Msg>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::StreamDone);
    }
}

fn stream_main(
    i: usize,
    run: &Run,
    shared: &Shared,
    ready: Sender<Result<(), LoadError>>,
    done: Sender<Msg>,
) {
    let slot = &shared.slots[i];
    let sock = match connect(i, run) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Ok(dup) = sock.try_clone() {
        *lock(&slot.sock) = Some(dup);
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    let Some(started) = shared.wait_go() else {
        return;
    };
    let _done = DoneGuard(done);
    let measure_start = started + run.options.warmup;
    let deadline = run.options.duration.map(|d| measure_start + d);
    if let Err(message) = transact(i, &sock, run, shared, measure_start, deadline) {
        let mut st = lock(&slot.stats);
        if slot.cut.load(Ordering::Acquire) {
            st.unfinished = true;
        } else {
            let n = st.warmup + st.measured.count();
            st.error = Some(format!("{message} after {n} transactions"));
        }
    }
    // Close the socket now, not when the run's handle goes.
    lock(&slot.sock).take();
}

/// Connects, sets TCP_NODELAY and says hello; on this thread, which enters the
/// namespace and its CPU first.
fn connect(i: usize, run: &Run) -> Result<TcpStream, LoadError> {
    if let Some(ns) = &run.netns {
        enter(ns)?;
    }
    if !run.options.cpus.is_empty() {
        pin(run.options.cpus[i % run.options.cpus.len()])?;
    }
    let target = run.target;
    let err = |source: io::Error| LoadError::Connect {
        stream: i,
        target,
        source,
    };
    let sock = TcpStream::connect_timeout(&target, run.options.connect_timeout).map_err(err)?;
    sock.set_nodelay(true).map_err(err)?;
    let handshake = |source: HandshakeError| LoadError::Handshake {
        stream: i,
        target,
        source,
    };
    (&sock)
        .write_all(&run.options.hello().encode())
        .map_err(err)?;
    sock.set_read_timeout(Some(run.options.connect_timeout))
        .map_err(err)?;
    let mut answer = [0u8; 4];
    match read_full(&sock, &mut answer) {
        Ok(true) if &answer == HELLO_OK => {}
        Ok(true) => return Err(handshake(HandshakeError::Answered(answer))),
        Ok(false) => return Err(handshake(HandshakeError::Closed)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(handshake(HandshakeError::Timeout(
                run.options.connect_timeout,
            )))
        }
        Err(e) => return Err(handshake(HandshakeError::Io(e))),
    }
    sock.set_read_timeout(None).map_err(err)?;
    Ok(sock)
}

/// Why a stream ended early; its message, with the transactions it made, is
/// the run's [`StreamError`].
#[derive(Debug, thiserror::Error)]
enum StreamFailure {
    #[error("the server closed the connection")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The transaction loop of one stream, until the deadline, stop, or an error.
fn transact(
    stream: usize,
    sock: &TcpStream,
    run: &Run,
    shared: &Shared,
    measure_start: Instant,
    deadline: Option<Instant>,
) -> Result<(), StreamFailure> {
    let slot = &shared.slots[stream];
    let request = vec![b'r'; run.options.request_size];
    let mut response = vec![0u8; run.options.response_size];
    let mut w = sock;
    // Transactions are timed on CLOCK_MONOTONIC in ns, so a slow one's
    // interval is in the kernel's clock; the run's instants are converted once.
    let measure_start = instant_ns(measure_start);
    let deadline = deadline.map(instant_ns);
    let slow_ns = shared.thresholds.iter().min().map(|t| t.as_nanos() as u64);
    // The addresses, for slow transactions; taken once, not in the loop.
    let ends = slow_ns.map(|_| {
        let show = |a: io::Result<SocketAddr>| a.map_or_else(|_| "?".into(), |a| a.to_string());
        (show(sock.local_addr()), show(sock.peer_addr()))
    });
    while !shared.stop.load(Ordering::Relaxed) {
        let t0 = monotonic_ns();
        w.write_all(&request)?;
        if !read_full(sock, &mut response)? {
            return Err(StreamFailure::Closed);
        }
        let t1 = monotonic_ns();
        let took = t1.saturating_sub(t0);
        {
            let mut st = lock(&slot.stats);
            if t0 >= measure_start {
                st.measured.record(Duration::from_nanos(took));
                if let (Some(at), Some((local, remote))) = (slow_ns, &ends) {
                    if took >= at {
                        if shared.slow_seen.fetch_add(1, Ordering::Relaxed) < MAX_SLOW_RECORDS {
                            st.slow.push(SlowTransaction {
                                stream,
                                start_ns: t0,
                                end_ns: t1,
                                latency_us: took / 1000,
                                local: local.clone(),
                                remote: remote.clone(),
                            });
                        } else {
                            st.slow_dropped += 1;
                        }
                    }
                }
            } else {
                st.warmup += 1;
            }
        }
        if deadline.is_some_and(|d| t1 >= d) {
            break;
        }
    }
    Ok(())
}

/// `t` on CLOCK_MONOTONIC, ns (within the few ns between two clock reads).
fn instant_ns(t: Instant) -> u64 {
    let (now, now_ns) = (Instant::now(), monotonic_ns());
    match t.checked_duration_since(now) {
        Some(ahead) => now_ns.saturating_add(ahead.as_nanos() as u64),
        None => now_ns.saturating_sub(now.duration_since(t).as_nanos() as u64),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;
    use crate::tcp_rr::protocol::HELLO_LEN;
    use crate::tcp_rr::serve;
    use crate::tcp_rr::ServerHandle;

    fn loopback_server() -> ServerHandle {
        serve("127.0.0.1:0".parse().unwrap(), None).unwrap()
    }

    #[test]
    fn rr_on_loopback_counts_every_stream() {
        let server = loopback_server();
        let target = server.local_addr();
        let o = RrOptions {
            streams: 3,
            request_size: 100,
            response_size: 2000,
            duration: Some(Duration::from_millis(300)),
            warmup: Duration::from_millis(100),
            ..RrOptions::default()
        };
        let h = start(target, o, None).unwrap();
        let r = h.join();
        assert_eq!(r.streams, 3);
        assert!(r.transactions > 0, "{r:?}");
        assert_eq!(
            r.transactions_per_stream.iter().sum::<u64>(),
            r.transactions
        );
        assert!(r.transactions_per_stream.iter().all(|&n| n > 0), "{r:?}");
        assert!(r.errors.is_empty(), "{r:?}");
        assert!((r.duration_s - 0.3).abs() < 0.05, "{r:?}");
        let l = r.latency_us.unwrap();
        assert!(l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
        assert_eq!(
            r.buckets.iter().map(|b| b.count).sum::<u64>(),
            r.transactions
        );
        // The server answered at least every measured transaction (warm-up too).
        let s = server.join();
        assert!(s.transactions >= r.transactions, "{s:?} {r:?}");
        assert_eq!(s.connections, 3);
        assert_eq!(s.errors, 0);
    }

    #[test]
    fn stop_ends_an_unbounded_run() {
        let server = loopback_server();
        let target = server.local_addr();
        let o = RrOptions {
            duration: None,
            ..RrOptions::default()
        };
        let h = start(target, o, None).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let s = h.snapshot();
        assert_eq!(s.phase, RrPhase::Running);
        assert!(s.transactions > 0);
        assert_eq!(s.thresholds.len(), 2);
        assert!(h.latency().is_some());
        h.stop();
        let r = h.join();
        assert!(r.transactions >= s.transactions);
        // (generous: other builds share this machine)
        assert!(r.duration_s >= 0.2 && r.duration_s < 5.0, "{r:?}");
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["elapsed_s"].is_f64(), "{json}");
    }

    #[test]
    fn connection_refused_is_an_error_not_a_panic() {
        // A port that was just free.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let target = addr;
        let o = RrOptions {
            streams: 4,
            ..RrOptions::default()
        };
        let e = start(target, o, None).err().expect("nobody listens");
        assert!(matches!(e, LoadError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn a_foreign_server_fails_the_hello() {
        // Accepts and closes at once, like a server of another protocol.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            drop(s);
        });
        let e = start(addr, RrOptions::default(), None)
            .err()
            .expect("not a vprobe server");
        assert!(matches!(e, LoadError::Handshake { .. }), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn a_server_that_goes_away_is_reported_per_stream() {
        let server = loopback_server();
        let target = server.local_addr();
        let o = RrOptions {
            streams: 2,
            duration: Some(Duration::from_secs(5)),
            ..RrOptions::default()
        };
        let h = start(target, o, None).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        drop(server); // closes every connection
        let r = h.join();
        assert!(t0.elapsed() < Duration::from_secs(3), "the run did not end");
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors[0].message.contains("transactions"), "{r:?}");
        assert!(r.transactions > 0);
    }

    #[test]
    fn a_silent_server_is_cut_after_the_grace() {
        // Answers the hello, then never responds.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut hello = [0u8; HELLO_LEN];
            s.read_exact(&mut hello).unwrap();
            s.write_all(HELLO_OK).unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink); // until the client shuts down
        });
        let target = addr;
        let o = RrOptions {
            duration: Some(Duration::from_millis(100)),
            ..RrOptions::default()
        };
        let t0 = Instant::now();
        let r = start(target, o, None).unwrap().join();
        assert!(t0.elapsed() < END_GRACE + Duration::from_secs(3));
        assert_eq!((r.transactions, r.unfinished), (0, 1), "{r:?}");
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(r.latency_us, None);
        t.join().unwrap();
    }

    #[test]
    fn a_delayed_response_is_one_slow_record() {
        // Answers at once, but holds the first response of the warm-up and
        // the first one 400 ms after the hello for 250 ms each.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (ends_tx, ends_rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let (mut s, peer) = l.accept().unwrap();
            ends_tx.send((peer, s.local_addr().unwrap())).unwrap();
            s.set_nodelay(true).unwrap();
            let mut hello = [0u8; HELLO_LEN];
            s.read_exact(&mut hello).unwrap();
            s.write_all(HELLO_OK).unwrap();
            let t0 = Instant::now();
            let mut held = 0;
            let mut req = [0u8; 1];
            while s.read_exact(&mut req).is_ok() {
                if held == 0 || (held == 1 && t0.elapsed() >= Duration::from_millis(400)) {
                    held += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                if s.write_all(b"R").is_err() {
                    break;
                }
            }
        });
        let target = addr;
        let o = RrOptions {
            warmup: Duration::from_millis(300),
            duration: Some(Duration::from_millis(500)),
            ..RrOptions::default()
        };
        let before = monotonic_ns();
        let h = start(target, o, None).unwrap();
        let (client, server) = ends_rx.recv().unwrap();
        let r = h.join();
        let after = monotonic_ns();
        t.join().unwrap();
        assert_eq!(r.slow.len(), 1, "the warm-up's is not kept: {r:?}");
        assert_eq!((r.thresholds[0].count, r.slow_dropped), (1, 0), "{r:?}");
        let s = &r.slow[0];
        assert!(before < s.start_ns && s.start_ns < s.end_ns && s.end_ns < after);
        assert_eq!(s.latency_us, (s.end_ns - s.start_ns) / 1000);
        assert!((250_000..1_000_000).contains(&s.latency_us), "{s:?}");
        assert_eq!(s.latency_us, r.latency_us.unwrap().max as u64, "{r:?}");
        assert_eq!((s.stream, s.local.as_str()), (0, &*client.to_string()));
        assert_eq!(s.remote, server.to_string());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["slow"][0]["local"], client.to_string(), "{json}");
        assert_eq!(json["slow_dropped"], 0);
    }

    #[test]
    fn slow_records_are_capped_and_sorted() {
        // At 1 µs every transaction is slow: more than the cap unless this
        // machine is very busy, and the invariants hold either way.
        let server = loopback_server();
        let target = server.local_addr();
        let o = RrOptions {
            streams: 2,
            duration: Some(Duration::from_millis(700)),
            thresholds: vec![Duration::from_millis(1), Duration::from_micros(1)],
            ..RrOptions::default()
        };
        let h = start(target, o, None).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let snap = h.snapshot();
        let r = h.join();
        assert!(snap.slow > 0 && snap.slow <= r.transactions, "{snap:?}");
        let slow = r.thresholds[1].count;
        assert_eq!(slow, r.transactions);
        assert_eq!(r.slow.len() as u64, slow.min(MAX_SLOW_RECORDS));
        assert_eq!(r.slow.len() as u64 + r.slow_dropped, slow);
        assert!(r.slow.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
        assert!(r.slow.iter().any(|s| s.stream == 1));
    }

    #[test]
    fn bad_options_are_refused() {
        let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut o = RrOptions {
            streams: 0,
            ..RrOptions::default()
        };
        assert!(matches!(
            start(target, o.clone(), None),
            Err(LoadError::Invalid(_))
        ));
        o.streams = 1;
        o.request_size = 0;
        assert!(matches!(
            start(target, o.clone(), None),
            Err(LoadError::Invalid(_))
        ));
        o.request_size = 1;
        o.thresholds = vec![Duration::from_nanos(1500)];
        assert!(matches!(start(target, o, None), Err(LoadError::Invalid(_))));
    }
}
