// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * udp_drops: make a known number of kernel drops, fast and bounded.
 *
 * Sends COUNT empty UDP datagrams to 127.0.0.1:9 (nothing listens there, so
 * each is freed with reason NO_SOCKET in __udp4_lib_rcv) and prints the wall
 * time in nanoseconds. Stops early after LIMIT seconds. Run it inside a
 * network namespace of its own (bench/bench.sh does): the traffic never
 * leaves that namespace's loopback.
 *
 * Usage: udp_drops COUNT [LIMIT_SECONDS [SIZES]]
 *   SIZES > 1: the payload length cycles over 0..SIZES-1 (at most 60000), so
 *   a count of the drops keyed by `len` has SIZES keys.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s COUNT [LIMIT_SECONDS [SIZES]]\n", argv[0]);
		return 2;
	}
	long count = atol(argv[1]);
	long long limit = (argc > 2 ? atoll(argv[2]) : 30) * 1000000000LL;
	long sizes = argc > 3 ? atol(argv[3]) : 1;
	static char payload[60000];
	if (sizes < 1 || sizes > (long)sizeof(payload))
		sizes = 1;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	long long start = now_ns(), deadline = start + limit;
	long sent = 0;
	for (; sent < count; sent++) {
		/* The clock only every 4096 sends: it is not free either. */
		if ((sent & 4095) == 0 && now_ns() > deadline)
			break;
		/* ECONNREFUSED from an earlier ICMP error is not a failed send. */
		sendto(fd, payload, (size_t)(sent % sizes), 0, (struct sockaddr *)&to, sizeof(to));
	}
	long long elapsed = now_ns() - start;
	printf("%ld %lld\n", sent, elapsed);
	return sent == count ? 0 : 3;
}
