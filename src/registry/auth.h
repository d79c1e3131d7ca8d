/*
 * auth: the per-registry authentication state (internal to src/registry).
 */
#ifndef CTXPACK_REG_AUTH_H
#define CTXPACK_REG_AUTH_H

#include <time.h>

#include "http.h"

#define AUTH_MAX_TOKENS 8

struct reg_auth {
	char *host;                  /* reference host, for credential lookup */
	char *repo;
	enum reg_auth_scheme scheme; /* from the last challenge */
	char *realm;
	char *service;
	int cred_loaded;
	int have_cred;
	struct reg_cred cred;
	struct {
		char *scope;
		char *token;
		time_t expires;
	} tok[AUTH_MAX_TOKENS];
	size_t ntok;
};

void auth_init(struct reg_auth *a, const char *host, const char *repo);
void auth_release(struct reg_auth *a);
/* Take the challenge of a 401 (scheme, realm, service). */
void auth_set_challenge(struct reg_auth *a, const struct reg_challenge *c);
/*
 * The Authorization header line for a request needing scope (space-
 * separated "repository:NAME:ACTIONS" list), fetching a bearer token when
 * needed.  *hdr is malloc'd, or NULL when no credentials apply.
 */
int auth_header(struct reg_store *s, struct reg_auth *a, CURL *c,
		const char *scope, char **hdr, struct err *e);
/* Forget the token for scope (after a 401). */
void auth_drop_token(struct reg_auth *a, const char *scope);
/* Load the credentials once; 1 when there are some. */
int auth_load_cred(struct reg_auth *a, struct err *e);

#endif
