/*
 * The load of the failover suites (integ_failover_pg.c, integ_failover_my.c):
 * WORKERS chains of single-row inserts through a pool, each submitting the
 * next from its callback, counting every callback and every outcome, and
 * the timeline of an outage as the application sees it. Include after
 * check.h, evdb.h and testutil.h, with L the suite's loop.
 */
#ifndef EVDB_TEST_FAILOVER_LOAD_H
#define EVDB_TEST_FAILOVER_LOAD_H

#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 16, MAX_SUBMITS = 400000 };

typedef struct load {
    evdb_pool *pool;
    const char *sql; /* the insert, its one parameter the submission's number */
    bool stop;
    size_t submitted, completed, ok, lost, refused, other;
    size_t by_code[3];    /* refused: EVDB_ECONNECT, EVDB_EPOOLTIMEOUT, EVDB_ESERVER */
    unsigned char *calls; /* per submission: callbacks run */
    unsigned char *acked; /* per submission: its row was acknowledged */
    double t_stop;        /* when the primary was stopped */
    double t_first_fail;  /* first query failed after that */
    size_t n_at_fail;     /* submissions made before that */
    double t_first_ok;    /* first later submission acknowledged, 0 = none */
} load;

typedef struct ticket {
    load *l;
    size_t n;
} ticket;

static void submit_next(load *l);

static void on_done(evdb_future *f, void *arg)
{
    ticket *t = arg;
    load *l = t->l;
    l->calls[t->n]++;
    l->completed++;
    int st = evdb_future_status(f);
    if (st != 0 && l->t_first_fail == 0) {
        /* The outage as the application sees it begins. */
        l->t_first_fail = t_now();
        l->n_at_fail = l->submitted;
    }
    if (st == 0) {
        l->ok++;
        l->acked[t->n] = 1;
        if (l->t_first_fail > 0 && t->n >= l->n_at_fail && l->t_first_ok == 0)
            l->t_first_ok = t_now();
    } else if (st == EVDB_ECONNLOST) {
        l->lost++;
    } else if (st == EVDB_ECONNECT || st == EVDB_EPOOLTIMEOUT || st == EVDB_ESERVER) {
        l->refused++;
        l->by_code[st == EVDB_ECONNECT ? 0 : st == EVDB_EPOOLTIMEOUT ? 1 : 2]++;
    } else {
        l->other++;
        fprintf(stderr, "unexpected: %s %s\n", evdb_err_name(st),
                evdb_error_message(evdb_future_error(f)));
    }
    free(t);
    evdb_future_unref(f);
    if (!l->stop)
        submit_next(l);
}

static void submit_next(load *l)
{
    ck_assert_uint_lt(l->submitted, MAX_SUBMITS);
    ticket *t = malloc(sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->l = l;
    t->n = l->submitted++;
    evdb_value v = evdb_int((int64_t)t->n);
    evdb_future *f = evdb_pool_query(l->pool, l->sql, &v, 1, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(evdb_future_on_done(f, on_done, t), 0);
}

static void testdb_ok(const char *cmd)
{
    ck_assert_msg(t_testdb(NULL, cmd, NULL) == 0, "scripts/testdb %s failed", cmd);
}

/* scripts/testdb cmd in a child process while the loop keeps running (the
 * pool meets the outage as it happens, not after it). */
static void testdb_under_load(const char *cmd)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(t_testdb(NULL, cmd, NULL) == 0 ? 0 : 1);
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0)
        t_run_for(L, 0.01);
    ck_assert_int_eq(r, pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "scripts/testdb %s failed", cmd);
}

#endif
