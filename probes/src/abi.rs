//! The record and settings shared with the eBPF programs.
//!
//! Keep in sync with `bpf/include/vprobe.bpf.h`.

/// Numeric field slots in a record.
pub const NUM: usize = 24;
/// Address (16-byte) slots in a record.
pub const ADDR: usize = 2;
/// Ranges or values per filtered field.
pub const FILTER_MAX: usize = 8;
/// Device-name patterns per filter.
pub const DEV_MAX: usize = 4;
/// Device name length (IFNAMSIZ).
pub const DEV_LEN: usize = 16;

/// `key_mask` bit of the first address slot.
pub const KEY_ADDR0: u32 = 24;
/// `key_mask` bit of the device name.
pub const KEY_DEV: u32 = 26;

/// Count events into `counts`.
pub const MODE_COUNT: u32 = 1;
/// Histogram a field into `hists`.
pub const MODE_HIST: u32 = 2;
/// Emit every matching record to the `events` ring buffer.
pub const MODE_EVENTS: u32 = 4;
/// Emit every matching record with its packet's first `snaplen` bytes.
pub const MODE_CAPTURE: u32 = 8;

/// `Event::flags`: the fields a ring record carries, as `key_mask` bits (see
/// [`event_bytes`]).
pub const EVENT_FIELDS: u32 = 0x07ff_ffff;
/// `Event::flags`: a [`Packet`] header and its bytes follow the event's fields.
pub const EVENT_PACKET: u32 = 0x8000_0000;
/// Bytes of a ring record's header (`struct vp_event`): `ts_ns`, `cpu`, `flags`.
pub const EVENT_HEAD: usize = 16;
/// Largest `snaplen` (`VP_SNAP_MAX`).
pub const SNAP_MAX: u32 = 2048;
/// `Packet::link`: no bytes (the program has no skb; the record says what it can).
pub const LINK_NONE: u32 = 0;
/// `Packet::link`: the bytes start at an Ethernet header.
pub const LINK_ETHERNET: u32 = 1;
/// `Packet::link`: the bytes start at the IPv4/IPv6 header.
pub const LINK_IP: u32 = 2;

/// log2 histogram buckets (bpftrace `hist()`).
pub const HIST_LOG2: u32 = 0;
/// Linear histogram buckets of `hist_step` width (bpftrace `lhist()`).
pub const HIST_LINEAR: u32 = 1;

/// `loss` slot: ring-buffer reserve failures.
pub const LOSS_EVENTS: u32 = 0;
/// `loss` slot: failed aggregation inserts (map full).
pub const LOSS_MAP_FULL: u32 = 1;
/// `loss` slot: events and captures the rate limit held back.
pub const LOSS_RATE: u32 = 2;
/// `loss` slot: records offered to the ring buffer, reserved or not. Less
/// the reserve failures and what user space handed on (to a callback or a
/// capture file), it is what reached the ring but never its consumer.
pub const LOSS_OFFERED: u32 = 3;
/// Slots of the `loss` map.
pub const LOSS_SLOTS: u32 = 4;

/// `Raw::read`: an integer zero-extended to 64 bits.
pub const READ_UNSIGNED: u32 = 0;
/// `Raw::read`: an integer sign-extended to 64 bits.
pub const READ_SIGNED: u32 = 1;
/// `Raw::read`: `char name[N]`, a string in place.
pub const READ_CHARS: u32 = 2;
/// `Raw::read`: `__data_loc char[]`, a u32 `len << 16 | offset from the record start`.
pub const READ_DATA_LOC: u32 = 3;
/// `Raw::read`: `__rel_loc char[]`, a u32 `len << 16 | offset from the end of the field`.
pub const READ_REL_LOC: u32 = 4;
/// `Raw::read`: `u8 addr[4]`, stored IPv4-mapped.
pub const READ_IPV4: u32 = 5;
/// `Raw::read`: `u8 addr[16]`, copied as is.
pub const READ_BYTES: u32 = 6;

/// Where the generic tracepoint program finds one slot's value in the raw
/// record (`struct vp_raw`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Raw {
    /// Byte offset in the record.
    pub offset: u16,
    /// Bytes; 0 leaves the slot unfilled.
    pub size: u16,
    /// `READ_*`.
    pub read: u32,
}

/// One kernel event as a program records it; also the aggregation key (with
/// unselected fields zeroed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Record {
    /// Numeric fields, by catalog slot.
    pub num: [u64; NUM],
    /// Addresses: IPv6, or IPv4 mapped as `::ffff:a.b.c.d`.
    pub addr: [[u8; 16]; ADDR],
    /// Device name, NUL-padded.
    pub dev: [u8; DEV_LEN],
}

/// Largest packed key in 8-byte words: every field (24 + 2×2 + 2) and a
/// histogram's bucket, within the program's 32-word key buffer.
pub const KEY_WORDS_MAX: usize = 32;

/// The aggregation key as the maps hold it: the fields `key_mask` selects,
/// packed in slot order (numbers one word each, then addresses and the device
/// name two words each), then for a histogram its bucket, then zeros up to a
/// size class (1, 2, 4, 8, 16 or 32 words: few key types for user space to
/// read). Hashing a few words instead of the whole 256-byte record is most of
/// an aggregation's in-kernel cost. Mirrors `vp_pack_key` in vprobe.bpf.h.
pub fn key_words(key_mask: u32, hist: bool) -> usize {
    let num = (0..NUM).filter(|i| key_mask & (1 << i) != 0).count();
    let addr = (0..ADDR)
        .filter(|i| key_mask & (1 << (KEY_ADDR0 as usize + i)) != 0)
        .count();
    let dev = usize::from(key_mask & (1 << KEY_DEV) != 0);
    let used = num + 2 * addr + 2 * dev + usize::from(hist);
    used.max(1).next_power_of_two()
}

/// The packed key of `rec` (see [`key_words`]).
pub fn pack_key(key_mask: u32, rec: &Record, slot: Option<u64>) -> Vec<u64> {
    let mut w = Vec::with_capacity(KEY_WORDS_MAX);
    for i in 0..NUM {
        if key_mask & (1 << i) != 0 {
            w.push(rec.num[i]);
        }
    }
    let halves = |b: &[u8; 16]| {
        [
            u64::from_ne_bytes(b[..8].try_into().expect("8 bytes")),
            u64::from_ne_bytes(b[8..].try_into().expect("8 bytes")),
        ]
    };
    for i in 0..ADDR {
        if key_mask & (1 << (KEY_ADDR0 as usize + i)) != 0 {
            w.extend(halves(&rec.addr[i]));
        }
    }
    if key_mask & (1 << KEY_DEV) != 0 {
        w.extend(halves(&rec.dev));
    }
    w.extend(slot);
    w.resize(key_words(key_mask, slot.is_some()), 0);
    w
}

/// The record and (for a histogram) the bucket a packed key stands for; the
/// fields outside `key_mask` are zero.
pub fn unpack_key(key_mask: u32, words: &[u64], hist: bool) -> (Record, u64) {
    let mut rec = Record::default();
    let mut at = words.iter().copied();
    let mut next = || at.next().unwrap_or(0);
    for i in 0..NUM {
        if key_mask & (1 << i) != 0 {
            rec.num[i] = next();
        }
    }
    let mut bytes16 = |dst: &mut [u8; 16]| {
        dst[..8].copy_from_slice(&next().to_ne_bytes());
        dst[8..].copy_from_slice(&next().to_ne_bytes());
    };
    for i in 0..ADDR {
        if key_mask & (1 << (KEY_ADDR0 as usize + i)) != 0 {
            bytes16(&mut rec.addr[i]);
        }
    }
    if key_mask & (1 << KEY_DEV) != 0 {
        bytes16(&mut rec.dev);
    }
    let slot = if hist { next() } else { 0 };
    (rec, slot)
}

/// Value of the `hists` map (per CPU): the bucket's events and the sum of
/// their values. Keep in sync with `struct vp_hval` in probes/bpf/include/vprobe.bpf.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistValue {
    /// Events in the bucket.
    pub count: u64,
    /// Sum of the histogrammed field over them.
    pub sum: u64,
}

/// A ring-buffer event, decoded: the whole record, whatever fields the ring
/// record carried (the others are zero).
///
/// On the ring (`struct vp_event`) an event is its first [`EVENT_HEAD`] bytes
/// (`ts_ns`, `cpu`, `flags`) followed by only the fields `flags` names
/// ([`EVENT_FIELDS`]), packed in slot order: `num[i]` as 8 bytes each, then
/// `addr[i]` as 16, then `dev` as 16 ([`event_bytes`] in all).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    /// `bpf_ktime_get_ns()` at the event (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// CPU the event fired on.
    pub cpu: u32,
    /// The fields the ring record carried ([`EVENT_FIELDS`]), and
    /// [`EVENT_PACKET`] when a [`Packet`] followed them.
    pub flags: u32,
    /// The record.
    pub rec: Record,
}

/// Bytes of a ring record's header and the fields `fields` names
/// (`key_mask` bits; bits outside [`EVENT_FIELDS`] are ignored): what a
/// program reserves per event (`settings.event_bytes`), before a capture's
/// [`Packet`].
pub const fn event_bytes(fields: u32) -> usize {
    let fields = fields & EVENT_FIELDS;
    let nums = (fields & ((1 << NUM) - 1)).count_ones() as usize;
    let wide = (fields >> KEY_ADDR0).count_ones() as usize; // addresses and dev
    EVENT_HEAD + 8 * nums + 16 * wide
}

/// The packet of a capture record, after its [`Event`]; `cap_len` bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// Bytes of the packet from where the capture starts (its length on the wire).
    pub wire_len: u32,
    /// Bytes captured.
    pub cap_len: u32,
    /// `LINK_*`.
    pub link: u32,
    /// Padding.
    pub pad: u32,
}

/// Load-time settings of one program instance (`const volatile settings`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Fields that form the aggregation key: bits 0..23 num, 24..25 addr, 26 dev.
    pub key_mask: u32,
    /// `MODE_*` bits.
    pub mode: u32,
    /// Numeric slot whose value is histogrammed.
    pub hist_slot: u32,
    /// `HIST_LOG2` or `HIST_LINEAR`.
    pub hist_kind: u32,
    /// Linear bucket width.
    pub hist_step: u64,
    /// Ring-buffer bytes waiting before the kernel wakes the reader.
    pub wake_bytes: u64,
    /// Number of ranges per numeric slot; 0 = unfiltered.
    pub filter_n: [u32; NUM],
    /// Number of addresses per address slot; 0 = unfiltered.
    pub addr_filter_n: [u32; ADDR],
    /// Number of device-name patterns; 0 = unfiltered.
    pub dev_filter_n: u32,
    /// Bytes compared per pattern: `len + 1` exact, `len` prefix.
    pub dev_filter_len: [u32; DEV_MAX],
    /// Fields the program reads at all (`key_mask` bits); the rest stay zero.
    pub need_mask: u32,
    /// Inclusive lower bounds.
    pub filter_lo: [[u64; FILTER_MAX]; NUM],
    /// Inclusive upper bounds.
    pub filter_hi: [[u64; FILTER_MAX]; NUM],
    /// Accepted addresses.
    pub addr_filter: [[[u8; 16]; FILTER_MAX]; ADDR],
    /// Device-name patterns.
    pub dev_filter: [[u8; DEV_LEN]; DEV_MAX],
    /// Bytes compared per address-slot filter (a string prefix); 0 = all 16.
    pub addr_filter_len: [u32; ADDR],
    /// Function probes: 1 = the entry stores a timestamp and the return submits
    /// the record with the latency; 0 = the entry submits.
    pub timing: u32,
    /// 8-byte words of the packed aggregation key ([`key_words`]); the maps'
    /// key size is this times 8.
    pub key_words: u32,
    /// Generic tracepoint: where `num[i]` is in the raw record.
    pub raw_num: [Raw; NUM],
    /// Generic tracepoint: where `addr[i]` is (a string or an address).
    pub raw_addr: [Raw; ADDR],
    /// Generic tracepoint: where `dev` is (a string).
    pub raw_dev: Raw,
    /// `MODE_CAPTURE`: packet bytes copied per record (at most [`SNAP_MAX`]).
    pub snaplen: u32,
    /// Events and captures let out per `rate_period_ns`; 0 = no limit.
    pub rate_max: u32,
    /// The rate limit's period.
    pub rate_period_ns: u64,
    /// Events and captures: the fields a ring record carries (`key_mask`
    /// bits), packed after its header (see [`Event`]).
    pub event_fields: u32,
    /// [`event_bytes`] of `event_fields`.
    pub event_bytes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            key_mask: 0,
            mode: 0,
            hist_slot: 0,
            hist_kind: HIST_LOG2,
            hist_step: 1,
            wake_bytes: 0,
            filter_n: [0; NUM],
            addr_filter_n: [0; ADDR],
            dev_filter_n: 0,
            dev_filter_len: [0; DEV_MAX],
            need_mask: 0,
            filter_lo: [[0; FILTER_MAX]; NUM],
            filter_hi: [[0; FILTER_MAX]; NUM],
            addr_filter: [[[0; 16]; FILTER_MAX]; ADDR],
            dev_filter: [[0; DEV_LEN]; DEV_MAX],
            addr_filter_len: [0; ADDR],
            timing: 0,
            key_words: 0,
            raw_num: [Raw::default(); NUM],
            raw_addr: [Raw::default(); ADDR],
            raw_dev: Raw::default(),
            snaplen: 0,
            rate_max: 0,
            rate_period_ns: 0,
            event_fields: 0,
            event_bytes: 0,
        }
    }
}

/// Entries of the `layers` map (`bpf/include/layer.bpf.h`, `VP_LAYER_RUNS`).
pub const LAYER_RUNS: usize = 8192;
/// Entries of the `reason_layers` map (`VP_REASON_LAYERS`): drop reason → layer.
pub const REASON_LAYERS: usize = 256;
/// Flag on a [`LayerRun`] of generic code (core, other): there a drop reason
/// that names a layer decides (`VP_LAYER_GENERIC`).
pub const LAYER_GENERIC: u64 = 0x100;
/// Entries of the `sites` map (`bpf/include/sites.bpf.h`, `VP_SITES_MAX`).
pub const SITES_MAX: usize = 16;
/// Entries of the `site_calls` map (`bpf/include/sites.bpf.h`, `VP_SITE_CALLS_MAX`).
pub const SITE_CALLS_MAX: usize = 4;

/// One run of kernel text of one layer: `[start, next run's start)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerRun {
    /// First address of the run; `u64::MAX` in unused entries.
    pub start: u64,
    /// Layer id (`crate::layers`), 0 for none; with [`LAYER_GENERIC`] on
    /// generic code.
    pub layer: u64,
}

/// One accepted range of drop locations, `[lo, hi)`; `hi == 0` ends the list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Site {
    /// First address.
    pub lo: u64,
    /// One past the last address.
    pub hi: u64,
}

/// Bounds of a log2 slot as bpftrace prints them: slot 0 is `[0, 1)`, slot n is `[2^(n-1), 2^n)`.
pub fn log2_bounds(slot: u64) -> (u64, u64) {
    match slot {
        0 => (0, 1),
        s if s >= 64 => (1 << 63, u64::MAX),
        s => (1 << (s - 1), 1 << s),
    }
}

/// Same computation as `vp_log2_slot()` in the C header.
pub fn log2_slot(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        64 - u64::from(v.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_keys_hold_exactly_the_keyed_fields() {
        let mut rec = Record::default();
        for (i, v) in rec.num.iter_mut().enumerate() {
            *v = 100 + i as u64;
        }
        rec.addr[0] = [1; 16];
        rec.addr[1] = *b"2001:db8::1\0\0\0\0\0";
        rec.dev[..7].copy_from_slice(b"macvtap");
        let all = (1u32 << (KEY_DEV + 1)) - 1;
        for (mask, hist, words) in [
            (0, false, 1),                       // no key: one zero word
            (0, true, 1),                        // the bucket alone
            (1 << 5, false, 1),                  // one field
            (1 << 5 | 1 << 9, true, 4),          // two and a bucket: 3 → 4
            (1 << KEY_ADDR0 | 1 << 3, false, 4), // an address is two words
            (1 << KEY_DEV, true, 4),             // the name too
            (all, false, 32),                    // every field: 30 words
            (all, true, 32),                     // and the bucket: 31
        ] {
            assert_eq!(key_words(mask, hist), words, "{mask:#x} {hist}");
            let slot = hist.then_some(7);
            let packed = pack_key(mask, &rec, slot);
            assert_eq!(packed.len(), words);
            let (back, got_slot) = unpack_key(mask, &packed, hist);
            assert_eq!(got_slot, slot.unwrap_or(0));
            // the fields in the mask come back, the others are zero
            for i in 0..NUM {
                let want = if mask & (1 << i) != 0 { rec.num[i] } else { 0 };
                assert_eq!(back.num[i], want, "num[{i}] of {mask:#x}");
            }
            for i in 0..ADDR {
                let want = if mask & (1 << (KEY_ADDR0 as usize + i)) != 0 {
                    rec.addr[i]
                } else {
                    [0; 16]
                };
                assert_eq!(back.addr[i], want, "addr[{i}] of {mask:#x}");
            }
            let want = if mask & (1 << KEY_DEV) != 0 {
                rec.dev
            } else {
                [0; 16]
            };
            assert_eq!(back.dev, want);
        }
        assert!(key_words(u32::MAX, true) <= KEY_WORDS_MAX);
    }

    #[test]
    fn layout_matches_the_c_header() {
        // sizes computed from vprobe.bpf.h by hand; a mismatch corrupts every key
        assert_eq!(std::mem::size_of::<Record>(), 24 * 8 + 32 + 16);
        assert_eq!(std::mem::size_of::<HistValue>(), 16);
        assert_eq!(std::mem::size_of::<Event>(), 16 + 240);
        assert_eq!(std::mem::size_of::<Packet>(), 16);
        assert_eq!(
            std::mem::size_of::<Settings>(),
            4 * 4
                + 8
                + 8
                + 4 * 24
                + 4 * 2
                + 4
                + 4 * 4
                + 4
                + 24 * 8 * 8 * 2
                + 2 * 8 * 16
                + 4 * 16
                + 4 * 2
                + 4
                + 4
                + 8 * (24 + 2 + 1)
                + 4
                + 4
                + 8
                + 4
                + 4
        );
        assert_eq!(std::mem::offset_of!(Event, rec), EVENT_HEAD);
        assert_eq!(std::mem::size_of::<Raw>(), 8);
        assert_eq!(std::mem::offset_of!(Settings, raw_num), 3568);
    }

    #[test]
    fn loss_slots_match_the_c_header() {
        let header = include_str!("../bpf/include/vprobe.bpf.h");
        let define = |name: &str| -> u32 {
            header
                .lines()
                .find_map(|l| {
                    l.strip_prefix("#define ")?
                        .strip_prefix(name)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no #define {name} in vprobe.bpf.h"))
        };
        assert_eq!(define("VP_LOSS_EVENTS"), LOSS_EVENTS);
        assert_eq!(define("VP_LOSS_MAP_FULL"), LOSS_MAP_FULL);
        assert_eq!(define("VP_LOSS_RATE"), LOSS_RATE);
        assert_eq!(define("VP_LOSS_OFFERED"), LOSS_OFFERED);
        assert_eq!(define("VP_LOSS_SLOTS"), LOSS_SLOTS);
        let hex = |name: &str| -> u32 {
            let line = header
                .lines()
                .find_map(|l| l.strip_prefix("#define ")?.strip_prefix(name))
                .unwrap_or_else(|| panic!("no #define {name} in vprobe.bpf.h"));
            let word = line.split_whitespace().next().unwrap();
            let digits = word.trim_start_matches("0x").trim_end_matches('u');
            u32::from_str_radix(digits, 16).unwrap()
        };
        assert_eq!(hex("VP_EVENT_FIELDS"), EVENT_FIELDS);
        assert_eq!(hex("VP_EVENT_PACKET"), EVENT_PACKET);
    }

    #[test]
    fn event_records_are_their_fields() {
        // the header alone, one of each kind, and every field (the full record)
        assert_eq!(event_bytes(0), EVENT_HEAD);
        assert_eq!(event_bytes(1 << 5), EVENT_HEAD + 8);
        assert_eq!(event_bytes(1 << KEY_ADDR0), EVENT_HEAD + 16);
        assert_eq!(event_bytes(1 << KEY_DEV), EVENT_HEAD + 16);
        assert_eq!(event_bytes(EVENT_FIELDS), std::mem::size_of::<Event>());
        assert_eq!(event_bytes(u32::MAX), std::mem::size_of::<Event>());
        // dev.xmit: ifindex, netns, len, rc, dev
        assert_eq!(event_bytes(0b1_0111 | 1 << KEY_DEV), 16 + 4 * 8 + 16);
        assert_eq!(EVENT_FIELDS, (1 << (KEY_DEV + 1)) - 1);
        assert_eq!(EVENT_PACKET & EVENT_FIELDS, 0);
    }

    #[test]
    fn log2_slots_are_bpftrace_slots() {
        assert_eq!(log2_slot(0), 0);
        assert_eq!(log2_slot(1), 1);
        assert_eq!(log2_slot(2), 2);
        assert_eq!(log2_slot(3), 2);
        assert_eq!(log2_slot(4), 3);
        assert_eq!(log2_slot(1500), 11);
        for v in [1u64, 7, 1000, 1 << 40] {
            let (lo, hi) = log2_bounds(log2_slot(v));
            assert!(lo <= v && v < hi, "{v} in [{lo},{hi})");
        }
    }
}
