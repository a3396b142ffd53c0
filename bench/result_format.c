/*
 * evdb-bench-resultfmt: does PostgreSQL's binary result format pay for the
 * typed columns? libpq's result format is all-or-nothing per query, so the
 * question is whole results: the same rows (int8, float8, timestamptz,
 * numeric, uuid, int8[10]) fetched as text and decoded with evdb's strict
 * parsers, and fetched as binary and decoded from network byte order
 * (numeric's base-10000 digits turned back into decimal text, which is
 * what evdb hands out for numerics). Median wall time of N runs each,
 * interleaved, plus the bytes libpq received. Run by hand
 * (bench/README.md, "Result format"):
 *
 *   evdb-bench-resultfmt 'postgresql://...' [rows] [runs]
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "internal.h"
#include "types_text.h"

static const char *const SQL =
    "SELECT g::int8, g * 0.25::float8, timestamptz '2024-01-01 00:00:00+00' + g * interval "
    "'1.000001 s', (g * 1.05)::numeric(14, 2), md5(g::text)::uuid, "
    "ARRAY[g, g + 1, g + 2, g + 3, g + 4, g + 5, g + 6, g + 7, g + 8, g + 9]::int8[] "
    "FROM generate_series(1, $1::int) g";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t be64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static uint32_t be32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

/* Every cell decoded; returns a checksum so nothing is optimised away. */
static uint64_t decode_text(const PGresult *r)
{
    uint64_t sum = 0;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        int64_t x, us;
        int32_t off;
        double d;
        uint8_t u[16];
        evdb__parse_int64(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &x);
        evdb__text_double(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &d);
        evdb__parse_timestamp(PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2), true, &us, &off);
        sum += (uint64_t)x + (uint64_t)d + (uint64_t)us + (size_t)PQgetlength(r, i, 3);
        evdb__parse_uuid(PQgetvalue(r, i, 4), 36, u);
        sum += u[0];
        evdb_array *a;
        if (evdb__array_parse(PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5), EVDB_TYPE_INT,
                              &a) == 0) {
            for (size_t k = 0; k < evdb_array_len(a); k++)
                if (evdb_array_get_int(a, k, &x) == 0)
                    sum += (uint64_t)x;
            evdb_array_free(a);
        }
    }
    return sum;
}

/* numeric's binary form back to text: ndigits, weight, sign, dscale, then
 * base-10000 digits. */
static size_t numeric_text(const char *p, char *out)
{
    int nd = (int16_t)(be32(p) >> 16), weight = (int16_t)be32(p),
        sign = (uint16_t)(be32(p + 4) >> 16), dscale = (uint16_t)be32(p + 4);
    size_t o = 0;
    if (sign == 0x4000)
        out[o++] = '-';
    int d = 0;
    if (weight < 0) {
        out[o++] = '0';
    } else {
        for (; d <= weight; d++) {
            int dig = d < nd ? (uint16_t)(be32(p + 8 + 2 * (d & ~1)) >> (d & 1 ? 0 : 16)) : 0;
            o += (size_t)sprintf(out + o, d ? "%04d" : "%d", dig);
        }
    }
    if (dscale > 0) {
        out[o++] = '.';
        for (int s = 0; s < dscale; d++) {
            int dig =
                d < nd && d >= 0 ? (uint16_t)(be32(p + 8 + 2 * (d & ~1)) >> (d & 1 ? 0 : 16)) : 0;
            char four[8];
            sprintf(four, "%04d", dig);
            for (int k = 0; k < 4 && s < dscale; k++, s++)
                out[o++] = four[k];
        }
    }
    out[o] = '\0';
    return o;
}

static uint64_t decode_binary(const PGresult *r)
{
    uint64_t sum = 0;
    int n = PQntuples(r);
    char num[64];
    for (int i = 0; i < n; i++) {
        int64_t x = (int64_t)be64(PQgetvalue(r, i, 0));
        uint64_t dbits = be64(PQgetvalue(r, i, 1));
        double d;
        memcpy(&d, &dbits, 8);
        int64_t us = (int64_t)be64(PQgetvalue(r, i, 2)) + INT64_C(946684800000000);
        sum += (uint64_t)x + (uint64_t)d + (uint64_t)us + numeric_text(PQgetvalue(r, i, 3), num);
        uint8_t u[16];
        memcpy(u, PQgetvalue(r, i, 4), 16);
        sum += u[0];
        const char *a = PQgetvalue(r, i, 5);
        uint32_t ndim = be32(a), nel = ndim ? be32(a + 12) : 0;
        const char *e = a + 12 + 8 * ndim;
        for (uint32_t k = 0; k < nel; k++) {
            int32_t len = (int32_t)be32(e);
            e += 4;
            if (len == 8)
                sum += be64(e);
            e += len > 0 ? len : 0;
        }
    }
    return sum;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: evdb-bench-resultfmt URL [rows] [runs]\n");
        return 2;
    }
    const char *rows = argc > 2 ? argv[2] : "100000";
    int runs = argc > 3 ? atoi(argv[3]) : 7;
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(c));
        return 1;
    }
    PQclear(PQexec(c, "SET DateStyle = ISO; SET IntervalStyle = postgres"));
    double t[2][2][64]; /* format, phase (fetch, decode), run */
    size_t bytes[2] = {0, 0};
    uint64_t sums[2] = {0, 0};
    if (runs > 64)
        runs = 64;
    for (int run = 0; run < runs; run++) {
        for (int fmt = 0; fmt < 2; fmt++) {
            const char *vals[1] = {rows};
            double t0 = now();
            PGresult *r = PQexecParams(c, SQL, 1, NULL, vals, NULL, NULL, fmt);
            double t1 = now();
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                fprintf(stderr, "%s", PQresultErrorMessage(r));
                return 1;
            }
            sums[fmt] = fmt ? decode_binary(r) : decode_text(r);
            double t2 = now();
            t[fmt][0][run] = t1 - t0;
            t[fmt][1][run] = t2 - t1;
            bytes[fmt] = 0;
            for (int i = 0; i < PQntuples(r); i++)
                for (int k = 0; k < PQnfields(r); k++)
                    bytes[fmt] += (size_t)PQgetlength(r, i, k);
            PQclear(r);
        }
    }
    printf("rows=%s runs=%d (median ms)\n", rows, runs);
    for (int fmt = 0; fmt < 2; fmt++) {
        qsort(t[fmt][0], (size_t)runs, sizeof(double), cmp);
        qsort(t[fmt][1], (size_t)runs, sizeof(double), cmp);
        printf("%-6s fetch %8.2f  decode %8.2f  total %8.2f  cell bytes %zu  sum %llu\n",
               fmt ? "binary" : "text", t[fmt][0][runs / 2] * 1e3, t[fmt][1][runs / 2] * 1e3,
               (t[fmt][0][runs / 2] + t[fmt][1][runs / 2]) * 1e3, bytes[fmt],
               (unsigned long long)sums[fmt]);
    }
    PQfinish(c);
    return 0;
}
