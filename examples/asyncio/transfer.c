/*
 * transfer: an interactive transaction in a task, the way asyncpg writes
 * one. Each statement is awaited inside the transaction; returning from
 * the task commits, failing it rolls back; serialization failures and
 * deadlocks run it again. A savepoint tries a bonus that may fail on its
 * own, and a static transaction (statements known up front, one round
 * trip on PostgreSQL) sets the accounts up.
 *
 *     async def transfer(conn, src, dst, amount):
 *         async with conn.transaction(isolation="serializable"):
 *             bal = await conn.fetchval(
 *                 "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance",
 *                 amount, src)
 *             if bal < 0:
 *                 raise InsufficientFunds()
 *             await conn.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2",
 *                                amount, dst)
 *
 *   transfer 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL)
 */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <evdb.h>

typedef struct app {
    evdb_pool *pool;
    int mariadb; /* placeholders: ? instead of $1 */
} app;

typedef struct transfer {
    const app *a;
    int64_t src, dst, amount;
    int runs; /* how often the body ran (retries run it again) */
} transfer;

/* Run sql with two integer parameters on c and await it. Returns the
 * query's future (the caller unrefs it) or NULL; a failure fails the
 * task (and so rolls back) when the caller returns NULL after it. */
static evdb_future *run2(evdb_conn *c, const char *sql, int64_t x, int64_t y)
{
    evdb_value p[2] = {evdb_int(x), evdb_int(y)};
    evdb_future *q = evdb_conn_query(c, sql, p, 2, NULL);
    if (!q) {
        evdb_task_fail_error(evdb_last_error());
        return NULL;
    }
    if (evdb_await(q) != 0) {
        evdb_task_fail_error(evdb_future_error(q));
        evdb_future_unref(q);
        return NULL;
    }
    return q;
}

/* The transfer's statements, one awaited after the other. 0, or -1 with
 * the task's failure recorded (the transaction then rolls back). */
static int transfer_steps(evdb_conn *c, transfer *t)
{
    const char *debit = t->a->mariadb ? "UPDATE accounts SET balance = balance - ? WHERE id = ?"
                                      : "UPDATE accounts SET balance = balance - $1 WHERE id = $2";
    const char *credit = t->a->mariadb ? "UPDATE accounts SET balance = balance + ? WHERE id = ?"
                                       : "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
    const char *balance = t->a->mariadb ? "SELECT balance FROM accounts WHERE id = ?"
                                        : "SELECT balance FROM accounts WHERE id = $1";
    evdb_future *q = run2(c, debit, t->amount, t->src);
    if (!q)
        return -1;
    evdb_future_unref(q);
    evdb_value src = evdb_int(t->src);
    q = evdb_conn_query(c, balance, &src, 1, NULL);
    if (!q || evdb_await(q) != 0) {
        evdb_task_fail_error(q ? evdb_future_error(q) : evdb_last_error());
        evdb_future_unref(q);
        return -1;
    }
    int64_t left = 0;
    evdb_result_int(evdb_future_result(q), 0, 0, &left);
    evdb_future_unref(q);
    if (left < 0) {
        evdb_task_fail(EVDB_EINVAL, "insufficient funds");
        return -1;
    }
    q = run2(c, credit, t->amount, t->dst);
    if (!q)
        return -1;
    evdb_future_unref(q);
    return 0;
}

/* The transaction's body: a task, started right after BEGIN (on
 * PostgreSQL the first UPDATE leaves in the same write as BEGIN).
 * Returning commits; a recorded failure rolls back. */
static void *transfer_body(evdb_conn *c, void *arg)
{
    transfer *t = arg;
    t->runs++;
    transfer_steps(c, t);
    return NULL;
}

/* A savepoint's body: an update that violates the balance check, so only
 * the savepoint rolls back and the transfer around it stands. */
static evdb_future *bonus(evdb_conn *c, void *arg)
{
    (void)arg;
    return evdb_conn_query(c, "UPDATE accounts SET balance = -1 WHERE id = 2", NULL, 0, NULL);
}

static void *transfer_with_bonus(evdb_conn *c, void *arg)
{
    transfer *t = arg;
    if (transfer_steps(c, t))
        return NULL;
    evdb_future *s = evdb_conn_savepoint(c, bonus, NULL);
    int st = s ? evdb_await(s) : evdb_error_code(evdb_last_error());
    printf("bonus in a savepoint: %s\n", st == 0 ? "applied" : "failed, rolled back alone");
    evdb_future_unref(s);
    return NULL;
}

static int64_t balance_of(const app *a, int id)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT balance FROM accounts WHERE id = %d", id);
    evdb_future *q = evdb_pool_query(a->pool, sql, NULL, 0, NULL);
    int64_t v = -1;
    if (q && evdb_await(q) == 0)
        evdb_result_int(evdb_future_result(q), 0, 0, &v);
    evdb_future_unref(q);
    return v;
}

static void *main_task(void *arg)
{
    app *a = arg;
    /* Setup as one static transaction: all or nothing, one round trip on
     * PostgreSQL. (DDL runs on its own first: it commits implicitly on
     * MariaDB.) */
    evdb_future *q = evdb_pool_query(a->pool, "DROP TABLE IF EXISTS accounts", NULL, 0, NULL);
    evdb_await(q);
    evdb_future_unref(q);
    q = evdb_pool_query(a->pool,
                        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL "
                        "CHECK (balance >= 0))",
                        NULL, 0, NULL);
    if (!q || evdb_await(q) != 0) {
        void *r = evdb_task_fail_error(q ? evdb_future_error(q) : evdb_last_error());
        evdb_future_unref(q);
        return r;
    }
    evdb_future_unref(q);
    evdb_stmt setup[2] = {{"INSERT INTO accounts VALUES (1, 100)", NULL, 0},
                          {"INSERT INTO accounts VALUES (2, 0)", NULL, 0}};
    q = evdb_pool_transaction_batch(a->pool, setup, 2, NULL);
    if (!q || evdb_await(q) != 0) {
        void *r = evdb_task_fail_error(q ? evdb_future_error(q) : evdb_last_error());
        evdb_future_unref(q);
        return r;
    }
    evdb_future_unref(q);

    /* Two transfers at once, serializable, retried on serialization
     * failures and deadlocks (the body must be safe to run again). */
    evdb_txn_opts o = {.isolation = EVDB_ISOLATION_SERIALIZABLE, .max_attempts = 5};
    transfer t1 = {a, 1, 2, 30, 0}, t2 = {a, 1, 2, 50, 0};
    evdb_future *f[2] = {evdb_pool_transaction_task(a->pool, transfer_body, &t1, &o),
                         evdb_pool_transaction_task(a->pool, transfer_body, &t2, &o)};
    evdb_future *both = evdb_gather(f, 2, EVDB_GATHER_ALL);
    evdb_await(both);
    for (int i = 0; i < 2; i++)
        printf("transfer %d: %s\n", i + 1,
               evdb_future_status(f[i]) == 0 ? "committed"
                                             : evdb_error_message(evdb_future_error(f[i])));
    evdb_future_unref(both);
    evdb_future_unref(f[0]);
    evdb_future_unref(f[1]);

    /* One that cannot be covered (the CHECK refuses the debit): rolled
     * back, nothing changes. */
    transfer t3 = {a, 1, 2, 1000, 0};
    q = evdb_pool_transaction_task(a->pool, transfer_body, &t3, NULL);
    evdb_await(q);
    printf("transfer 3: %s\n",
           evdb_future_status(q) == 0 ? "committed" : evdb_error_message(evdb_future_error(q)));
    evdb_future_unref(q);

    /* A savepoint inside a transaction. */
    transfer t4 = {a, 1, 2, 5, 0};
    q = evdb_pool_transaction_task(a->pool, transfer_with_bonus, &t4, NULL);
    evdb_await(q);
    printf("transfer 4: %s\n",
           evdb_future_status(q) == 0 ? "committed" : evdb_error_message(evdb_future_error(q)));
    evdb_future_unref(q);

    printf("balances: %lld and %lld (total %lld)\n", (long long)balance_of(a, 1),
           (long long)balance_of(a, 2), (long long)(balance_of(a, 1) + balance_of(a, 2)));
    q = evdb_pool_query(a->pool, "DROP TABLE accounts", NULL, 0, NULL);
    evdb_await(q);
    evdb_future_unref(q);
    evdb_future *closed = evdb_pool_close(a->pool);
    evdb_await(closed);
    evdb_future_unref(closed);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: transfer URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = 4};
    app a = {evdb_pool_new(loop, argv[1], &po), strncmp(argv[1], "m", 1) == 0};
    if (!a.pool) {
        fprintf(stderr, "transfer: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    int status = evdb_run(loop, main_task, &a, NULL);
    if (status != 0)
        fprintf(stderr, "transfer: %s: %s\n", evdb_err_name(status),
                evdb_error_message(evdb_last_error()));
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
