//! The precompiled eBPF objects, embedded so that a build needs no clang.

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

// aya parses ELF in place and needs the buffer 4-byte aligned.
macro_rules! object {
    ($name:literal) => {{
        static OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/prebuilt/",
            $name,
            ".o"
        )));
        &OBJ.0
    }};
}

/// Object file name (without `.o`) → bytes.
pub fn object(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "skb_drop" => object!("skb_drop"),
        "tcp" => object!("tcp"),
        "dev" => object!("dev"),
        // qdisc, softirq, socket, scheduler and kvm attach points
        "qdisc" => object!("qdisc"),
        "napi" => object!("napi"),
        "sock" => object!("sock"),
        "sched" => object!("sched"),
        "kvm" => object!("kvm"),
        "tap" => object!("tap"),
        "generic" => object!("generic"),
        _ => return None,
    })
}

/// Every object name, for checks.
pub const OBJECTS: &[&str] = &[
    "skb_drop", "tcp", "dev", "generic", // core and the generic attach points
    "qdisc", "napi", "sock", "sched", "kvm", // qdisc, softirq, socket, scheduler, kvm
    "tap", // macvtap.drop, tun.drop
];
