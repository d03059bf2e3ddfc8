#!/usr/bin/env bash
# Rebuilds the committed eBPF objects in probes/prebuilt/ from probes/bpf/*.bpf.c.
# Needs: clang, llvm (llvm-strip), libbpf-dev (apt-get install clang llvm libbpf-dev).
# Usage: probes/build-bpf.sh [OUTDIR]   (default: probes/prebuilt)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here/prebuilt}" && cd "${1:-$here/prebuilt}" && pwd)
arch_inc=/usr/include/$(uname -m)-linux-gnu
# Compile from bpf/ with relative paths: the objects' BTF line info records source
# paths (and the prefix maps make them relative to probes/), so the same sources
# give the same bytes wherever the checkout is and whatever the caller's cwd.
cd "$here/bpf"
for src in *.bpf.c; do
	name=$(basename "$src" .bpf.c)
	# -g: CO-RE relocations live in .BTF.ext; llvm-strip -g then drops DWARF only.
	clang -g -O2 -target bpf -D__TARGET_ARCH_x86 \
		-fdebug-prefix-map="$here"=probes -ffile-prefix-map="$here"=probes \
		-Iinclude -I"$arch_inc" \
		-Wall -Werror -Wno-unused-function \
		-c "$src" -o "$out/$name.o.tmp"
	llvm-strip -g "$out/$name.o.tmp"
	mv "$out/$name.o.tmp" "$out/$name.o"
done
