/* types: a realistic row read with the typed getters, on either server.
 *   types 'postgresql://user:pw@127.0.0.1:5432/db'
 *   types 'mariadb://user:pw@127.0.0.1:3306/db'
 *
 * An order: its id (uuid / MariaDB UUID), when it was placed (timestamptz /
 * DATETIME(6)), its total (numeric / DECIMAL), its tags (text[]; MariaDB
 * has no arrays, so a JSON list there) and free-form details (jsonb /
 * JSON). The values go in as typed parameters and come back as integers,
 * bytes and text: nothing here parses a date or rounds a decimal. */
#include <ev.h>
#include <stdio.h>
#include <string.h>
#include <evdb.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "types: %s: %s\n", what, evdb_strerror(rc));
    return 1;
}

static int print_order(const evdb_result *r, bool pg)
{
    uint8_t id[16];
    int64_t placed;
    int32_t offset = 0;
    int rc = evdb_result_uuid(r, 0, 0, id);
    if (rc)
        return fail("id", rc);
    /* PostgreSQL: the instant and the offset the session shows it in.
     * MariaDB DATETIME: wall-clock time as stored. */
    rc = pg ? evdb_result_timestamptz(r, 0, 1, &placed, &offset)
            : evdb_result_timestamp(r, 0, 1, &placed);
    if (rc)
        return fail("placed_at", rc);
    size_t len;
    const char *total = evdb_result_text(r, 0, 2, &len); /* exact, as the server wrote it */
    double approx;
    rc = evdb_numeric_to_double(total, len, &approx); /* EVDB_EPRECISION if inexact */
    if (rc && rc != EVDB_EPRECISION)
        return fail("total", rc);

    char when[EVDB_TIMESTAMP_TEXT_MAX];
    evdb_timestamp_format(placed, pg, offset, when, sizeof when);
    printf("order %02x%02x%02x%02x-...-%02x%02x placed %s total %s (%s as a double)\n", id[0],
           id[1], id[2], id[3], id[14], id[15], when, total, rc ? "not exact" : "exact");

    if (pg) {
        evdb_array *tags; /* the caller's: it outlives the result */
        rc = evdb_result_array(r, 0, 3, &tags);
        if (rc)
            return fail("tags", rc);
        printf("tags:");
        for (size_t i = 0; i < evdb_array_len(tags); i++)
            printf(" [%s]",
                   evdb_array_isnull(tags, i) ? "NULL" : evdb_array_get_text(tags, i, NULL));
        printf("\n");
        evdb_array_free(tags);
    } else {
        printf("tags: %s\n", evdb_result_text(r, 0, 3, NULL));
    }
    printf("details (%s): %s\n", evdb_result_coltype_name(r, 4), evdb_result_text(r, 0, 4, NULL));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: types URL\n");
        return 2;
    }
    bool pg = argv[1][0] == 'p';
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool *pool = evdb_pool_new(loop, argv[1], NULL);
    if (!pool) {
        fprintf(stderr, "types: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    const uint8_t id[16] = {0x5f, 0x1c, 0x3a, 0x2e, 0x8b, 0x4d, 0x4e, 0x21,
                            0x9a, 0x6e, 0x0c, 0x71, 0x33, 0xd4, 0x9e, 0x01};
    int32_t day;
    evdb_date_from_ymd(2024, 2, 29, &day);
    /* 2024-02-29 13:45:10.123456 UTC */
    int64_t placed =
        (int64_t)day * EVDB_USECS_PER_DAY + (13 * 3600 + 45 * 60 + 10) * INT64_C(1000000) + 123456;
    const char *tags[] = {"gift", "express, fragile", NULL};
    evdb_value v[] = {evdb_uuid(id), evdb_timestamptz(placed), evdb_numeric("1234.50"),
                      pg ? evdb_array_text(tags, 3)
                         : evdb_json("[\"gift\", \"express, fragile\", null]"),
                      evdb_json("{\"gift_wrap\": true, \"note\": \"Happy birthday\"}")};
    const char *sql =
        pg ? "SELECT $1::uuid AS id, $2::timestamptz AS placed_at, $3::numeric(12,2) AS total,"
             " $4::text[] AS tags, $5::jsonb AS details"
           : "SELECT CAST(? AS UUID) AS id, CAST(? AS DATETIME(6)) AS placed_at,"
             " CAST(? AS DECIMAL(12,2)) AS total, JSON_COMPACT(?) AS tags,"
             " JSON_COMPACT(?) AS details";
    evdb_future *q = evdb_pool_query(pool, sql, v, 5, NULL);
    int status = q ? evdb_future_wait(q) : -1;
    int rc = 1;
    if (status == 0)
        rc = print_order(evdb_future_result(q), pg);
    else
        fprintf(stderr, "types: %s\n",
                evdb_error_message(q ? evdb_future_error(q) : evdb_last_error()));
    evdb_future_unref(q);
    evdb_future *closed = evdb_pool_close(pool); /* the pool is freed with this future */
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return rc;
}
