//! The relay: a user-space vhost-net. Per queue, one thread moves frames from
//! the host side (a macvtap or tap queue) to the guest's tap ("rx", as the
//! guest sees it) and one moves them back ("tx"). The virtio-net header is
//! passed through untouched: both fds carry the same 10-byte header.
//!
//! Threads are named `vhost-<relay><queue>-rx|tx`, so scheduler probes that
//! look for vhost threads by name find them.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{os, LabError};
use crate::knobs::Stall;

/// How a relay behaves (from the lab's knobs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelayConfig {
    pub batch: u32,
    pub stall: Option<Stall>,
    pub cpu: Option<usize>,
}

/// Whether planned stalls happen now (`Lab::set_disturbed`).
pub(crate) type Disturbed = Arc<std::sync::atomic::AtomicBool>;

/// What a relay has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayStats {
    /// The relay's name (`a`, `b`): which host it serves.
    pub name: String,
    /// Frames moved host → guest (the guest's receive direction).
    pub to_guest: u64,
    /// Frames moved guest → host.
    pub to_host: u64,
    /// Frames read but not written (the other side refused them).
    pub write_errors: u64,
    /// Stalls taken (by all queues).
    pub stalls: u64,
    /// Why a relay thread stopped early, if one did.
    pub error: Option<String>,
}

/// One pause of a relay's host → guest direction, CLOCK_MONOTONIC ns (the
/// clock probes stamp events with): a planned stall, or a time it was late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StallWindow {
    /// When the relay stopped reading.
    pub start_ns: u64,
    /// When it read again.
    pub end_ns: u64,
    /// Planned (the `stall` knob), or found: the relay did not read for
    /// longer than [`LATE`] and then found at least [`LATE_FRAMES`] frames
    /// waiting (its thread was not running while traffic came).
    pub planned: bool,
}

/// A gap between two reads this long, with frames waiting at its end, is a
/// late relay: a descheduled vhost thread, as the `stall` knob plays one.
pub const LATE: Duration = Duration::from_millis(5);
/// Frames that must be waiting after such a gap: after a quiet spell the
/// first frame wakes the relay at once, and it finds that one alone.
pub const LATE_FRAMES: u32 = 4;

/// Stall windows kept per relay (10 minutes of 1 s periods, many times over).
const STALL_LOG_MAX: usize = 100_000;

#[derive(Default)]
struct Counters {
    to_guest: AtomicU64,
    to_host: AtomicU64,
    write_errors: AtomicU64,
    stalls: AtomicU64,
    stall_log: Mutex<Vec<StallWindow>>,
    error: Mutex<Option<String>>,
    /// Whether planned stalls happen now: the lab's, shared.
    disturbed: Disturbed,
}

/// A running relay; stopping it (or dropping it) joins every thread, which
/// closes every fd it was given.
pub(crate) struct Relay {
    name: String,
    /// The host-side device it reads (`macvtap0`, `tap0`).
    device: String,
    stop: Arc<EventFd>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// Bigger than any frame: no offloads are negotiated, so frames are at most
/// header + MTU-sized Ethernet frames; 64 KiB leaves room for a GSO frame anyway.
const FRAME_BUF: usize = 65536 + 128;

impl Relay {
    /// Starts one thread pair per queue: `host[i]` ↔ `guest[i]`.
    pub fn start(
        name: &str,
        device: &str,
        host: Vec<OwnedFd>,
        guest: Vec<OwnedFd>,
        cfg: RelayConfig,
        disturbed: Disturbed,
    ) -> Result<Relay, LabError> {
        assert_eq!(host.len(), guest.len(), "one guest queue per host queue");
        let stop = Arc::new(
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(os("eventfd for a relay"))?,
        );
        let mut relay = Relay {
            name: name.to_string(),
            device: device.to_string(),
            stop,
            threads: Vec::new(),
            counters: Arc::new(Counters {
                disturbed,
                ..Counters::default()
            }),
        };
        for (q, (h, g)) in host.into_iter().zip(guest).enumerate() {
            let (h, g) = (Arc::new(h), Arc::new(g));
            // rx: host → guest, the direction that stalls (vhost-net's RX handler not running).
            relay.spawn(
                format!("vhost-{name}{q}-rx"),
                h.clone(),
                g.clone(),
                cfg,
                cfg.stall,
                Dir::ToGuest,
            )?;
            relay.spawn(format!("vhost-{name}{q}-tx"), g, h, cfg, None, Dir::ToHost)?;
        }
        Ok(relay)
    }

    fn spawn(
        &mut self,
        thread: String,
        src: Arc<OwnedFd>,
        dst: Arc<OwnedFd>,
        cfg: RelayConfig,
        stall: Option<Stall>,
        dir: Dir,
    ) -> Result<(), LabError> {
        let stop = self.stop.clone();
        let counters = self.counters.clone();
        let label = thread.clone();
        let handle = std::thread::Builder::new()
            .name(thread)
            .spawn(move || {
                let result = pin(cfg.cpu)
                    .and_then(|()| pump(&src, &dst, &stop, cfg.batch, stall, dir, &counters));
                if let Err(e) = result {
                    let mut slot = counters.error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert_with(|| message(&label, &e));
                }
            })
            .map_err(|e| LabError::Os {
                what: format!("spawn relay thread for relay {}", self.name),
                source: e,
            })?;
        self.threads.push(handle);
        Ok(())
    }

    /// Its counters.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            name: self.name.clone(),
            to_guest: c.to_guest.load(Ordering::Relaxed),
            to_host: c.to_host.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            error: c.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// The host-side device it reads.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Every stall of its host → guest direction so far (all queues), oldest first.
    pub fn stall_windows(&self) -> Vec<StallWindow> {
        let mut v = self
            .counters
            .stall_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort_by_key(|w| w.start_ns);
        v
    }

    /// Stops and joins every thread.
    pub fn stop(&mut self) {
        // An eventfd write only fails when the counter would overflow.
        let _ = self.stop.write(1);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToGuest,
    ToHost,
}

/// Why a relay thread stopped early; its message ends up in [`RelayStats::error`].
#[derive(Debug, thiserror::Error)]
enum RelayError {
    /// The CPU does not fit in a CPU set.
    #[error("cpu {cpu}")]
    CpuSet {
        cpu: usize,
        #[source]
        source: Errno,
    },
    /// The thread could not be pinned.
    #[error("pin to cpu {cpu}")]
    Pin {
        cpu: usize,
        #[source]
        source: Errno,
    },
    /// Waiting for frames (or for the stop signal) failed.
    #[error("poll")]
    Poll(#[source] Errno),
    /// Reading a frame failed.
    #[error("read")]
    Read(#[source] Errno),
}

/// `THREAD: WHAT: CAUSE`, the message [`RelayStats::error`] carries: the
/// stats are serialized and shown, so they hold text, not the error.
fn message(thread: &str, e: &RelayError) -> String {
    let mut msg = format!("{thread}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg += &format!(": {c}");
        cause = c.source();
    }
    msg
}

fn pin(cpu: Option<usize>) -> Result<(), RelayError> {
    let Some(cpu) = cpu else { return Ok(()) };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .map_err(|source| RelayError::CpuSet { cpu, source })?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|source| RelayError::Pin { cpu, source })
}

/// Moves frames from `src` to `dst` until `stop` is signalled: up to `batch`
/// frames per wakeup; with a stall, stops reading for `pause` every `every`.
fn pump(
    src: &OwnedFd,
    dst: &OwnedFd,
    stop: &EventFd,
    batch: u32,
    stall: Option<Stall>,
    dir: Dir,
    counters: &Counters,
) -> Result<(), RelayError> {
    let moved = match dir {
        Dir::ToGuest => &counters.to_guest,
        Dir::ToHost => &counters.to_host,
    };
    let mut buf = vec![0u8; FRAME_BUF];
    let mut next_stall = stall.map(|s| Instant::now() + s.every);
    // the end of the last read batch (ns), to find the times the relay was late
    let mut last_read_ns = vprobe_time::monotonic_ns();
    let log_stall = |w: StallWindow| {
        let mut log = counters.stall_log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < STALL_LOG_MAX {
            log.push(w);
        }
    };
    loop {
        let mut timeout = PollTimeout::NONE;
        if let (Some(s), Some(at)) = (stall, next_stall) {
            let now = Instant::now();
            if now >= at && !counters.disturbed.load(Ordering::Relaxed) {
                // paused: no stall now, the next one a period from now
                next_stall = Some(now + s.every);
                continue;
            }
            if now >= at {
                let start_ns = vprobe_time::monotonic_ns();
                if stopped_within(stop, s.pause)? {
                    return Ok(());
                }
                let end_ns = vprobe_time::monotonic_ns();
                counters.stalls.fetch_add(1, Ordering::Relaxed);
                if dir == Dir::ToGuest {
                    log_stall(StallWindow {
                        start_ns,
                        end_ns,
                        planned: true,
                    });
                }
                last_read_ns = end_ns;
                // Keep the period; after a long hiccup start again from now.
                let next = at + s.every;
                next_stall = Some(if next > Instant::now() {
                    next
                } else {
                    Instant::now() + s.every
                });
                continue;
            }
            timeout = poll_timeout(at - now);
        }
        let mut fds = [
            PollFd::new(src.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(RelayError::Poll(e)),
        }
        if fds[1].any().unwrap_or(false) {
            return Ok(());
        }
        if !fds[0].any().unwrap_or(false) {
            continue;
        }
        let woke_ns = vprobe_time::monotonic_ns();
        let mut read: u32 = 0;
        for _ in 0..batch {
            let n = match nix::unistd::read(src, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(RelayError::Read(e)),
            };
            read += 1;
            match nix::unistd::write(dst, &buf[..n]) {
                Ok(_) => {
                    moved.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.write_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // frames waited at the end of a long gap: the relay was late
        if read >= LATE_FRAMES
            && dir == Dir::ToGuest
            && woke_ns.saturating_sub(last_read_ns) > LATE.as_nanos() as u64
        {
            log_stall(StallWindow {
                start_ns: last_read_ns,
                end_ns: woke_ns,
                planned: false,
            });
        }
        if read > 0 {
            last_read_ns = vprobe_time::monotonic_ns();
        }
    }
}

/// Rounds up, so a wakeup never comes before the deadline.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Sleeps `d` unless `stop` is signalled first; true if it was.
fn stopped_within(stop: &EventFd, d: Duration) -> Result<bool, RelayError> {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, poll_timeout(left)) {
            Ok(0) if Instant::now() >= deadline => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(RelayError::Poll(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_thread_says_what_failed_and_why() {
        let e = pin(Some(1 << 20)).unwrap_err();
        assert_eq!(
            message("vhost-a0-rx", &e),
            "vhost-a0-rx: cpu 1048576: EINVAL: Invalid argument"
        );
    }
}
