//! Kernel-text tables that some objects read from maps, computed from
//! /proc/kallsyms and written between load and attach:
//!
//! - `layers` and `reason_layers` (`bpf/include/layer.bpf.h`): address runs of
//!   one stack layer, and the layers drop reasons name, for the derived `layer`
//!   field; sized to one entry each when `layer` is not needed.
//! - `sites` (`bpf/include/sites.bpf.h`): the functions a site-restricted
//!   attach point (`macvtap.drop`, `tun.drop`) accepts drops in.
//! - `site_calls` (same header): the addresses of the functions whose calls
//!   the program recognises in the text around a drop (`macvtap.drop`'s
//!   `counted`); 0 for those not found, and all 0 off x86-64.

use std::sync::Arc;

use aya::maps::{Array, MapError};
use aya::{Ebpf, EbpfLoader, Pod};
use vprobe_probes::abi::{self, LayerRun, Settings, Site};
use vprobe_probes::{layers, FieldKind, Mechanism, Slot};

use crate::plan::{Consumer, ProbeRequest};
use crate::symbols::Symbols;

#[repr(transparent)]
#[derive(Clone, Copy)]
struct LayerRunPod(LayerRun);
unsafe impl Pod for LayerRunPod {}
#[repr(transparent)]
#[derive(Clone, Copy)]
struct SitePod(Site);
unsafe impl Pod for SitePod {}

/// Why the tables of a request could not be computed or written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TableError {
    /// A field that needs kernel symbols cannot have them.
    #[error("field `{field}` needs kernel symbol addresses: {why}")]
    NeedsSymbols {
        /// The field (`layer`).
        field: &'static str,
        /// Why the symbols are missing.
        why: String,
    },
    /// The kernel text has more layer runs than the table holds.
    #[error("kernel text splits into {runs} layer runs, more than the {max} the table holds")]
    TooManyRuns {
        /// Runs found.
        runs: usize,
        /// The table's size.
        max: usize,
    },
    /// The drop sites resolve to more ranges than the program takes.
    #[error("`{probe}`: {ranges} drop-site ranges, more than the {max} the program takes")]
    TooManySites {
        /// Attach point.
        probe: &'static str,
        /// Ranges found.
        ranges: usize,
        /// What the program takes.
        max: usize,
    },
    /// The drop sites cannot be found: /proc/kallsyms is not readable.
    #[error("`{probe}` finds its drop sites (`{}`) in /proc/kallsyms, which is not readable", .functions.join("`, `"))]
    SitesUnreadable {
        /// Attach point.
        probe: &'static str,
        /// Its site functions.
        functions: &'static [&'static str],
    },
    /// /proc/kallsyms hides the addresses from this process.
    #[error("`{probe}` needs the addresses of `{}`: /proc/kallsyms shows none (needs root or CAP_SYSLOG)", .functions.join("`, `"))]
    SitesHidden {
        /// Attach point.
        probe: &'static str,
        /// Its site functions.
        functions: &'static [&'static str],
    },
    /// The driver defining the sites is not loaded.
    #[error("`{probe}` needs the driver that defines `{}`, which is not in /proc/kallsyms: load its module (or create such a device) first", .functions.join("`, `"))]
    NoDriver {
        /// Attach point.
        probe: &'static str,
        /// Its site functions.
        functions: &'static [&'static str],
    },
    /// The object lacks a table's map.
    #[error("the object has no `{0}` map")]
    NoMap(&'static str),
    /// A table's map is not an array of its entries.
    #[error("map `{map}`: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: Arc<MapError>,
    },
    /// Writing an entry failed.
    #[error("filling map `{map}`: {source}")]
    Fill {
        /// Map name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: Arc<MapError>,
    },
}

/// The tables of one program instance.
#[derive(Debug, Default)]
pub(super) struct Tables {
    /// Every entry of `layers` when the field is read, else `None`.
    layers: Option<Vec<LayerRun>>,
    /// `reason_layers` entries (reason, layer) when `layers` is filled.
    reason_layers: Vec<(u32, u64)>,
    /// The accepted ranges, when the attach point is site-restricted.
    sites: Vec<Site>,
    /// Why the sites could not be resolved (the kfree_skb mechanisms fail with it).
    sites_missing: Option<TableError>,
    /// `site_calls` entries, in the catalog's order; 0 = not known.
    site_calls: Vec<u64>,
}

impl Tables {
    /// Computes what `req` needs, given its load-time settings.
    pub(super) fn prepare(
        req: &ProbeRequest,
        settings: &Settings,
        symbols: &Symbols,
    ) -> Result<Self, TableError> {
        let mut t = Tables::default();
        if let Some((field, slot)) = req.probe.fields.iter().find_map(|f| match f.slot {
            Slot::Num(i) if f.kind == FieldKind::Layer => Some((f, i)),
            _ => None,
        }) {
            if settings.need_mask & (1 << slot) != 0 {
                // Filtered, keyed or histogrammed: wrong answers would be silent, so
                // fail. Only carried by events: the field reads `other`.
                let strict = req.filters.iter().any(|f| f.field.name == field.name)
                    || match &req.consumer {
                        Consumer::Count { keys, .. } => keys.iter().any(|k| k.name == field.name),
                        Consumer::Hist { keys, field: h, .. } => {
                            h.name == field.name || keys.iter().any(|k| k.name == field.name)
                        }
                        Consumer::Events { .. } | Consumer::Capture(_) => false,
                    };
                match symbols.layer_runs() {
                    Ok(runs) => {
                        t.layers = Some(layer_entries(runs)?);
                        t.reason_layers = symbols
                            .reasons()
                            .filter(|&(n, _)| n < abi::REASON_LAYERS as u64)
                            .map(|(n, name)| (n as u32, u64::from(layers::for_reason(name))))
                            .filter(|&(_, l)| l != 0)
                            .collect();
                    }
                    Err(why) if strict => {
                        return Err(TableError::NeedsSymbols {
                            field: field.name,
                            why: why.to_string(),
                        })
                    }
                    Err(_) => {}
                }
            }
        }
        let functions = req.probe.sites;
        for f in functions {
            t.sites.extend(
                symbols
                    .function_ranges(f)
                    .into_iter()
                    .map(|(lo, hi)| Site { lo, hi }),
            );
        }
        if !functions.is_empty() && t.sites.is_empty() {
            let probe = req.probe.name;
            // only the kfree_skb mechanisms need the sites: fail when one is tried
            t.sites_missing = Some(if !symbols.has_kallsyms() {
                TableError::SitesUnreadable { probe, functions }
            } else if symbols.symbol_range(functions[0]) == Some((0, 0)) {
                TableError::SitesHidden { probe, functions }
            } else {
                TableError::NoDriver { probe, functions }
            });
        }
        // The program decodes x86's `call rel32`: elsewhere it must not try.
        // Not found (or hidden): 0, and the field says it does not know. At
        // most abi::SITE_CALLS_MAX (the catalog tests check).
        t.site_calls = req
            .probe
            .site_calls
            .iter()
            .map(|f| match symbols.symbol_range(f) {
                Some((lo, _)) if cfg!(target_arch = "x86_64") => lo,
                _ => 0,
            })
            .collect();
        if t.sites.len() > abi::SITES_MAX {
            return Err(TableError::TooManySites {
                probe: req.probe.name,
                ranges: t.sites.len(),
                max: abi::SITES_MAX,
            });
        }
        Ok(t)
    }

    /// Sizes the maps before the object loads: `layers` takes 128 KiB only when read.
    pub(super) fn size_maps(&self, loader: &mut EbpfLoader<'_>) {
        let (runs, reasons) = if self.layers.is_some() {
            (abi::LAYER_RUNS as u32, abi::REASON_LAYERS as u32)
        } else {
            (1, 1)
        };
        loader.map_max_entries("layers", runs);
        loader.map_max_entries("reason_layers", reasons);
    }

    /// Writes the tables into the loaded object's maps, for `mech`.
    pub(super) fn fill(&self, ebpf: &mut Ebpf, mech: &Mechanism) -> Result<(), TableError> {
        if let (true, Some(why)) = (mech.kind().is_tracepoint(), &self.sites_missing) {
            return Err(why.clone());
        }
        if let Some(entries) = &self.layers {
            let mut arr = array::<LayerRunPod>(ebpf, "layers")?;
            for (i, e) in entries.iter().enumerate() {
                arr.set(i as u32, LayerRunPod(*e), 0)
                    .map_err(|e| fill_error("layers", e))?;
            }
            let mut arr = array::<u64>(ebpf, "reason_layers")?;
            for &(reason, layer) in &self.reason_layers {
                arr.set(reason, layer, 0)
                    .map_err(|e| fill_error("reason_layers", e))?;
            }
        }
        if !self.sites.is_empty() {
            let mut arr = array::<SitePod>(ebpf, "sites")?;
            for (i, s) in self.sites.iter().enumerate() {
                arr.set(i as u32, SitePod(*s), 0)
                    .map_err(|e| fill_error("sites", e))?;
            }
        }
        if self.site_calls.iter().any(|&a| a != 0) {
            let mut arr = array::<u64>(ebpf, "site_calls")?;
            for (i, &a) in self.site_calls.iter().enumerate() {
                arr.set(i as u32, a, 0)
                    .map_err(|e| fill_error("site_calls", e))?;
            }
        }
        Ok(())
    }
}

/// The array map `name` of a loaded object.
fn array<'a, T: Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<Array<&'a mut aya::maps::MapData, T>, TableError> {
    let map = ebpf.map_mut(name).ok_or(TableError::NoMap(name))?;
    Array::try_from(map).map_err(|e| TableError::Map {
        map: name,
        source: Arc::new(e),
    })
}

fn fill_error(map: &'static str, e: MapError) -> TableError {
    TableError::Fill {
        map,
        source: Arc::new(e),
    }
}

/// All `LAYER_RUNS` entries: the runs, then `start = u64::MAX` so that the
/// kernel's fixed-depth binary search sees a sorted table.
fn layer_entries(runs: &[(u64, u8)]) -> Result<Vec<LayerRun>, TableError> {
    if runs.len() > abi::LAYER_RUNS {
        return Err(TableError::TooManyRuns {
            runs: runs.len(),
            max: abi::LAYER_RUNS,
        });
    }
    let mut v: Vec<LayerRun> = runs
        .iter()
        .map(|&(start, layer)| LayerRun {
            start,
            layer: u64::from(layer)
                | if layers::is_generic(layer) {
                    abi::LAYER_GENERIC
                } else {
                    0
                },
        })
        .collect();
    v.resize(
        abi::LAYER_RUNS,
        LayerRun {
            start: u64::MAX,
            layer: 0,
        },
    );
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's search (layer.bpf.h), step for step.
    fn kernel_search(table: &[LayerRun], addr: u64) -> u64 {
        let mut idx = 0usize;
        let mut step = abi::LAYER_RUNS / 2;
        while step > 0 {
            if table[idx + step].start <= addr {
                idx += step;
            }
            step >>= 1;
        }
        if table[idx].start <= addr {
            table[idx].layer & 0xff
        } else {
            0
        }
    }

    #[test]
    fn kernel_search_agrees_with_lookup() {
        let runs: Vec<(u64, u8)> = (0..3000u64)
            .map(|i| (0xffff_ffff_8100_0000 + i * 0x40, (i % 7) as u8))
            .collect();
        let table = layer_entries(&runs).unwrap();
        assert_eq!(table.len(), abi::LAYER_RUNS);
        for addr in [
            0,
            0xffff_ffff_8100_0000 - 1,
            0xffff_ffff_8100_0000,
            0xffff_ffff_8100_0041,
            0xffff_ffff_8100_0000 + 2999 * 0x40 + 5,
            u64::MAX - 1,
        ] {
            assert_eq!(
                kernel_search(&table, addr),
                u64::from(vprobe_probes::layers::lookup(&runs, addr)),
                "{addr:#x}"
            );
        }
        for i in 0..3000u64 {
            let addr = 0xffff_ffff_8100_0000 + i * 0x40 + 0x3f;
            assert_eq!(kernel_search(&table, addr), i % 7);
        }
    }

    #[test]
    fn too_many_runs_is_an_error() {
        let runs: Vec<(u64, u8)> = (0..abi::LAYER_RUNS as u64 + 1).map(|i| (i, 1)).collect();
        assert!(layer_entries(&runs)
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }
}
