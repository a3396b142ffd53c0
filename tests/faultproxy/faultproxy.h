/*
 * evdb fault proxy: a loopback TCP proxy to put between a client (evdb, an
 * application, psql) and a real server, which misbehaves on command.
 *
 * It listens on 127.0.0.1 and forwards every accepted connection to one
 * target host:port. A test (in-process, through this C API) or a person
 * (through the evdb-faultproxy command line tool) switches it between
 * modes:
 *
 *   pass        forward everything as it comes (the default)
 *   delay MS    forward each chunk MS milliseconds after it arrived
 *   stall       accept new connections, forward nothing in either direction
 *               (data stays where it is; nothing is lost when it clears)
 *   drop N      close each connection (FIN) after N more bytes from the
 *               server; "drop N rst" resets it (RST) instead
 *   trickle MS  forward one byte at a time, MS milliseconds apart (0: one
 *               byte per loop iteration), in both directions
 *   refuse      close the listening socket: new connections are refused
 *               (ECONNREFUSED); open ones keep passing
 * and actions that happen once:
 *   reset       reset (RST, via SO_LINGER 0) every open connection now
 *   close       close (FIN) every open connection now
 *
 * A mode applies to open connections and to new ones. Switching back to
 * pass resumes whatever was held (stall, delay).
 *
 * The proxy runs on the libev loop it is given, with plain malloc (never
 * evdb's allocator hooks, so evdb's allocation accounting in tests is not
 * disturbed). In-process, the proxy forwards only while the loop runs:
 * evdb_future_wait and friends run it. Only loopback addresses are used.
 * Not thread-safe: call it from the loop's thread.
 */
#ifndef EVDB_FAULTPROXY_H
#define EVDB_FAULTPROXY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

typedef struct evdb_fp evdb_fp;

typedef enum evdb_fp_mode {
    EVDB_FP_PASS = 0,
    EVDB_FP_DELAY, /* arg: milliseconds */
    EVDB_FP_STALL,
    EVDB_FP_DROP,     /* arg: bytes from the server before the FIN */
    EVDB_FP_DROP_RST, /* arg: bytes from the server before the RST */
    EVDB_FP_TRICKLE,  /* arg: milliseconds between bytes (0: every iteration) */
    EVDB_FP_REFUSE
} evdb_fp_mode;

typedef struct evdb_fp_stats {
    uint64_t accepted;          /* connections accepted so far */
    uint64_t open;              /* connections open now */
    uint64_t bytes_up;          /* client -> server, forwarded */
    uint64_t bytes_down;        /* server -> client, forwarded */
    uint64_t dropped;           /* connections closed by a drop mode or close */
    uint64_t resets;            /* connections reset (drop rst, reset) */
    uint64_t upstream_failures; /* connects to the target that failed */
    evdb_fp_mode mode;
    double arg;
} evdb_fp_stats;

/* Listen on 127.0.0.1:listen_port (0: a free port, see evdb_fp_port) and
 * forward to target_host:target_port (an IPv4 literal; "localhost" is taken
 * as 127.0.0.1). NULL on failure, with a reason in errbuf when given. */
evdb_fp *evdb_fp_new(struct ev_loop *loop, int listen_port, const char *target_host,
                     int target_port, char *errbuf, size_t errlen);

/* The port it listens on (also while refusing: the port it will reopen). */
int evdb_fp_port(const evdb_fp *p);

/* Switch mode (see above). Returns 0, or -1 for a bad mode/argument or when
 * the listening socket cannot be reopened after refuse. */
int evdb_fp_set(evdb_fp *p, evdb_fp_mode mode, double arg);

/* RST / FIN every open connection now; returns how many. */
unsigned evdb_fp_reset_all(evdb_fp *p);
unsigned evdb_fp_close_all(evdb_fp *p);

void evdb_fp_stats_get(const evdb_fp *p, evdb_fp_stats *out);

/* Run one text command ("stall", "delay 200", "drop 100 rst", "reset",
 * "stats", "help", ...) and write the one-line answer to reply ("ok ..." or
 * "error: ..."). Returns 0 when the command worked, 1 for "quit" (the
 * caller decides what that means), -1 on error. */
int evdb_fp_command(evdb_fp *p, const char *line, char *reply, size_t len);

/* The name of a mode ("pass", "stall", ...). */
const char *evdb_fp_mode_name(evdb_fp_mode mode);

/* Close every connection (FIN) and the listener, stop every watcher and
 * free the proxy. NULL is ignored. */
void evdb_fp_free(evdb_fp *p);

#ifdef __cplusplus
}
#endif
#endif
