/*
 * routes: the service's endpoints on the worker's pool.
 *
 *   GET  /items/{id}        a point select; 404 when the row is missing
 *   GET  /report[?sleep=S]  a deliberately slow aggregate (S seconds, 0.2
 *                           by default); the pool routes point selects
 *                           away from the connection it holds, or with
 *                           --report-pool it runs in a pool of its own
 *   POST /transfer          {"from":A,"to":B,"amount":N}: a transaction,
 *                           retried on serialization failures and
 *                           deadlocks; 409 on insufficient funds
 *   GET  /health            the pools' counters, all threads added up
 *
 * Every query carries the request's deadline as its timeout: past it the
 * query is cancelled on the server and the answer is 504.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "service.h"

#define REPORT_SLEEP 0.2 /* seconds /report takes by default */
#define REPORT_SLEEP_MAX 60.0
#define TRANSFER_ATTEMPTS 10 /* runs of a transfer before giving up */
#define AMOUNT_MAX 1000000000
#define BODY_CAP 1024

/* The answer for a failed query: 504 past the deadline, 503 while
 * shutting down, else 500 with the server's message. */
static void answer_failure(client *c, const evdb_error *e)
{
    int code = evdb_error_code(e);
    char msg[300];
    if (code == EVDB_ETIMEDOUT || code == EVDB_EPOOLTIMEOUT) {
        snprintf(msg, sizeof msg, "timed out after %.3f s (the query was cancelled on the server)",
                 client_worker(c)->o->timeout);
        client_error(c, 504, msg);
    } else if (code == EVDB_ECLOSED || code == EVDB_ECANCELED) {
        client_error(c, 503, "the service is shutting down");
    } else {
        snprintf(msg, sizeof msg, "database error: %s", evdb_error_message(e));
        client_error(c, 500, msg);
    }
}

/* The result of a completed query, or NULL after answering its failure. */
static const evdb_result *result_or_answer(client *c, evdb_future *f)
{
    if (evdb_future_status(f) == 0)
        return evdb_future_result(f);
    answer_failure(c, evdb_future_error(f));
    return NULL;
}

/* Submit a query on pool for c with the request's deadline; cb answers.
 * The client holds the future so that a hang-up cancels it. */
static void pooled(client *c, evdb_pool *pool, const char *sql, const evdb_value *params, size_t n,
                   evdb_done_cb cb)
{
    worker *w = client_worker(c);
    evdb_query_opts qo = {.timeout = w->o->timeout};
    evdb_future *f = evdb_pool_query(pool, sql, params, n, &qo);
    if (!f) {
        answer_failure(c, evdb_last_error());
        return;
    }
    if (evdb_future_on_done(f, cb, c) != 0) {
        evdb_future_unref(f);
        client_error(c, 500, "out of memory");
        return;
    }
    client_set_pending(c, f);
    evdb_future_unref(f); /* the callback's reference keeps it until then */
}

/* A decimal id in s[0..n): 1..10^15, else -1. */
static long long parse_id(const char *s, size_t n)
{
    long long v = 0;
    if (n == 0 || n > 15 || s[0] == '0')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* ------------------------------------------------------------ /items/{id} */

static void item_done(evdb_future *f, void *arg)
{
    client *c = arg;
    const evdb_result *r = result_or_answer(c, f);
    if (!r)
        return;
    int64_t id = 0;
    if (evdb_result_nrows(r) == 0) {
        client_error(c, 404, "no such item");
        return;
    }
    evdb_result_int(r, 0, 0, &id);
    char body[BODY_CAP];
    size_t pos = (size_t)snprintf(body, sizeof body, "{\"id\":%lld,\"name\":", (long long)id);
    const char *price = evdb_result_text(r, 0, 2, NULL);
    if (json_put_string(body, sizeof body, &pos, evdb_result_text(r, 0, 1, NULL)) != 0) {
        client_error(c, 500, "item too large");
        return;
    }
    pos +=
        (size_t)snprintf(body + pos, sizeof body - pos, ",\"price\":%s}", price ? price : "null");
    client_respond(c, 200, body, pos < sizeof body ? pos : sizeof body - 1);
}

static void get_item(client *c, const http_request *r)
{
    const char *id = r->target + strlen("/items/");
    const char *q = memchr(id, '?', r->target_len - strlen("/items/"));
    size_t n = q ? (size_t)(q - id) : r->target_len - strlen("/items/");
    long long v = parse_id(id, n);
    if (v < 0) {
        client_error(c, 400, "the item id must be a positive integer");
        return;
    }
    evdb_value p = evdb_int(v);
    pooled(c, client_worker(c)->pool,
           client_worker(c)->o->mariadb ? "SELECT id, name, price FROM items WHERE id = ?"
                                        : "SELECT id, name, price FROM items WHERE id = $1",
           &p, 1, item_done);
}

/* ---------------------------------------------------------------- /report */

static void report_done(evdb_future *f, void *arg)
{
    client *c = arg;
    const evdb_result *r = result_or_answer(c, f);
    if (!r)
        return;
    int64_t n = 0, total = 0;
    evdb_result_int(r, 0, 0, &n);
    evdb_result_int(r, 0, 1, &total);
    char body[128];
    int len = snprintf(body, sizeof body, "{\"accounts\":%lld,\"total\":%lld}", (long long)n,
                       (long long)total);
    client_respond(c, 200, body, (size_t)len);
}

static void get_report(client *c, const http_request *r)
{
    char arg[32];
    double sleep = REPORT_SLEEP;
    if (http_query_param(r, "sleep", arg, sizeof arg)) {
        char *end;
        sleep = strtod(arg, &end);
        if (end == arg || *end || !(sleep >= 0 && sleep <= REPORT_SLEEP_MAX)) {
            client_error(c, 400, "sleep must be a number of seconds between 0 and 60");
            return;
        }
    }
    /* The sleep stands for an expensive plan; it runs once (a one-row
     * derived table), not per row. */
    evdb_value p = evdb_double(sleep);
    worker *w = client_worker(c);
    pooled(c, w->reports ? w->reports : w->pool,
           w->o->mariadb ? "SELECT COUNT(*), CAST(SUM(balance) AS SIGNED) FROM accounts, "
                           "(SELECT SLEEP(?) AS z) AS pause"
                         : "SELECT count(*), sum(balance)::bigint FROM accounts, "
                           "(SELECT pg_sleep($1::float8)) AS pause",
           &p, 1, report_done);
}

/* -------------------------------------------------------------- /transfer */

/* What a transfer's body found: the HTTP status to answer when the
 * transaction rolled back for a business reason. */
typedef struct transfer {
    client *c;
    int64_t from, to, amount;
    int runs;   /* bodies run (retries run it again) */
    int status; /* 0, 404 or 409 */
    double deadline;
} transfer;

/* Run one statement of the transfer with the time left; its affected rows
 * in *rows. 0, or -1 with the task failed (the transaction rolls back). */
static int step(evdb_conn *conn, transfer *t, const char *sql, int64_t x, int64_t y, int64_t *rows)
{
    evdb_value p[2] = {evdb_int(x), evdb_int(y)};
    double left = t->deadline - ev_now(client_worker(t->c)->loop);
    evdb_query_opts qo = {.timeout = left > 0.001 ? left : 0.001};
    evdb_future *q = evdb_conn_query(conn, sql, p, 2, &qo);
    if (!q) {
        evdb_task_fail_error(evdb_last_error());
        return -1;
    }
    if (evdb_await(q) != 0) {
        const evdb_error *e = evdb_future_error(q);
        const char *st = evdb_error_sqlstate(e);
        /* The CHECK (balance >= 0) refused the debit: 23514 on
         * PostgreSQL, 23000 (ER_CONSTRAINT_FAILED) on MariaDB. */
        if (evdb_error_code(e) == EVDB_ESERVER && st && strncmp(st, "23", 2) == 0)
            t->status = 409;
        evdb_task_fail_error(e);
        evdb_future_unref(q);
        return -1;
    }
    *rows = evdb_result_affected(evdb_future_result(q));
    evdb_future_unref(q);
    return 0;
}

/* Debit (sign -1) or credit (+1) one account. 0, or -1 with the task
 * failed and t->status set for a missing account. */
static int move(evdb_conn *conn, transfer *t, int sign)
{
    int my = client_worker(t->c)->o->mariadb;
    int64_t rows = 0;
    const char *sql = sign < 0 ? (my ? "UPDATE accounts SET balance = balance - ? WHERE id = ?"
                                     : "UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                               : (my ? "UPDATE accounts SET balance = balance + ? WHERE id = ?"
                                     : "UPDATE accounts SET balance = balance + $1 WHERE id = $2");
    if (step(conn, t, sql, t->amount, sign < 0 ? t->from : t->to, &rows) != 0)
        return -1;
    if (rows != 1) {
        t->status = 404;
        evdb_task_fail(EVDB_EINVAL, sign < 0 ? "no such account (from)" : "no such account (to)");
        return -1;
    }
    return 0;
}

static void *transfer_body(evdb_conn *conn, void *arg)
{
    transfer *t = arg;
    t->runs++;
    t->status = 0;
    /* Rows are locked in id order: two transfers between the same
     * accounts in opposite directions would otherwise deadlock, and
     * PostgreSQL only looks for deadlocks after deadlock_timeout (1 s),
     * longer than a request may take. Serialization failures remain (a
     * row changed since the snapshot): the helper retries those. */
    int first = t->from < t->to ? -1 : 1;
    if (move(conn, t, first) == 0)
        move(conn, t, -first);
    return NULL;
}

static void transfer_done(evdb_future *f, void *arg)
{
    transfer *t = arg;
    client *c = t->c;
    if (evdb_future_status(f) == 0) {
        char body[160];
        int n = snprintf(body, sizeof body,
                         "{\"from\":%lld,\"to\":%lld,\"amount\":%lld,\"attempts\":%d}",
                         (long long)t->from, (long long)t->to, (long long)t->amount, t->runs);
        client_respond(c, 200, body, (size_t)n);
    } else if (t->status == 409) {
        client_error(c, 409, "insufficient funds");
    } else if (t->status == 404) {
        client_error(c, 404, evdb_error_message(evdb_future_error(f)));
    } else {
        answer_failure(c, evdb_future_error(f));
    }
    evdb_future_unref(f);
    free(t);
}

static void post_transfer(client *c, const http_request *r)
{
    static const char *const keys[] = {"from", "to", "amount"};
    int64_t v[3];
    char err[160];
    if (json_read_ints(r->body, r->body_len, keys, v, 3, err, sizeof err) != 0) {
        client_error(c, 400, err);
        return;
    }
    if (v[0] <= 0 || v[1] <= 0) {
        client_error(c, 400, "account ids must be positive integers");
        return;
    }
    if (v[0] == v[1]) {
        client_error(c, 400, "from and to must differ");
        return;
    }
    if (v[2] <= 0 || v[2] > AMOUNT_MAX) {
        client_error(c, 400, "amount must be between 1 and 1000000000");
        return;
    }
    worker *w = client_worker(c);
    transfer *t = calloc(1, sizeof *t);
    if (!t) {
        client_error(c, 500, "out of memory");
        return;
    }
    *t = (transfer){c, v[0], v[1], v[2], 0, 0, ev_now(w->loop) + w->o->timeout};
    /* Repeatable read: concurrent transfers of one account fail with a
     * serialization error (PostgreSQL) or deadlock (MariaDB), and the
     * helper runs them again. The transaction is not cancelled on a
     * hang-up: each statement has the deadline, and the body's t must
     * live until the transaction's future completes. */
    evdb_txn_opts to = {.isolation = EVDB_ISOLATION_REPEATABLE_READ,
                        .max_attempts = TRANSFER_ATTEMPTS,
                        .acquire_timeout = w->o->timeout};
    evdb_future *f = evdb_pool_transaction_task(w->pool, transfer_body, t, &to);
    if (!f || evdb_future_on_done(f, transfer_done, t) != 0) {
        answer_failure(c, evdb_last_error());
        evdb_future_unref(f);
        free(t);
    }
}

/* ---------------------------------------------------------------- /health */

/* s as a JSON object into buf; returns its length (or more than size:
 * truncated). */
static int pool_json(char *buf, size_t size, const evdb_pool_stats *s)
{
    return snprintf(buf, size,
                    "{\"total\":%u,\"opening\":%u,\"idle\":%u,\"busy\":%u,"
                    "\"acquired\":%u,\"waiting\":%zu,\"connects\":%llu,"
                    "\"connect_failures\":%llu,\"broken\":%llu,\"queries\":%llu,"
                    "\"query_errors\":%llu,\"query_timeouts\":%llu,\"query_cancels\":%llu,"
                    "\"pool_timeouts\":%llu}",
                    s->total, s->opening, s->idle, s->busy, s->acquired, s->waiting,
                    (unsigned long long)s->connects, (unsigned long long)s->connect_failures,
                    (unsigned long long)s->broken, (unsigned long long)s->queries,
                    (unsigned long long)s->query_errors, (unsigned long long)s->query_timeouts,
                    (unsigned long long)s->query_cancels, (unsigned long long)s->pool_timeouts);
}

static void get_health(client *c)
{
    worker *w = client_worker(c);
    evdb_pool_stats s, rs;
    unsigned clients = stats_total(w, &s, &rs);
    char pool[512], reports[512] = "null";
    int pn = pool_json(pool, sizeof pool, &s);
    int rn = w->o->report_pool ? pool_json(reports, sizeof reports, &rs) : 4;
    char body[1200];
    int n = pn < (int)sizeof pool && rn < (int)sizeof reports
                ? snprintf(body, sizeof body,
                           "{\"status\":\"ok\",\"thread\":%u,\"threads\":%u,\"connections\":%u,"
                           "\"pool\":%s,\"report_pool\":%s}",
                           w->index, w->o->threads, clients, pool, reports)
                : -1;
    if (n < 0 || n >= (int)sizeof body) {
        client_error(c, 500, "health: counters too long");
        return;
    }
    client_respond(c, 200, body, (size_t)n);
}

/* 1 when r's path is served, with another method. */
static int known_path(const http_request *r)
{
    size_t n = r->target_len;
    const char *q = memchr(r->target, '?', n);
    if (q)
        n = (size_t)(q - r->target);
    static const char *const paths[] = {"/report", "/transfer", "/health"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (strlen(paths[i]) == n && memcmp(r->target, paths[i], n) == 0)
            return 1;
    return n > strlen("/items/") && memcmp(r->target, "/items/", strlen("/items/")) == 0;
}

void routes_dispatch(client *c, const http_request *r)
{
    if (client_worker(c)->stopping || !client_worker(c)->pool) {
        client_error(c, 503, "the service is shutting down");
    } else if (http_is(r, "GET", "/items/", 0)) {
        get_item(c, r);
    } else if (http_is(r, "GET", "/report", 1)) {
        get_report(c, r);
    } else if (http_is(r, "POST", "/transfer", 1)) {
        post_transfer(c, r);
    } else if (http_is(r, "GET", "/health", 1)) {
        get_health(c);
    } else if (known_path(r)) {
        client_error(c, 405, "method not allowed");
    } else {
        client_error(c, 404, "no such endpoint");
    }
}
