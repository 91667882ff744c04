//go:build ignore

/*
 * tracecam "node tax" micro-benchmark.
 *
 *   cc -O2 -o syscall_loop syscall_loop.c
 *   ./syscall_loop getppid N   N x syscall(SYS_getppid)
 *   ./syscall_loop rw N        N x (write 64 B to a pipe + read 64 B back)
 *
 * Prints one line: ns_per_op=<float>
 * Run with and without the profiler attached; the difference is the
 * per-syscall (or per-context-switch-free I/O) overhead of the probes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s getppid|rw N\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 3) usage(argv[0]);
    char *end;
    long long n = strtoll(argv[2], &end, 10);
    if (*end != '\0' || n <= 0) usage(argv[0]);

    double t0, t1;
    if (strcmp(argv[1], "getppid") == 0) {
        volatile long sink = 0;
        t0 = now_ns();
        for (long long i = 0; i < n; i++) sink += syscall(SYS_getppid);
        t1 = now_ns();
        (void)sink;
    } else if (strcmp(argv[1], "rw") == 0) {
        int p[2];
        char buf[64];
        memset(buf, 'x', sizeof buf);
        if (pipe(p) != 0) { perror("pipe"); return 1; }
        t0 = now_ns();
        for (long long i = 0; i < n; i++) {
            if (write(p[1], buf, sizeof buf) != (ssize_t)sizeof buf) { perror("write"); return 1; }
            if (read(p[0], buf, sizeof buf) != (ssize_t)sizeof buf) { perror("read"); return 1; }
        }
        t1 = now_ns();
        close(p[0]);
        close(p[1]);
    } else {
        usage(argv[0]);
    }
    printf("ns_per_op=%.2f\n", (t1 - t0) / (double)n);
    return 0;
}
