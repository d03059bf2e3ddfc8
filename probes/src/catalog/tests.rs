use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::abi;

#[test]
fn names_are_unique_and_slots_in_range() {
    for (i, p) in CATALOG.iter().enumerate() {
        assert!(
            CATALOG[i + 1..].iter().all(|q| q.name != p.name),
            "{} twice",
            p.name
        );
        assert!(!p.object.bytes().is_empty(), "{}: empty object", p.name);
        assert_eq!(
            p.object.bytes().as_ptr() as usize % 8,
            0,
            "{}: object not aligned",
            p.name
        );
        for f in p.fields {
            match f.slot {
                Slot::Num(s) => assert!((s as usize) < abi::NUM),
                Slot::Addr(s) => assert!((s as usize) < abi::ADDR),
                Slot::Dev => {}
            }
            let same_slot = p.fields.iter().filter(|g| g.slot == f.slot).count();
            assert_eq!(same_slot, 1, "{}.{} shares its slot", p.name, f.name);
        }
    }
}

#[test]
fn generic_function_fields_fit_their_slots() {
    let latency = FUNC_FIELDS.iter().find(|f| f.name == "latency").unwrap();
    assert_eq!(latency.slot, Slot::Num(FUNC_LATENCY_SLOT));
    assert_eq!(generic("kprobe:tcp_sendmsg").unwrap().kind, "kprobe");
    assert_eq!(generic("uprobe:/bin/true:main").unwrap().kind, "uprobe");
    assert!(generic("skb.drop").is_none());
    assert!(generic("nope:x").is_none());
    for g in GENERIC {
        assert_eq!(g.object.name, "generic");
        assert_eq!(g.mechanisms.len(), 1);
        assert_eq!(g.mechanisms[0].as_str(), g.kind);
    }
}

#[test]
fn suggests_close_names_only() {
    let names = CATALOG.iter().map(|p| p.name);
    assert_eq!(suggest("skb.dorp", names.clone()), Some("skb.drop"));
    assert_eq!(
        suggest("tcp.retransmits", names.clone()),
        Some("tcp.retransmit")
    );
    assert_eq!(suggest("zzz", names.clone()), None);
    // the closest wins; a tie keeps the first candidate
    assert_eq!(suggest("dev.rxx", names.clone()), Some("dev.rx"));
    assert_eq!(suggest("ab", ["xy", "ay"]), Some("ay"));
    assert_eq!(suggest("ab", ["xb", "ay"]), Some("xb"));
    // up to 2 edits, or a third of the candidate's length for longer names
    assert_eq!(suggest("ab", ["xy"]), Some("xy"));
    assert_eq!(suggest("abc", ["xyz"]), None);
    assert_eq!(suggest("sched.wakeup", names.clone()), None);
    assert_eq!(
        suggest("sched.wake_latency", names),
        Some("sched.wakeup_latency")
    );
    // edits count characters, not bytes
    assert_eq!(suggest("éé", ["ee"]), Some("ee"));
}

#[test]
fn companions_share_their_mechanism_kind() {
    let p = find("sched.wakeup_latency").unwrap();
    for m in p.mechanisms {
        assert_eq!(m.companions().len(), 2, "{}", m.label());
        assert!(m.companions().iter().all(|c| c.kind() == m.kind()));
        assert!(m.companions().iter().all(|c| c.companions().is_empty()));
    }
    assert_eq!(
        p.mechanisms[0].label(),
        "tp_btf/sched_switch+sched_wakeup+sched_wakeup_new"
    );
    assert_eq!(
        p.mechanisms[1].label(),
        "tracepoint/sched/sched_switch+sched_wakeup+sched_wakeup_new"
    );
    assert!(find("skb.drop").unwrap().mechanisms[0]
        .companions()
        .is_empty());
}

#[test]
fn default_filters_name_real_fields() {
    for p in CATALOG {
        for d in p.default_filters {
            assert!(p.field(d.field).is_some(), "{}.{}", p.name, d.field);
        }
    }
    let p = find("sched.wakeup_latency").unwrap();
    let d: Vec<_> = p.default_filters().map(|(f, v)| (f.name, v)).collect();
    assert_eq!(d, vec![("comm", "vhost-*")]);
}

#[test]
fn sites_belong_to_the_site_restricted_attach_points() {
    let with: Vec<(&str, &[&str])> = CATALOG
        .iter()
        .filter(|p| !p.sites.is_empty())
        .map(|p| (p.name, p.sites))
        .collect();
    assert_eq!(
        with,
        vec![
            ("macvtap.drop", &["tap_handle_frame"][..]),
            ("tun.drop", &["tun_net_xmit"][..]),
        ]
    );
}

#[test]
fn site_calls_fit_the_map_and_match_the_program() {
    let with: Vec<(&str, &[&str])> = CATALOG
        .iter()
        .filter(|p| !p.site_calls.is_empty())
        .map(|p| (p.name, p.site_calls))
        .collect();
    assert_eq!(with, vec![("macvtap.drop", &["kfree_skb_list_reason"][..])]);
    for (name, calls) in &with {
        assert!(calls.len() <= abi::SITE_CALLS_MAX, "{name}");
        assert!(!find(name).unwrap().sites.is_empty(), "{name}");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
    let sites = std::fs::read_to_string(dir.join("include/sites.bpf.h")).unwrap();
    let tap = std::fs::read_to_string(dir.join("tap.bpf.c")).unwrap();
    assert_eq!(
        c_define(&sites, "VP_SITE_CALLS_MAX"),
        Some(abi::SITE_CALLS_MAX as u64)
    );
    assert_eq!(
        c_define(&sites, "VP_SITES_MAX"),
        Some(abi::SITES_MAX as u64)
    );
    // tap.bpf.c reads kfree_skb_list_reason at this index
    assert_eq!(c_define(&tap, "CALL_LIST_FREE"), Some(0));
    assert_eq!(c_define(&tap, "COUNTED_NO"), Some(tap::COUNTED_NO));
    assert_eq!(c_define(&tap, "COUNTED_YES"), Some(tap::COUNTED_YES));
    assert_eq!(
        c_define(&tap, "COUNTED_UNKNOWN"),
        Some(tap::COUNTED_UNKNOWN)
    );
}

/// The number a `#define NAME n` of a C source gives.
fn c_define(source: &str, name: &str) -> Option<u64> {
    source.lines().find_map(|l| {
        let mut w = l.trim().strip_prefix("#define ")?.split_whitespace();
        (w.next()? == name).then_some(())?;
        w.next()?.parse().ok()
    })
}

/// The slot defines of a `bpf/*.bpf.c` source: `S_NAME i` (num[i]),
/// `A_NAME i` (addr[i]), `D_NAME` (dev), keyed by the field name (`name`).
fn c_slots(source: &str) -> Result<BTreeMap<String, Slot>, String> {
    let mut out = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(name) = words.next() else { continue };
        let value = words.next();
        let index = || -> Result<u8, String> {
            value
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("`#define {name}` has no slot number"))
        };
        let (field, slot) = if let Some(f) = name.strip_prefix("S_") {
            (f, Slot::Num(index()?))
        } else if let Some(f) = name.strip_prefix("A_") {
            (f, Slot::Addr(index()?))
        } else if let Some(f) = name.strip_prefix("D_") {
            (f, Slot::Dev)
        } else {
            continue;
        };
        if out.insert(field.to_ascii_lowercase(), slot).is_some() {
            return Err(format!("`{name}` defined twice"));
        }
    }
    Ok(out)
}

/// Every object with the fields of every attach point it carries: (probe, field).
fn objects() -> Vec<(&'static Object, Vec<(&'static str, &'static FieldDef)>)> {
    let mut out: Vec<(&'static Object, Vec<(&'static str, &'static FieldDef)>)> = Vec::new();
    let defs = CATALOG.iter().map(|p| (p.object, p.name, p.fields));
    let generic = GENERIC.iter().map(|g| (g.object, g.kind, g.fields));
    for (object, probe, fields) in defs.chain(generic) {
        let i = match out.iter().position(|(o, _)| *o == object) {
            Some(i) => i,
            None => {
                out.push((object, Vec::new()));
                out.len() - 1
            }
        };
        out[i].1.extend(fields.iter().map(|f| (probe, f)));
    }
    out
}

/// Checks every catalog field against the slot defines of its object's C
/// file, both ways. Errors name the probe, the field and the define.
fn check_slots(
    file: &str,
    defines: &BTreeMap<String, Slot>,
    fields: &[(&str, &FieldDef)],
) -> Vec<String> {
    let define = |name: &str, slot: Slot| match slot {
        Slot::Num(i) => format!("S_{} {i}", name.to_ascii_uppercase()),
        Slot::Addr(i) => format!("A_{} {i}", name.to_ascii_uppercase()),
        Slot::Dev => format!("D_{}", name.to_ascii_uppercase()),
    };
    let mut errors = Vec::new();
    for (probe, f) in fields {
        match defines.get(f.name) {
            None => errors.push(format!(
                "{probe}.{}: {file} has no `#define {}`",
                f.name,
                define(f.name, f.slot)
            )),
            Some(&slot) if slot != f.slot => errors.push(format!(
                "{probe}.{}: the catalog says `{}`, {file} says `#define {}`",
                f.name,
                define(f.name, f.slot),
                define(f.name, slot)
            )),
            Some(_) => {}
        }
    }
    for (name, &slot) in defines {
        if !fields.iter().any(|(_, f)| f.name == name) {
            errors.push(format!(
                "{file}: `#define {}` names no field of an attach point of its object",
                define(name, slot)
            ));
        }
    }
    errors
}

#[test]
fn slots_match_the_c_defines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".bpf.c").map(String::from))
        .collect();
    files.sort();
    let objects = objects();
    let mut errors = Vec::new();
    for (object, _) in &objects {
        if !files.iter().any(|f| f == object.name) {
            errors.push(format!("object `{}` has no bpf/{0}.bpf.c", object.name));
        }
    }
    for name in &files {
        let file = format!("bpf/{name}.bpf.c");
        let Some((_, fields)) = objects.iter().find(|(o, _)| o.name == name) else {
            errors.push(format!("{file}: no catalog module uses its object"));
            continue;
        };
        let source = std::fs::read_to_string(dir.join(format!("{name}.bpf.c"))).unwrap();
        match c_slots(&source) {
            Ok(defines) => errors.extend(check_slots(&file, &defines, fields)),
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}

#[test]
fn the_slot_check_sees_both_directions() {
    let defines = c_slots("#define S_LEN 2\n#define A_SADDR 0\n#define D_DEV VP_KEY_DEV\n#define S_GONE 3\n#define SCAN 8\n").unwrap();
    let len = FieldDef {
        name: "len",
        slot: Slot::Num(5),
        kind: FieldKind::Uint,
        filter: true,
        key: true,
        about: "",
    };
    let saddr = FieldDef {
        name: "saddr",
        slot: Slot::Addr(0),
        kind: FieldKind::IpAddr,
        ..len
    };
    let extra = FieldDef {
        name: "extra",
        slot: Slot::Dev,
        ..len
    };
    let errors = check_slots(
        "x.bpf.c",
        &defines,
        &[("p", &len), ("p", &saddr), ("p", &extra)],
    );
    assert_eq!(
        errors,
        vec![
            "p.len: the catalog says `S_LEN 5`, x.bpf.c says `#define S_LEN 2`",
            "p.extra: x.bpf.c has no `#define D_EXTRA`",
            "x.bpf.c: `#define D_DEV` names no field of an attach point of its object",
            "x.bpf.c: `#define S_GONE 3` names no field of an attach point of its object",
        ]
    );
    assert!(c_slots("#define S_X\n").is_err());
}
