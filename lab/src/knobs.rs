//! What lab to build: a topology and its knobs, written `macvtap:qlen=8,stall=20ms/1s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{LabError, SpecError, ValueError};
use vprobe_time::duration;

/// The shapes of lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Two hosts joined by a veth wire; on each, a bridge-mode macvtap on the
    /// wire and a relay playing vhost-net between its char device and a guest's tap.
    Macvtap,
    /// One host with a bridge: guest A behind a tap (and a relay), a veth to guest B.
    Bridge,
    /// Two guests joined by a veth pair, nothing in between.
    Veth,
}

impl Topology {
    /// Every topology, in the order `vprobe lab` lists them.
    pub const ALL: [Topology; 3] = [Topology::Macvtap, Topology::Bridge, Topology::Veth];

    /// The name used in lab specs.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Macvtap => "macvtap",
            Topology::Bridge => "bridge",
            Topology::Veth => "veth",
        }
    }

    /// One line on what it builds.
    pub fn about(self) -> &'static str {
        match self {
            Topology::Macvtap => {
                "guest A ~ relay ~ macvtap0 on nic0 (host A) == veth wire == nic1 (host B) with macvtap1 ~ relay ~ guest B"
            }
            Topology::Bridge => "guest A ~ relay ~ tap0 on br0 (host) with veth nic0 == eth0 of guest B",
            Topology::Veth => "guest A eth0 == eth0 guest B (a veth pair)",
        }
    }

    /// Whether it has relays, and so takes the relay and ring knobs.
    pub fn has_relay(self) -> bool {
        !matches!(self, Topology::Veth)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The relay pauses `pause` every `every`: a vhost thread that is not scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// How long each pause lasts.
    pub pause: Duration,
    /// How often a pause starts.
    pub every: Duration,
}

/// The knobs of a lab with relays (`macvtap`, `bridge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Ring size of each macvtap (`bridge`: of the tap) queue: its `txqueuelen`,
    /// set before the relay opens the char device, which sizes the ring.
    pub qlen: u32,
    /// Queues per macvtap/tap; one relay thread pair per queue.
    pub queues: u32,
    /// Frames the relay moves per wakeup, per direction.
    pub batch: u32,
    /// Pauses of the host → guest direction of every relay; `None`: never.
    pub stall: Option<Stall>,
    /// CPU every relay thread is pinned to; `None`: not pinned.
    pub cpu: Option<usize>,
    /// UDP datagrams per second each guest sends the other in the
    /// background; 0: none.
    pub background: u32,
}

impl Default for Knobs {
    /// The seed case, a consumer that is late: a ring of 64 holds a
    /// 16-stream TCP_RR load and 3000 background datagrams a second each way
    /// while the relay keeps up; when it stalls (30 ms every second) the
    /// background fills the ring within about 16 ms and the segments that
    /// arrive next are dropped.
    fn default() -> Knobs {
        Knobs {
            qlen: 64,
            queues: 1,
            batch: 64,
            stall: Some(Stall {
                pause: Duration::from_millis(30),
                every: Duration::from_secs(1),
            }),
            cpu: None,
            background: 3000,
        }
    }
}

/// One knob's documentation, for `vprobe lab --help` and errors.
#[derive(Clone, Copy, Debug)]
pub struct KnobDoc {
    /// Its name in a spec.
    pub name: &'static str,
    /// Its value when not given.
    pub default: &'static str,
    /// The values it takes.
    pub values: &'static str,
    /// What it does.
    pub about: &'static str,
}

/// Every knob (of `macvtap` and `bridge`; `veth` takes none).
pub const KNOBS: &[KnobDoc] = &[
    KnobDoc {
        name: "qlen",
        default: "64",
        values: "1..=65536",
        about: "ring size of each macvtap (bridge: tap) queue, i.e. its txqueuelen",
    },
    KnobDoc {
        name: "queues",
        default: "1",
        values: "1..=16",
        about: "queues per macvtap/tap; one relay thread pair per queue",
    },
    KnobDoc {
        name: "batch",
        default: "64",
        values: "1..=4096",
        about: "frames the relay moves per wakeup, per direction",
    },
    KnobDoc {
        name: "stall",
        default: "30ms/1s",
        values: "PAUSE/PERIOD or off",
        about: "the relay stops reading the macvtap for PAUSE every PERIOD (a descheduled vhost thread)",
    },
    KnobDoc {
        name: "background",
        default: "3000",
        values: "0..=100000 or off",
        about: "UDP datagrams per second each guest sends the other: nothing for the rings while the relays keep up, enough to fill one while its relay stalls",
    },
    KnobDoc {
        name: "cpu",
        default: "any",
        values: "a CPU number or any",
        about: "pin every relay thread to this CPU",
    },
];

/// The knobs that make the control of the seed case: the same stalls and
/// background with a ring deep enough to ride them out, and no drops.
pub const CONTROL_KNOBS: &str = "qlen=256";

/// A lab to build: `macvtap`, `macvtap:qlen=64,stall=off`, `veth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// Its shape.
    pub topology: Topology,
    /// Its knobs (ignored by `veth`).
    pub knobs: Knobs,
}

impl LabSpec {
    /// A topology with default knobs.
    pub fn new(topology: Topology) -> LabSpec {
        LabSpec {
            topology,
            knobs: Knobs::default(),
        }
    }

    /// Parses `TOPOLOGY[:knob=value,…]`.
    ///
    /// ```
    /// use vprobe_lab::{LabSpec, Topology};
    /// let s = LabSpec::parse("macvtap:qlen=64,stall=off").unwrap();
    /// assert_eq!(s.topology, Topology::Macvtap);
    /// assert_eq!((s.knobs.qlen, s.knobs.stall), (64, None));
    /// assert!(LabSpec::parse("macvtap:qlen=0").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<LabSpec, LabError> {
        let err = |problem: SpecError| LabError::Spec {
            spec: text.to_string(),
            problem,
        };
        let (name, knobs) = match text.split_once(':') {
            Some((n, k)) => (n.trim(), Some(k)),
            None => (text.trim(), None),
        };
        let topology = Topology::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                err(SpecError::UnknownTopology {
                    name: name.to_string(),
                    expected: Topology::ALL.map(|t| t.name()).join(", "),
                })
            })?;
        let mut spec = LabSpec::new(topology);
        let Some(knobs) = knobs else {
            return Ok(spec);
        };
        for item in knobs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| {
                    err(SpecError::NotKnobValue {
                        item: item.to_string(),
                    })
                })?;
            if !topology.has_relay() {
                return Err(err(SpecError::NoKnobs {
                    topology: topology.name(),
                    knob: key.to_string(),
                }));
            }
            let doc = KNOBS.iter().find(|d| d.name == key).ok_or_else(|| {
                err(SpecError::UnknownKnob {
                    knob: key.to_string(),
                    known: KNOBS.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
                })
            })?;
            let bad = |problem: ValueError| {
                err(SpecError::BadValue {
                    knob: doc.name,
                    value: value.to_string(),
                    problem,
                    expected: doc.values,
                })
            };
            let k = &mut spec.knobs;
            match key {
                "qlen" => k.qlen = int(value, 1, 65536).map_err(bad)?,
                "queues" => k.queues = int(value, 1, 16).map_err(bad)?,
                "batch" => k.batch = int(value, 1, 4096).map_err(bad)?,
                "cpu" => {
                    k.cpu = match value {
                        "any" | "none" => None,
                        v => Some(v.parse::<usize>().map_err(|_| bad(ValueError::NotCpu))?),
                    }
                }
                "stall" => k.stall = parse_stall(value).map_err(bad)?,
                "background" => {
                    k.background = match value {
                        "off" | "none" => 0,
                        v => int(v, 0, 100_000).map_err(bad)?,
                    }
                }
                _ => unreachable!("every knob in KNOBS is handled"),
            }
        }
        Ok(spec)
    }
}

fn int(s: &str, min: u32, max: u32) -> Result<u32, ValueError> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(ValueError::OutOfRange)
}

fn parse_stall(s: &str) -> Result<Option<Stall>, ValueError> {
    if matches!(s, "off" | "none" | "0") {
        return Ok(None);
    }
    let (pause, every) = s.split_once('/').ok_or(ValueError::NotPausePeriod)?;
    let pause = duration::parse(pause)?;
    let every = duration::parse(every)?;
    if pause.is_zero() || every < Duration::from_millis(1) {
        return Err(ValueError::TooShort);
    }
    if pause >= every {
        return Err(ValueError::NeverRuns);
    }
    Ok(Some(Stall { pause, every }))
}

impl FromStr for LabSpec {
    type Err = LabError;

    fn from_str(s: &str) -> Result<LabSpec, LabError> {
        LabSpec::parse(s)
    }
}

impl fmt::Display for LabSpec {
    /// The spec with every knob spelled out; [`LabSpec::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.topology)?;
        if !self.topology.has_relay() {
            return Ok(());
        }
        let k = &self.knobs;
        let stall = match k.stall {
            Some(s) => format!(
                "{}/{}",
                duration::format(s.pause),
                duration::format(s.every)
            ),
            None => "off".into(),
        };
        let cpu = k.cpu.map_or("any".to_string(), |c| c.to_string());
        let background = match k.background {
            0 => "off".to_string(),
            n => n.to_string(),
        };
        write!(
            f,
            ":qlen={},queues={},batch={},stall={stall},background={background},cpu={cpu}",
            k.qlen, k.queues, k.batch
        )
    }
}

/// What `--help` says of the topologies and knobs.
pub fn knobs_help() -> String {
    use std::fmt::Write as _;
    let mut s = String::from("Topologies:\n");
    for t in Topology::ALL {
        let _ = writeln!(s, "  {:8} {}", t.name(), t.about());
    }
    s.push_str("\nKnobs (macvtap and bridge; veth takes none), TOPOLOGY:knob=value,…:\n");
    for k in KNOBS {
        let _ = writeln!(
            s,
            "  {:7} default {:8} {} ({})",
            k.name, k.default, k.about, k.values
        );
    }
    let _ = write!(
        s,
        "\nThe defaults reproduce the seed case (a relay that stalls while background traffic\n\
         fills the macvtap ring: the 16-stream TCP_RR load loses segments inside the stalls);\n\
         `macvtap:{CONTROL_KNOBS}` is its control (same stalls, a ring deep enough: no drops).\n\
         Guests: guest-a 192.0.2.1/24, guest-b 192.0.2.2/24, interface eth0."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_case() {
        let s = LabSpec::parse("macvtap").unwrap();
        assert_eq!(s.knobs, Knobs::default());
        assert_eq!(
            s.to_string(),
            "macvtap:qlen=64,queues=1,batch=64,stall=30ms/1s,background=3000,cpu=any"
        );
        // The documented defaults are the real ones.
        let written: Vec<String> = KNOBS
            .iter()
            .map(|d| format!("{}={}", d.name, d.default))
            .collect();
        assert_eq!(
            LabSpec::parse(&format!("macvtap:{}", written.join(","))).unwrap(),
            s
        );
    }

    #[test]
    fn knobs_parse_and_round_trip() {
        let s = LabSpec::parse("bridge: qlen=64, queues=2,batch=1,stall=5ms/250ms,cpu=1").unwrap();
        assert_eq!(s.topology, Topology::Bridge);
        assert_eq!(
            s.knobs,
            Knobs {
                qlen: 64,
                queues: 2,
                batch: 1,
                stall: Some(Stall {
                    pause: Duration::from_millis(5),
                    every: Duration::from_millis(250)
                }),
                cpu: Some(1),
                background: 3000,
            }
        );
        assert_eq!(LabSpec::parse(&s.to_string()).unwrap(), s);
        let c = LabSpec::parse(&format!("macvtap:{CONTROL_KNOBS}")).unwrap();
        assert_eq!(c.knobs.qlen, 256);
        assert_eq!(c.knobs.stall, Knobs::default().stall);
        assert_eq!(
            LabSpec::parse("macvtap:stall=off").unwrap().knobs.stall,
            None
        );
        assert_eq!(LabSpec::parse("veth").unwrap().to_string(), "veth");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let msg = |s: &str| LabSpec::parse(s).unwrap_err().to_string();
        assert!(msg("macvlan")
            .contains("unknown topology `macvlan`; expected one of macvtap, bridge, veth"));
        assert!(msg("macvtap:qlem=8").contains("unknown knob `qlem`"));
        assert!(msg("macvtap:qlen").contains("expected knob=value, got `qlen`"));
        assert!(
            msg("macvtap:qlen=0").contains("knob `qlen`: `0` is out of range; expected 1..=65536")
        );
        assert!(msg("macvtap:queues=x").contains("`x` is out of range"));
        assert!(msg("macvtap:stall=20ms").contains("is not PAUSE/PERIOD"));
        assert!(msg("macvtap:stall=1s/1s").contains("as long as its period"));
        assert!(msg("macvtap:stall=2q/1s").contains("unknown unit"));
        assert!(msg("macvtap:cpu=-1").contains("not a CPU number"));
        assert!(msg("veth:qlen=8").contains("topology `veth` takes no knobs"));
    }
}
