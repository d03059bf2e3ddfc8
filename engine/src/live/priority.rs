//! The scheduling weight of the thread that delivers events to callbacks and
//! capture files while it has rings to read.
//!
//! On a host whose CPUs are saturated by many threads (16 TCP_RR streams are
//! 32 client and server threads on two CPUs), a nice-0 reader's fair share is
//! about 1/33 of the CPU time, near what a few hundred thousand events a
//! second need; where it falls behind, its rings fill however large they are
//! (docs/DESIGN.md, "The kernel side", has what was measured). A lower nice
//! value raises its weight (nice -5: about three nice-0 threads), and it still
//! only uses what the event rate asks for: a reader with nothing to read
//! sleeps. Raising it needs CAP_SYS_NICE (or RLIMIT_NICE); without it the
//! thread keeps its weight and the session says why, once.
//!
//! Threads and processes inherit their creator's nice value, and this thread
//! starts workloads (tcp_rr's stream threads, `exec` children) after it has
//! rings: it is marked SCHED_RESET_ON_FORK while raised, so what it creates
//! starts at nice 0, not with the reader's weight.

/// Nice value of the delivering thread while it has rings, unless told
/// otherwise (`--reader-nice`).
pub const READER_NICE: i32 = -5;

/// This thread's nice value, changed while a ring is read and put back when
/// none is (or when dropped).
#[derive(Debug)]
pub(crate) struct ReaderPriority {
    /// The nice value to run at; 0 or above what the thread has: unchanged.
    want: i32,
    /// The thread's value before it was changed, while it is changed.
    before: Option<i32>,
    tid: libc::id_t,
}

impl ReaderPriority {
    pub fn new(want: i32) -> Self {
        ReaderPriority {
            want,
            before: None,
            tid: this_thread(),
        }
    }

    /// Raises this thread's weight (once); the error says why it could not.
    pub fn raise(&mut self) -> Result<Option<i32>, std::io::Error> {
        if self.before.is_some() {
            return Ok(None);
        }
        let now = nice_of(self.tid)?;
        if self.want >= now {
            return Ok(None);
        }
        set_nice(self.tid, self.want)?;
        if let Err(e) = reset_on_fork(self.tid, true) {
            // children would start with the reader's weight: not raised at all
            let _ = set_nice(self.tid, now);
            return Err(e);
        }
        self.before = Some(now);
        Ok(Some(self.want))
    }

    /// The nice value asked for.
    pub fn wanted(&self) -> i32 {
        self.want
    }

    /// Puts the thread's nice value back.
    pub fn restore(&mut self) {
        if let Some(before) = self.before.take() {
            let _ = reset_on_fork(self.tid, false);
            let _ = set_nice(self.tid, before);
        }
    }
}

impl Drop for ReaderPriority {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The calling thread's id, as the priority calls take it.
fn this_thread() -> libc::id_t {
    nix::unistd::gettid().as_raw() as libc::id_t
}

/// A thread's nice value (`PRIO_PROCESS` with a thread id names that thread
/// on Linux).
fn nice_of(tid: libc::id_t) -> Result<i32, std::io::Error> {
    // -1 is also a valid value: errno tells
    nix::errno::Errno::clear();
    // SAFETY: plain syscall wrapper, no pointers.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    if v == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v)
}

/// `SCHED_RESET_ON_FORK` (linux/sched.h; not in the libc crate): OR'd into
/// the policy, children start at the default policy and a negative nice
/// value reset to 0.
const SCHED_RESET_ON_FORK: libc::c_int = 0x4000_0000;

/// Sets or clears the thread's reset-on-fork flag, keeping its policy
/// (SCHED_OTHER) and nice value (clearing needs CAP_SYS_NICE, which raising
/// needed too).
fn reset_on_fork(tid: libc::id_t, on: bool) -> Result<(), std::io::Error> {
    let policy = libc::SCHED_OTHER | if on { SCHED_RESET_ON_FORK } else { 0 };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call.
    if unsafe { libc::sched_setscheduler(tid as libc::pid_t, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_nice(tid: libc::id_t, nice: i32) -> Result<(), std::io::Error> {
    // SAFETY: plain syscall wrapper, no pointers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own (nice values are per thread).
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn raised_while_reading_and_put_back_after() {
        on_thread(|| {
            let tid = this_thread();
            let start = nice_of(tid).unwrap();
            let mut p = ReaderPriority::new(start - 3);
            match p.raise() {
                Ok(Some(n)) => {
                    assert_eq!(n, start - 3);
                    assert_eq!(nice_of(tid).unwrap(), start - 3);
                    // a second ring changes nothing
                    assert_eq!(p.raise().unwrap(), None);
                    // a thread it starts now (a workload's) starts at nice 0
                    let child = std::thread::spawn(|| nice_of(this_thread()).unwrap())
                        .join()
                        .unwrap();
                    assert_eq!(child, start.max(0), "a child inherited the reader's weight");
                    p.restore();
                    assert_eq!(nice_of(tid).unwrap(), start);
                }
                // not permitted (not root, no CAP_SYS_NICE): left as it was
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
                    assert_eq!(nice_of(tid).unwrap(), start);
                }
                Ok(None) => panic!("asked for a lower nice value, nothing done"),
            }
        });
    }

    #[test]
    fn a_value_at_or_above_the_threads_changes_nothing() {
        on_thread(|| {
            let tid = this_thread();
            let start = nice_of(tid).unwrap();
            let mut p = ReaderPriority::new(start);
            assert_eq!(p.raise().unwrap(), None);
            drop(p);
            assert_eq!(nice_of(tid).unwrap(), start);
        });
    }

    #[test]
    fn dropped_it_puts_the_value_back() {
        on_thread(|| {
            let tid = this_thread();
            let start = nice_of(tid).unwrap();
            let mut p = ReaderPriority::new(start - 1);
            match p.raise() {
                Ok(raised) => assert_eq!(raised, Some(start - 1)),
                // not permitted (not root): nothing to put back
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}"),
            }
            drop(p);
            assert_eq!(nice_of(tid).unwrap(), start);
        });
    }
}
