#!/usr/bin/env bash
# Rebuilds the committed eBPF objects in probes/prebuilt/ from probes/bpf/*.bpf.c.
# Needs: clang, llvm (llvm-strip), libbpf-dev (apt-get install clang llvm libbpf-dev).
# Usage: probes/build-bpf.sh [OUTDIR]   (default: probes/prebuilt)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/prebuilt}
mkdir -p "$out"
arch_inc=/usr/include/$(uname -m)-linux-gnu
for src in "$here"/bpf/*.bpf.c; do
	name=$(basename "$src" .bpf.c)
	# -g: CO-RE relocations live in .BTF.ext; llvm-strip -g then drops DWARF only.
	# -fdebug-prefix-map/-ffile-prefix-map: no build path in the object, so it is reproducible.
	clang -g -O2 -target bpf -D__TARGET_ARCH_x86 \
		-ffile-prefix-map="$here"=probes -fdebug-prefix-map="$here"=probes \
		-I"$here/bpf/include" -I"$arch_inc" \
		-Wall -Werror -Wno-unused-function \
		-c "$src" -o "$out/$name.o.tmp"
	llvm-strip -g "$out/$name.o.tmp"
	mv "$out/$name.o.tmp" "$out/$name.o"
done
