/*
 * A small SQL lexer: just enough to tell whether a query string holds
 * several statements (they cannot run in pipeline mode or through the
 * extended protocol) and whether it is a transaction control statement
 * (it changes the transaction block, which the driver tracks; BEGIN is a
 * barrier), CALL / DO (they may commit by themselves: never re-run),
 * a schema change (it runs alone and renews the statement cache) or COPY
 * (it cannot run in pipeline mode). It understands
 * PostgreSQL's quoting: '...' (with '' inside),
 * E'...' (backslash escapes), "..." identifiers, $tag$...$tag$ bodies,
 * -- line comments and nested block comments. It assumes
 * standard_conforming_strings = on, the default since PostgreSQL 9.1.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "pg_internal.h"

typedef struct lexer {
    const char *p, *end;
} lexer;

static bool ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Skip whitespace and comments. */
static void skip_space(lexer *lx)
{
    while (lx->p < lx->end) {
        unsigned char c = (unsigned char)*lx->p;
        if (isspace(c)) {
            lx->p++;
        } else if (c == '-' && lx->p + 1 < lx->end && lx->p[1] == '-') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
        } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
            /* Block comments nest in PostgreSQL. */
            int depth = 0;
            while (lx->p < lx->end) {
                if (*lx->p == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
                    depth++;
                    lx->p += 2;
                } else if (*lx->p == '*' && lx->p + 1 < lx->end && lx->p[1] == '/') {
                    lx->p += 2;
                    if (--depth == 0)
                        break;
                } else {
                    lx->p++;
                }
            }
        } else {
            return;
        }
    }
}

/* Skip a quoted run starting at the opening quote q; backslash says
 * whether \x escapes apply (E'...'). */
static void skip_quoted(lexer *lx, char q, bool backslash)
{
    lx->p++;
    while (lx->p < lx->end) {
        char c = *lx->p++;
        if (backslash && c == '\\') {
            if (lx->p < lx->end)
                lx->p++;
        } else if (c == q) {
            /* A doubled quote is one quote character inside. */
            if (lx->p < lx->end && *lx->p == q)
                lx->p++;
            else
                return;
        }
    }
}

/* At '$': skip a dollar-quoted body if one starts here, else just the '$'
 * (a parameter like $1). */
static void skip_dollar(lexer *lx)
{
    const char *tag = lx->p;
    const char *t = tag + 1;
    if (t < lx->end && ident_start((unsigned char)*t)) {
        while (t < lx->end && *t != '$' && ident_char((unsigned char)*t))
            t++;
    }
    if (t >= lx->end || *t != '$') {
        lx->p++;
        return;
    }
    size_t tlen = (size_t)(t - tag) + 1; /* "$tag$" */
    const char *body = t + 1;
    for (const char *s = body; s + tlen <= lx->end; s++) {
        if (*s == '$' && memcmp(s, tag, tlen) == 0) {
            lx->p = s + tlen;
            return;
        }
    }
    lx->p = lx->end; /* unterminated: the server will complain */
}

/* Advance over one token of any kind (after skip_space). Returns the
 * token's first character, or 0 at the end. */
static char next_token(lexer *lx)
{
    skip_space(lx);
    if (lx->p >= lx->end)
        return 0;
    unsigned char c = (unsigned char)*lx->p;
    if (c == '\'') {
        skip_quoted(lx, '\'', false);
    } else if (c == '"') {
        skip_quoted(lx, '"', false);
    } else if (c == '$') {
        skip_dollar(lx);
    } else if (ident_start(c)) {
        const char *start = lx->p;
        while (lx->p < lx->end && ident_char((unsigned char)*lx->p))
            lx->p++;
        /* E'...' escape strings; B'', X'', N'' and U&'' are plain. */
        if (lx->p < lx->end && *lx->p == '\'') {
            bool esc = lx->p - start == 1 && (*start == 'e' || *start == 'E');
            skip_quoted(lx, '\'', esc);
        } else if (lx->p + 1 < lx->end && lx->p[0] == '&' && lx->p[1] == '\'' &&
                   lx->p - start == 1 && (*start == 'u' || *start == 'U')) {
            lx->p++;
            skip_quoted(lx, '\'', false);
        }
    } else {
        lx->p++;
    }
    return (char)c;
}

/* The next token if it is a word, copied lower-case into buf (truncated),
 * else "". */
static const char *next_word(lexer *lx, char *buf, size_t size)
{
    skip_space(lx);
    buf[0] = '\0';
    if (lx->p >= lx->end || !ident_start((unsigned char)*lx->p))
        return buf;
    size_t n = 0;
    while (lx->p < lx->end && ident_char((unsigned char)*lx->p)) {
        if (n + 1 < size)
            buf[n++] = (char)tolower((unsigned char)*lx->p);
        lx->p++;
    }
    buf[n] = '\0';
    return buf;
}

#define WORD_MAX 24

/* For COMMIT/END/ROLLBACK/ABORT: "AND CHAIN" keeps a block open, "AND NO
 * CHAIN" does not. The rest of the statement is a few words at most. */
static bool has_and_chain(lexer lx)
{
    char w[WORD_MAX];
    bool after_and = false;
    for (;;) {
        skip_space(&lx);
        if (lx.p >= lx.end || *lx.p == ';')
            return false;
        if (!ident_start((unsigned char)*lx.p)) {
            next_token(&lx);
            after_and = false;
            continue;
        }
        next_word(&lx, w, sizeof w);
        if (!strcmp(w, "and"))
            after_and = true;
        else if (after_and && !strcmp(w, "chain"))
            return true;
        else
            after_and = false;
    }
}

/* The transaction effect of a statement starting at lx (after its first
 * word, given in first), or PG_TXE_NONE when it is not transaction control. */
static enum pg_txe txn_effect(const char *first, lexer lx)
{
    char w[WORD_MAX];
    if (!strcmp(first, "begin"))
        return PG_TXE_BEGIN;
    if (!strcmp(first, "start"))
        return !strcmp(next_word(&lx, w, sizeof w), "transaction") ? PG_TXE_BEGIN : PG_TXE_NONE;
    if (!strcmp(first, "savepoint") || !strcmp(first, "release"))
        return PG_TXE_OTHER;
    if (!strcmp(first, "prepare"))
        return !strcmp(next_word(&lx, w, sizeof w), "transaction") ? PG_TXE_END : PG_TXE_NONE;
    bool commit = !strcmp(first, "commit") || !strcmp(first, "end");
    bool rollback = !strcmp(first, "rollback") || !strcmp(first, "abort");
    if (!commit && !rollback)
        return PG_TXE_NONE;
    lexer look = lx;
    next_word(&look, w, sizeof w);
    if (!strcmp(w, "prepared"))
        return PG_TXE_OTHER; /* COMMIT/ROLLBACK PREPARED: outside any block */
    if (!strcmp(w, "work") || !strcmp(w, "transaction"))
        next_word(&look, w, sizeof w);
    if (rollback && !strcmp(w, "to"))
        return PG_TXE_ROLLBACK_TO;
    return has_and_chain(lx) ? PG_TXE_CHAIN : PG_TXE_END;
}

unsigned evdb__pg_sql_classify(const char *sql, size_t len)
{
    unsigned cls = PGQ_CLASSIFIED;
    lexer lx = {sql, sql + len};
    char first[WORD_MAX];
    next_word(&lx, first, sizeof first);
    enum pg_txe txe = first[0] ? txn_effect(first, lx) : PG_TXE_NONE;
    if (txe != PG_TXE_NONE)
        cls |= PGQ_TXCTL | ((unsigned)txe << PGQ_TXE_SHIFT);
    /* A procedure or DO block may COMMIT part of its work by itself: after
     * a cancel meant for another query it is never run again. */
    if (!strcmp(first, "call") || !strcmp(first, "do"))
        cls |= PGQ_OWNTX;
    /* A schema change may change the result type of cached statements
     * (0A000 on their next use): it runs alone, and the cache is renewed
     * once it is done (pg_pipeline.c). */
    if (!strcmp(first, "alter") || !strcmp(first, "create") || !strcmp(first, "drop"))
        cls |= PGQ_DDL;
    /* COPY FROM STDIN in pipeline mode loses the session: the server reads
     * the next pipelined messages as copy data ("protocol synchronization
     * was lost"). With pipeline mode off it can be refused cleanly. */
    if (!strcmp(first, "copy"))
        cls |= PGQ_SIMPLE;
    /* A ';' followed by anything but space, comments and more ';' starts a
     * second statement. */
    for (;;) {
        char c = next_token(&lx);
        if (!c)
            break;
        if (c != ';')
            continue;
        for (;;) {
            skip_space(&lx);
            if (lx.p >= lx.end)
                return cls;
            if (*lx.p != ';')
                break;
            lx.p++;
        }
        cls |= PGQ_SIMPLE;
        break;
    }
    return cls;
}

size_t evdb__pg_sql_count_params(const char *sql, size_t len)
{
    /* The server gives a statement as many parameters as the highest $n
     * it refers to; quoted text, comments and identifiers (a$1) do not
     * count. */
    size_t max = 0;
    lexer lx = {sql, sql + len};
    for (;;) {
        skip_space(&lx);
        if (lx.p >= lx.end)
            return max;
        if (*lx.p == '$' && lx.p + 1 < lx.end && isdigit((unsigned char)lx.p[1])) {
            size_t n = 0;
            for (lx.p++; lx.p < lx.end && isdigit((unsigned char)*lx.p); lx.p++)
                n = n < PG_MAX_PARAMS ? n * 10 + (size_t)(*lx.p - '0') : n;
            if (n > max && n <= PG_MAX_PARAMS)
                max = n;
            continue;
        }
        next_token(&lx);
    }
}

bool evdb__pg_sql_mentions_prepare(const char *sql, size_t len)
{
    static const char word[] = "prepare";
    const size_t n = sizeof word - 1;
    /* Plain bytes, no lexer: the word counts wherever it is, since a
     * string or a dollar-quoted body may be run as SQL (DO, EXECUTE). */
    for (size_t i = 0; i + n <= len; i++) {
        if ((sql[i] | 0x20) == 'p' && strncasecmp(sql + i, word, n) == 0)
            return true;
    }
    return false;
}

const char *evdb__pg_sql_session_only(const char *sql, size_t len)
{
    lexer lx = {sql, sql + len};
    char w[WORD_MAX];
    /* The first word of every statement of the string. */
    for (;;) {
        next_word(&lx, w, sizeof w);
        if (!strcmp(w, "listen"))
            return "LISTEN";
        if (!strcmp(w, "prepare") && txn_effect(w, lx) == PG_TXE_NONE)
            return "PREPARE";
        char c = next_token(&lx);
        while (c && c != ';')
            c = next_token(&lx);
        if (!c)
            return NULL;
    }
}
