//! What a script's header requires (`//! requires: macvtap.drop, fentry`),
//! checked against this host before anything attaches: a missing attach
//! point or kernel feature is said at the header line that needs it, not
//! as whichever attach happens to fail first.

use vprobe_probes::ProbeDef;

use super::Live;
use crate::generic;
use crate::kernel::Features;
use crate::message::with_causes;
use crate::plan::Origin;
use crate::script::{Requirement, ScriptError};
use crate::Result;

/// Features [`Features::detect`] cannot tell without loading a program.
const LOADED: [&str; 5] = [
    "tp_btf",
    "raw_tracepoint",
    "tracepoint",
    "ringbuf",
    "fentry",
];

impl Live<'_> {
    /// Fails, located at its header line, on the first attach point or
    /// kernel feature the script requires that this host does not have
    /// (the vprobe version is checked when the script is planned).
    pub fn check_requirements(&mut self) -> Result<()> {
        let source = self.script.source_name().to_string();
        let requires = self.script.meta().requires.clone();
        let mut features: Option<Features> = None;
        for r in &requires {
            let (name, line, lacking) = match r {
                Requirement::Vprobe { .. } => continue,
                Requirement::Feature { name, line } => {
                    let f = features.get_or_insert_with(|| {
                        let mut f = Features::detect();
                        if requires.iter().any(|r| matches!(r, Requirement::Feature { name, .. } if LOADED.contains(&name.as_str()))) {
                            self.session.borrow_mut().load_features(&mut f);
                        }
                        f
                    });
                    let lacking = match f.get(name) {
                        Some(feat) if feat.ok => None,
                        Some(feat) => Some(feat.detail.clone()),
                        None => Some("`vprobe doctor` does not know it".into()),
                    };
                    (name, line, lacking)
                }
                Requirement::Probe { name, line } => (name, line, self.cannot_attach(name)),
            };
            if let Some(why) = lacking {
                return Err(ScriptError {
                    origin: Origin {
                        source: source.clone(),
                        line: *line,
                        col: 1,
                    },
                    message: format!(
                        "the script requires `{name}`, which this host does not have: {why}"
                    ),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Why the attach point `name` cannot attach here, if it cannot.
    fn cannot_attach(&mut self, name: &str) -> Option<String> {
        let def: &'static ProbeDef = match vprobe_probes::find(name) {
            Some(d) => d,
            None => match generic::resolve(name) {
                Ok(Some(d)) => d,
                Ok(None) => return Some("not an attach point".into()),
                Err(e) => return Some(with_causes(&e)),
            },
        };
        let support = self.session.borrow_mut().support(&[def]);
        support.first().and_then(|s| s.reason())
    }
}
