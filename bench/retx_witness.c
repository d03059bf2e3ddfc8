// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * retx_witness: loads retx_witness.bpf.o (libbpf), attaches it, prints
 * "ready", waits for SIGINT or SIGTERM (at most an hour), then prints what it
 * counted and every event it kept, one line each (bench/retx_witness.py reads
 * them).
 *
 * Usage: retx_witness OBJECT PORT
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "retx_witness.h"

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int fd_of(struct bpf_object *obj, const char *map)
{
	return bpf_map__fd(bpf_object__find_map_by_name(obj, map));
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link;
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info), zero = 0, one = 1;
	__u64 total = 0, on_port[256] = {0}, all[256] = {0};
	size_t size;
	int ncpu;

	if (argc != 3) {
		fprintf(stderr, "usage: %s OBJECT PORT\n", argv[0]);
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "open %s failed\n", argv[1]);
		return 1;
	}
	/* .rodata holds `port` only */
	*(__u16 *)bpf_map__initial_value(bpf_object__find_map_by_name(obj, ".rodata"), &size) =
		(__u16)atoi(argv[2]);
	if (bpf_object__load(obj)) {
		fprintf(stderr, "load failed\n");
		return 1;
	}
	prog = bpf_object__find_program_by_name(obj, "retx_witness");
	link = bpf_program__attach(prog);
	if (!link) {
		fprintf(stderr, "attach failed\n");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 3600 && !stop; i++)
		sleep(1);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu > 256)
		ncpu = 256;
	bpf_map_lookup_elem(fd_of(obj, "n"), &zero, &total);
	bpf_map_lookup_elem(fd_of(obj, "hits"), &zero, on_port);
	bpf_map_lookup_elem(fd_of(obj, "hits"), &one, all);
	bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &info_len);
	printf("total %llu recursion_misses %llu\n", (unsigned long long)total,
	       (unsigned long long)info.recursion_misses);
	for (int c = 0; c < ncpu; c++)
		printf("cpu %d on_port %llu all %llu\n", c, (unsigned long long)on_port[c],
		       (unsigned long long)all[c]);
	for (__u32 i = 0; i < total && i < 16384; i++) {
		struct ev e;

		if (bpf_map_lookup_elem(fd_of(obj, "evs"), &i, &e))
			continue;
		printf("ev %llu %u %llx %u %u %u %u %d %u\n", (unsigned long long)e.ts, e.cpu,
		       (unsigned long long)e.sk, e.sport, e.dport, e.seq, e.segs, e.err,
		       e.total_retrans);
	}
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
