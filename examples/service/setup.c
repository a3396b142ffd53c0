/*
 * setup: creates and fills the service's tables (--setup), the same data
 * on both backends: items(id, name, price) with 10,000 rows named
 * item-<id> priced id * 1.25, and accounts(id, balance) with 1,000
 * accounts of 1,000 each, a CHECK keeping balances from going negative.
 */
#include <stdio.h>

#include "service.h"

static const char *const pg_sql[] = {
    "DROP TABLE IF EXISTS items, accounts",
    "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL)",
    "INSERT INTO items SELECT g, 'item-' || g, g * 1.25 FROM generate_series(1, 10000) g",
    "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))",
    "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 1000) g",
    "ANALYZE items, accounts",
};

/* MariaDB's seq_1_to_N tables come from its Sequence engine. */
static const char *const my_sql[] = {
    "DROP TABLE IF EXISTS items, accounts",
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(64) NOT NULL, "
    "price decimal(10,2) NOT NULL) ENGINE=InnoDB",
    "INSERT INTO items SELECT seq, CONCAT('item-', seq), seq * 1.25 FROM seq_1_to_10000",
    "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, "
    "CONSTRAINT balance_not_negative CHECK (balance >= 0)) ENGINE=InnoDB",
    "INSERT INTO accounts SELECT seq, 1000 FROM seq_1_to_1000",
    "ANALYZE TABLE items, accounts",
};

typedef struct setup_job {
    const char *url;
    int mariadb;
} setup_job;

static void *setup_task(void *arg)
{
    setup_job *j = arg;
    evdb_future *o = evdb_conn_open(evdb_task_loop(), j->url, NULL);
    if (!o || evdb_await(o) != 0) {
        void *r = evdb_task_fail_error(o ? evdb_future_error(o) : evdb_last_error());
        evdb_future_unref(o);
        return r;
    }
    evdb_conn *c = evdb_future_take_conn(o);
    evdb_future_unref(o);
    const char *const *sql = j->mariadb ? my_sql : pg_sql;
    size_t n = j->mariadb ? sizeof my_sql / sizeof *my_sql : sizeof pg_sql / sizeof *pg_sql;
    for (size_t i = 0; i < n; i++) {
        evdb_future *q = evdb_conn_query(c, sql[i], NULL, 0, NULL);
        if (!q || evdb_await(q) != 0) {
            evdb_task_fail_error(q ? evdb_future_error(q) : evdb_last_error());
            evdb_future_unref(q);
            break;
        }
        evdb_future_unref(q);
    }
    evdb_future *closed = evdb_conn_close(c);
    evdb_await(closed);
    evdb_future_unref(closed);
    return NULL;
}

int setup_tables(const char *url, int mariadb)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    setup_job j = {url, mariadb};
    int st = evdb_run(loop, setup_task, &j, NULL);
    if (st != 0)
        fprintf(stderr, "service: setup: %s\n", evdb_error_message(evdb_last_error()));
    ev_loop_destroy(loop);
    return st == 0 ? 0 : -1;
}
