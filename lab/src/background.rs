//! Background traffic between the guests: small UDP datagrams at a steady
//! rate each way, into a sink in the other guest. The relays move it like
//! anything else, so it costs the ring nothing while they keep up; while a
//! relay stalls it piles up in the ring and fills it, and the request/response
//! segments that arrive then are dropped: the late consumer of the seed case,
//! with a ring deep enough for the load itself.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::model::Guest;
use crate::netns::Namespace;

/// The discard port: what the sinks listen on.
const PORT: u16 = 9;
/// Payload bytes of each datagram.
const PAYLOAD: usize = 64;
/// How often a sender wakes to send what is due.
const TICK: Duration = Duration::from_millis(1);

/// The running senders and sinks; dropping it stops and joins them.
pub(crate) struct Background {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts, for each guest (with its namespace), a sink on port 9 and a
    /// sender of `pps` datagrams per second to the other guest's sink.
    pub fn start(
        guests: &[(&Guest, &Namespace)],
        pps: u32,
        on: Arc<AtomicBool>,
    ) -> Result<Background, LabError> {
        let mut bg = Background {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for (i, (g, ns)) in guests.iter().enumerate() {
            let peer = guests[(i + 1) % guests.len()].0;
            let here = SocketAddr::from((g.addr, PORT));
            let there = SocketAddr::from((peer.addr, PORT));
            let os = |what: String| move |source| LabError::Os { what, source };
            let sink = ns
                .run(|| UdpSocket::bind(here))?
                .map_err(os(format!("bind the background sink {here} in {}", g.name)))?;
            let sender = ns
                .run(|| {
                    let s = UdpSocket::bind((g.addr, 0))?;
                    s.connect(there)?;
                    Ok(s)
                })?
                .map_err(os(format!("background sender {} → {there}", g.name)))?;
            sink.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(os("background sink timeout".into()))?;
            bg.spawn(format!("vprobe-bg-{}-sink", g.name), move |stop| {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let _ = sink.recv(&mut buf);
                }
            })?;
            let on = on.clone();
            bg.spawn(format!("vprobe-bg-{}-send", g.name), move |stop| {
                let payload = [0u8; PAYLOAD];
                let mut start = Instant::now();
                let mut sent: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    if !on.load(Ordering::Relaxed) {
                        // paused: the pace starts again from the resume
                        start = Instant::now();
                        sent = 0;
                        std::thread::sleep(TICK);
                        continue;
                    }
                    let due = (start.elapsed().as_secs_f64() * f64::from(pps)) as u64;
                    while sent < due {
                        // a full socket buffer or an unreachable peer is
                        // background noise too: count it as sent
                        let _ = sender.send(&payload);
                        sent += 1;
                    }
                    std::thread::sleep(TICK);
                }
            })?;
        }
        Ok(bg)
    }

    fn spawn(
        &mut self,
        name: String,
        f: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<(), LabError> {
        let stop = self.stop.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || f(&stop))
            .map_err(|e| LabError::Os {
                what: "spawn a background traffic thread".into(),
                source: e,
            })?;
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
