//! The session: one BTF parse, one loader, the attached instances.

use std::collections::BTreeMap;

use aya::maps::RingBuf;
use aya::EbpfLoader;
use vprobe_probes::abi;
use vprobe_probes::{Mechanism, MechanismKind, ProbeDef};

use super::attach::{Attach, Side};
use super::fentry::Fentry;
use super::instance::{merge, Instance, InstanceId, SettingsPod};
use super::kernel_btf::KernelBtf;
use super::kprobe::Kprobe;
use super::raw_tracepoint::RawTracepoint;
use super::tables::Tables;
use super::tp_btf::TpBtf;
use super::tracepoint::Tracepoint;
use super::uprobe::Uprobe;
use super::{MapAccess, MechanismError, Reason, SessionError};
use crate::agg::AggSnapshot;
use crate::filter;
use crate::generic;
use crate::kernel::{self, Features};
use crate::plan::{Consumer, Origin, ProbeRequest};
use crate::symbols::Symbols;

/// Session tunables.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Ring-buffer size per `on_event` or capture instance, bytes (power of two,
    /// ≥ page size); `None`: each instance's from its record size
    /// ([`ring_bytes_of`]).
    pub ring_bytes: Option<u32>,
    /// Entries per aggregation map.
    pub map_entries: u32,
    /// Mechanism kinds not to use (`tp_btf`, `tracepoint`): tests the fallbacks,
    /// and works around a mechanism that misbehaves on some kernel.
    pub disable: Vec<MechanismKind>,
    /// Remember relocations and BTF ids for this kernel on disk, and use what
    /// was remembered (`btf_cache.rs`); off, every process parses the BTF.
    pub btf_cache: bool,
    /// Nice value of the thread that delivers events while it has rings to
    /// read (`live/priority.rs`); 0 leaves it as it is.
    pub reader_nice: i32,
}

/// The event rate an `on_event` ring is sized for: what `dev.xmit` sees under
/// 16 TCP_RR streams over veth on a 2-CPU host (~190k events/s, bench/bench.sh),
/// rounded up.
pub const RING_SIZED_FOR_EVENTS_PER_S: u64 = 200_000;

/// How long a ring must hold events at that rate when the reader is away (a
/// busy CPU, a slow callback): a few hundred milliseconds.
pub const RING_HOLDS_MS: u64 = 300;

/// Ring-buffer bytes that hold `ms` milliseconds of `rate` events per second of
/// `record` bytes each (plus the ring's 8-byte record header): a power of two,
/// at least a page, at most 256 MiB.
pub fn ring_bytes_for(rate: u64, ms: u64, record: usize) -> u32 {
    let per = record as u64 + 8;
    let want = rate.saturating_mul(ms).saturating_mul(per) / 1000;
    want.clamp(4096, 1 << 28).next_power_of_two() as u32
}

/// The ring of an instance with these settings: [`RING_HOLDS_MS`] of
/// [`RING_SIZED_FOR_EVENTS_PER_S`] records of the size its program reserves
/// (its fields, a capture's packet), and never more than a ring of records of
/// every field (a capture of long packets holds fewer).
pub fn ring_bytes_of(settings: &abi::Settings) -> u32 {
    let mut record = settings.event_bytes as usize;
    if settings.mode & abi::MODE_CAPTURE != 0 {
        record += std::mem::size_of::<abi::Packet>() + settings.snaplen as usize;
    }
    let at = |record| ring_bytes_for(RING_SIZED_FOR_EVENTS_PER_S, RING_HOLDS_MS, record);
    at(record).min(at(std::mem::size_of::<abi::Event>()))
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            ring_bytes: None,
            map_entries: 10240,
            disable: Vec::new(),
            btf_cache: true,
            reader_nice: crate::live::READER_NICE,
        }
    }
}

/// Entries of an aggregation map: `entries` when the program's `mode` writes it
/// (`bit`), else one (a map of one entry costs nothing to create).
fn entries_if(mode: u32, bit: u32, entries: u32) -> u32 {
    if mode & bit != 0 {
        entries
    } else {
        1
    }
}

/// Entries of the latency map (`starts`) when a request does not time calls.
const IDLE_STARTS: u32 = 64;

/// Why a mechanism did not work for a request.
#[derive(Debug)]
enum Failure {
    /// This kernel does not support it, or refused the program.
    Load(MechanismError),
    /// It loaded, but attaching failed (a missing function or symbol, ...).
    Attach(MechanismError),
}

/// The implementation of `mech`'s mechanism, bound to its hook: the one
/// place that tells the mechanisms apart.
fn attacher(mech: &Mechanism) -> Box<dyn Attach> {
    match *mech {
        Mechanism::TpBtf { event, .. } => Box::new(TpBtf { event }),
        Mechanism::RawTracepoint { event, .. } => Box::new(RawTracepoint { event }),
        Mechanism::Tracepoint { category, name, .. }
        | Mechanism::TracepointFormat { category, name, .. } => Box::new(Tracepoint {
            category,
            event: name,
        }),
        Mechanism::Kprobe { function, .. } => Box::new(Kprobe { function }),
        Mechanism::Fentry { function, .. } => Box::new(Fentry { function }),
        Mechanism::Uprobe { target, symbol, .. } => Box::new(Uprobe { target, symbol }),
    }
}

/// Which mechanisms of an attach point work here.
#[derive(Clone, Debug)]
pub struct Support {
    /// The attach point.
    pub probe: &'static ProbeDef,
    /// Each mechanism, in preference order, with why it does not work.
    pub mechanisms: Vec<(Mechanism, Result<(), MechanismError>)>,
}

impl Support {
    /// The mechanism an attach would use: the first that works.
    pub fn chosen(&self) -> Option<Mechanism> {
        self.mechanisms
            .iter()
            .find(|(_, r)| r.is_ok())
            .map(|(m, _)| *m)
    }

    /// Why none works: each mechanism's reason (labelled when there are several).
    pub fn reason(&self) -> Option<String> {
        if self.chosen().is_some() {
            return None;
        }
        let one = self.mechanisms.len() == 1;
        Some(
            self.mechanisms
                .iter()
                .filter_map(|(m, r)| {
                    r.as_ref().err().map(|e| {
                        if one {
                            e.to_string()
                        } else {
                            format!("{}: {e}", m.label())
                        }
                    })
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// Loads, attaches and owns program instances; detaches on drop.
pub struct Session {
    btf: KernelBtf,
    loader: EbpfLoader<'static>,
    /// All-off settings for load-only checks (`list`, `doctor`): one per session.
    idle_settings: &'static SettingsPod,
    options: SessionOptions,
    instances: BTreeMap<InstanceId, Instance>,
    next: u64,
}

impl Session {
    /// Checks privileges; the kernel's BTF is parsed only if a load needs it
    /// (nothing remembered for this kernel), once for the whole process.
    pub fn new(options: SessionOptions) -> Result<Self, SessionError> {
        let p = kernel::privileges();
        if !p.sufficient() {
            return Err(SessionError::Privileges(p));
        }
        // Every object has CO-RE relocations: without the kernel's BTF nothing
        // loads, which is said once here rather than once per mechanism.
        if !kernel::has_btf() {
            return Err(SessionError::Btf(aya::BtfError::FileError {
                path: kernel::VMLINUX_BTF.into(),
                error: std::io::ErrorKind::NotFound.into(),
            }));
        }
        // aya's one-time feature probes (a dozen tiny loads)
        aya::features();
        let btf = KernelBtf::new(options.btf_cache);
        // Relocation goes through `KernelBtf::relocator`, never a BTF of the loader's.
        let mut loader = EbpfLoader::with_btf(None);
        // Per-instance verifier logs are not kept: errors carry the tail of the log.
        loader.verifier_log_level(aya::VerifierLogLevel::DEBUG);
        Ok(Self {
            btf,
            loader,
            idle_settings: Box::leak(Box::new(SettingsPod(abi::Settings::default()))),
            options,
            instances: BTreeMap::new(),
            next: 0,
        })
    }

    /// Loads and attaches one request with the first mechanism that works here.
    pub fn attach(
        &mut self,
        req: ProbeRequest,
        symbols: &Symbols,
    ) -> Result<InstanceId, SessionError> {
        self.attach_all(vec![req], symbols)
            .pop()
            .expect("one request, one result")
    }

    /// Loads and attaches every request, each with the first mechanism that
    /// works here: one result per request, in order. Objects load and verify
    /// independently, so several requests load side by side on as many CPUs.
    pub fn attach_all(
        &mut self,
        reqs: Vec<ProbeRequest>,
        symbols: &Symbols,
    ) -> Vec<Result<InstanceId, SessionError>> {
        let prepared: Vec<_> = reqs
            .into_iter()
            .map(|req| self.prepare(req, symbols))
            .collect();
        let (options, btf) = (&self.options, &self.btf);
        let loaded = side_by_side(prepared, |p| {
            p.map_err(LoadFailure::Error)
                .and_then(|p| load(options, btf, p))
        });
        loaded
            .into_iter()
            .map(|r| match r {
                Ok(instance) => {
                    let id = InstanceId(self.next);
                    self.next += 1;
                    self.instances.insert(id, instance);
                    Ok(id)
                }
                Err(LoadFailure::Error(e)) => Err(e),
                Err(LoadFailure::Unavailable {
                    origin,
                    probe,
                    reasons,
                }) => Err(SessionError::Unavailable {
                    origin,
                    probe: probe.name.into(),
                    reasons,
                    hint: self.hint(probe),
                }),
            })
            .collect()
    }

    /// What loading `req` needs, decided before any load: its settings, its
    /// kernel-text tables and a loader sized for it.
    fn prepare(&self, req: ProbeRequest, symbols: &Symbols) -> Result<Prepared, SessionError> {
        let origin = req.origin.clone();
        let req = generic::narrow(req).map_err(|error| SessionError::Request {
            origin,
            error: Box::new(error),
        })?;
        let mut settings =
            filter::settings(&req, symbols).map_err(|error| SessionError::Filter {
                origin: req.origin.clone(),
                error: Box::new(error),
            })?;
        let tables =
            Tables::prepare(&req, &settings, symbols).map_err(|error| SessionError::Tables {
                origin: req.origin.clone(),
                error,
            })?;
        let events = req.consumer.emits();
        // Keys packed to the fields aggregated by (abi::key_words): the maps'
        // key sizes, and how far the program zero-fills its key buffer.
        let count_words = abi::key_words(settings.key_mask, false);
        let hist_words = abi::key_words(settings.key_mask, true);
        settings.key_words = hist_words as u32;
        let page = 4096u32;
        let ring_bytes = if events {
            self.options
                .ring_bytes
                .unwrap_or_else(|| ring_bytes_of(&settings))
                .max(page)
        } else {
            page
        };
        // Wake the reader once a quarter of the ring waits; a timer drains the rest.
        settings.wake_bytes = if events {
            u64::from(ring_bytes / 4)
        } else {
            u64::MAX
        };
        // The loader keeps a reference to the globals it patches; one small settings
        // block per instance lives for the process (a REPL session makes few).
        let settings: &'static SettingsPod = Box::leak(Box::new(SettingsPod(settings)));
        let entries = self.options.map_entries;
        let counts = entries_if(settings.0.mode, abi::MODE_COUNT, entries);
        let hists = entries_if(settings.0.mode, abi::MODE_HIST, entries);
        let mut loader = EbpfLoader::with_btf(None);
        loader
            .verifier_log_level(aya::VerifierLogLevel::DEBUG)
            .override_global("settings", settings, true)
            .map_max_entries("events", ring_bytes)
            // an aggregation map the program never writes costs its buckets in
            // the kernel and its allocation at startup: one entry
            .map_max_entries("counts", counts)
            .map_max_entries("hists", hists)
            .map_key_size("counts", 8 * count_words as u32)
            .map_key_size("hists", 8 * hist_words as u32)
            .map_max_entries(
                "starts",
                if settings.0.timing != 0 {
                    self.options.map_entries
                } else {
                    IDLE_STARTS
                },
            );
        tables.size_maps(&mut loader);
        Ok(Prepared {
            req,
            key_mask: settings.0.key_mask,
            timing: settings.0.timing != 0,
            tables,
            loader,
        })
    }

    /// For a function probe that cannot attach: a catalog attach point that
    /// sees the same events and works here.
    fn hint(&mut self, probe: &'static ProbeDef) -> Option<String> {
        let alt = generic::alternative(generic::function_of(probe)?)?;
        if alt.name == probe.name {
            return None;
        }
        let mech = self.check_support(alt).ok()?;
        Some(format!(
            "use `{}` instead, which works here ({})",
            alt.name,
            mech.label()
        ))
    }

    /// Which mechanism of `probe` works here: each is loaded (so the verifier
    /// runs) but not attached, then unloaded. Err lists why each failed.
    pub fn check_support(&mut self, probe: &'static ProbeDef) -> Result<Mechanism, Vec<Reason>> {
        let support = self.support(&[probe]).pop().expect("one probe, one answer");
        match support.chosen() {
            Some(m) => Ok(m),
            None => Err(support
                .mechanisms
                .into_iter()
                .filter_map(|(mechanism, r)| {
                    r.err().map(|error| Reason {
                        mechanism,
                        labelled: true,
                        error,
                    })
                })
                .collect()),
        }
    }

    /// Every mechanism of every probe in `probes`, load-tested (not attached).
    /// Each object is loaded once (its maps made once, at their smallest) and
    /// each program loaded once, however many probes share it: `vprobe list`
    /// stays fast.
    pub fn support(&mut self, probes: &[&'static ProbeDef]) -> Vec<Support> {
        self.loader
            .override_global("settings", self.idle_settings, true)
            .map_max_entries("events", 4096)
            .map_max_entries("counts", 1)
            .map_max_entries("hists", 1)
            .map_max_entries("starts", IDLE_STARTS);
        let mut objects: BTreeMap<&'static str, Result<aya::Ebpf, MechanismError>> =
            BTreeMap::new();
        // (object, mechanism label) → result: a program is loaded once
        let mut done: BTreeMap<(&'static str, String), Result<(), MechanismError>> =
            BTreeMap::new();
        let mut out = Vec::new();
        for &probe in probes {
            let mut mechanisms = Vec::new();
            for mech in probe.mechanisms {
                let key = (
                    probe.object.name,
                    format!("{}#{}", mech.label(), mech.program()),
                );
                let r = if self.options.disable.contains(&mech.kind()) {
                    Err(MechanismError::Disabled)
                } else if let Some(r) = done.get(&key) {
                    r.clone()
                } else {
                    let ebpf = objects.entry(probe.object.name).or_insert_with(|| {
                        self.loader
                            .relocator(self.btf.relocator(probe.object.name, probe.object.bytes()))
                            .programs(None)
                            .load(probe.object.bytes())
                            .map_err(|e| MechanismError::Object(e.into()))
                    });
                    let r = match ebpf {
                        Ok(ebpf) => load_mechanism(&self.btf, ebpf, mech),
                        Err(e) => Err(e.clone()),
                    };
                    done.insert(key, r.clone());
                    r
                };
                mechanisms.push((*mech, r));
            }
            out.push(Support { probe, mechanisms });
        }
        out
    }

    /// Load-tested features for `vprobe doctor`: tp_btf, raw and classic
    /// tracepoints, ring buffers (every object has one), fentry and uprobes.
    pub fn load_features(&mut self, into: &mut Features) {
        let queue = vprobe_probes::find("dev.queue").expect("dev.queue is in the catalog");
        let uprobe = generic::representative("uprobe").expect("uprobes are generic");
        let fentry = generic::representative("fentry").expect("fentry is generic");
        let all = self.support(&[queue, fentry, uprobe]);
        for (mech, r) in &all[0].mechanisms {
            into.push(
                mech.kind().as_str(),
                r.is_ok(),
                match r {
                    Ok(()) => format!("{} loads", mech.label()),
                    Err(e) => e.to_string(),
                },
            );
        }
        // every object carries a ring buffer map, so any successful load created one
        let ringbuf = all[0].mechanisms.iter().any(|(_, r)| r.is_ok());
        into.push(
            "ringbuf",
            ringbuf,
            if ringbuf {
                "BPF_MAP_TYPE_RINGBUF maps create".into()
            } else {
                // the last mechanism's error
                all[0]
                    .mechanisms
                    .iter()
                    .rev()
                    .find_map(|(_, r)| r.as_ref().err())
                    .map(ToString::to_string)
                    .unwrap_or_default()
            },
        );
        let (_, fentry) = &all[1].mechanisms[0];
        into.push(
            "fentry",
            fentry.is_ok(),
            match fentry {
                Ok(()) => "fentry programs load".into(),
                Err(e) => format!(
                    "{e}; fentry:FUNC cannot attach, and attach points fall back to other mechanisms"
                ),
            },
        );
        let (_, uprobe) = &all[2].mechanisms[0];
        if let Some(f) = into.features.iter_mut().find(|f| f.name == "uprobe") {
            if f.ok {
                f.ok = uprobe.is_ok();
                f.detail = match uprobe {
                    Ok(()) => "uprobe programs load".into(),
                    Err(e) => e.to_string(),
                };
            }
        }
    }

    /// One instance.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id)
    }

    /// Detaches and unloads one instance; false if unknown.
    pub fn detach(&mut self, id: InstanceId) -> bool {
        self.instances.remove(&id).is_some()
    }

    /// Detaches everything.
    pub fn detach_all(&mut self) {
        self.instances.clear();
    }

    /// The attached instances.
    pub fn instances(&self) -> impl Iterator<Item = (InstanceId, &Instance)> {
        self.instances.iter().map(|(k, v)| (*k, v))
    }

    /// One instance.
    pub fn instance_mut(&mut self, id: InstanceId) -> Option<&mut Instance> {
        self.instances.get_mut(&id)
    }

    /// Names of the aggregations being fed, in first-attach order.
    pub fn aggregation_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for i in self.instances.values() {
            if let Some(n) = i.request.consumer.agg_name() {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        names
    }

    /// The aggregation `name`, merged over every instance that feeds it.
    pub fn snapshot(
        &self,
        name: &str,
        symbols: &Symbols,
    ) -> Result<Option<AggSnapshot>, SessionError> {
        let mut out: Option<AggSnapshot> = None;
        for i in self
            .instances
            .values()
            .filter(|i| i.request.consumer.agg_name() == Some(name))
        {
            if let Some(s) = i.snapshot(symbols)? {
                match &mut out {
                    None => out = Some(s),
                    Some(o) => merge(o, s),
                }
            }
        }
        Ok(out)
    }

    /// Every aggregation.
    pub fn snapshots(&self, symbols: &Symbols) -> Result<Vec<AggSnapshot>, SessionError> {
        let mut v = Vec::new();
        for n in self.aggregation_names() {
            if let Some(s) = self.snapshot(&n, symbols)? {
                v.push(s);
            }
        }
        Ok(v)
    }

    /// Empties the aggregation `name`; false if no instance feeds it.
    pub fn clear(&mut self, name: &str) -> Result<bool, SessionError> {
        let mut found = false;
        for i in self
            .instances
            .values_mut()
            .filter(|i| i.request.consumer.agg_name() == Some(name))
        {
            i.clear()?;
            found = true;
        }
        Ok(found)
    }

    /// Aggregation updates refused because the map of `name` was full,
    /// over every instance that feeds it.
    pub fn map_full(&self, name: &str) -> u64 {
        self.instances
            .values()
            .filter(|i| i.request.consumer.agg_name() == Some(name))
            .map(|i| i.losses().map_full)
            .sum()
    }
}

/// A request ready to load: everything decided, nothing touched in the kernel.
struct Prepared {
    req: ProbeRequest,
    /// `abi::Settings::key_mask`: what the aggregation keys hold.
    key_mask: u32,
    /// Whether the return side is loaded too (latency).
    timing: bool,
    tables: Tables,
    loader: EbpfLoader<'static>,
}

/// Why a request did not load: an error, or no mechanism worked (the session
/// then looks for an alternative to suggest).
enum LoadFailure {
    Error(SessionError),
    Unavailable {
        origin: Origin,
        probe: &'static ProbeDef,
        reasons: Vec<Reason>,
    },
}

/// `f` of every item, on as many threads as there are CPUs and items (this one
/// included), the results in the items' order.
fn side_by_side<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let results = std::sync::Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>());
    let work = || loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
        let Some((i, item)) = next else { break };
        let r = f(item);
        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was worked on"))
        .collect()
}

/// Loads and attaches a prepared request with the first of its probe's
/// mechanisms that works here.
fn load(
    options: &SessionOptions,
    btf: &KernelBtf,
    prepared: Prepared,
) -> Result<Instance, LoadFailure> {
    let Prepared {
        req,
        key_mask,
        timing,
        tables,
        mut loader,
    } = prepared;
    let events = req.consumer.emits();
    let capture = matches!(req.consumer, Consumer::Capture(_));
    let object = req.probe.object.bytes();
    let mut reasons = Vec::new();
    // whether every mechanism tried loaded and only the attach failed
    let mut attach_only = true;
    // a probe with one way of attaching is named after it: no label needed
    let labelled = req.probe.mechanisms.len() > 1;
    let why = |mech: &Mechanism, error: MechanismError| Reason {
        mechanism: *mech,
        labelled,
        error,
    };
    for mech in req.probe.mechanisms {
        if options.disable.contains(&mech.kind()) {
            reasons.push(why(mech, MechanismError::Disabled));
            attach_only = false;
            continue;
        }
        if capture && !req.probe.capture.works_with(mech.kind()) {
            reasons.push(why(mech, MechanismError::NoPacket));
            attach_only = false;
            continue;
        }
        // only this mechanism's programs are linked and loaded
        let programs = mech
            .companions()
            .iter()
            .map(|c| c.program())
            .chain([mech.program()])
            .chain(mech.exit().filter(|_| timing))
            .map(str::to_string)
            .collect();
        let loaded = loader
            .relocator(btf.relocator(req.probe.object.name, object))
            .programs(Some(programs))
            .load(object);
        let mut ebpf = match loaded {
            Ok(e) => e,
            Err(e) => {
                reasons.push(why(mech, MechanismError::Object(e.into())));
                attach_only = false;
                continue;
            }
        };
        if let Err(e) = tables.fill(&mut ebpf, mech) {
            reasons.push(why(mech, e.into()));
            attach_only = false;
            continue;
        }
        match attach_mechanism(btf, &mut ebpf, mech, timing) {
            Ok(()) => {
                let ring = if events {
                    let map = ebpf
                        .take_map("events")
                        .expect("every object has an events ring");
                    Some(RingBuf::try_from(map).map_err(|e| {
                        LoadFailure::Error(SessionError::Map {
                            probe: req.probe.name.into(),
                            map: "events",
                            error: MapAccess::Map(e),
                        })
                    })?)
                } else {
                    None
                };
                return Ok(Instance {
                    request: req,
                    mechanism: *mech,
                    fallbacks: reasons,
                    key_mask,
                    ebpf,
                    ring,
                });
            }
            Err(Failure::Attach(e)) => reasons.push(why(mech, e)),
            Err(Failure::Load(e)) => {
                attach_only = false;
                reasons.push(why(mech, e));
            }
        }
    }
    if attach_only && !reasons.is_empty() {
        return Err(LoadFailure::Error(SessionError::Attach {
            origin: req.origin,
            probe: req.probe.name.into(),
            reasons,
        }));
    }
    Err(LoadFailure::Unavailable {
        origin: req.origin,
        probe: req.probe,
        reasons,
    })
}

/// Loads the mechanism's program from `ebpf` (the verifier runs), and its
/// companions, which feed its state (sched.wakeup_latency's wakeup
/// stamps): whether this kernel supports the mechanism at all.
fn load_mechanism(
    btf: &KernelBtf,
    ebpf: &mut aya::Ebpf,
    mech: &Mechanism,
) -> Result<(), MechanismError> {
    for c in mech.companions() {
        attacher(c)
            .load(ebpf, c.program(), Side::Entry, btf)
            .map_err(|e| e.companion(c.program()))?;
    }
    attacher(mech).load(ebpf, mech.program(), Side::Entry, btf)
}

/// Loads and attaches the mechanism's program and its companions, and
/// with `timing` its return-side program too (latency).
fn attach_mechanism(
    btf: &KernelBtf,
    ebpf: &mut aya::Ebpf,
    mech: &Mechanism,
    timing: bool,
) -> Result<(), Failure> {
    load_mechanism(btf, ebpf, mech).map_err(Failure::Load)?;
    for c in mech.companions() {
        attacher(c)
            .attach(ebpf, c.program(), Side::Entry)
            .map_err(|e| Failure::Attach(e.companion(c.program())))?;
    }
    let hook = attacher(mech);
    hook.attach(ebpf, mech.program(), Side::Entry)
        .map_err(Failure::Attach)?;
    let Some(exit) = mech.exit().filter(|_| timing) else {
        return Ok(());
    };
    hook.load(ebpf, exit, Side::Exit, btf)
        .map_err(Failure::Load)?;
    hook.attach(ebpf, exit, Side::Exit).map_err(Failure::Attach)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_hold_the_rate_they_are_sized_for() {
        // a page at least, a power of two, never less than asked
        assert_eq!(ring_bytes_for(0, 300, 200), 4096);
        assert_eq!(ring_bytes_for(1000, 300, 200), 65536); // 62 400 bytes
        let b = ring_bytes_for(200_000, 300, 208);
        assert!(b.is_power_of_two());
        assert!(u64::from(b) >= 200_000 * 300 * 216 / 1000);
        assert!(u64::from(b) < 2 * 200_000 * 300 * 216 / 1000);
        assert_eq!(ring_bytes_for(u64::MAX, 300, 208), 1 << 28);
        // an instance's ring holds RING_HOLDS_MS of RING_SIZED_FOR_EVENTS_PER_S
        // of its own records, at most as much as one of records of every field
        let held_ms = |s: &abi::Settings, record: usize| {
            u64::from(ring_bytes_of(s)) * 1000 / (RING_SIZED_FOR_EVENTS_PER_S * (record as u64 + 8))
        };
        let mut s = abi::Settings {
            mode: abi::MODE_EVENTS,
            event_fields: 0b1_0111 | 1 << abi::KEY_DEV, // dev.xmit
            ..abi::Settings::default()
        };
        s.event_bytes = abi::event_bytes(s.event_fields) as u32;
        assert!(held_ms(&s, 64) >= RING_HOLDS_MS, "{} ms", held_ms(&s, 64));
        let full = ring_bytes_for(
            RING_SIZED_FOR_EVENTS_PER_S,
            RING_HOLDS_MS,
            std::mem::size_of::<abi::Event>(),
        );
        assert!(ring_bytes_of(&s) < full);
        s.event_fields = abi::EVENT_FIELDS;
        s.event_bytes = abi::event_bytes(s.event_fields) as u32;
        assert_eq!(ring_bytes_of(&s), full);
        assert!(held_ms(&s, 256) >= RING_HOLDS_MS, "{} ms", held_ms(&s, 256));
        // a capture's packets count; long ones get no more than the full ring
        s.mode = abi::MODE_CAPTURE;
        s.snaplen = 128;
        s.event_fields = 0b1_0111 | 1 << abi::KEY_DEV;
        s.event_bytes = abi::event_bytes(s.event_fields) as u32;
        assert!(held_ms(&s, 64 + 16 + 128) >= RING_HOLDS_MS);
        s.snaplen = abi::SNAP_MAX;
        assert_eq!(ring_bytes_of(&s), full);
    }

    #[test]
    fn only_the_maps_a_program_writes_are_sized() {
        let count = abi::MODE_COUNT;
        let both = abi::MODE_COUNT | abi::MODE_HIST;
        assert_eq!(entries_if(count, abi::MODE_COUNT, 10240), 10240);
        assert_eq!(entries_if(count, abi::MODE_HIST, 10240), 1);
        assert_eq!(entries_if(both, abi::MODE_HIST, 10240), 10240);
        assert_eq!(entries_if(abi::MODE_EVENTS, abi::MODE_COUNT, 10240), 1);
    }
}
