/*
 * cli_files.c - one WAL file or one deletion file held in memory, checked by
 * the rules a lone file can show (cli_files.h). The codecs are format/'s
 * (wal_record.h, tombstone.h); what this file adds is the walk over a whole
 * WAL file and the classification of its first damage, mirroring
 * wal/wal_reader.c's rule for the newest file of a directory, because a file
 * given alone may well be one.
 */
#include "cli_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "le.h"
#include "strata.h"
#include "tombstone.h"

#define ULL(x) ((unsigned long long)(x))

const char *cli_base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* ---- WAL ------------------------------------------------------------------------ */

/*
 * Is there a valid record (header fields and checksum) at a multiple of 8
 * after `damage`? *found_out is its offset or 0; *gave_up when the hashing
 * budget ran out first (a hostile file cannot make this quadratic).
 */
static void find_valid_after(const uint8_t *buf, size_t len, uint64_t damage, uint64_t *found_out,
                             bool *gave_up)
{
	*found_out = 0;
	*gave_up = false;
	uint64_t budget = 2 * (len - damage) + (64u << 20);
	for (uint64_t p = damage + 8; p < len && len - p >= WAL_RECORD_MIN; p += 8) {
		uint32_t claim = le_load32(buf + p + WALREC_OFF_TOTAL_LEN);
		if (claim >= WAL_RECORD_MIN && claim % 8 == 0 && claim <= len - p) {
			if (budget < claim) {
				*gave_up = true;
				return;
			}
			budget -= claim; /* walrec_decode hashes the whole record */
		}
		struct walrec rec;
		if (walrec_decode(buf, len, (size_t)p, &rec) == 0) {
			*found_out = p;
			return;
		}
	}
}

/* An all-zero buffer (a file created but never written: a torn header). */
static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/*
 * A record whose checksum matched: is its content what FORMAT.md allows here?
 * 0, or a code with the detail set.
 */
static int record_content(const struct cli_wal_file *o, const struct walrec *rec, uint64_t next)
{
	if (next && rec->lsn != next)
		return err_set(STRATA_ECORRUPT, "lsn %llu where %llu is next", ULL(rec->lsn), ULL(next));
	int rc = walrec_payload_check(rec->type, rec->payload, rec->payload_len);
	if (rc)
		return rc;
	uint32_t dim = le_load32(rec->payload + 4);
	if (rec->type == WAL_REC_UPSERT && dim != o->hdr.dim)
		return err_set(STRATA_ECORRUPT, "upsert of dim %u in a file of dim %u", dim, o->hdr.dim);
	return 0;
}

int cli_wal_walk(const uint8_t *buf, size_t len, bool resync, cli_wal_rec_fn fn, void *ctx,
                 struct cli_wal_file *out)
{
	memset(out, 0, sizeof *out);
	if (len < WAL_FILE_HEADER_SIZE || all_zero(buf, len)) {
		/* What a crash while the file was being created leaves (wal.h: torn header). */
		out->torn = true;
		out->torn_bytes = len;
		snprintf(out->detail, sizeof out->detail,
		         "the header is torn (%zu bytes%s): a crash while the file was created; "
		         "recovery removes such a newest file", len, len ? "" : ", empty");
		return 0;
	}
	err_clear();
	int rc = walrec_file_header_decode(buf, len, &out->hdr);
	if (rc) {
		out->error = rc;
		snprintf(out->detail, sizeof out->detail, "header: %s", err_detail());
		return 0;
	}
	out->header_ok = true;
	out->valid_bytes = WAL_FILE_HEADER_SIZE;
	uint64_t pos = WAL_FILE_HEADER_SIZE, next = out->hdr.first_lsn;
	bool damaged = false;
	while (pos < len) {
		struct walrec rec;
		err_clear();
		int d = walrec_decode(buf, len, (size_t)pos, &rec);
		bool whole = d == 0; /* framing and checksum valid: whatever is wrong is not a tear */
		if (whole)
			d = record_content(out, &rec, next);
		if (d == 0) {
			if (!damaged) {
				out->records++;
				if (!out->first_lsn)
					out->first_lsn = rec.lsn;
				out->last_lsn = rec.lsn;
				uint32_t n = le_load32(rec.payload);
				if (rec.type == WAL_REC_UPSERT) {
					out->upserts++;
					out->upsert_rows += n;
				} else {
					out->deletes++;
					out->delete_rows += n;
				}
				out->valid_bytes = pos + rec.total_len;
			}
			if (fn && (rc = fn(ctx, pos, &rec)))
				return rc;
			next = rec.lsn + 1;
			pos += rec.total_len;
			continue;
		}
		if (!whole && !damaged && all_zero(buf + pos, len - pos)) {
			out->zero_bytes = len - pos; /* the writer's zeros ahead: the log ends here */
			break;
		}
		char why[ERR_DETAIL_MAX];
		if (d == WALREC_MORE)
			snprintf(why, sizeof why, "the file ends %llu bytes into a record%s",
			         ULL(len - pos), rec.total_len ? "" : " (inside its header)");
		else
			snprintf(why, sizeof why, "%s", err_detail());
		uint64_t found = 0;
		bool gave_up = false;
		if (!whole)
			find_valid_after(buf, len, pos, &found, &gave_up);
		if (!damaged) {
			damaged = true;
			out->damage_off = pos;
			out->next_valid_off = whole ? (pos + rec.total_len < len ? pos + rec.total_len : 0)
			                            : found;
			if (!whole && !found && !gave_up) {
				out->torn = true;
				out->torn_bytes = len - pos;
				snprintf(out->detail, sizeof out->detail,
				         "torn tail: %llu bytes at byte offset %llu are not a whole record (%.500s); "
				         "recovery cuts them if this is the newest file",
				         ULL(len - pos), ULL(pos), why);
			} else if (whole) {
				out->error = d;
				snprintf(out->detail, sizeof out->detail, "byte offset %llu (lsn %llu): %.500s",
				         ULL(pos), ULL(rec.lsn), why);
			} else if (found) {
				out->error = d == WALREC_MORE ? STRATA_ECORRUPT : d;
				snprintf(out->detail, sizeof out->detail,
				         "byte offset %llu: %.500s; a valid record follows at byte offset %llu "
				         "(damage inside the log, not a torn tail)", ULL(pos), why, ULL(found));
			} else {
				out->error = d == WALREC_MORE ? STRATA_ECORRUPT : d;
				snprintf(out->detail, sizeof out->detail,
				         "byte offset %llu: %.500s; the bytes after it cannot be told from records",
				         ULL(pos), why);
			}
		}
		if (!resync)
			break;
		if (whole) {
			next = rec.lsn + 1; /* go on after it, its successors numbered from it */
			pos += rec.total_len;
		} else if (found) {
			next = 0; /* a new run: accept the found record's lsn */
			pos = found;
		} else {
			break;
		}
	}
	return 0;
}

/* ---- deletion files -------------------------------------------------------------- */

static int hex16(const char *s, uint64_t *v_out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1; /* the writer only makes lower case */
		v = v << 4 | d;
	}
	*v_out = v;
	return 0;
}

int cli_tomb_name_parse(const char *name, uint64_t *seg_seq_out, uint64_t *gen_out)
{
	if (strlen(name) != TOMB_NAME_LEN || memcmp(name, "del-", 4) != 0 || name[20] != '-' ||
	    strcmp(name + 37, ".del") != 0)
		return -1;
	uint64_t a, b;
	if (hex16(name + 4, &a) || hex16(name + 21, &b))
		return -1;
	*seg_seq_out = a;
	*gen_out = b;
	return 0;
}

void cli_tomb_check(const uint8_t *buf, size_t len, const char *name, struct cli_tomb_file *out)
{
	memset(out, 0, sizeof *out);
	uint64_t seq = 0, hx = 0, count = 0, gen = 1;
	if (len >= TOMB_HEADER_SIZE) {
		out->header_read = true;
		seq = out->seg_seq = le_load64(buf + TOMB_OFF_SEG_SEQ);
		hx = out->seg_header_xxh3 = le_load64(buf + TOMB_OFF_SEG_HEADER_XXH3);
		count = out->count = le_load64(buf + TOMB_OFF_COUNT);
		out->deleted = le_load64(buf + TOMB_OFF_DELETED);
		gen = out->gen = le_load64(buf + TOMB_OFF_GEN);
	}
	/* tomb_decode() refuses to look for generation 0 or an impossible count
	 * (EINVAL): ask for the nearest legal values and let the binding check
	 * report the header's own. */
	err_clear();
	uint64_t deleted;
	int rc = tomb_decode(buf, len, seq, hx, gen ? gen : 1,
	                     count > TOMB_COUNT_MAX ? TOMB_COUNT_MAX : count, &out->bits, &deleted);
	if (rc) {
		out->error = rc;
		snprintf(out->detail, sizeof out->detail, "%s", err_detail());
		out->bits = NULL;
		return;
	}
	uint64_t nseq, ngen;
	if (name && cli_tomb_name_parse(name, &nseq, &ngen) == 0) {
		out->name_checked = true;
		out->name_matches = nseq == seq && ngen == gen;
		if (!out->name_matches) {
			out->error = STRATA_ECORRUPT;
			snprintf(out->detail, sizeof out->detail,
			         "the name says segment %llu, generation %llu; the header says segment %llu, "
			         "generation %llu (a renamed or copied file)",
			         ULL(nseq), ULL(ngen), ULL(seq), ULL(gen));
		}
	}
}

void cli_tomb_file_free(struct cli_tomb_file *t)
{
	free(t->bits);
	t->bits = NULL;
}
