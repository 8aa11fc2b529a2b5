// SPDX-License-Identifier: GPL-2.0-only
/*
 * mpi_verify: two MPI ranks move messages both ways and check every byte, as TAP.
 *
 * Each round, rank 0 fills a message of one of several lengths (1 byte to a megabyte and a
 * few bytes, odd ones that end mid-page), at an offset into its buffer that is not a page's,
 * with a pattern of the round, the length and the byte's position; rank 1 receives it at
 * another such offset, checks it, and sends it back changed, which rank 0 checks in turn.
 * Point-to-point messages and one-sided puts (MPI_Put into a window, fenced) both run. With
 * Open MPI over UCX on an RDMA device, the bytes cross the device as SENDs, RDMA WRITEs and
 * RDMA READs (UCX's rendezvous), through whatever memory registration UCX is set to use.
 *
 * Usage: mpirun -np 2 mpi_verify [ROUNDS]
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t lengths[] = { 1, 63, 4097, 65537, 262147, (1 << 20) + 5 };
#define NLENGTHS (sizeof(lengths) / sizeof(lengths[0]))
/* where in the buffers messages start: never on a page boundary */
#define SEND_OFFSET 13
#define RECV_OFFSET 4093
#define BUFFER_SIZE ((2 << 20) + 8192)

static uint8_t pattern(unsigned int round, size_t len, size_t i, unsigned int side)
{
	return (uint8_t)((i * 131 + len * 7 + round * 17 + side * 101) ^ (i >> 9));
}

static void fill(uint8_t *p, unsigned int round, size_t len, unsigned int side)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(round, len, i, side);
}

/* Return: the index of the first wrong byte, or len if all are right. */
static size_t check(const uint8_t *p, unsigned int round, size_t len, unsigned int side)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(round, len, i, side))
			return i;
	return len;
}

static int report(int rank, const char *what, size_t bad, size_t len, unsigned long long *checked)
{
	int ok = bad == len, all_ok;

	*checked += len;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!ok)
		fprintf(stderr, "rank %d: %s: byte %zu of %zu is wrong\n", rank, what, bad, len);
	return all_ok;
}

int main(int argc, char **argv)
{
	unsigned int rounds = argc > 1 ? (unsigned int)atoi(argv[1]) : 3;
	unsigned long long checked = 0, total = 0;
	int rank, size, failed = 0;
	uint8_t *buf, *win_buf;
	MPI_Win win;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (size != 2) {
		if (!rank)
			printf("Bail out! mpi_verify needs 2 ranks, not %d\n", size);
		MPI_Finalize();
		return 1;
	}
	buf = malloc(BUFFER_SIZE);
	MPI_Alloc_mem(BUFFER_SIZE, MPI_INFO_NULL, &win_buf);
	if (!buf || !win_buf) {
		printf("Bail out! out of memory\n");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	memset(win_buf, 0, BUFFER_SIZE);
	MPI_Win_create(win_buf, BUFFER_SIZE, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &win);
	if (!rank)
		printf("TAP version 13\n1..2\n");

	/* point to point: there and back, each way checked */
	for (unsigned int r = 0; r < rounds; r++) {
		for (size_t l = 0; l < NLENGTHS; l++) {
			size_t len = lengths[l], bad;

			if (!rank) {
				fill(buf + SEND_OFFSET, r, len, 0);
				MPI_Send(buf + SEND_OFFSET, (int)len, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
				memset(buf + RECV_OFFSET, 0, len);
				MPI_Recv(buf + RECV_OFFSET, (int)len, MPI_BYTE, 1, 2, MPI_COMM_WORLD,
					 MPI_STATUS_IGNORE);
				bad = check(buf + RECV_OFFSET, r, len, 1);
			} else {
				memset(buf + RECV_OFFSET, 0, len);
				MPI_Recv(buf + RECV_OFFSET, (int)len, MPI_BYTE, 0, 1, MPI_COMM_WORLD,
					 MPI_STATUS_IGNORE);
				bad = check(buf + RECV_OFFSET, r, len, 0);
				fill(buf + SEND_OFFSET, r, len, 1);
				MPI_Send(buf + SEND_OFFSET, (int)len, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
			}
			failed |= !report(rank, "send/recv", bad, len, &checked);
		}
	}
	MPI_Reduce(&checked, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
	if (!rank)
		printf("%s 1 - MPI_Send/MPI_Recv both ways, %u rounds of %zu lengths up to 1 MiB at "
		       "unaligned offsets: %llu bytes checked\n", failed ? "not ok" : "ok", rounds,
		       NLENGTHS, total);

	/* one-sided: each rank puts into the other's window, fenced, then checks its own */
	checked = 0;
	int put_failed = 0;

	for (unsigned int r = 0; r < rounds; r++) {
		for (size_t l = 0; l < NLENGTHS; l++) {
			size_t len = lengths[l], bad;

			fill(buf + SEND_OFFSET, r, len, (unsigned int)rank);
			memset(win_buf + RECV_OFFSET, 0, len);
			MPI_Win_fence(0, win);
			MPI_Put(buf + SEND_OFFSET, (int)len, MPI_BYTE, 1 - rank, RECV_OFFSET, (int)len,
				MPI_BYTE, win);
			MPI_Win_fence(0, win);
			bad = check(win_buf + RECV_OFFSET, r, len, (unsigned int)(1 - rank));
			put_failed |= !report(rank, "put", bad, len, &checked);
		}
	}
	MPI_Reduce(&checked, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
	if (!rank)
		printf("%s 2 - MPI_Put into each other's window, fenced, %u rounds of %zu lengths: "
		       "%llu bytes checked\n", put_failed ? "not ok" : "ok", rounds, NLENGTHS, total);

	MPI_Win_free(&win);
	MPI_Free_mem(win_buf);
	free(buf);
	MPI_Finalize();
	return failed || put_failed;
}
