//! The session: one BTF parse, one loader, the attached instances.

use std::collections::BTreeMap;

use aya::maps::RingBuf;
use aya::{Btf, EbpfLoader};
use vprobe_probes::abi;
use vprobe_probes::{Mechanism, ProbeDef};

use super::instance::{merge, Instance, InstanceId, SettingsPod};
use super::tables::Tables;
use super::{features, fentry, tp_btf, tracepoint, Features, SessionError};
use crate::agg::AggSnapshot;
use crate::filter;
use crate::plan::{Consumer, ProbeRequest};
use crate::symbols::Symbols;

/// Session tunables.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Ring-buffer size per `on_event` instance, bytes (power of two, ≥ page size).
    pub ring_bytes: u32,
    /// Entries per aggregation map.
    pub map_entries: u32,
    /// Mechanism kinds not to use (`tp_btf`, `tracepoint`): tests the fallbacks,
    /// and works around a mechanism that misbehaves on some kernel.
    pub disable: Vec<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            ring_bytes: 1 << 20,
            map_entries: 10240,
            disable: Vec::new(),
        }
    }
}

/// Loads, attaches and owns program instances; detaches on drop.
pub struct Session {
    btf: &'static Btf,
    loader: EbpfLoader<'static>,
    /// All-off settings for load-only checks (`list`, `doctor`): one per session.
    idle_settings: &'static SettingsPod,
    options: SessionOptions,
    instances: BTreeMap<InstanceId, Instance>,
    next: u64,
}

impl Session {
    /// Checks privileges and parses the kernel's BTF (once for the whole session).
    pub fn new(options: SessionOptions) -> Result<Self, SessionError> {
        let p = features::privileges();
        if !p.sufficient() {
            return Err(SessionError::Privileges(p.missing()));
        }
        // aya 0.14's EbpfLoader::new() parses vmlinux BTF itself and BtfTracePoint::load
        // needs another &Btf, which the loader does not expose: the loader's copy is
        // dropped and both use ours. Leaked: it lives as long as the
        // process needs BPF, and the loader borrows it for 'static.
        // Sequential on purpose: parsing ours on another thread while the loader parses
        // its copy saves ~17 ms of startup but holds two parsed BTFs at once (peak RSS
        // 52 MB instead of 33 MB, measured).
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        let btf = Btf::from_sys_fs().map_err(|e| SessionError::Btf(e.to_string()))?;
        let btf: &'static Btf = Box::leak(Box::new(btf));
        loader.btf(Some(btf));
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
        let mut settings =
            filter::settings(&req, symbols).map_err(|message| SessionError::Settings {
                origin: req.origin.clone(),
                message,
            })?;
        let tables = Tables::prepare(&req, &settings, symbols).map_err(|message| {
            SessionError::Settings {
                origin: req.origin.clone(),
                message,
            }
        })?;
        let events = matches!(req.consumer, Consumer::Events { .. });
        // Wake the reader once a quarter of the ring waits; a timer drains the rest.
        settings.wake_bytes = if events {
            u64::from(self.options.ring_bytes / 4)
        } else {
            u64::MAX
        };
        // The loader keeps a reference to the globals it patches; one small settings
        // block per instance lives for the process (a REPL session makes few).
        let settings: &'static SettingsPod = Box::leak(Box::new(SettingsPod(settings)));
        let object = vprobe_probes::objects::object(req.probe.object).ok_or_else(|| {
            SessionError::Unavailable {
                origin: req.origin.clone(),
                probe: req.probe.name.into(),
                reasons: vec![format!("object {} is not embedded", req.probe.object)],
            }
        })?;
        let page = 4096u32;
        self.loader
            .override_global("settings", settings, true)
            .map_max_entries(
                "events",
                if events {
                    self.options.ring_bytes.max(page)
                } else {
                    page
                },
            )
            .map_max_entries("counts", self.options.map_entries)
            .map_max_entries("hists", self.options.map_entries);
        tables.size_maps(&mut self.loader);

        let mut reasons = Vec::new();
        for mech in req.probe.mechanisms {
            if self.options.disable.iter().any(|d| d == mech.kind()) {
                reasons.push(format!("{}: disabled by request", mech.label()));
                continue;
            }
            let mut ebpf = match self.loader.load(object) {
                Ok(e) => e,
                Err(e) => {
                    reasons.push(format!("{}: loading the object failed: {e}", mech.label()));
                    continue;
                }
            };
            if let Err(e) = tables.fill(&mut ebpf) {
                reasons.push(format!("{}: {e}", mech.label()));
                continue;
            }
            match self.use_mechanism(&mut ebpf, mech, true) {
                Ok(()) => {
                    let ring = if events {
                        let map = ebpf
                            .take_map("events")
                            .expect("every object has an events ring");
                        Some(RingBuf::try_from(map).map_err(|e| SessionError::Map {
                            probe: req.probe.name.into(),
                            map: "events",
                            message: e.to_string(),
                        })?)
                    } else {
                        None
                    };
                    let id = InstanceId(self.next);
                    self.next += 1;
                    self.instances.insert(
                        id,
                        Instance {
                            request: req,
                            mechanism: *mech,
                            fallbacks: reasons,
                            ebpf,
                            ring,
                        },
                    );
                    return Ok(id);
                }
                Err(e) => reasons.push(format!("{}: {e}", mech.label())),
            }
        }
        Err(SessionError::Unavailable {
            origin: req.origin,
            probe: req.probe.name.into(),
            reasons,
        })
    }

    /// Which mechanism of `probe` works here: each is loaded (so the verifier
    /// runs) but not attached, then unloaded. Err lists why each failed.
    pub fn check_support(&mut self, probe: &'static ProbeDef) -> Result<Mechanism, Vec<String>> {
        let mut reasons = Vec::new();
        for mech in probe.mechanisms {
            match self.load_one(probe, mech) {
                Ok(()) => return Ok(*mech),
                Err(e) => reasons.push(format!("{}: {e}", mech.label())),
            }
        }
        Err(reasons)
    }

    /// Load-tested features for `vprobe doctor`: tp_btf, classic tracepoints,
    /// ring buffers (every object has one) and fentry.
    pub fn load_features(&mut self, into: &mut Features) {
        let skb = vprobe_probes::find("skb.drop").expect("skb.drop is in the catalog");
        let mut any = Err(String::new());
        for mech in skb.mechanisms {
            let r = self.load_one(skb, mech);
            into.push(
                mech.kind(),
                r.is_ok(),
                r.clone()
                    .map_or_else(|e| e, |()| format!("{} loads", mech.label())),
            );
            any = any.or(r);
        }
        // every object carries a ring buffer map, so any successful load created one
        into.push(
            "ringbuf",
            any.is_ok(),
            any.map_or_else(|e| e, |()| "BPF_MAP_TYPE_RINGBUF maps create".into()),
        );
        let fentry = self
            .loader
            .load(vprobe_probes::objects::object("feature").expect("feature object is embedded"))
            .map_err(|e| e.to_string())
            .and_then(|mut ebpf| {
                fentry::load(&mut ebpf, "vp_feat_fentry", "tcp_retransmit_skb", self.btf)
            });
        into.push(
            "fentry",
            fentry.is_ok(),
            fentry.map_or_else(
                |e| format!("{e}; fentry-based attach points fall back to tracepoints"),
                |()| "fentry programs load".into(),
            ),
        );
    }

    fn load_one(&mut self, probe: &'static ProbeDef, mech: &Mechanism) -> Result<(), String> {
        let object = vprobe_probes::objects::object(probe.object).ok_or("object missing")?;
        self.loader
            .override_global("settings", self.idle_settings, true)
            .map_max_entries("events", 4096);
        let mut ebpf = self.loader.load(object).map_err(|e| e.to_string())?;
        self.use_mechanism(&mut ebpf, mech, false)
    }

    /// Loads the mechanism's program from `ebpf` (the verifier runs) and, when
    /// `attach`, attaches it once; then its companions, which feed its state
    /// (sched.wakeup_latency's wakeup stamps), the same way.
    fn use_mechanism(
        &self,
        ebpf: &mut aya::Ebpf,
        mech: &Mechanism,
        attach: bool,
    ) -> Result<(), String> {
        for m in mech.companions() {
            self.use_program(ebpf, m, attach)
                .map_err(|e| format!("with {}: {e}", m.program()))?;
        }
        self.use_program(ebpf, mech, attach)
    }

    fn use_program(
        &self,
        ebpf: &mut aya::Ebpf,
        mech: &Mechanism,
        attach: bool,
    ) -> Result<(), String> {
        match (mech, attach) {
            (Mechanism::TpBtf { event, program }, false) => {
                tp_btf::load(ebpf, program, event, self.btf)
            }
            (Mechanism::TpBtf { event, program }, true) => {
                tp_btf::attach(ebpf, program, event, self.btf)
            }
            (
                Mechanism::Tracepoint {
                    category,
                    name,
                    program,
                },
                false,
            ) => tracepoint::load(ebpf, program, category, name),
            (
                Mechanism::Tracepoint {
                    category,
                    name,
                    program,
                },
                true,
            ) => tracepoint::attach(ebpf, program, category, name),
        }
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
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id)
    }

    /// One instance, to change.
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

    /// Kernel-side losses over all instances: (ring-buffer reserve failures, failed map inserts).
    pub fn lost(&self) -> (u64, u64) {
        self.instances.values().fold((0, 0), |(ev, mf), i| {
            (
                ev + i.loss(abi::LOSS_EVENTS),
                mf + i.loss(abi::LOSS_MAP_FULL),
            )
        })
    }
}
