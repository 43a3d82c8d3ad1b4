/*
 * regex.c - the patterns of schemas (contracts_int.h, gw_regex), matched in time
 * proportional to the input times the pattern's size, whatever the pattern.
 *
 * A pattern comes from a worker and the text from a client, and both run on the
 * gateway's loop: a backtracking matcher (PCRE's, or glibc's regexec, which needs 15 s
 * for `(a|aa)*b` on 64 KiB of "a") would let either stall every request.  So a pattern
 * is parsed here into a small program and run as a Thompson NFA (Pike's VM without
 * captures): every thread advances one character at a time, a state is entered at most
 * once per character, and a search costs at most len x program size steps, which the
 * caller's budget bounds.
 *
 * The syntax is the subset of POSIX extended and Python/Rust regexes that schemas use:
 * literals, `.`, `[...]` and `[^...]` (ranges, escapes, ASCII members), `^`, `$`,
 * groups `(...)` and `(?:...)`, `|`, `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}` (counts up to
 * 100; a lazy `?` after a quantifier is accepted and means the same for a search),
 * escapes `\d \D \w \W \s \S` and escaped punctuation.  Anything else (back-references,
 * lookaround, `\b`, POSIX `[:classes:]`) is refused with a reason.  Matching works on
 * code points: `.` and a negated class consume one UTF-8 character.  Like pydantic's, a
 * search: the pattern matches anywhere unless anchored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contracts_int.h"
#include "utf8.h"

/* Bounds of a compiled pattern: its program, its nesting, one repetition count. */
#define RE_MAX_PROGRAM 2048
#define RE_MAX_NODES   1024
#define RE_MAX_NESTING 32
#define RE_MAX_COUNT   100
#define RE_INFINITE    UINT32_MAX

typedef enum re_op {
    OP_CHAR,  /* one code point equal to arg */
    OP_ANY,   /* any one code point */
    OP_CLASS, /* one code point in class `arg` (ASCII bitmap; non-ASCII: if negated) */
    OP_BOL,   /* at the start of the text */
    OP_EOL,   /* at the end of the text */
    OP_SPLIT, /* continue at x and at y */
    OP_JMP,   /* continue at x */
    OP_MATCH  /* done */
} re_op;

typedef struct re_inst {
    uint8_t op;   /* re_op */
    uint32_t arg; /* OP_CHAR: the code point; OP_CLASS: the class index */
    uint16_t x;   /* OP_SPLIT, OP_JMP: a target */
    uint16_t y;   /* OP_SPLIT: the other target */
} re_inst;

typedef struct re_class {
    uint8_t bits[16]; /* ASCII members */
    bool negated;     /* matches what is not listed (and every non-ASCII character) */
} re_class;

struct gw_regex {
    re_inst *prog;      /* the program */
    uint16_t n;         /* instructions */
    re_class *classes;  /* the classes OP_CLASS refers to */
    uint16_t nclasses;  /* entries in classes */
    uint16_t *marks;    /* per instruction: the step it was last added at (search scratch) */
    uint16_t mark;      /* the current step\'s mark; kept across searches, since
                           marks of earlier searches stay in `marks` */
    uint16_t *lists[2]; /* thread lists (search scratch) */
    uint16_t *stack;    /* closure stack (search scratch) */
};

/* ---------------------------------------------------------------------------------- */
/* Parsing into a tree.                                                                */

typedef enum re_kind {
    N_CHAR,
    N_ANY,
    N_CLASS,
    N_BOL,
    N_EOL,
    N_CAT,
    N_ALT,
    N_REPEAT,
    N_EMPTY
} re_kind;

typedef struct re_node {
    uint8_t kind;      /* re_kind */
    uint32_t arg;      /* N_CHAR: code point; N_CLASS: class index */
    uint32_t min, max; /* N_REPEAT */
    int16_t a, b;      /* children: N_CAT/N_ALT both, N_REPEAT a */
} re_node;

typedef struct re_parser {
    const char *p;   /* next character of the pattern */
    const char *end; /* its end */
    re_node nodes[RE_MAX_NODES];
    int nnodes;        /* nodes used */
    re_class *classes; /* classes found */
    uint16_t nclasses; /* entries used */
    uint16_t ccap;     /* entries allocated */
    int depth;         /* group nesting */
    char *why;         /* the reason of a refusal */
    size_t why_len;    /* its size */
    bool failed;       /* a refusal was written */
} re_parser;

static int refuse(re_parser *ps, const char *what)
{
    if (!ps->failed && ps->why && ps->why_len)
        snprintf(ps->why, ps->why_len, "%s", what);
    ps->failed = true;
    return -1;
}

static int node(re_parser *ps, re_kind kind, uint32_t arg, int a, int b)
{
    if (ps->nnodes == RE_MAX_NODES)
        return refuse(ps, "the pattern is too complex");
    re_node *n = &ps->nodes[ps->nnodes];
    *n = (re_node){(uint8_t)kind, arg, 0, 0, (int16_t)a, (int16_t)b};
    return ps->nnodes++;
}

static int new_class(re_parser *ps, re_class **out)
{
    if (ps->nclasses == ps->ccap) {
        uint16_t cap = ps->ccap ? (uint16_t)(ps->ccap * 2) : 8;
        if (cap > RE_MAX_NODES)
            return refuse(ps, "the pattern is too complex");
        re_class *grown = realloc(ps->classes, cap * sizeof *grown);
        if (!grown)
            return refuse(ps, "out of memory");
        ps->classes = grown;
        ps->ccap = cap;
    }
    *out = &ps->classes[ps->nclasses];
    memset(*out, 0, sizeof **out);
    return ps->nclasses++;
}

static void set_bit(re_class *c, unsigned ch)
{
    c->bits[ch >> 3] |= (uint8_t)(1u << (ch & 7));
}

static void set_range(re_class *c, unsigned lo, unsigned hi)
{
    for (unsigned ch = lo; ch <= hi; ch++)
        set_bit(c, ch);
}

/* Adds the members of \d, \w or \s to c; false for another letter. */
static bool add_shorthand(re_class *c, char e)
{
    switch (e) {
    case 'd':
        set_range(c, '0', '9');
        return true;
    case 'w':
        set_range(c, '0', '9');
        set_range(c, 'a', 'z');
        set_range(c, 'A', 'Z');
        set_bit(c, '_');
        return true;
    case 's':
        set_bit(c, ' ');
        set_range(c, '\t', '\r');
        return true;
    default:
        return false;
    }
}

/* Reads one UTF-8 code point of the pattern. */
static uint32_t next_cp(re_parser *ps)
{
    const uint8_t *s = (const uint8_t *)ps->p;
    size_t left = (size_t)(ps->end - ps->p);
    size_t n = gw_utf8_seq_len(s, left);
    if (n == 0)
        n = 1;
    uint32_t cp = n == 1 ? s[0] : s[0] & (0xff >> (n + 1));
    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3f);
    ps->p += n;
    return cp;
}

/* The character an escape stands for as a literal, or -1. */
static int escaped_literal(char e)
{
    switch (e) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    default:
        return (e >= 0x21 && e <= 0x7e &&
                !((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')))
                   ? e
                   : -1;
    }
}

static int parse_class(re_parser *ps)
{
    re_class *c;
    int idx = new_class(ps, &c);
    if (idx < 0)
        return -1;
    if (ps->p < ps->end && *ps->p == '^') {
        c->negated = true;
        ps->p++;
    }
    bool first = true;
    while (ps->p < ps->end && (*ps->p != ']' || first)) {
        first = false;
        unsigned lo;
        if (*ps->p == '[' && ps->p + 1 < ps->end &&
            (ps->p[1] == ':' || ps->p[1] == '=' || ps->p[1] == '.'))
            return refuse(ps, "POSIX [:classes:] are not supported: use \\d, \\w, \\s or ranges");
        if (*ps->p == '\\') {
            if (++ps->p == ps->end)
                return refuse(ps, "the pattern ends with a backslash");
            char e = *ps->p++;
            if (add_shorthand(c, e))
                continue;
            int lit = escaped_literal(e);
            if (lit < 0)
                return refuse(ps, "an escape in a class that is not supported");
            lo = (unsigned)lit;
        } else if ((uint8_t)*ps->p >= 0x80) {
            return refuse(ps, "only ASCII characters may be listed in a class");
        } else {
            lo = (uint8_t)*ps->p++;
        }
        unsigned hi = lo;
        if (ps->p + 1 < ps->end && *ps->p == '-' && ps->p[1] != ']') {
            ps->p++;
            if (*ps->p == '\\' || (uint8_t)*ps->p >= 0x80)
                return refuse(ps, "a range must end with a plain ASCII character");
            hi = (uint8_t)*ps->p++;
            if (hi < lo)
                return refuse(ps, "a range goes backwards");
        }
        set_range(c, lo, hi);
    }
    if (ps->p == ps->end)
        return refuse(ps, "a class is not closed with ]");
    ps->p++;
    /* ps->classes may have moved: refer to the class by index. */
    return node(ps, N_CLASS, (uint32_t)idx, -1, -1);
}

static int parse_alt(re_parser *ps);

static int parse_atom(re_parser *ps)
{
    char ch = *ps->p;
    if (ch == '(') {
        ps->p++;
        if (ps->p < ps->end && *ps->p == '?') {
            if (ps->p + 1 < ps->end && ps->p[1] == ':')
                ps->p += 2;
            else
                return refuse(ps, "lookaround and group flags are not supported");
        }
        if (++ps->depth > RE_MAX_NESTING)
            return refuse(ps, "groups nest too deep");
        int inner = parse_alt(ps);
        ps->depth--;
        if (inner < 0)
            return -1;
        if (ps->p == ps->end || *ps->p != ')')
            return refuse(ps, "a group is not closed with )");
        ps->p++;
        return inner;
    }
    if (ch == '[') {
        ps->p++;
        return parse_class(ps);
    }
    if (ch == '.') {
        ps->p++;
        return node(ps, N_ANY, 0, -1, -1);
    }
    if (ch == '^' || ch == '$') {
        ps->p++;
        return node(ps, ch == '^' ? N_BOL : N_EOL, 0, -1, -1);
    }
    if (ch == '\\') {
        if (++ps->p == ps->end)
            return refuse(ps, "the pattern ends with a backslash");
        char e = *ps->p++;
        char lower = (char)(e | 0x20);
        if (lower == 'd' || lower == 'w' || lower == 's') {
            re_class *c;
            int idx = new_class(ps, &c);
            if (idx < 0)
                return -1;
            add_shorthand(c, lower);
            c->negated = e != lower;
            return node(ps, N_CLASS, (uint32_t)idx, -1, -1);
        }
        if (e >= '1' && e <= '9')
            return refuse(ps, "back-references are not supported");
        int lit = escaped_literal(e);
        if (lit < 0)
            return refuse(ps, "an escape that is not supported");
        return node(ps, N_CHAR, (uint32_t)lit, -1, -1);
    }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{')
        return refuse(ps, "a quantifier with nothing to repeat");
    return node(ps, N_CHAR, next_cp(ps), -1, -1);
}

/* Reads a decimal count of a {m,n} quantifier. */
static bool read_count(re_parser *ps, uint32_t *v)
{
    const char *start = ps->p;
    *v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9' && *v <= RE_MAX_COUNT)
        *v = *v * 10 + (uint32_t)(*ps->p++ - '0');
    return ps->p > start;
}

static int parse_repeat(re_parser *ps)
{
    int atom = parse_atom(ps);
    while (atom >= 0 && ps->p < ps->end) {
        uint32_t min, max;
        char q = *ps->p;
        if (q == '*' || q == '+' || q == '?') {
            ps->p++;
            min = q == '+';
            max = q == '?' ? 1 : RE_INFINITE;
        } else if (q == '{') {
            ps->p++;
            if (!read_count(ps, &min))
                return refuse(ps, "a { quantifier needs a count");
            max = min;
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                max = RE_INFINITE;
                if (ps->p < ps->end && *ps->p != '}' && !read_count(ps, &max))
                    return refuse(ps, "a malformed { quantifier");
            }
            if (ps->p == ps->end || *ps->p != '}')
                return refuse(ps, "a { quantifier is not closed with }");
            ps->p++;
            if (min > RE_MAX_COUNT || (max != RE_INFINITE && max > RE_MAX_COUNT))
                return refuse(ps, "a repetition count is above 100");
            if (max < min)
                return refuse(ps, "a { quantifier's maximum is below its minimum");
        } else {
            break;
        }
        if (ps->p < ps->end && *ps->p == '?')
            ps->p++; /* lazy: the same set of matches for a search */
        int r = node(ps, N_REPEAT, 0, atom, -1);
        if (r < 0)
            return -1;
        ps->nodes[r].min = min;
        ps->nodes[r].max = max;
        atom = r;
    }
    return atom;
}

static int parse_concat(re_parser *ps)
{
    int left = -1;
    while (ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
        int right = parse_repeat(ps);
        if (right < 0)
            return -1;
        left = left < 0 ? right : node(ps, N_CAT, 0, left, right);
        if (left < 0)
            return -1;
    }
    return left < 0 ? node(ps, N_EMPTY, 0, -1, -1) : left;
}

static int parse_alt(re_parser *ps)
{
    int left = parse_concat(ps);
    while (left >= 0 && ps->p < ps->end && *ps->p == '|') {
        ps->p++;
        int right = parse_concat(ps);
        if (right < 0)
            return -1;
        left = node(ps, N_ALT, 0, left, right);
    }
    return left;
}

/* ---------------------------------------------------------------------------------- */
/* Compiling the tree into a program.                                                  */

typedef struct re_emit {
    re_inst prog[RE_MAX_PROGRAM];
    int n;         /* instructions written */
    bool overflow; /* the program would pass RE_MAX_PROGRAM */
} re_emit;

static int emit(re_emit *e, re_op op, uint32_t arg)
{
    if (e->n == RE_MAX_PROGRAM) {
        e->overflow = true;
        return RE_MAX_PROGRAM - 1;
    }
    e->prog[e->n] = (re_inst){(uint8_t)op, arg, 0, 0};
    return e->n++;
}

static void compile_node(re_emit *e, const re_parser *ps, int i)
{
    const re_node *n = &ps->nodes[i];
    int split, jmp;
    switch (n->kind) {
    case N_CHAR:
        emit(e, OP_CHAR, n->arg);
        break;
    case N_ANY:
        emit(e, OP_ANY, 0);
        break;
    case N_CLASS:
        emit(e, OP_CLASS, n->arg);
        break;
    case N_BOL:
        emit(e, OP_BOL, 0);
        break;
    case N_EOL:
        emit(e, OP_EOL, 0);
        break;
    case N_EMPTY:
        break;
    case N_CAT:
        compile_node(e, ps, n->a);
        compile_node(e, ps, n->b);
        break;
    case N_ALT:
        split = emit(e, OP_SPLIT, 0);
        e->prog[split].x = (uint16_t)e->n;
        compile_node(e, ps, n->a);
        jmp = emit(e, OP_JMP, 0);
        e->prog[split].y = (uint16_t)e->n;
        compile_node(e, ps, n->b);
        e->prog[jmp].x = (uint16_t)e->n;
        break;
    case N_REPEAT:
        for (uint32_t k = 0; k < n->min && !e->overflow; k++)
            compile_node(e, ps, n->a);
        if (n->max == RE_INFINITE) {
            split = emit(e, OP_SPLIT, 0);
            e->prog[split].x = (uint16_t)e->n;
            compile_node(e, ps, n->a);
            jmp = emit(e, OP_JMP, 0);
            e->prog[jmp].x = (uint16_t)split;
            e->prog[split].y = (uint16_t)e->n;
        } else {
            /* Each optional copy may skip to the end of all of them. */
            int splits[RE_MAX_COUNT];
            uint32_t opt = n->max - n->min;
            for (uint32_t k = 0; k < opt && !e->overflow; k++) {
                splits[k] = emit(e, OP_SPLIT, 0);
                e->prog[splits[k]].x = (uint16_t)e->n;
                compile_node(e, ps, n->a);
            }
            for (uint32_t k = 0; k < opt && !e->overflow; k++)
                e->prog[splits[k]].y = (uint16_t)e->n;
        }
        break;
    }
}

void gw__regex_free(gw_regex *re)
{
    if (!re)
        return;
    free(re->prog);
    free(re->classes);
    free(re->marks);
    free(re->lists[0]);
    free(re->lists[1]);
    free(re->stack);
    free(re);
}

int gw__regex_compile(const char *pattern, size_t len, gw_regex **out, char *why, size_t why_len)
{
    *out = NULL;
    re_parser *ps = calloc(1, sizeof *ps);
    re_emit *e = calloc(1, sizeof *e);
    gw_regex *re = calloc(1, sizeof *re);
    int rc = BR_EVALUE;
    if (!ps || !e || !re) {
        rc = BR_ENOMEM;
        goto done;
    }
    *ps = (re_parser){.p = pattern, .end = pattern + len, .why = why, .why_len = why_len};
    int root = parse_alt(ps);
    if (root >= 0 && ps->p != ps->end)
        root = refuse(ps, "an unmatched )");
    if (root < 0)
        goto done;
    compile_node(e, ps, root);
    emit(e, OP_MATCH, 0);
    if (e->overflow) {
        refuse(ps, "the pattern is too complex (its repetitions expand too far)");
        goto done;
    }
    size_t n = (size_t)e->n;
    re->n = (uint16_t)n;
    re->prog = malloc(n * sizeof *re->prog);
    re->marks = calloc(n, sizeof *re->marks);
    re->lists[0] = malloc(n * sizeof *re->lists[0]);
    re->lists[1] = malloc(n * sizeof *re->lists[1]);
    /* A closure pushes each instruction's targets at most once per visit: 2n + 1. */
    re->stack = malloc((2 * n + 1) * sizeof *re->stack);
    if (ps->nclasses && !(re->classes = malloc(ps->nclasses * sizeof *re->classes)))
        n = 0;
    if (!n || !re->prog || !re->marks || !re->lists[0] || !re->lists[1] || !re->stack) {
        rc = BR_ENOMEM;
        goto done;
    }
    memcpy(re->prog, e->prog, n * sizeof *re->prog);
    if (ps->nclasses)
        memcpy(re->classes, ps->classes, ps->nclasses * sizeof *re->classes);
    re->nclasses = ps->nclasses;
    *out = re;
    re = NULL;
    rc = 0;
done:
    if (ps)
        free(ps->classes);
    free(ps);
    free(e);
    gw__regex_free(re);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Searching.                                                                          */

/* Adds the thread at pc, and everything it reaches without reading, to list. */
static void add_thread(gw_regex *re, uint16_t *list, size_t *n, uint16_t pc, uint16_t mark,
                       bool at_start, bool at_end)
{
    size_t top = 0;
    re->stack[top++] = pc;
    while (top > 0) {
        pc = re->stack[--top];
        if (re->marks[pc] == mark)
            continue;
        re->marks[pc] = mark;
        const re_inst *in = &re->prog[pc];
        switch (in->op) {
        case OP_JMP:
            re->stack[top++] = in->x;
            break;
        case OP_SPLIT:
            /* Each target is pushed at most once per mark: the stack never overflows. */
            if (re->marks[in->y] != mark)
                re->stack[top++] = in->y;
            if (re->marks[in->x] != mark)
                re->stack[top++] = in->x;
            break;
        case OP_BOL:
            if (at_start)
                re->stack[top++] = (uint16_t)(pc + 1);
            break;
        case OP_EOL:
            if (at_end)
                re->stack[top++] = (uint16_t)(pc + 1);
            break;
        default:
            list[(*n)++] = pc;
            break;
        }
    }
}

static bool class_has(const re_class *c, uint32_t cp)
{
    if (cp >= 128)
        return c->negated;
    bool in = (c->bits[cp >> 3] >> (cp & 7)) & 1;
    return in != c->negated;
}

int gw__regex_search(gw_regex *re, const char *s, size_t len, uint64_t *budget)
{
    uint16_t *clist = re->lists[0], *nlist = re->lists[1];
    size_t nc = 0, nn;
    uint16_t mark = re->mark;
    const uint8_t *t = (const uint8_t *)s;
    for (size_t pos = 0;;) {
        /* A new mark per step; wrapping around clears the marks first. */
        if (++mark == 0) {
            memset(re->marks, 0, re->n * sizeof *re->marks);
            mark = 1;
        }
        /* The current list was built under the previous mark: re-mark it so that the
         * start thread below is not added twice. */
        for (size_t i = 0; i < nc; i++)
            re->marks[clist[i]] = mark;
        add_thread(re, clist, &nc, 0, mark, pos == 0, pos == len); /* search: start anywhere */
        if (*budget < nc) {
            re->mark = mark;
            return BR_ELIMIT;
        }
        *budget -= nc;
        size_t step = 1;
        uint32_t cp = 0;
        if (pos < len) {
            step = gw_utf8_seq_len(t + pos, len - pos);
            if (step == 0)
                step = 1;
            cp = step == 1 ? t[pos] : t[pos] & (0xff >> (step + 1));
            for (size_t k = 1; k < step; k++)
                cp = cp << 6 | (t[pos + k] & 0x3f);
        }
        if (++mark == 0) {
            memset(re->marks, 0, re->n * sizeof *re->marks);
            mark = 1;
        }
        nn = 0;
        for (size_t i = 0; i < nc; i++) {
            const re_inst *in = &re->prog[clist[i]];
            if (in->op == OP_MATCH) {
                re->mark = mark;
                return 1;
            }
            if (pos == len)
                continue;
            bool ok = in->op == OP_ANY || (in->op == OP_CHAR && in->arg == cp) ||
                      (in->op == OP_CLASS && class_has(&re->classes[in->arg], cp));
            if (ok)
                add_thread(re, nlist, &nn, (uint16_t)(clist[i] + 1), mark, false,
                           pos + step == len);
        }
        if (pos == len) {
            re->mark = mark;
            return 0;
        }
        uint16_t *tmp = clist;
        clist = nlist;
        nlist = tmp;
        nc = nn;
        pos += step;
    }
}
