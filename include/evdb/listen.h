/*
 * LISTEN/NOTIFY (PostgreSQL): a listener on a dedicated connection of its
 * own, with callbacks per channel, that survives lost connections.
 *
 * The listener connects in the background and keeps one session. Each
 * evdb_listener_listen registers a callback for a channel and sends
 * LISTEN; its future completes once the server has acknowledged, and from
 * then on every NOTIFY on that channel reaches the callback with its
 * payload and the sending session's backend pid, in the order the server
 * sent them (a NOTIFY inside a transaction arrives at its COMMIT).
 *
 * When the session is lost (server restart, terminated backend, network)
 * the listener reconnects with jittered exponential backoff, LISTENs on
 * every channel again, and then calls the gap callback (opts.on_gap) once
 * per outage, with the time of the loss and of the renewed LISTENs:
 * notifications sent in between may have been missed. Nothing is delivered
 * twice, and nothing received after the gap callback comes before it.
 * See docs/postgres.md, "LISTEN/NOTIFY".
 *
 * Every callback runs from the loop, never inside an evdb call, and may do
 * anything a future callback may (listen, unlisten, close the listener).
 */
#ifndef EVDB_LISTEN_H
#define EVDB_LISTEN_H

#include <stddef.h>
#include <stdint.h>
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_listener evdb_listener;

/* A notification on a channel l listens on: channel and payload are valid
 * only during the call (payload: payload_len bytes plus a NUL; "" for a
 * NOTIFY without payload); sender_pid is the backend pid of the session
 * that sent it (pg_backend_pid() there). */
typedef void (*evdb_notify_fn)(evdb_listener *l, const char *channel, const char *payload,
                               size_t payload_len, int64_t sender_pid, void *arg);

/* Once per outage, after l has reconnected and LISTENs again on every
 * channel it had: notifications sent between lost_at and restored_at
 * (seconds since the Unix epoch, as the loop's clock reads them) may have
 * been missed. cause says why the session was lost (valid during the
 * call). Notifications received before the loss were delivered before
 * this call; every one delivered after it was received afterwards. */
typedef void (*evdb_gap_fn)(evdb_listener *l, double lost_at, double restored_at,
                            const evdb_error *cause, void *arg);

/* Zero-initialised options mean the defaults in brackets. */
typedef struct evdb_listener_opts {
    double connect_timeout; /* seconds per connection attempt
                               [EVDB_DEFAULT_CONNECT_TIMEOUT] */
    double backoff_initial; /* first reconnect delay after a failed attempt [0.1] */
    double backoff_max;     /* cap of the doubling delay [5] */
    double backoff_jitter;  /* +- this fraction of each delay, at random [0.2];
                               negative = none */
    evdb_gap_fn on_gap;     /* told about every outage [none] */
    void *on_gap_arg;
    /* Reserved for future options; keep zero. */
    void *reserved[4];
} evdb_listener_opts;

/* Make a listener for a PostgreSQL url (as evdb_conn_open takes it) and
 * start connecting. Returns the listener at once; LISTENs wait for the
 * connection. NULL at once with evdb_last_error set: EVDB_EINVAL (NULL
 * loop or url, bad options), EVDB_EURL (no driver for the URL),
 * EVDB_ENOTSUP (a backend without LISTEN/NOTIFY: MariaDB), EVDB_ENOMEM.
 * The URL is copied. Close with evdb_listener_close. Callable from
 * callbacks. */
EVDB_EXTERN evdb_listener *evdb_listener_open(struct ev_loop *loop, const char *url,
                                              const evdb_listener_opts *opts);

/* The same with the URL, connect timeout and backoff of pool p (opts
 * NULL), or with opts where they set a value. The listener's connection is
 * its own, not one of the pool's: a pooled connection's LISTENs would end
 * at its release (its session is reset), and a listener holds its
 * connection for good. It does not count against max_conns and outlives
 * the pool if it is closed later. Callable from callbacks. */
EVDB_EXTERN evdb_listener *evdb_listener_open_pool(evdb_pool *p, const evdb_listener_opts *opts);

/* Listen on channel (any text of 1 to 63 bytes: quoted as an identifier,
 * so case, spaces and quotes are kept as written): cb(l, ..., arg) gets
 * every notification on it from the server's acknowledgement until
 * evdb_listener_unlisten or evdb_listener_close. Returns a future that
 * completes when the server has acknowledged the LISTEN (while l is not
 * connected: once it is). It fails when a connection attempt fails first
 * (the channel is then dropped; the listener keeps retrying), with
 * EVDB_ECANCELED when unlistened first and EVDB_ECLOSED when l is closed
 * first. NULL at once: EVDB_EINVAL (NULL cb, a channel empty, too long or
 * already listened on), EVDB_ECLOSED (l is closing), EVDB_ENOMEM. The
 * channel name is copied. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_listener_listen(evdb_listener *l, const char *channel,
                                              evdb_notify_fn cb, void *arg);

/* Stop listening on channel: its callback never runs after this call
 * returns (notifications already received for it are dropped). Returns a
 * future that completes when the server has acknowledged the UNLISTEN
 * (at once while l is not connected: a new session never listens on it).
 * NULL at once: EVDB_EINVAL (not listening on channel), EVDB_ECLOSED,
 * EVDB_ENOMEM. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_listener_unlisten(evdb_listener *l, const char *channel);

/* 0 while l's session is up and every LISTEN renewed after the last
 * outage; EVDB_ECONNLOST while it reconnects (or connects the first
 * time); EVDB_ECLOSED once closing; EVDB_EINVAL for an invalid l. */
EVDB_EXTERN int evdb_listener_status(const evdb_listener *l);

/* Close l: pending listen futures fail with EVDB_ECLOSED, notifications
 * not yet delivered are dropped and no callback of l runs after this
 * call returns; the session ends (a reconnect in progress stops). Returns
 * a future that completes when the session is gone and the memory is
 * reclaimed; l must not be used after that (until then, calls on it fail
 * with EVDB_ECLOSED). NULL for an invalid l or a second close. Callable
 * from callbacks, also l's own. */
EVDB_EXTERN evdb_future *evdb_listener_close(evdb_listener *l);

#define EVDB_HAS_LISTEN 1

#ifdef __cplusplus
}
#endif
#endif
