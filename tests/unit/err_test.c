/*
 * err_test.c - the error detail (format/err.c): strata_strerror's sentences,
 * the thread-local detail, prefixes, truncation, and the origin that
 * ERR_CORRUPT adds in debug and fuzz builds.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "err.h"

Test(err, every_code_has_a_sentence)
{
	const int codes[] = {
		STRATA_OK, STRATA_EINVAL, STRATA_EDIM, STRATA_EMETRIC, STRATA_ENOTFOUND, STRATA_EEXIST,
		STRATA_EBUSY, STRATA_EREADONLY, STRATA_ENONFINITE, STRATA_EDUPLICATE, STRATA_ENOMEM,
		STRATA_ELIMIT, STRATA_ENOSPC, STRATA_EIO, STRATA_EFSYNC, STRATA_EPERM, STRATA_ENOTDB,
		STRATA_EVERSION, STRATA_ECORRUPT, STRATA_ECHECKSUM, STRATA_ETRUNCATED,
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const char *s = strata_strerror(codes[i]);
		cr_assert_not_null(s);
		cr_assert_str_neq(s, "unknown error", "code %d", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, strata_strerror(codes[j]), "codes %d and %d share a sentence",
			                  codes[i], codes[j]);
	}
	cr_assert_str_eq(strata_strerror(-1000), "unknown error");
	cr_assert_str_eq(strata_strerror(7), "unknown error");
}

Test(err, detail_set_prefixed_and_cleared)
{
	cr_assert_str_eq(strata_last_error_detail(), "");
	cr_assert_eq(err_set(STRATA_EIO, "read %s at %d", "x", 5), STRATA_EIO);
	cr_assert_str_eq(err_detail(), "read x at 5");
	cr_assert_eq(strata_last_error_detail(), err_detail());
	cr_assert_eq(err_prefix(STRATA_EIO, "seg-1.seg"), STRATA_EIO);
	cr_assert_str_eq(err_detail(), "seg-1.seg: read x at 5");
	err_prefix(0, NULL);
	err_prefix(0, "");
	cr_assert_str_eq(err_detail(), "seg-1.seg: read x at 5");
	/* The detail may be an argument of its own replacement. */
	err_set(STRATA_EIO, "again: %s", err_detail());
	cr_assert_str_eq(err_detail(), "again: seg-1.seg: read x at 5");
	err_clear();
	cr_assert_str_eq(err_detail(), "");
	err_prefix(STRATA_EIO, "only");
	cr_assert_str_eq(err_detail(), "only");
}

Test(err, long_details_are_truncated_safely)
{
	char big[3 * ERR_DETAIL_MAX];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	err_set(STRATA_EIO, "%s", big);
	cr_assert_eq(strlen(err_detail()), ERR_DETAIL_MAX - 1);
	err_prefix(STRATA_EIO, big);
	cr_assert_eq(strlen(err_detail()), ERR_DETAIL_MAX - 1);
	ERR_CORRUPT("%s", big);
	cr_assert_eq(strlen(err_detail()), ERR_DETAIL_MAX - 1);
}

Test(err, corrupt_records_its_origin_in_debug_builds)
{
	int rc = ERR_CORRUPT("node %d", 3);
	cr_assert_eq(rc, STRATA_ECORRUPT);
#if STRATA_ERR_ORIGIN
	cr_assert(strncmp(err_detail(), "err_test.c:", 11) == 0, "detail: %s", err_detail());
	cr_assert(strstr(err_detail(), ": node 3"), "detail: %s", err_detail());
#else
	cr_assert_str_eq(err_detail(), "node 3");
#endif
}

static void *other_thread(void *arg)
{
	char *seen = arg;
	strcpy(seen, err_detail()); /* a fresh thread starts empty */
	err_set(STRATA_ENOMEM, "set in the other thread");
	return NULL;
}

Test(err, detail_belongs_to_the_thread)
{
	char seen[ERR_DETAIL_MAX] = "unset";
	err_set(STRATA_EIO, "main thread");
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, other_thread, seen), 0);
	pthread_join(t, NULL);
	cr_assert_str_eq(seen, "");
	cr_assert_str_eq(err_detail(), "main thread");
}
