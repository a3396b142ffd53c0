/*
 * LISTEN/NOTIFY listeners (include/evdb/listen.h) against the real
 * PostgreSQL server (scripts/testdb): notifications from other sessions
 * with their sender's pid and payload, odd channel names and payload
 * sizes, LISTEN/UNLISTEN while notifications flow, NOTIFY inside a
 * transaction, a terminated backend and a server restart while
 * notifications flow (reconnect, re-LISTEN, one gap report, nothing
 * twice), close with deliveries pending or during a reconnect, and the
 * MariaDB refusal. Every callback is counted.
 *
 * Waiting is by events, never by time: a test runs the loop until the
 * notification it expects arrived, and proves that one did NOT arrive by
 * sending a sentinel after it from the same session (the server delivers
 * one session's notifications in order).
 */
#include <check.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "faultproxy.h"
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(60);
}

static void teardown(void)
{
    t_loop_free(L);
}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        while (!(cond))                                                                            \
            ev_run(L, EVRUN_ONCE);                                                                 \
    } while (0)

/* What one channel's callback saw. */
typedef struct seen {
    int calls;
    char channel[128];
    char payload[8200];
    size_t payload_len;
    int64_t pid;
    evdb_listener *listener;
    bool close_in_cb; /* close the listener from the first call */
    evdb_future *close_f;
} seen;

static void on_note(evdb_listener *l, const char *channel, const char *payload, size_t len,
                    int64_t pid, void *arg)
{
    seen *s = arg;
    s->calls++;
    s->listener = l;
    snprintf(s->channel, sizeof s->channel, "%s", channel);
    ck_assert_uint_lt(len, sizeof s->payload);
    ck_assert_uint_eq(strlen(payload), len);
    memcpy(s->payload, payload, len + 1);
    s->payload_len = len;
    s->pid = pid;
    if (s->close_in_cb && s->calls == 1) {
        s->close_f = evdb_listener_close(l);
        ck_assert_ptr_nonnull(s->close_f);
    }
}

/* A future's callbacks, counted. */
typedef struct done {
    int calls;
    int status;
} done;

static void on_done(evdb_future *f, void *arg)
{
    done *d = arg;
    d->calls++;
    d->status = evdb_future_status(f);
    evdb_future_unref(f);
}

static void watch(evdb_future *f, done *d)
{
    ck_assert_msg(f != NULL, "%s", evdb_error_message(evdb_last_error()));
    ck_assert_int_eq(evdb_future_on_done(f, on_done, d), 0);
}

static evdb_listener *open_listener(const evdb_listener_opts *o)
{
    evdb_listener *l = evdb_listener_open(L, t_pg_url(), o);
    ck_assert_msg(l != NULL, "%s", evdb_error_message(evdb_last_error()));
    return l;
}

/* Listen and wait for the acknowledgement. */
static void listen_ok(evdb_listener *l, const char *channel, seen *s)
{
    evdb_future *f = evdb_listener_listen(l, channel, on_note, s);
    ck_assert_msg(f != NULL, "%s", evdb_error_message(evdb_last_error()));
    ck_assert_msg(t_wait(f) == 0, "LISTEN %s: %s", channel,
                  evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
}

static void close_listener(evdb_listener *l)
{
    evdb_future *f = evdb_listener_close(l);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

/* pg_notify(channel, payload) on c: parameters, so any text goes. */
static void notify(evdb_conn *c, const char *channel, const char *payload)
{
    evdb_value p[2] = {evdb_text(channel), evdb_text(payload)};
    evdb_future_unref(t_run_ok(c, "SELECT pg_notify($1, $2)", p, 2));
}

START_TEST(notification_from_another_session_arrives_with_pid_and_payload)
{
    evdb_listener *l = open_listener(NULL);
    seen s = {0};
    listen_ok(l, "evdb_basic", &s);
    ck_assert_int_eq(evdb_listener_status(l), 0);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    int64_t pid = evdb_conn_server_id(c);
    t_exec_ok(c, "NOTIFY evdb_basic, 'hello'");
    RUN_UNTIL(s.calls == 1);
    ck_assert_str_eq(s.channel, "evdb_basic");
    ck_assert_str_eq(s.payload, "hello");
    ck_assert_int_eq(s.pid, pid);
    ck_assert_ptr_eq(s.listener, l);
    /* From the admin URL (another role) too. */
    evdb_conn *a = t_conn_open(L, t_pg_admin_url(), NULL);
    notify(a, "evdb_basic", "from admin");
    RUN_UNTIL(s.calls == 2);
    ck_assert_str_eq(s.payload, "from admin");
    ck_assert_int_eq(s.pid, evdb_conn_server_id(a));
    t_conn_close(a);
    t_conn_close(c);
    close_listener(l);
    ck_assert_int_eq(s.calls, 2);
}
END_TEST

START_TEST(odd_channel_names_and_payload_sizes)
{
    static const char *const names[] = {
        "Upper Case",
        "with \"quotes\" inside",
        "spa ce; DROP TABLE x; --",
        "ünïcödé 通知",
        "upper case", /* differs from the first only in case */
        "x23456789012345678901234567890123456789012345678901234567890123", /* 63 bytes */
    };
    enum { N = sizeof names / sizeof names[0] };
    evdb_listener *l = open_listener(NULL);
    seen s[N];
    memset(s, 0, sizeof s);
    for (int i = 0; i < N; i++)
        listen_ok(l, names[i], &s[i]);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    /* The server's limit: a payload is shorter than 8000 bytes. */
    char big[8000];
    memset(big, 'p', 7999);
    big[0] = 'B';
    big[7998] = 'E';
    big[7999] = '\0';
    for (int i = 0; i < N; i++) {
        char pl[64];
        snprintf(pl, sizeof pl, "to %d", i);
        notify(c, names[i], pl);
    }
    notify(c, names[0], "");
    notify(c, names[1], big);
    RUN_UNTIL(s[0].calls == 2 && s[1].calls == 2);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(s[i].channel, names[i]);
        if (i >= 2) {
            char pl[64];
            snprintf(pl, sizeof pl, "to %d", i);
            ck_assert_int_eq(s[i].calls, 1);
            ck_assert_str_eq(s[i].payload, pl);
        }
    }
    ck_assert_uint_eq(s[0].payload_len, 0);
    ck_assert_str_eq(s[0].payload, "");
    ck_assert_uint_eq(s[1].payload_len, 7999);
    ck_assert_int_eq(memcmp(s[1].payload, big, 8000), 0);
    /* One byte more is refused by the server, not by evdb. */
    char over[8001];
    memcpy(over, big, 7999);
    over[7999] = 'x';
    over[8000] = '\0';
    evdb_value p[2] = {evdb_text(names[1]), evdb_text(over)};
    evdb_future *f = evdb_conn_query(c, "SELECT pg_notify($1, $2)", p, 2, NULL);
    t_expect_fail(f, EVDB_ESERVER, NULL);
    evdb_future_unref(f);
    t_conn_close(c);
    close_listener(l);
    ck_assert_int_eq(s[0].calls, 2);
    ck_assert_int_eq(s[1].calls, 2);
}
END_TEST

START_TEST(listen_and_unlisten_while_notifications_flow)
{
    evdb_listener *l = open_listener(NULL);
    seen a = {0}, b = {0}, sentinel = {0};
    listen_ok(l, "evdb_flow_s", &sentinel);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    /* Listened on: delivered. */
    listen_ok(l, "evdb_flow_a", &a);
    notify(c, "evdb_flow_a", "1");
    notify(c, "evdb_flow_b", "not yet listened");
    notify(c, "evdb_flow_s", "s1");
    RUN_UNTIL(sentinel.calls == 1);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 0);
    /* LISTEN b and UNLISTEN a at once, with notifications in between. */
    done lb = {0}, ua = {0};
    watch(evdb_listener_listen(l, "evdb_flow_b", on_note, &b), &lb);
    watch(evdb_listener_unlisten(l, "evdb_flow_a"), &ua);
    RUN_UNTIL(lb.calls == 1 && ua.calls == 1);
    ck_assert_int_eq(lb.status, 0);
    ck_assert_int_eq(ua.status, 0);
    notify(c, "evdb_flow_a", "after unlisten");
    notify(c, "evdb_flow_b", "2");
    notify(c, "evdb_flow_s", "s2");
    RUN_UNTIL(sentinel.calls == 2);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_str_eq(b.payload, "2");
    /* Unlisten from the listener's own callback's point of view: a channel
     * unlistened with notifications queued gets none of them. */
    done ub = {0}, n3 = {0};
    evdb_value p3[2] = {evdb_text("evdb_flow_b"), evdb_text("3")};
    watch(evdb_conn_query(c, "SELECT pg_notify($1, $2)", p3, 2, NULL), &n3);
    watch(evdb_listener_unlisten(l, "evdb_flow_b"), &ub);
    notify(c, "evdb_flow_s", "s3");
    RUN_UNTIL(sentinel.calls == 3 && ub.calls == 1 && n3.calls == 1);
    ck_assert_int_eq(n3.status, 0);
    ck_assert_int_eq(b.calls, 1);
    /* Listen again on a channel unlistened before. */
    listen_ok(l, "evdb_flow_a", &a);
    notify(c, "evdb_flow_a", "again");
    RUN_UNTIL(a.calls == 2);
    ck_assert_str_eq(a.payload, "again");
    t_conn_close(c);
    close_listener(l);
    ck_assert_int_eq(lb.calls, 1);
    ck_assert_int_eq(ua.calls, 1);
    ck_assert_int_eq(ub.calls, 1);
}
END_TEST

START_TEST(notify_in_a_transaction_arrives_at_commit_only)
{
    evdb_listener *l = open_listener(NULL);
    seen tx = {0}, sentinel = {0};
    listen_ok(l, "evdb_tx", &tx);
    listen_ok(l, "evdb_tx_s", &sentinel);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_conn *other = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "BEGIN");
    notify(c, "evdb_tx", "committed");
    notify(other, "evdb_tx_s", "while open");
    RUN_UNTIL(sentinel.calls == 1);
    ck_assert_int_eq(tx.calls, 0);
    t_exec_ok(c, "COMMIT");
    RUN_UNTIL(tx.calls == 1);
    ck_assert_str_eq(tx.payload, "committed");
    /* Rolled back: never delivered. */
    t_exec_ok(c, "BEGIN");
    notify(c, "evdb_tx", "rolled back");
    t_exec_ok(c, "ROLLBACK");
    notify(c, "evdb_tx_s", "after rollback");
    RUN_UNTIL(sentinel.calls == 2);
    ck_assert_int_eq(tx.calls, 1);
    t_conn_close(other);
    t_conn_close(c);
    close_listener(l);
}
END_TEST

/* ---- losses: numbered notifications from a pool, checked on arrival ---- */

enum { MAX_SEQ = 1000000 };

typedef struct flow {
    evdb_pool *pool;
    evdb_listener *l;
    bool stop;
    long next_seq;        /* the next number to send */
    long sent_ok;         /* notifications whose NOTIFY succeeded */
    long in_flight;       /* NOTIFYs not completed */
    long received;        /* deliveries */
    long last_seen;       /* the highest number received */
    long seen_at_gap;     /* received when the gap was reported */
    long sent_at_gap;     /* next_seq then */
    unsigned char *count; /* per number: deliveries */
    int gaps;
    double lost_at, restored_at;
    int gap_code;
} flow;

static void send_next(flow *fl);

static void on_sent(evdb_future *f, void *arg)
{
    flow *fl = arg;
    fl->in_flight--;
    if (evdb_future_status(f) == 0)
        fl->sent_ok++;
    evdb_future_unref(f);
    if (!fl->stop)
        send_next(fl);
}

static void send_next(flow *fl)
{
    ck_assert_int_lt(fl->next_seq, MAX_SEQ);
    char pl[32];
    snprintf(pl, sizeof pl, "%ld", fl->next_seq++);
    evdb_value p[2] = {evdb_text("evdb_flow"), evdb_text(pl)};
    evdb_future *f = evdb_pool_query(fl->pool, "SELECT pg_notify($1, $2)", p, 2, NULL);
    ck_assert_ptr_nonnull(f);
    fl->in_flight++;
    ck_assert_int_eq(evdb_future_on_done(f, on_sent, fl), 0);
}

static void on_flow(evdb_listener *l, const char *channel, const char *payload, size_t len,
                    int64_t pid, void *arg)
{
    (void)l;
    (void)len;
    (void)pid;
    flow *fl = arg;
    ck_assert_str_eq(channel, "evdb_flow");
    long n = strtol(payload, NULL, 10);
    ck_assert_int_ge(n, 0);
    ck_assert_int_lt(n, fl->next_seq);
    /* Nothing twice, and in order (the pool sends them one at a time). */
    ck_assert_int_eq(fl->count[n], 0);
    fl->count[n]++;
    ck_assert_int_gt(n, fl->last_seen);
    fl->last_seen = n;
    fl->received++;
}

static void on_gap(evdb_listener *l, double lost_at, double restored_at, const evdb_error *cause,
                   void *arg)
{
    flow *fl = arg;
    ck_assert_ptr_eq(l, fl->l);
    fl->gaps++;
    fl->lost_at = lost_at;
    fl->restored_at = restored_at;
    fl->gap_code = evdb_error_code(cause);
    fl->seen_at_gap = fl->received;
    fl->sent_at_gap = fl->next_seq;
}

/* The listener on url, the sender on the server directly. */
static void flow_start_at(flow *fl, const char *url)
{
    evdb_listener_opts o = {
        .backoff_initial = 0.05, .backoff_max = 0.3, .on_gap = on_gap, .on_gap_arg = fl};
    fl->l = evdb_listener_open(L, url, &o);
    ck_assert_ptr_nonnull(fl->l);
    fl->last_seen = -1;
    fl->count = calloc(MAX_SEQ, 1);
    evdb_future *f = evdb_listener_listen(fl->l, "evdb_flow", on_flow, fl);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    evdb_pool_opts po = {
        .max_conns = 1, .backoff_initial = 0.05, .backoff_max = 0.3, .acquire_timeout = 2};
    fl->pool = t_pool_new(L, t_pg_url(), &po);
    send_next(fl);
    RUN_UNTIL(fl->received >= 50);
}

static void flow_start(flow *fl, const char *url_suffix)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", t_pg_url(), url_suffix);
    flow_start_at(fl, url);
}

/* After the outage: what is sent now arrives, then everything stops. */
static void flow_finish(flow *fl)
{
    long mark = fl->next_seq;
    RUN_UNTIL(fl->last_seen > mark + 50);
    fl->stop = true;
    RUN_UNTIL(fl->in_flight == 0);
    /* The last one sent arrives too: the flow is whole after the gap. */
    RUN_UNTIL(fl->last_seen == fl->next_seq - 1);
    t_pool_close(fl->pool);
}

START_TEST(terminated_backend_reconnects_relistens_and_reports_the_gap_once)
{
    flow fl = {0};
    flow_start(&fl, "?application_name=evdb_listen_victim");
    evdb_conn *a = t_conn_open(L, t_pg_admin_url(), NULL);
    ck_assert_int_eq(t_query_int(a, "SELECT count(pg_terminate_backend(pid)) FROM "
                                    "pg_stat_activity WHERE application_name = "
                                    "'evdb_listen_victim'"),
                     1);
    RUN_UNTIL(fl.gaps == 1);
    ck_assert_int_eq(fl.gap_code, EVDB_ECONNLOST);
    ck_assert(fl.restored_at >= fl.lost_at);
    ck_assert_int_eq(evdb_listener_status(fl.l), 0);
    /* Everything delivered after the gap was sent after the loss... and
     * the numbers before it were never delivered again (on_flow). */
    flow_finish(&fl);
    ck_assert_int_eq(fl.gaps, 1);
    ck_assert_int_gt(fl.received, fl.seen_at_gap);
    t_conn_close(a);
    close_listener(fl.l);
    ck_assert_int_eq(fl.gaps, 1);
    free(fl.count);
}
END_TEST

START_TEST(server_restart_while_notifications_flow)
{
    flow fl = {0};
    flow_start(&fl, "");
    int rc = t_testdb(NULL, "stop-pg", NULL);
    if (rc == -1) {
        fprintf(stderr, "integ_listen: no EVDB_TESTDB_DIR; restart test skipped\n");
    } else {
        ck_assert_int_eq(rc, 0);
        /* Down: the listener retries with backoff, the sender fails. */
        RUN_UNTIL(evdb_listener_status(fl.l) == EVDB_ECONNLOST);
        ck_assert_int_eq(fl.gaps, 0);
        ck_assert_int_eq(t_testdb(NULL, "start-pg", NULL), 0);
        RUN_UNTIL(fl.gaps == 1);
        ck_assert(fl.restored_at >= fl.lost_at);
        ck_assert_int_eq(evdb_listener_status(fl.l), 0);
    }
    flow_finish(&fl);
    ck_assert_int_le(fl.gaps, 1);
    close_listener(fl.l);
    ck_assert_int_le(fl.gaps, 1);
    free(fl.count);
}
END_TEST

/* The network, not the server: the fault proxy between the listener and
 * the server resets the session and then refuses connections for a
 * while, so the listener fails several attempts (backoff) within one
 * outage. */
START_TEST(connection_cut_by_the_network_is_one_gap)
{
    const char *u = t_pg_url();
    const char *pv = evdb_test_env("EVDB_TEST_PG_PORT");
    ck_assert_ptr_nonnull(pv);
    int port = atoi(pv);
    char err[160];
    evdb_fp *fp = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(fp != NULL, "fault proxy: %s", err);
    char pat[16], url[512];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(u, pat);
    ck_assert_ptr_nonnull(at);
    snprintf(url, sizeof url, "%.*s:%d/%s", (int)(at - u), u, evdb_fp_port(fp), at + strlen(pat));
    flow fl = {0};
    flow_start_at(&fl, url);
    ck_assert_int_eq(evdb_fp_set(fp, EVDB_FP_REFUSE, 0), 0);
    ck_assert_uint_eq(evdb_fp_reset_all(fp), 1);
    RUN_UNTIL(evdb_listener_status(fl.l) == EVDB_ECONNLOST);
    /* Sent while the listener cannot reach the server: missed. */
    long mark = fl.next_seq;
    RUN_UNTIL(fl.next_seq > mark + 200);
    ck_assert_int_eq(fl.gaps, 0);
    ck_assert_int_eq(evdb_listener_status(fl.l), EVDB_ECONNLOST);
    ck_assert_int_eq(evdb_fp_set(fp, EVDB_FP_PASS, 0), 0);
    RUN_UNTIL(fl.gaps == 1);
    ck_assert_int_eq(fl.gap_code, EVDB_ECONNLOST);
    ck_assert(fl.restored_at >= fl.lost_at);
    flow_finish(&fl);
    /* Some were missed (the gap was real), none twice (on_flow). */
    ck_assert_int_lt(fl.received, fl.next_seq);
    close_listener(fl.l);
    ck_assert_int_eq(fl.gaps, 1);
    evdb_fp_free(fp);
    free(fl.count);
}
END_TEST

START_TEST(close_during_reconnect_ends_everything)
{
    flow fl = {0};
    flow_start(&fl, "?application_name=evdb_listen_victim2");
    fl.stop = true;
    RUN_UNTIL(fl.in_flight == 0);
    evdb_conn *a = t_conn_open(L, t_pg_admin_url(), NULL);
    ck_assert_int_eq(t_query_int(a, "SELECT count(pg_terminate_backend(pid)) FROM "
                                    "pg_stat_activity WHERE application_name = "
                                    "'evdb_listen_victim2'"),
                     1);
    RUN_UNTIL(evdb_listener_status(fl.l) == EVDB_ECONNLOST);
    /* A LISTEN registered while down, then the close. */
    done pending = {0};
    seen s = {0};
    watch(evdb_listener_listen(fl.l, "evdb_pending", on_note, &s), &pending);
    long received = fl.received;
    close_listener(fl.l);
    ck_assert_int_eq(pending.calls, 1);
    ck_assert_int_eq(pending.status, EVDB_ECLOSED);
    ck_assert_int_eq(fl.gaps, 0);
    ck_assert_int_eq(fl.received, received);
    ck_assert_int_eq(s.calls, 0);
    t_conn_close(a);
    t_pool_close(fl.pool);
    free(fl.count);
}
END_TEST

START_TEST(close_from_a_callback_drops_what_is_queued)
{
    evdb_listener *l = open_listener(NULL);
    seen s = {.close_in_cb = true};
    listen_ok(l, "evdb_close", &s);
    /* A LISTEN still unacknowledged when the listener closes. */
    done pending = {0};
    seen other = {0};
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    /* Fifty notifications at one COMMIT: they arrive together. */
    t_exec_ok(c, "BEGIN");
    for (int i = 0; i < 50; i++) {
        char pl[16];
        snprintf(pl, sizeof pl, "%d", i);
        notify(c, "evdb_close", pl);
    }
    watch(evdb_listener_listen(l, "evdb_maybe_acked", on_note, &other), &pending);
    t_exec_ok(c, "COMMIT");
    RUN_UNTIL(s.close_f != NULL);
    ck_assert_int_eq(t_wait(s.close_f), 0);
    evdb_future_unref(s.close_f);
    RUN_UNTIL(pending.calls == 1);
    ck_assert_int_eq(s.calls, 1);
    ck_assert(pending.status == EVDB_ECLOSED || pending.status == 0);
    ck_assert_int_eq(other.calls, 0);
    t_conn_close(c);
}
END_TEST

START_TEST(bad_input_and_mariadb_are_refused_clearly)
{
    evdb_listener *m = evdb_listener_open(L, t_my_url(), NULL);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "LISTEN"));
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_last_error()), "evdb_secret"));
    ck_assert_ptr_null(evdb_listener_open(NULL, t_pg_url(), NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_listener_open(L, "nosuch://x", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
    evdb_listener_opts bad = {.reserved = {&bad}};
    ck_assert_ptr_null(evdb_listener_open(L, t_pg_url(), &bad));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);

    evdb_listener *l = open_listener(NULL);
    seen s = {0};
    ck_assert_ptr_null(evdb_listener_listen(l, "x", NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_listener_listen(l, "", on_note, &s));
    ck_assert_ptr_null(evdb_listener_listen(l, NULL, on_note, &s));
    char longname[65];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    ck_assert_ptr_null(evdb_listener_listen(l, longname, on_note, &s));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_listener_unlisten(l, "never"));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    listen_ok(l, "twice", &s);
    ck_assert_ptr_null(evdb_listener_listen(l, "twice", on_note, &s));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_future *cf = evdb_listener_close(l);
    ck_assert_ptr_nonnull(cf);
    ck_assert_ptr_null(evdb_listener_listen(l, "late", on_note, &s));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_ptr_null(evdb_listener_close(l));
    ck_assert_int_eq(evdb_listener_status(l), EVDB_ECLOSED);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    ck_assert_int_eq(s.calls, 0);
}
END_TEST

START_TEST(wrong_password_fails_the_listen_without_the_password)
{
    char url[512];
    const char *u = t_pg_url();
    const char *at = strchr(u + strlen("postgresql://"), '@');
    const char *colon = strchr(u + strlen("postgresql://"), ':');
    ck_assert(at && colon && colon < at);
    snprintf(url, sizeof url, "%.*s:wrong_pass_xyz%s", (int)(colon - u), u, at);
    evdb_listener_opts o = {.backoff_initial = 0.05};
    evdb_listener *l = evdb_listener_open(L, url, &o);
    ck_assert_ptr_nonnull(l);
    seen s = {0};
    evdb_future *f = evdb_listener_listen(l, "evdb_pw", on_note, &s);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_lt(t_wait(f), 0);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), "wrong_pass_xyz"));
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "could not connect"));
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_listener_status(l), EVDB_ECONNLOST);
    close_listener(l);
    ck_assert_int_eq(s.calls, 0);
}
END_TEST

START_TEST(listener_from_a_pool_uses_its_own_connection)
{
    evdb_pool_opts po = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &po);
    evdb_listener *l = evdb_listener_open_pool(p, NULL);
    ck_assert_msg(l != NULL, "%s", evdb_error_message(evdb_last_error()));
    seen s = {0};
    listen_ok(l, "evdb_from_pool", &s);
    /* The pool's one connection stays free for its queries. */
    t_pool_exec_ok(p, "NOTIFY evdb_from_pool, 'via pool'");
    RUN_UNTIL(s.calls == 1);
    ck_assert_str_eq(s.payload, "via pool");
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    t_pool_close(p);
    /* The listener outlives the pool. */
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    notify(c, "evdb_from_pool", "after pool");
    RUN_UNTIL(s.calls == 2);
    t_conn_close(c);
    close_listener(l);
    ck_assert_int_eq(s.calls, 2);
}
END_TEST

/* An idle listener waits for its socket: a notification wakes it once,
 * and between notifications the loop sleeps (a spinning READ wait would
 * run thousands of iterations while the timer below runs out). */
START_TEST(idle_listener_does_not_spin)
{
    evdb_listener *l = open_listener(NULL);
    seen s = {0};
    listen_ok(l, "evdb_idle", &s);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    notify(c, "evdb_idle", "wake");
    RUN_UNTIL(s.calls == 1);
    unsigned before = ev_iteration(L);
    t_sleep(L, 0.3);
    unsigned spent = ev_iteration(L) - before;
    ck_assert_msg(spent < 100, "%u loop iterations while idle", spent);
    notify(c, "evdb_idle", "again");
    RUN_UNTIL(s.calls == 2);
    t_conn_close(c);
    close_listener(l);
    ck_assert_int_eq(s.calls, 2);
}
END_TEST

/* A plain connection that runs LISTEN itself gets no listener: its
 * notifications are dropped as before, and it keeps serving queries. */
START_TEST(ordinary_connections_drop_notifications)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_conn *n = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "LISTEN evdb_plain");
    for (int i = 0; i < 100; i++)
        notify(n, "evdb_plain", "dropped");
    ck_assert_int_eq(t_query_int(c, "SELECT 42"), 42);
    t_conn_close(n);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listen_integration");
    TCase *tc = tcase_create("postgres");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, notification_from_another_session_arrives_with_pid_and_payload);
    tcase_add_test(tc, odd_channel_names_and_payload_sizes);
    tcase_add_test(tc, listen_and_unlisten_while_notifications_flow);
    tcase_add_test(tc, notify_in_a_transaction_arrives_at_commit_only);
    tcase_add_test(tc, terminated_backend_reconnects_relistens_and_reports_the_gap_once);
    tcase_add_test(tc, connection_cut_by_the_network_is_one_gap);
    tcase_add_test(tc, close_during_reconnect_ends_everything);
    tcase_add_test(tc, close_from_a_callback_drops_what_is_queued);
    tcase_add_test(tc, bad_input_and_mariadb_are_refused_clearly);
    tcase_add_test(tc, wrong_password_fails_the_listen_without_the_password);
    tcase_add_test(tc, listener_from_a_pool_uses_its_own_connection);
    tcase_add_test(tc, idle_listener_does_not_spin);
    tcase_add_test(tc, ordinary_connections_drop_notifications);
    tcase_add_test(tc, server_restart_while_notifications_flow);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
