#!/usr/bin/env python3
"""Who sees TCP's retransmissions: TcpRetransSegs against every witness.

The measurement behind docs/DESIGN.md, "Counter fidelity" (issue 14). Each run:
two namespaces of its own joined by a veth (203.0.113.1/.2), nftables dropping
3 % of the data segments at random on each side's input, `vprobe rr` with 8
streams for --duration against `vprobe serve` on a port of the run's own.
Attached before the "before" read of both namespaces' counters and read after
the "after" read, for the whole window:

  ftrace   a tracefs instance: tcp:tcp_retransmit_skb with the current task
           (pid, cpu, softirq flag), and timer_expire_entry of tcp_write_timer
  pstat    perf stat -a -A of tcp:tcp_retransmit_skb (counts, all namespaces)
  raw      retx_witness.bpf.c: a libbpf raw tracepoint program keeping each
           event with the socket's total_retrans (a jump between two events of
           a socket is a retransmission it never ran for)
  vp       vprobe: tcp.retransmit counted, and each event emitted
  bt       (optional) bpftrace, a classic tracepoint program
  perf     (optional) perf record -a of the tracepoint; with a classic BPF
           program on it (bt) perf writes no sample the program returns 0 for

Prints one line per run: the counters' growth, what each witness saw in the
window, and the events ftrace recorded that the raw program did not, with the
task that was current (PID 1's threads marked).

Usage: bench/retx_witness.py [--runs N] [--duration 5s] [--witnesses ftrace,pstat,raw,vp]
                             [--vprobe target/release/vprobe] [--out DIR]
Needs root, clang, gcc, bpftool, libbpf-dev, nft, perf (pstat, perf), bpftrace (bt).
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
A_ADDR, B_ADDR = "203.0.113.1", "203.0.113.2"
KEYS = ["Tcp.RetransSegs", "TcpExt.TCPTimeouts", "TcpExt.TCPLossProbes", "TcpExt.TCPRetransFail"]


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60, **kw)


def mono():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def build_raw(workdir):
    """retx_witness and its object, built against the running kernel's BTF."""
    vmlinux = os.path.join(workdir, "vmlinux.h")
    with open(vmlinux, "w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                       stdout=f, check=True, timeout=120)
    obj = os.path.join(workdir, "retx_witness.bpf.o")
    sh("clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", workdir,
       "-c", os.path.join(HERE, "retx_witness.bpf.c"), "-o", obj)
    exe = os.path.join(workdir, "retx_witness")
    sh("gcc", "-O2", "-o", exe, os.path.join(HERE, "retx_witness.c"), "-lbpf")
    return exe, obj


class Run:
    def __init__(self, args, out, raw, port):
        self.args, self.out, self.raw, self.port = args, out, raw, port
        tag = f"{os.getpid()}-{port}"
        self.na, self.nb = f"vprx-a-{tag}", f"vprx-b-{tag}"
        self.inst = f"/sys/kernel/tracing/instances/vprx-{tag}"
        self.procs, self.tracers = [], {}

    def netns(self, ns, *cmd):
        return sh("ip", "netns", "exec", ns, *cmd)

    def counters(self):
        total = collections.Counter()
        for ns in (self.na, self.nb):
            for path in ("/proc/net/snmp", "/proc/net/netstat"):
                lines = self.netns(ns, "cat", path).stdout.splitlines()
                for h, v in zip(lines[0::2], lines[1::2]):
                    hk, vk = h.split(), v.split()
                    for k, x in zip(hk[1:], vk[1:]):
                        total[hk[0].rstrip(":") + "." + k] += int(x)
        return total

    def start(self, name, argv, ready):
        p = subprocess.Popen(argv, stdout=open(f"{self.out}/{name}.out", "w"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.tracers[name] = (p, ready)

    def setup(self):
        sh("ip", "netns", "add", self.na)
        sh("ip", "netns", "add", self.nb)
        sh("ip", "link", "add", "rxA", "netns", self.na, "type", "veth", "peer", "name", "rxB", "netns", self.nb)
        for ns, dev, addr in ((self.na, "rxA", A_ADDR), (self.nb, "rxB", B_ADDR)):
            self.netns(ns, "ip", "link", "set", dev, "up")
            self.netns(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
        for ns, d in ((self.nb, "dport"), (self.na, "sport")):
            self.netns(ns, "nft", "add", "table", "inet", "vpdrop")
            self.netns(ns, "nft", "add chain inet vpdrop input { type filter hook input priority 0; }")
            self.netns(ns, "nft", f"add rule inet vpdrop input tcp {d} {self.port} tcp flags & (syn|fin|rst) == 0"
                       " ip length > 52 numgen random mod 100 < 3 drop")
        srv = subprocess.Popen(["ip", "netns", "exec", self.nb, self.args.vprobe, "serve", "--bind",
                                f"{B_ADDR}:{self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(srv)
        time.sleep(0.3)

    def attach(self):
        w = self.args.witnesses
        if "ftrace" in w:
            os.mkdir(self.inst)
            for f, v in (("tracing_on", "0"), ("buffer_size_kb", "8192"), ("trace_clock", "mono"),
                         ("events/tcp/tcp_retransmit_skb/enable", "1"),
                         ("events/timer/timer_expire_entry/filter", f"function == 0x{self.ksym('tcp_write_timer')}"),
                         ("events/timer/timer_expire_entry/enable", "1"), ("tracing_on", "1")):
                with open(f"{self.inst}/{f}", "w") as fh:
                    fh.write(v)
        if "perf" in w:
            self.start("perf", ["perf", "record", "-a", "-k", "CLOCK_MONOTONIC", "-e", "tcp:tcp_retransmit_skb",
                                "-o", f"{self.out}/perf.data"], None)
        if "pstat" in w:
            self.start("pstat", ["perf", "stat", "-a", "-A", "-x", ",", "-e", "tcp:tcp_retransmit_skb",
                                 "-o", f"{self.out}/pstat.txt"], None)
        if "bt" in w:
            self.start("bt", ["bpftrace", "-e", "tracepoint:tcp:tcp_retransmit_skb /args->sport == %d ||"
                              " args->dport == %d/ { printf(\"bt %%llu %%d %%d %%d\\n\", nsecs, cpu, args->sport,"
                              " args->dport); }" % (self.port, self.port)], "Attaching")
        if "raw" in w:
            self.start("raw", [self.raw[0], self.raw[1], str(self.port)], "ready")
        if "vp" in w:
            ino = [os.stat(f"/run/netns/{ns}").st_ino for ns in (self.na, self.nb)]
            p = f'probe("tcp.retransmit").filter("netns", [{ino[0]}, {ino[1]}])'
            self.start("vp", [self.args.vprobe, "-e", f'{p}.count("retx", ["segs", "err", "kind"]);'
                              f' {p}.on_event(|e| emit(e));', "--format", "json", "--duration", "300s"],
                       '"type":"start"')
        deadline = time.time() + 60
        while time.time() < deadline:
            if all(r is None or r in open(f"{self.out}/{n}.out").read() for n, (_, r) in self.tracers.items()):
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the witnesses did not start")
        time.sleep(1.0)

    @staticmethod
    def ksym(name):
        for line in open("/proc/kallsyms"):
            f = line.split()
            if f[2] == name:
                return f[0]
        raise SystemExit(f"{name} not in /proc/kallsyms")

    def measure(self):
        t0 = mono()
        before = self.counters()
        rr = subprocess.run(["ip", "netns", "exec", self.na, self.args.vprobe, "rr", f"{B_ADDR}:{self.port}", "-n", "8",
                             "-d", self.args.duration, "-f", "json"], capture_output=True, text=True, timeout=120)
        if rr.returncode != 0:
            raise SystemExit(f"rr failed: {rr.stderr}")
        time.sleep(0.5)
        after = self.counters()
        t1 = mono()
        if "ftrace" in self.args.witnesses:
            with open(f"{self.inst}/tracing_on", "w") as fh:
                fh.write("0")
        for p, _ in self.tracers.values():
            p.send_signal(signal.SIGINT)
        for p, _ in self.tracers.values():
            p.wait(timeout=60)
        if "ftrace" in self.args.witnesses:
            with open(f"{self.out}/ftrace.txt", "w") as fh:
                fh.write(open(f"{self.inst}/trace").read())
            for c in sorted(os.listdir(f"{self.inst}/per_cpu")):
                stats = open(f"{self.inst}/per_cpu/{c}/stats").read()
                if re.search(r"^(overrun|dropped events): [1-9]", stats, re.M):
                    print(f"ftrace lost events on {c}", file=sys.stderr)
        if "perf" in self.args.witnesses:
            with open(f"{self.out}/perf.txt", "w") as fh:
                fh.write(sh("perf", "script", "-i", f"{self.out}/perf.data", "-F", "cpu,time,event,trace", "--ns").stdout)
        meta = {"window": [t0, t1], "delta": {k: after[k] - before[k] for k in KEYS}, "port": self.port}
        json.dump(meta, open(f"{self.out}/meta.json", "w"))
        return meta

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if os.path.isdir(self.inst):
            try:
                os.rmdir(self.inst)
            except OSError as e:
                print(f"{self.inst}: {e}", file=sys.stderr)
        for ns in (self.na, self.nb):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


FTRACE = re.compile(r"^\s*(.*)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+)\.(\d+): (\w+): (.*)$")


def ftrace_events(path, port, window):
    out = []
    for line in open(path):
        m = FTRACE.match(line)
        if not m or m.group(7) != "tcp_retransmit_skb":
            continue
        f = dict(kv.split("=", 1) for kv in m.group(8).split() if "=" in kv)
        ts = int(m.group(5)) * 10**9 + int(m.group(6).ljust(9, "0"))
        if str(port) in (f.get("sport"), f.get("dport")) and window[0] <= ts <= window[1]:
            out.append(dict(comm=m.group(1).strip(), pid=int(m.group(2)), cpu=int(m.group(3)), flags=m.group(4),
                            ts=ts, sport=int(f["sport"]), dport=int(f["dport"]), err=int(f["err"])))
    return out


def report(out, meta, witnesses):
    window, port, d = meta["window"], meta["port"], meta["delta"]
    line = [f"RetransSegs +{d['Tcp.RetransSegs']} (TLP +{d['TcpExt.TCPLossProbes']}, RTO +{d['TcpExt.TCPTimeouts']},"
            f" RetransFail +{d['TcpExt.TCPRetransFail']})"]
    raw = []
    if "raw" in witnesses:
        for l in open(f"{out}/raw.out"):
            f = l.split()
            if f[0] == "ev":
                raw.append(dict(ts=int(f[1]), cpu=int(f[2]), sk=f[3], sport=int(f[4]), dport=int(f[5]),
                                segs=int(f[7]), err=int(f[8]), total=int(f[9])))
            elif f[0] == "total":
                misses = f[3]
        gaps, last = 0, {}
        for e in sorted(raw, key=lambda e: e["ts"]):
            gaps += e["total"] - last.get(e["sk"], 0) - (e["segs"] if e["err"] == 0 else 0)
            last[e["sk"]] = e["total"]
        raw = [e for e in raw if window[0] <= e["ts"] <= window[1]]
        line.append(f"raw {len(raw)} (recursion misses {misses}, total_retrans jumps {gaps})")
    if "vp" in witnesses:
        vp, counted = [], 0
        for l in open(f"{out}/vp.out"):
            if '"type":"event"' in l:
                v = json.loads(l)
                if window[0] <= v["ts_ns"] <= window[1]:
                    vp.append(v)
            elif '"type":"summary"' in l:
                s = json.loads(l)
                counted = sum(e["value"] * e["key"]["segs"] for e in s["maps"]["retx"]["entries"] if e["key"]["err"] == 0)
        line.append(f"vprobe {counted} counted, {len(vp)} events in the window")
    if "bt" in witnesses:
        bt = [l for l in open(f"{out}/bt.out") if l.startswith("bt ") and window[0] <= int(l.split()[1]) <= window[1]]
        line.append(f"bpftrace {len(bt)}")
    if "perf" in witnesses:
        n = sum(1 for l in open(f"{out}/perf.txt") if re.search(rf"[sd]port={port} ", l))
        line.append(f"perf record {n}")
    if "pstat" in witnesses:
        n = sum(int(l.split(",")[1]) for l in open(f"{out}/pstat.txt") if l.startswith("CPU"))
        line.append(f"perf stat {n} (all namespaces)")
    if "ftrace" in witnesses:
        ft = ftrace_events(f"{out}/ftrace.txt", port, window)
        init = set(int(t) for t in os.listdir("/proc/1/task"))
        on_init = sum(1 for e in ft if e["pid"] in init)
        line.append(f"ftrace {len(ft)} ({on_init} with a thread of PID 1 current)")
        if "raw" in witnesses:
            unseen = [e for e in ft if not any(r["sport"] == e["sport"] and r["dport"] == e["dport"]
                                               and abs(r["ts"] - e["ts"]) < 2_000_000 for r in raw)]
            line.append("unseen by BPF: " + (", ".join(
                f"{e['comm']}-{e['pid']}{' (PID 1)' if e['pid'] in init else ''} cpu{e['cpu']} {e['flags']}"
                for e in unseen) or "none"))
    return "; ".join(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--witnesses", default="ftrace,pstat,raw,vp")
    ap.add_argument("--vprobe", default=os.path.join(HERE, "..", "target", "release", "vprobe"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.witnesses = set(args.witnesses.split(","))
    if args.runs < 1 or args.runs > 100:
        raise SystemExit("--runs: 1..100")
    base = args.out or tempfile.mkdtemp(prefix="retx_witness.")
    work = tempfile.mkdtemp(prefix="retx_witness_build.")
    raw = build_raw(work) if "raw" in args.witnesses else None
    for i in range(args.runs):
        out = os.path.join(base, f"run{i + 1}")
        os.makedirs(out, exist_ok=True)
        # a port of the run's own, below the ephemeral range
        run = Run(args, out, raw, 20000 + (os.getpid() + i) % 10000)
        try:
            run.setup()
            run.attach()
            meta = run.measure()
        finally:
            run.cleanup()
        print(f"run {i + 1}: {report(out, meta, args.witnesses)}", flush=True)
    print(f"records in {base}", file=sys.stderr)


if __name__ == "__main__":
    main()
