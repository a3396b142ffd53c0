/*
 * COPY handles (include/evdb/copy.h): the buffer between the user and the
 * driver, backpressure, and the futures.
 *
 * A copy is a query (evdb__query.copy points here) that the driver runs
 * like any other, moving its data through the evdb__copy_* calls of
 * drivers/driver.h during its steps. The user's calls only touch the
 * buffer and then ask the connection for a step (evdb__conn_kick): user
 * code never runs inside a driver step, and the driver never sees the
 * user's memory.
 *
 * The handle lives as long as any of its three holders: the user (until
 * evdb_copy_free), the query (until the core frees it, after the driver
 * reported it) and the callback on the query's future (until it ran).
 *
 * The final future the user sees is the copy's own, not the query's: for
 * a copy out it completes only after the last data was delivered, so no
 * data ever arrives after the outcome. Cancelling it cancels the query.
 */
#include <string.h>
#include <strings.h>

#include "copy_buf.h"
#include "pool_conn.h"

#define EVDB__MAGIC_COPY 0x436f7079u /* "Copy" */
#define ABORT_DEFAULT "COPY aborted by the client"
/* Bytes a driver is given per call at most: libpq copies every piece
 * into its own buffer, so pieces this large keep that buffer small. */
#define IN_PIECE ((size_t)64 * 1024)

enum copy_end { END_OPEN, END_DATA, END_ABORT };

struct evdb_copy {
    uint32_t magic;
    int refs;
    bool in;
    bool user_gone;  /* evdb_copy_free was called */
    bool query_gone; /* the query object was freed */
    bool delivering; /* on_data runs */
    bool paused;
    bool query_over; /* the query's future completed */
    enum copy_end end;
    char abort_msg[256];
    evdb_conn *conn; /* while the query lives */
    evdb__loop *loop;
    evdb_future *qf;       /* the query's future */
    evdb_future *final;    /* the user's */
    evdb_future *writable; /* pending, or NULL */
    size_t bound;
    char *buf;
    size_t head, len, cap; /* data is buf[head .. len) */
    evdb_copy_data_fn on_data;
    void *arg;
    evdb__deferred deliver_d;
};

/* ---- lifetime ---- */

static void copy_unref(evdb_copy *cp)
{
    if (--cp->refs > 0)
        return;
    evdb__loop_undefer(cp->loop, &cp->deliver_d);
    evdb_future_unref(cp->writable);
    evdb_future_unref(cp->final);
    evdb_future_unref(cp->qf);
    evdb__loop_unref(cp->loop);
    evdb__free(cp->buf);
    cp->magic = EVDB__MAGIC_DEAD;
    evdb__free(cp);
}

void evdb__copy_query_freed(evdb__copy *cp)
{
    cp->query_gone = true;
    cp->conn = NULL;
    copy_unref(cp);
}

static bool valid(const evdb_copy *cp, const char *who)
{
    if (!cp || cp->magic != EVDB__MAGIC_COPY || cp->user_gone) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid copy handle", who);
        return false;
    }
    return true;
}

static size_t buffered(const evdb_copy *cp)
{
    return cp->len - cp->head;
}

/* The copy's outcome so far: 0 while it may go on, else the error code
 * of its query (failed, cancelled, timed out). */
static int outcome(const evdb_copy *cp)
{
    int st = evdb__future_peek(cp->qf);
    return st == EVDB_PENDING ? 0 : st < 0 ? st : EVDB_ESTATE;
}

/* Whether the copy's query failed (then its data goes nowhere). */
static bool failed(const evdb_copy *cp)
{
    return evdb__future_peek(cp->qf) < 0;
}

static void kick(evdb_copy *cp)
{
    if (cp->conn)
        evdb__conn_kick(cp->conn);
}

/* Room for n more bytes after the data (moved to the front when that
 * makes room, so the buffer stays within twice the most it held). */
static bool reserve(evdb_copy *cp, size_t n)
{
    if (cp->len + n <= cp->cap)
        return true;
    if (cp->head) {
        memmove(cp->buf, cp->buf + cp->head, buffered(cp));
        cp->len -= cp->head;
        cp->head = 0;
    }
    if (cp->len + n <= cp->cap)
        return true;
    size_t cap = cp->cap ? cp->cap : 4096;
    while (cap < cp->len + n)
        cap *= 2;
    char *b = evdb__realloc(cp->buf, cap);
    if (!b)
        return false;
    cp->buf = b;
    cp->cap = cap;
    return true;
}

/* ---- the writable future ---- */

static void writable_settle(evdb_copy *cp)
{
    if (!cp->writable)
        return;
    int rc = outcome(cp);
    if (rc) {
        const evdb_error *e = evdb_future_error(cp->qf);
        if (e)
            evdb__future_fail_err(cp->writable, e);
        else
            evdb__future_fail(cp->writable, rc, "the copy has ended");
    } else if (cp->end != END_OPEN) {
        evdb__future_fail(cp->writable, EVDB_ESTATE, "the copy was ended: nothing more is written");
    } else if (buffered(cp) <= cp->bound / 2) {
        evdb__future_resolve(cp->writable, NULL, NULL);
    } else {
        return;
    }
    evdb_future_unref(cp->writable);
    cp->writable = NULL;
}

/* ---- the final future ---- */

static void final_settle(evdb_copy *cp)
{
    if (!cp->query_over || cp->delivering)
        return;
    /* A copy out that succeeded hands over its last data first. */
    if (!cp->in && evdb__future_peek(cp->qf) == 0 && buffered(cp) && !cp->user_gone)
        return;
    cp->head = cp->len = 0;
    evdb__future_forward(cp->final, cp->qf);
}

static void on_query_done(evdb_future *f, void *arg)
{
    evdb_copy *cp = arg;
    (void)f;
    cp->query_over = true;
    writable_settle(cp);
    final_settle(cp);
    copy_unref(cp);
}

static void final_cancel(void *op)
{
    evdb_copy *cp = op;
    evdb_future_cancel(cp->qf);
}

static const evdb__future_ops final_ops = {final_cancel};

/* ---- copy out: delivery ---- */

static void deliver(evdb__deferred *d)
{
    evdb_copy *cp = EVDB__CONTAINER_OF(d, evdb_copy, deliver_d);
    cp->refs++;
    /* Never after the final future completed (it may be cancelled while
     * the last data waits for a resume). */
    bool over = failed(cp) || evdb__future_peek(cp->final) != EVDB_PENDING;
    if (!cp->paused && !cp->user_gone && buffered(cp) && !over) {
        cp->delivering = true;
        cp->on_data(cp, cp->buf + cp->head, buffered(cp), cp->arg);
        cp->delivering = false;
        cp->head = cp->len = 0;
    } else if (cp->user_gone || over) {
        cp->head = cp->len = 0; /* nobody takes them */
    }
    /* The driver may have stopped reading (paused, or the buffer full):
     * a step without an event lets it go on. */
    if (!cp->query_over && evdb__copy_out_ready(cp))
        kick(cp);
    final_settle(cp);
    copy_unref(cp);
}

/* ---- creation ---- */

static evdb_copy *copy_new(evdb_conn *h, const char *who, const char *sql, bool in,
                           const evdb_copy_opts *opts)
{
    if (!h || !sql) {
        evdb__fail_now(EVDB_EINVAL, "%s: connection and sql are required", who);
        return NULL;
    }
    size_t lead = strspn(sql, " \t\r\n(");
    if (strncasecmp(sql + lead, "copy", 4) != 0) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql must be a COPY statement", who);
        return NULL;
    }
    evdb_query_opts qo;
    memset(&qo, 0, sizeof qo);
    qo.timeout = opts ? opts->timeout : 0;
    evdb_copy *cp = evdb__calloc(1, sizeof *cp);
    if (!cp) {
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    cp->magic = EVDB__MAGIC_COPY;
    cp->in = in;
    cp->bound = opts && opts->buffer_bytes ? opts->buffer_bytes : EVDB_COPY_DEFAULT_BUFFER;
    cp->deliver_d.fn = deliver;
    evdb_conn *c = NULL;
    evdb_future *qf = evdb__conn_copy(h, who, sql, &qo, cp, &c);
    if (!qf) {
        evdb__free(cp);
        return NULL;
    }
    /* From here the query holds cp: it is freed through the refs. */
    cp->refs = 2; /* the user, the query */
    cp->conn = c;
    cp->qf = qf;
    cp->loop = evdb__future_loop(qf);
    evdb__loop_ref(cp->loop);
    cp->final = evdb__future_new(cp->loop, EVDB__FK_QUERY);
    if (!cp->final || evdb_future_on_done(qf, on_query_done, cp) != 0) {
        /* Out of memory: the query is cancelled and the copy given up. */
        evdb_future_cancel(qf);
        cp->user_gone = true;
        copy_unref(cp);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    cp->refs++; /* the callback on the query's future */
    evdb__future_set_op(cp->final, &final_ops, cp);
    return cp;
}

evdb_copy *evdb_copy_in(evdb_conn *c, const char *sql, const evdb_copy_opts *opts)
{
    return copy_new(c, "evdb_copy_in", sql, true, opts);
}

evdb_copy *evdb_copy_out(evdb_conn *c, const char *sql, evdb_copy_data_fn on_data, void *arg,
                         const evdb_copy_opts *opts)
{
    if (!on_data) {
        evdb__fail_now(EVDB_EINVAL, "evdb_copy_out: on_data is required");
        return NULL;
    }
    evdb_copy *cp = copy_new(c, "evdb_copy_out", sql, false, opts);
    if (cp) {
        cp->on_data = on_data;
        cp->arg = arg;
    }
    return cp;
}

/* ---- copy in: the user's side ---- */

/* Whether cp takes data now: 0, or the code to return. */
static int can_write(evdb_copy *cp, const char *who)
{
    if (!valid(cp, who))
        return EVDB_EINVAL;
    if (!cp->in)
        return evdb__fail_now(EVDB_EINVAL, "%s: not a copy in", who);
    int rc = outcome(cp);
    if (rc)
        return evdb__fail_now(rc, "%s: the copy has failed (see its future)", who);
    if (cp->end != END_OPEN)
        return evdb__fail_now(EVDB_ESTATE, "%s: the copy was ended", who);
    if (buffered(cp) >= cp->bound)
        return evdb__fail_now(EVDB_EBUSY, "%s: the buffer is full: wait for evdb_copy_writable",
                              who);
    return 0;
}

static int copy_append(evdb_copy *cp, const char *who, const void *data, size_t len)
{
    int rc = can_write(cp, who);
    if (rc)
        return rc;
    if (!len)
        return 0;
    if (!reserve(cp, len))
        return evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
    memcpy(cp->buf + cp->len, data, len);
    cp->len += len;
    kick(cp);
    return 0;
}

int evdb_copy_write(evdb_copy *cp, const void *data, size_t len)
{
    if (!data && len)
        return evdb__fail_now(EVDB_EINVAL, "evdb_copy_write: data is NULL");
    return copy_append(cp, "evdb_copy_write", data, len);
}

/* The encoder (copy_text.c) writes a row in place: room for n bytes at
 * the end of the data, committed with evdb__copy_commit. NULL with the
 * last error set (and its code in *rc). */
char *evdb__copy_room(evdb_copy *cp, const char *who, size_t n, int *rc)
{
    *rc = can_write(cp, who);
    if (*rc)
        return NULL;
    if (!reserve(cp, n)) {
        *rc = evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    return cp->buf + cp->len;
}

void evdb__copy_commit(evdb_copy *cp, size_t n)
{
    cp->len += n;
    kick(cp);
}

evdb_future *evdb_copy_writable(evdb_copy *cp)
{
    if (!valid(cp, "evdb_copy_writable"))
        return NULL;
    if (!cp->writable) {
        cp->writable = evdb__future_new(cp->loop, EVDB__FK_USER);
        if (!cp->writable) {
            evdb__fail_now(EVDB_ENOMEM, "evdb_copy_writable: out of memory");
            return NULL;
        }
    }
    evdb_future *f = evdb_future_ref(cp->writable);
    if (!cp->in)
        evdb__future_fail(cp->writable, EVDB_EINVAL, "evdb_copy_writable: not a copy in");
    writable_settle(cp);
    if (cp->writable && evdb__future_peek(cp->writable) != EVDB_PENDING) {
        evdb_future_unref(cp->writable);
        cp->writable = NULL;
    }
    return f;
}

static evdb_future *finish(evdb_copy *cp, const char *who, enum copy_end how, const char *msg)
{
    if (!valid(cp, who))
        return NULL;
    if (!cp->in) {
        evdb__fail_now(EVDB_EINVAL, "%s: not a copy in", who);
        return NULL;
    }
    if (cp->end != END_OPEN) {
        evdb__fail_now(EVDB_ESTATE, "%s: the copy was ended already", who);
        return NULL;
    }
    cp->end = how;
    if (how == END_ABORT) {
        size_t n = strlen(msg ? msg : ABORT_DEFAULT);
        if (n >= sizeof cp->abort_msg)
            n = sizeof cp->abort_msg - 1;
        memcpy(cp->abort_msg, msg ? msg : ABORT_DEFAULT, n);
        cp->abort_msg[n] = '\0';
        cp->head = cp->len = 0;
    }
    writable_settle(cp);
    kick(cp);
    return evdb_future_ref(cp->final);
}

evdb_future *evdb_copy_end(evdb_copy *cp)
{
    return finish(cp, "evdb_copy_end", END_DATA, NULL);
}

evdb_future *evdb_copy_abort(evdb_copy *cp, const char *message)
{
    return finish(cp, "evdb_copy_abort", END_ABORT, message);
}

/* ---- copy out: the user's side ---- */

static int set_paused(evdb_copy *cp, const char *who, bool on)
{
    if (!valid(cp, who))
        return EVDB_EINVAL;
    if (cp->in)
        return evdb__fail_now(EVDB_EINVAL, "%s: not a copy out", who);
    cp->paused = on;
    if (!on)
        evdb__loop_defer(cp->loop, &cp->deliver_d);
    return 0;
}

int evdb_copy_pause(evdb_copy *cp)
{
    return set_paused(cp, "evdb_copy_pause", true);
}

int evdb_copy_resume(evdb_copy *cp)
{
    return set_paused(cp, "evdb_copy_resume", false);
}

/* ---- both ---- */

evdb_future *evdb_copy_future(evdb_copy *cp)
{
    if (!valid(cp, "evdb_copy_future"))
        return NULL;
    return evdb_future_ref(cp->final);
}

size_t evdb_copy_buffered(const evdb_copy *cp)
{
    return cp && cp->magic == EVDB__MAGIC_COPY ? buffered(cp) : 0;
}

void evdb_copy_free(evdb_copy *cp)
{
    if (!cp || cp->magic != EVDB__MAGIC_COPY || cp->user_gone)
        return;
    if (cp->in && cp->end == END_OPEN)
        evdb_future_unref(finish(cp, "evdb_copy_free", END_ABORT,
                                 "COPY aborted: the client freed the copy without ending it"));
    cp->user_gone = true;
    if (!cp->in) {
        cp->head = cp->len = 0;
        kick(cp); /* the driver reads on, and drops the rest */
        if (!cp->delivering)
            final_settle(cp);
    }
    copy_unref(cp);
}

/* ---- the driver's side (drivers/driver.h) ---- */

bool evdb__copy_is_in(const evdb__copy *cp)
{
    return cp->in;
}

size_t evdb__copy_in_data(evdb__copy *cp, const char **data)
{
    *data = cp->buf + cp->head;
    size_t n = buffered(cp);
    return n < IN_PIECE ? n : IN_PIECE;
}

void evdb__copy_in_sent(evdb__copy *cp, size_t n)
{
    cp->head += n;
    if (cp->head == cp->len)
        cp->head = cp->len = 0;
    writable_settle(cp);
}

int evdb__copy_in_end(const evdb__copy *cp, const char **msg)
{
    *msg = NULL;
    if (cp->end == END_ABORT) {
        *msg = cp->abort_msg;
        return -1;
    }
    return cp->end == END_DATA && !buffered(cp) ? 1 : 0;
}

bool evdb__copy_out_ready(const evdb__copy *cp)
{
    if (cp->user_gone || failed(cp))
        return true; /* read on: the data is dropped */
    return !(cp->paused && buffered(cp) >= cp->bound) && buffered(cp) < cp->bound * 2;
}

int evdb__copy_out_data(evdb__copy *cp, const void *data, size_t len)
{
    if (cp->user_gone || failed(cp))
        return 0;
    if (!reserve(cp, len))
        return EVDB_ENOMEM;
    memcpy(cp->buf + cp->len, data, len);
    cp->len += len;
    if (!cp->paused)
        evdb__loop_defer(cp->loop, &cp->deliver_d);
    return 0;
}
