/* Wake-up latency between two processes over loopback TCP (BENCHMARKS.md,
 * "Single-task round trip"). A parent and a forked child bounce 32 bytes
 * 2,000 times; the child works 20 us per message.
 *
 *   gcc -O2 bench/wake-pingpong.c -o /tmp/wake-pingpong
 *   /tmp/wake-pingpong GAP_US CHILD_POLL_US PARENT_POLL_US
 *
 * GAP_US: the parent's busy time between round trips (0: it sleeps 1 ms
 * instead). *_POLL_US: how long a side polls its socket (non-blocking reads)
 * before it blocks. Prints the round trip's median and p90. */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void busy(double us) {
    double end = now_us() + us;
    while (now_us() < end) {
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Polls for up to `poll_us`, then blocks. */
static int receive(int fd, char *buf, double poll_us) {
    double end = now_us() + poll_us;
    do {
        int n = recv(fd, buf, 64, MSG_DONTWAIT);
        if (n >= 0) return n;
    } while (now_us() < end);
    return recv(fd, buf, 64, 0);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s GAP_US CHILD_POLL_US PARENT_POLL_US\n", argv[0]);
        return 2;
    }
    double gap = atof(argv[1]), child_poll = atof(argv[2]), parent_poll = atof(argv[3]);
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t len = sizeof a;
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (void *)&a, &len)) {
        perror("listen");
        return 1;
    }
    char buf[64] = {0};
    if (fork() == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a)) _exit(1);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (;;) {
            int n = receive(c, buf, child_poll);
            if (n <= 0) _exit(0);
            busy(20);
            if (write(c, buf, n) != n) _exit(1);
        }
    }
    int s = accept(ls, 0, 0);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    enum { N = 2000 };
    static double rtt[N];
    for (int i = 0; i < N; i++) {
        double t = now_us();
        if (write(s, buf, 32) != 32 || receive(s, buf, parent_poll) <= 0) {
            perror("round trip");
            return 1;
        }
        rtt[i] = now_us() - t;
        if (gap > 0) busy(gap); else usleep(1000);
    }
    qsort(rtt, N, sizeof rtt[0], cmp);
    printf("gap %g us, child polls %g us, parent polls %g us: round trip median %.1f us, p90 %.1f us\n",
           gap, child_poll, parent_poll, rtt[N / 2], rtt[N * 9 / 10]);
    return 0;
}
