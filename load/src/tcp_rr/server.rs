//! The TCP_RR server: a thread accepting, a thread per connection answering.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, Backlog};
use serde::Serialize;

use super::protocol::{read_full, Hello, HelloError, HELLO_LEN, HELLO_OK};
use crate::{enter, lock, LoadError, Netns};

/// The server's limit for a client's hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServeStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Transactions answered.
    pub transactions: u64,
    /// Connections that ended with an error (a failed hello, a reset).
    pub errors: u64,
}

struct Conn {
    /// A dup of the socket, so the server can shut it down.
    sock: TcpStream,
    served: Arc<AtomicU64>,
    thread: JoinHandle<Result<(), ConnError>>,
}

struct ServerShared {
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, Conn>>,
    /// Totals of connections already reaped.
    closed: Mutex<ServeStats>,
}

impl ServerShared {
    /// Joins connections whose thread has ended, adding them to the totals.
    fn reap(&self, all: bool) {
        let ended: Vec<Conn> = {
            let mut conns = lock(&self.conns);
            let ids: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| all || c.thread.is_finished())
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| conns.remove(id)).collect()
        };
        for c in ended {
            if all {
                let _ = c.sock.shutdown(Shutdown::Both);
            }
            let failed = !matches!(c.thread.join(), Ok(Ok(())));
            let mut closed = lock(&self.closed);
            closed.transactions += c.served.load(Ordering::Relaxed);
            closed.errors += u64::from(failed && !self.stop.load(Ordering::Acquire));
        }
    }

    fn stats(&self) -> ServeStats {
        let conns = lock(&self.conns);
        let mut s = *lock(&self.closed);
        s.active = conns.len() as u64;
        s.transactions += conns
            .values()
            .map(|c| c.served.load(Ordering::Relaxed))
            .sum::<u64>();
        s
    }
}

/// A running TCP_RR server. Dropping it stops it and waits for its threads.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<ServerShared>,
    /// A dup of the listening socket, so `stop` can wake `accept`.
    listener: TcpListener,
    acceptor: Option<JoinHandle<()>>,
}

/// Starts a server on `bind` (port 0: any free port, see
/// [`ServerHandle::local_addr`]), its listening socket made in `netns` when
/// given: one thread accepting, one per connection answering each request with
/// a response of the size the client asked for. Returns once it listens.
pub fn serve(bind: SocketAddr, netns: Option<Netns>) -> Result<ServerHandle, LoadError> {
    let shared = Arc::new(ServerShared {
        stop: AtomicBool::new(false),
        conns: Mutex::new(HashMap::new()),
        closed: Mutex::new(ServeStats::default()),
    });
    let (ready_tx, ready_rx) = mpsc::channel();
    let acc_shared = shared.clone();
    let acceptor = std::thread::Builder::new()
        .name("vprobe-serve".into())
        .spawn(move || {
            let listener = match listen(bind, netns.as_ref()) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let dup = listener
                .try_clone()
                .and_then(|d| Ok((listener.local_addr()?, d)));
            let ok = dup.is_ok();
            let _ = ready_tx.send(dup.map_err(|source| LoadError::Bind { addr: bind, source }));
            if ok {
                accept_loop(&listener, &acc_shared);
            }
        })
        .map_err(|source| LoadError::Spawn {
            what: "the server thread".into(),
            source,
        })?;
    match ready_rx.recv() {
        Ok(Ok((local_addr, listener))) => Ok(ServerHandle {
            local_addr,
            shared,
            listener,
            acceptor: Some(acceptor),
        }),
        Ok(Err(e)) => {
            let _ = acceptor.join();
            Err(e)
        }
        Err(_) => {
            let _ = acceptor.join();
            Err(LoadError::Spawn {
                what: "the server thread".into(),
                source: io::Error::other("it ended before listening"),
            })
        }
    }
}

fn listen(bind: SocketAddr, netns: Option<&Netns>) -> Result<TcpListener, LoadError> {
    if let Some(ns) = netns {
        enter(ns)?;
    }
    let l = TcpListener::bind(bind).map_err(|source| LoadError::Bind { addr: bind, source })?;
    // std listens with a backlog of 128, but all the streams of a run (up to
    // MAX_STREAMS) connect at once: as many as the system allows
    // (net.core.somaxconn, 4096 by default). Listening again on a listening
    // socket only changes its backlog.
    let _ = socket::listen(&l, Backlog::MAXALLOWABLE);
    Ok(l)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<ServerShared>) {
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        shared.reap(false);
        let sock = match accepted {
            Ok((s, _)) => s,
            Err(e) => match e.raw_os_error().map(Errno::from_raw) {
                // out of fds or memory: wait for some to be released
                Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                _ => continue, // ECONNABORTED, EINTR, EPROTO…: that one connection
            },
        };
        let Ok(dup) = sock.try_clone() else {
            lock(&shared.closed).errors += 1;
            continue;
        };
        let served = Arc::new(AtomicU64::new(0));
        let s2 = shared.clone();
        let counter = served.clone();
        let spawned = std::thread::Builder::new()
            .name("vprobe-serve-conn".into())
            .spawn(move || answer(&sock, &counter, &s2.stop));
        let mut closed = lock(&shared.closed);
        closed.connections += 1;
        match spawned {
            Ok(thread) => {
                drop(closed);
                lock(&shared.conns).insert(
                    next_id,
                    Conn {
                        sock: dup,
                        served,
                        thread,
                    },
                );
                next_id += 1;
            }
            Err(_) => closed.errors += 1,
        }
    }
    shared.reap(true);
}

/// Why a connection ended badly (counted in [`ServeStats::errors`]).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("hello")]
    Hello(#[source] io::Error),
    #[error(transparent)]
    Refused(#[from] HelloError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One connection: the hello, then a response for every request until the
/// client closes.
fn answer(sock: &TcpStream, served: &AtomicU64, stop: &AtomicBool) -> Result<(), ConnError> {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(HELLO_TIMEOUT));
    let mut hello = [0u8; HELLO_LEN];
    match read_full(sock, &mut hello) {
        Ok(true) => {}
        Ok(false) => return Ok(()), // a port probe
        Err(e) => return Err(ConnError::Hello(e)),
    }
    let Hello {
        request_size,
        response_size,
    } = Hello::decode(&hello)?;
    let mut w = sock;
    w.write_all(HELLO_OK)?;
    let _ = sock.set_read_timeout(None);
    let mut request = vec![0u8; request_size];
    let response = vec![b'R'; response_size];
    let mut n = 0u64;
    loop {
        match read_full(sock, &mut request) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(_) if stop.load(Ordering::Acquire) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = w.write_all(&response) {
            return if stop.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        n += 1;
        served.store(n, Ordering::Relaxed);
    }
}

impl ServerHandle {
    /// The address it listens on (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections and transactions so far.
    pub fn stats(&self) -> ServeStats {
        self.shared.stats()
    }

    /// Stops accepting and closes every connection; returns at once.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wakes accept() (EINVAL on a listener that is shut down).
        let _ = self.listener_shutdown();
    }

    fn listener_shutdown(&self) -> nix::Result<()> {
        // std's TcpListener has no shutdown
        socket::shutdown(self.listener.as_raw_fd(), socket::Shutdown::Both)
    }

    /// Stops (if not yet) and waits for every thread; the final counts.
    pub fn join(mut self) -> ServeStats {
        self.stop();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.shared.stats()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(t) = self.acceptor.take() {
            self.stop();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_refuses_a_busy_address() {
        let server = serve("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let e = serve(server.local_addr(), None).err().unwrap();
        assert!(matches!(e, LoadError::Bind { .. }), "{e}");
    }
}
