/*
 * docs_page.h - the HTML page served at GET /docs (docs_page.c).
 */
#ifndef BARISTA_GW_DOCS_PAGE_H
#define BARISTA_GW_DOCS_PAGE_H

#include <stddef.h>

/* The page, NUL-terminated, and its length without the NUL. */
extern const char gw_docs_html[];
extern const size_t gw_docs_html_len;

#endif /* BARISTA_GW_DOCS_PAGE_H */
