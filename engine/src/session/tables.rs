//! Kernel-text tables that some objects read from maps, computed from
//! /proc/kallsyms and written between load and attach:
//!
//! - `layers` and `reason_layers` (`bpf/include/layer.bpf.h`): address runs of
//!   one stack layer, and the layers drop reasons name, for the derived `layer`
//!   field; sized to one entry each when `layer` is not needed.
//! - `sites` (`bpf/include/sites.bpf.h`): the functions a site-restricted
//!   attach point (`macvtap.drop`, `tun.drop`) accepts drops in.

use aya::maps::Array;
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
    sites_missing: Option<String>,
}

impl Tables {
    /// Computes what `req` needs, given its load-time settings.
    pub(super) fn prepare(
        req: &ProbeRequest,
        settings: &Settings,
        symbols: &Symbols,
    ) -> Result<Self, String> {
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
                        Consumer::Events { .. } => false,
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
                    Err(e) if strict => {
                        return Err(format!(
                            "field `{}` needs kernel symbol addresses: {e}",
                            field.name
                        ))
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
            let names = functions.join("`, `");
            // only the kfree_skb mechanisms need the sites: fail when one is tried
            t.sites_missing = Some(if !symbols.has_kallsyms() {
                format!(
                    "`{}` finds its drop sites (`{names}`) in /proc/kallsyms, which is not readable",
                    req.probe.name
                )
            } else if symbols.symbol_range(functions[0]) == Some((0, 0)) {
                format!(
                    "`{}` needs the addresses of `{names}`: /proc/kallsyms shows none (needs root or CAP_SYSLOG)",
                    req.probe.name
                )
            } else {
                format!(
                    "`{}` needs the driver that defines `{names}`, which is not in /proc/kallsyms: load its module (or create such a device) first",
                    req.probe.name
                )
            });
        }
        if t.sites.len() > abi::SITES_MAX {
            return Err(format!(
                "`{}`: {} drop-site ranges, more than the {} the program takes",
                req.probe.name,
                t.sites.len(),
                abi::SITES_MAX
            ));
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
    pub(super) fn fill(&self, ebpf: &mut Ebpf, mech: &Mechanism) -> Result<(), String> {
        if let (true, Some(why)) = (mech.kind().is_tracepoint(), &self.sites_missing) {
            return Err(why.clone());
        }
        if let Some(entries) = &self.layers {
            let map = ebpf
                .map_mut("layers")
                .ok_or("the object has no `layers` map")?;
            let mut arr =
                Array::<_, LayerRunPod>::try_from(map).map_err(|e| format!("map `layers`: {e}"))?;
            for (i, e) in entries.iter().enumerate() {
                arr.set(i as u32, LayerRunPod(*e), 0)
                    .map_err(|e| format!("filling map `layers`: {e}"))?;
            }
            let map = ebpf
                .map_mut("reason_layers")
                .ok_or("the object has no `reason_layers` map")?;
            let mut arr =
                Array::<_, u64>::try_from(map).map_err(|e| format!("map `reason_layers`: {e}"))?;
            for &(reason, layer) in &self.reason_layers {
                arr.set(reason, layer, 0)
                    .map_err(|e| format!("filling map `reason_layers`: {e}"))?;
            }
        }
        if !self.sites.is_empty() {
            let map = ebpf
                .map_mut("sites")
                .ok_or("the object has no `sites` map")?;
            let mut arr =
                Array::<_, SitePod>::try_from(map).map_err(|e| format!("map `sites`: {e}"))?;
            for (i, s) in self.sites.iter().enumerate() {
                arr.set(i as u32, SitePod(*s), 0)
                    .map_err(|e| format!("filling map `sites`: {e}"))?;
            }
        }
        Ok(())
    }
}

/// All `LAYER_RUNS` entries: the runs, then `start = u64::MAX` so that the
/// kernel's fixed-depth binary search sees a sorted table.
fn layer_entries(runs: &[(u64, u8)]) -> Result<Vec<LayerRun>, String> {
    if runs.len() > abi::LAYER_RUNS {
        return Err(format!(
            "kernel text splits into {} layer runs, more than the {} the table holds",
            runs.len(),
            abi::LAYER_RUNS
        ));
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
        assert!(layer_entries(&runs).unwrap_err().contains("more than"));
    }
}
