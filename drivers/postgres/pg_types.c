/*
 * PostgreSQL's built-in type OIDs -> evdb types, server type names and
 * array element types (the values of src/include/catalog/pg_type.dat,
 * which never change once released). A type this table does not know
 * (extension types such as citext or hstore, enums, domains, composites)
 * is EVDB_TYPE_OTHER here; the connection's catalog (pg_catalog.c) says
 * more about it.
 */
#include <stdlib.h>

#include "pg_internal.h"

typedef struct pg_type_row {
    Oid oid;
    evdb_type type;
    evdb_type elem; /* arrays: the elements' type */
    const char *name;
} pg_type_row;

/* Sorted by OID for the binary search. */
static const pg_type_row types[] = {
    {PG_OID_BOOL, EVDB_TYPE_BOOL, EVDB_TYPE_NULL, "bool"},
    {PG_OID_BYTEA, EVDB_TYPE_BYTES, EVDB_TYPE_NULL, "bytea"},
    {PG_OID_CHAR, EVDB_TYPE_TEXT, EVDB_TYPE_NULL, "char"},
    {PG_OID_NAME, EVDB_TYPE_TEXT, EVDB_TYPE_NULL, "name"},
    {PG_OID_INT8, EVDB_TYPE_INT, EVDB_TYPE_NULL, "int8"},
    {PG_OID_INT2, EVDB_TYPE_INT, EVDB_TYPE_NULL, "int2"},
    {PG_OID_INT4, EVDB_TYPE_INT, EVDB_TYPE_NULL, "int4"},
    {PG_OID_TEXT, EVDB_TYPE_TEXT, EVDB_TYPE_NULL, "text"},
    {PG_OID_OID, EVDB_TYPE_INT, EVDB_TYPE_NULL, "oid"},
    {PG_OID_JSON, EVDB_TYPE_JSON, EVDB_TYPE_NULL, "json"},
    {PG_OID_JSON_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_JSON, "_json"},
    {PG_OID_FLOAT4, EVDB_TYPE_DOUBLE, EVDB_TYPE_NULL, "float4"},
    {PG_OID_FLOAT8, EVDB_TYPE_DOUBLE, EVDB_TYPE_NULL, "float8"},
    {PG_OID_BOOL_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_BOOL, "_bool"},
    {PG_OID_BYTEA_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_BYTES, "_bytea"},
    {1002, EVDB_TYPE_ARRAY, EVDB_TYPE_TEXT, "_char"},
    {1003, EVDB_TYPE_ARRAY, EVDB_TYPE_TEXT, "_name"},
    {1005, EVDB_TYPE_ARRAY, EVDB_TYPE_INT, "_int2"},
    {1007, EVDB_TYPE_ARRAY, EVDB_TYPE_INT, "_int4"},
    {PG_OID_TEXT_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_TEXT, "_text"},
    {1014, EVDB_TYPE_ARRAY, EVDB_TYPE_TEXT, "_bpchar"},
    {1015, EVDB_TYPE_ARRAY, EVDB_TYPE_TEXT, "_varchar"},
    {PG_OID_INT8_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_INT, "_int8"},
    {1021, EVDB_TYPE_ARRAY, EVDB_TYPE_DOUBLE, "_float4"},
    {PG_OID_FLOAT8_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_DOUBLE, "_float8"},
    {1028, EVDB_TYPE_ARRAY, EVDB_TYPE_INT, "_oid"},
    {PG_OID_BPCHAR, EVDB_TYPE_TEXT, EVDB_TYPE_NULL, "bpchar"},
    {PG_OID_VARCHAR, EVDB_TYPE_TEXT, EVDB_TYPE_NULL, "varchar"},
    {PG_OID_DATE, EVDB_TYPE_DATE, EVDB_TYPE_NULL, "date"},
    {PG_OID_TIME, EVDB_TYPE_TIME, EVDB_TYPE_NULL, "time"},
    {PG_OID_TIMESTAMP, EVDB_TYPE_TIMESTAMP, EVDB_TYPE_NULL, "timestamp"},
    {PG_OID_TIMESTAMP_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_TIMESTAMP, "_timestamp"},
    {PG_OID_DATE_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_DATE, "_date"},
    {PG_OID_TIME_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_TIME, "_time"},
    {PG_OID_TIMESTAMPTZ, EVDB_TYPE_TIMESTAMPTZ, EVDB_TYPE_NULL, "timestamptz"},
    {PG_OID_TIMESTAMPTZ_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_TIMESTAMPTZ, "_timestamptz"},
    {PG_OID_INTERVAL, EVDB_TYPE_INTERVAL, EVDB_TYPE_NULL, "interval"},
    {PG_OID_INTERVAL_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_INTERVAL, "_interval"},
    {PG_OID_NUMERIC_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_NUMERIC, "_numeric"},
    {PG_OID_TIMETZ, EVDB_TYPE_TIMETZ, EVDB_TYPE_NULL, "timetz"},
    {PG_OID_TIMETZ_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_TIMETZ, "_timetz"},
    {PG_OID_BIT, EVDB_TYPE_BITS, EVDB_TYPE_NULL, "bit"},
    {1561, EVDB_TYPE_ARRAY, EVDB_TYPE_BITS, "_bit"},
    {PG_OID_VARBIT, EVDB_TYPE_BITS, EVDB_TYPE_NULL, "varbit"},
    {1563, EVDB_TYPE_ARRAY, EVDB_TYPE_BITS, "_varbit"},
    {PG_OID_NUMERIC, EVDB_TYPE_NUMERIC, EVDB_TYPE_NULL, "numeric"},
    {PG_OID_UUID, EVDB_TYPE_UUID, EVDB_TYPE_NULL, "uuid"},
    {PG_OID_UUID_ARRAY, EVDB_TYPE_ARRAY, EVDB_TYPE_UUID, "_uuid"},
    {PG_OID_JSONB, EVDB_TYPE_JSON, EVDB_TYPE_NULL, "jsonb"},
    {3807, EVDB_TYPE_ARRAY, EVDB_TYPE_JSON, "_jsonb"},
};

static int by_oid(const void *key, const void *row)
{
    Oid a = *(const Oid *)key, b = ((const pg_type_row *)row)->oid;
    return a < b ? -1 : a > b;
}

evdb_type evdb__pg_type(Oid oid, evdb_type *elem, const char **name)
{
    const pg_type_row *t =
        bsearch(&oid, types, sizeof types / sizeof *types, sizeof *types, by_oid);
    if (elem)
        *elem = t ? t->elem : EVDB_TYPE_NULL;
    if (name)
        *name = t ? t->name : NULL;
    return t ? t->type : EVDB_TYPE_OTHER;
}
