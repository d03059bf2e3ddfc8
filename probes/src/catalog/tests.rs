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
