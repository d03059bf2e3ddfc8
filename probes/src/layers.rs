//! Stack layers of kernel code (`tap`, `tun`, `bridge`, `qdisc`, `ip`, `tcp`, …),
//! for the derived `layer` field of `skb.drop`.
//!
//! A kernel text symbol is classified by its module (`[tap]`, `[sch_fq]`) when
//! it has one that names a layer, else by the longest matching name prefix
//! (`tcp_`, `br_`, `__dev_xmit_skb`). The engine turns every symbol of
//! /proc/kallsyms into address runs of one layer once per session and hands
//! them to the kernel (`bpf/include/layer.bpf.h`), so filters and keys on
//! `layer` run in the kernel. Where the location is generic code (`core`,
//! `other`: a full qdisc's drops are freed in `__dev_queue_xmit()` on kernels
//! that inline `__dev_xmit_skb()`), a drop reason that names a layer decides
//! (`QDISC_DROP` → `qdisc`; [`for_reason`]). Ids are this table's indexes,
//! valid within one vprobe build (they never leave the process except as names).

/// Layer names by id; 0 is code vprobe attributes to no layer.
pub const NAMES: &[&str] = &[
    "other",
    "tap",
    "tun",
    "macvlan",
    "ipvlan",
    "bridge",
    "veth",
    "vxlan",
    "ovs",
    "vhost",
    "xdp",
    "qdisc",
    "netfilter",
    "packet",
    "core",
    "ip",
    "tcp",
    "udp",
];

/// Id of the layer without a name (`other`).
pub const OTHER: u8 = 0;
/// Id of `core`.
pub const CORE: u8 = l("core");

/// Whether code of this layer frees drops on behalf of others, so that the
/// drop reason may name the layer instead.
pub fn is_generic(id: u8) -> bool {
    id == OTHER || id == CORE
}

/// Drop reason name prefix (without `SKB_DROP_REASON_`) → layer, for drops
/// located in generic code.
const REASONS: &[(&str, u8)] = &[
    ("QDISC_", l("qdisc")),
    ("TC_", l("qdisc")),
    ("CAKE_", l("qdisc")),
    ("FQ_", l("qdisc")),
    ("DUALPI2_", l("qdisc")),
    ("NETFILTER_", l("netfilter")),
    ("XDP", l("xdp")),
    ("TCP_", l("tcp")),
    ("UDP_", l("udp")),
    ("IP_", l("ip")),
    ("IPV6_", l("ip")),
    ("ICMP_", l("ip")),
    ("FRAG_", l("ip")),
    ("DUP_FRAG", l("ip")),
    ("XFRM_", l("ip")),
    ("VXLAN_", l("vxlan")),
    ("BRIDGE_", l("bridge")),
    ("PACKET_", l("packet")),
];

/// The layer a drop reason names (`QDISC_DROP` → qdisc), [`OTHER`] for none.
pub fn for_reason(name: &str) -> u8 {
    REASONS
        .iter()
        .filter(|(p, _)| name.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map_or(OTHER, |&(_, layer)| layer)
}

/// Name of layer `id` (`other` for ids this build does not know).
pub fn name(id: u64) -> &'static str {
    NAMES.get(id as usize).copied().unwrap_or(NAMES[0])
}

/// Id of a layer name, case-insensitive.
pub fn id(name: &str) -> Option<u8> {
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as u8)
}

const fn l(name: &str) -> u8 {
    let mut i = 0;
    while i < NAMES.len() {
        if const_eq(NAMES[i], name) {
            return i as u8;
        }
        i += 1;
    }
    panic!("unknown layer name in a rule")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Module name (or prefix ending in `*`) → layer. Checked before names.
const MODULES: &[(&str, u8)] = &[
    ("tap", l("tap")),
    ("macvtap", l("tap")),
    ("tun", l("tun")),
    ("macvlan", l("macvlan")),
    ("ipvlan", l("ipvlan")),
    ("ipvtap", l("ipvlan")),
    ("bridge", l("bridge")),
    ("br_netfilter", l("netfilter")),
    ("veth", l("veth")),
    ("vxlan", l("vxlan")),
    ("openvswitch", l("ovs")),
    ("vport_*", l("ovs")),
    ("vhost", l("vhost")),
    ("vhost_net", l("vhost")),
    ("sch_*", l("qdisc")),
    ("cls_*", l("qdisc")),
    ("act_*", l("qdisc")),
    ("nf_*", l("netfilter")),
    ("nft_*", l("netfilter")),
    ("nfnetlink*", l("netfilter")),
    ("x_tables", l("netfilter")),
    ("xt_*", l("netfilter")),
    ("ip_tables", l("netfilter")),
    ("ip6_tables", l("netfilter")),
    ("iptable_*", l("netfilter")),
    ("ip6table_*", l("netfilter")),
    ("ebtable*", l("netfilter")),
    ("ebt_*", l("netfilter")),
    ("af_packet", l("packet")),
    ("tcp_*", l("tcp")),
    ("udp_tunnel", l("udp")),
    ("ip6_udp_tunnel", l("udp")),
    ("ipv6", l("ip")),
    ("ip_tunnel", l("ip")),
    ("ip6_tunnel", l("ip")),
    ("ipip", l("ip")),
    ("ip_gre", l("ip")),
    ("gre", l("ip")),
];

/// Symbol name prefix → layer; the longest match wins (`br_nf_` over `br_`,
/// `__dev_xmit_skb` over `__dev_`). Prefixes that other subsystems also use
/// (`rt_`, `raw_`, `mq_`, `prio_`) are left out or spelled out in full.
const PREFIXES: &[(&str, u8)] = &[
    // drivers/net/tap.c, macvtap.c
    ("tap_", l("tap")),
    ("__tap_", l("tap")),
    ("macvtap_", l("tap")),
    // drivers/net/tun.c
    ("tun_", l("tun")),
    ("__tun_", l("tun")),
    ("macvlan_", l("macvlan")),
    ("ipvlan_", l("ipvlan")),
    ("ipvtap_", l("ipvlan")),
    ("br_", l("bridge")),
    ("__br_", l("bridge")),
    ("nbp_", l("bridge")),
    ("br_nf_", l("netfilter")),
    ("veth_", l("veth")),
    ("vxlan_", l("vxlan")),
    ("__vxlan_", l("vxlan")),
    ("ovs_", l("ovs")),
    ("vhost_", l("vhost")),
    ("xdp_", l("xdp")),
    ("__xdp_", l("xdp")),
    ("bpf_xdp_", l("xdp")),
    ("do_xdp_", l("xdp")),
    ("xsk_", l("xdp")),
    ("__xsk_", l("xdp")),
    // net/sched, and where the core frees what a qdisc dropped
    ("qdisc_", l("qdisc")),
    ("__qdisc_", l("qdisc")),
    ("sch_", l("qdisc")),
    ("pfifo_", l("qdisc")),
    ("bfifo_", l("qdisc")),
    ("fq_codel_", l("qdisc")),
    ("fq_pie_", l("qdisc")),
    ("codel_", l("qdisc")),
    ("tbf_", l("qdisc")),
    ("htb_", l("qdisc")),
    ("netem_", l("qdisc")),
    ("sfq_", l("qdisc")),
    ("cake_", l("qdisc")),
    ("mqprio_", l("qdisc")),
    ("tcf_", l("qdisc")),
    ("tc_", l("qdisc")),
    ("noop_enqueue", l("qdisc")),
    ("noqueue_", l("qdisc")),
    ("dev_qdisc_", l("qdisc")),
    ("__dev_xmit_skb", l("qdisc")),
    ("dev_requeue_skb", l("qdisc")),
    ("dequeue_skb", l("qdisc")),
    // netfilter
    ("nf_", l("netfilter")),
    ("__nf_", l("netfilter")),
    ("nft_", l("netfilter")),
    ("__nft_", l("netfilter")),
    ("nfnl_", l("netfilter")),
    ("nfnetlink_", l("netfilter")),
    ("ipt_", l("netfilter")),
    ("ip6t_", l("netfilter")),
    ("ebt_", l("netfilter")),
    ("xt_", l("netfilter")),
    ("ipv4_conntrack", l("netfilter")),
    ("ipv6_conntrack", l("netfilter")),
    // net/packet
    ("packet_", l("packet")),
    ("__packet_", l("packet")),
    ("tpacket_", l("packet")),
    ("prb_", l("packet")),
    ("fanout_", l("packet")),
    // net/core and friends
    ("netif_", l("core")),
    ("__netif_", l("core")),
    ("netdev_", l("core")),
    ("__netdev_", l("core")),
    ("dev_", l("core")),
    ("__dev_", l("core")),
    ("skb_", l("core")),
    ("__skb_", l("core")),
    ("kfree_skb", l("core")),
    ("__kfree_skb", l("core")),
    ("consume_skb", l("core")),
    ("sk_", l("core")),
    ("__sk_", l("core")),
    ("sock_", l("core")),
    ("__sock_", l("core")),
    ("napi_", l("core")),
    ("__napi_", l("core")),
    ("gro_", l("core")),
    ("dst_", l("core")),
    ("__dst_", l("core")),
    ("neigh_", l("core")),
    ("__neigh_", l("core")),
    ("net_rx_action", l("core")),
    ("net_tx_action", l("core")),
    ("rtnl_", l("core")),
    ("rtnetlink_", l("core")),
    ("flow_", l("core")),
    ("__flow_", l("core")),
    ("eth_", l("core")),
    ("process_backlog", l("core")),
    ("enqueue_to_backlog", l("core")),
    ("rps_", l("core")),
    ("datagram_", l("core")),
    ("__datagram_", l("core")),
    ("netpoll_", l("core")),
    ("page_pool_", l("core")),
    ("validate_xmit_", l("core")),
    ("xmit_one", l("core")),
    ("lwtunnel_", l("core")),
    // net/ipv4, net/ipv6 (not tcp/udp)
    ("ip_", l("ip")),
    ("__ip_", l("ip")),
    ("ip4_", l("ip")),
    ("ip6_", l("ip")),
    ("__ip6_", l("ip")),
    ("ipv4_", l("ip")),
    ("ipv6_", l("ip")),
    ("__ipv6_", l("ip")),
    ("icmp_", l("ip")),
    ("__icmp_", l("ip")),
    ("icmpv6_", l("ip")),
    ("icmp6_", l("ip")),
    ("inet_", l("ip")),
    ("__inet_", l("ip")),
    ("inet6_", l("ip")),
    ("__inet6_", l("ip")),
    ("fib_", l("ip")),
    ("fib4_", l("ip")),
    ("fib6_", l("ip")),
    ("__fib6_", l("ip")),
    ("rt6_", l("ip")),
    ("ipmr_", l("ip")),
    ("ip6mr_", l("ip")),
    ("arp_", l("ip")),
    ("ndisc_", l("ip")),
    ("igmp_", l("ip")),
    ("igmp6_", l("ip")),
    ("mld_", l("ip")),
    ("ping_", l("ip")),
    ("raw_rcv", l("ip")),
    ("raw_v4_", l("ip")),
    ("raw_v6_", l("ip")),
    ("raw_local_deliver", l("ip")),
    ("rawv6_", l("ip")),
    ("iptunnel_", l("ip")),
    ("ipip_", l("ip")),
    ("ipip6_", l("ip")),
    ("ip6_tnl_", l("ip")),
    ("gre_", l("ip")),
    ("ipgre_", l("ip")),
    ("ip6gre_", l("ip")),
    ("esp_", l("ip")),
    ("esp4_", l("ip")),
    ("esp6_", l("ip")),
    ("xfrm_", l("ip")),
    ("__xfrm_", l("ip")),
    ("xfrm4_", l("ip")),
    ("xfrm6_", l("ip")),
    ("nexthop_", l("ip")),
    // net/ipv4/tcp*.c, net/ipv6/tcp_ipv6.c, congestion control, MPTCP
    ("tcp_", l("tcp")),
    ("__tcp_", l("tcp")),
    ("tcp4_", l("tcp")),
    ("tcp6_", l("tcp")),
    ("inet_csk_", l("tcp")),
    ("inet6_csk_", l("tcp")),
    ("inet_twsk_", l("tcp")),
    ("__inet_twsk_", l("tcp")),
    ("__inet_lookup_established", l("tcp")),
    ("mptcp_", l("tcp")),
    ("__mptcp_", l("tcp")),
    ("bictcp_", l("tcp")),
    ("cubictcp_", l("tcp")),
    ("bbr_", l("tcp")),
    ("dctcp_", l("tcp")),
    // net/ipv4/udp*.c, net/ipv6/udp.c
    ("udp_", l("udp")),
    ("__udp_", l("udp")),
    ("udp4_", l("udp")),
    ("__udp4_", l("udp")),
    ("udp6_", l("udp")),
    ("__udp6_", l("udp")),
    ("udpv6_", l("udp")),
    ("__udpv6_", l("udp")),
    ("udplite", l("udp")),
];

/// Unclassified symbols between two symbols of one layer take that layer when
/// there are at most this many of them: a file's static helpers
/// (`__skb_array_destroy_skb` in tap.c, `virtio_net_hdr_*` in tun.c) sit
/// between its named functions.
pub const GAP_FILL: usize = 8;

/// Classifies symbol names; built once per table (rules bucketed by first byte).
pub struct Classifier {
    by_first: Vec<Vec<(&'static str, u8)>>,
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Classifier {
    /// Buckets the rules.
    pub fn new() -> Self {
        let mut by_first = vec![Vec::new(); 256];
        for &(p, layer) in PREFIXES {
            by_first[p.as_bytes()[0] as usize].push((p, layer));
        }
        Self { by_first }
    }

    /// Layer of a kernel text symbol (`__pfx_` padding symbols belong to the
    /// function they precede), `module` without brackets.
    pub fn classify(&self, name: &str, module: Option<&str>) -> u8 {
        if let Some(m) = module {
            let hit = MODULES.iter().find(|(pat, _)| match pat.strip_suffix('*') {
                Some(prefix) => m.starts_with(prefix),
                None => m == *pat,
            });
            if let Some(&(_, layer)) = hit {
                return layer;
            }
        }
        let name = name.strip_prefix("__pfx_").unwrap_or(name);
        let Some(&first) = name.as_bytes().first() else {
            return OTHER;
        };
        self.by_first[first as usize]
            .iter()
            .filter(|(p, _)| name.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map_or(OTHER, |&(_, layer)| layer)
    }
}

/// Address-ordered `(address, layer)` pairs → runs `(start, layer)`: gaps of
/// at most [`GAP_FILL`] unclassified symbols between two symbols of one layer
/// are filled, then neighbours of one layer merge. The first run starts at the
/// first symbol; addresses below it belong to no run.
pub fn runs(symbols: &[(u64, u8)]) -> Vec<(u64, u8)> {
    let mut layers: Vec<u8> = symbols.iter().map(|s| s.1).collect();
    let mut i = 0;
    while i < layers.len() {
        if layers[i] != OTHER {
            i += 1;
            continue;
        }
        let j = (i..layers.len())
            .find(|&j| layers[j] != OTHER)
            .unwrap_or(layers.len());
        if i > 0 && j < layers.len() && j - i <= GAP_FILL && layers[i - 1] == layers[j] {
            let fill = layers[j];
            layers[i..j].iter_mut().for_each(|x| *x = fill);
        }
        i = j;
    }
    let mut out: Vec<(u64, u8)> = Vec::new();
    for (s, layer) in symbols.iter().zip(layers) {
        if out.last().is_none_or(|&(_, last)| last != layer) {
            out.push((s.0, layer));
        }
    }
    out
}

/// The layer of `addr` in `runs` (what the kernel's search returns).
pub fn lookup(runs: &[(u64, u8)], addr: u64) -> u8 {
    let after = runs.partition_point(|r| r.0 <= addr);
    after.checked_sub(1).map_or(OTHER, |i| runs[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> &'static str {
        NAMES[Classifier::new().classify(name, None) as usize]
    }

    #[test]
    fn drop_sites_get_their_layer() {
        assert_eq!(c("tap_handle_frame"), "tap");
        assert_eq!(c("macvtap_count_rx_dropped"), "tap");
        assert_eq!(c("tun_net_xmit"), "tun");
        assert_eq!(c("tun_net_xmit.cold"), "tun");
        assert_eq!(c("__pfx_tun_net_xmit"), "tun");
        assert_eq!(c("macvlan_handle_frame"), "macvlan");
        assert_eq!(c("br_handle_frame"), "bridge");
        assert_eq!(c("veth_xmit"), "veth");
        assert_eq!(c("__dev_xmit_skb"), "qdisc");
        assert_eq!(c("pfifo_fast_enqueue"), "qdisc");
        assert_eq!(c("__netif_receive_skb_core"), "core");
        assert_eq!(c("sk_skb_reason_drop"), "core");
        assert_eq!(c("ip_rcv_core"), "ip");
        assert_eq!(c("ip6_rcv_core"), "ip");
        assert_eq!(c("tcp_v4_rcv"), "tcp");
        assert_eq!(c("tcp_data_queue"), "tcp");
        assert_eq!(c("__udp4_lib_rcv"), "udp");
        assert_eq!(c("udp_queue_rcv_one_skb"), "udp");
        assert_eq!(c("nf_hook_slow"), "netfilter");
        assert_eq!(c("br_nf_pre_routing"), "netfilter");
        assert_eq!(c("packet_rcv"), "packet");
    }

    #[test]
    fn reasons_name_layers_for_generic_code() {
        assert_eq!(NAMES[for_reason("QDISC_DROP") as usize], "qdisc");
        assert_eq!(NAMES[for_reason("TC_INGRESS") as usize], "qdisc");
        assert_eq!(NAMES[for_reason("XDP") as usize], "xdp");
        assert_eq!(NAMES[for_reason("TCP_OLD_DATA") as usize], "tcp");
        assert_eq!(for_reason("FULL_RING"), OTHER);
        assert_eq!(for_reason("NOT_SPECIFIED"), OTHER);
        assert!(is_generic(CORE) && is_generic(OTHER) && !is_generic(l("tap")));
    }

    #[test]
    fn other_code_is_other() {
        assert_eq!(c("schedule"), "other");
        assert_eq!(c("rt_mutex_lock"), "other");
        assert_eq!(c("_raw_spin_lock"), "other");
        assert_eq!(c("prio_changed_fair"), "other");
        assert_eq!(c(""), "other");
    }

    #[test]
    fn modules_win_over_names() {
        let k = Classifier::new();
        assert_eq!(NAMES[k.classify("foo", Some("sch_fq")) as usize], "qdisc");
        assert_eq!(NAMES[k.classify("tap_open", Some("tap")) as usize], "tap");
        // a module vprobe does not know: the name decides
        assert_eq!(NAMES[k.classify("tcp_x", Some("mydrv")) as usize], "tcp");
    }

    #[test]
    fn names_and_ids_round_trip() {
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(id(n), Some(i as u8));
            assert_eq!(name(i as u64), *n);
        }
        assert_eq!(id("TAP"), Some(1));
        assert_eq!(id("nope"), None);
        assert_eq!(name(999), "other");
    }

    #[test]
    fn runs_fill_small_gaps_and_merge() {
        let (tap, tun, o) = (l("tap"), l("tun"), OTHER);
        let syms = [
            (0x100, o),
            (0x110, tun),
            (0x120, o), // tun.c's static helper: filled
            (0x130, tun),
            (0x140, tap),
            (0x150, o), // between tap and tun: stays other
            (0x160, tun),
        ];
        assert_eq!(
            runs(&syms),
            vec![
                (0x100, o),
                (0x110, tun),
                (0x140, tap),
                (0x150, o),
                (0x160, tun)
            ]
        );
        let r = runs(&syms);
        assert_eq!(lookup(&r, 0x0ff), o);
        assert_eq!(lookup(&r, 0x125), tun);
        assert_eq!(lookup(&r, 0x14f), tap);
        assert_eq!(lookup(&r, 0x155), o);
        assert_eq!(lookup(&r, u64::MAX), tun);
    }

    #[test]
    fn long_gaps_stay_other() {
        let t = l("tcp");
        let mut syms = vec![(0u64, t)];
        syms.extend((1..=GAP_FILL as u64 + 1).map(|i| (i, OTHER)));
        syms.push((100, t));
        assert_eq!(runs(&syms), vec![(0, t), (1, OTHER), (100, t)]);
    }
}
