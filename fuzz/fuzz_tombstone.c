/*
 * fuzz_tombstone.c - any byte string given to the deletion file decoder is
 * refused with a data error and a detail, or decodes into a bitmap that is
 * exactly what the file says; tomb_load() of the same bytes from a file
 * agrees with tomb_decode(); and tomb_encode() round-trips any bitmap.
 *
 * The decoder checks the file against what the caller expects (segment seq,
 * segment header checksum, generation, node count). The harness expects what
 * the input's own header says (generation 0 becomes 1, a count above
 * TOMB_COUNT_MAX is cut to it: both then fail the binding), so mutations get
 * past the binding to the length, checksum and bitmap checks behind it.
 *
 * Properties:
 *   - tomb_decode returns 0 or a data error with a detail, never writing its
 *     outputs on failure;
 *   - what decodes has no bit at or beyond count, as many bits set as the
 *     header's deleted count, and re-encodes (tomb_encode) to the very input
 *     bytes (checksums on) or to them but the two checksums (_nock);
 *   - the same file expected for another segment seq, another segment file,
 *     another generation or another node count is refused with ECORRUPT;
 *   - tomb_load of the input written as the file it names returns the code
 *     of tomb_decode, or ECORRUPT for a file longer than any valid one (which
 *     it must refuse unread), and its detail names the file;
 *   - the input taken as a bitmap of a count drawn from the input encodes and
 *     decodes back to itself.
 * The file lives on /dev/shm when it exists and is removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_helpers.h"
#include "le.h"
#include "tombstone.h"

static char fz_dir[256];
static char fz_file[320];

static void fz_die(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_tombstone: %s %s: %s\n", what, path, strerror(errno));
	abort();
}

static void fz_cleanup(void)
{
	if (fz_file[0])
		unlink(fz_file);
	rmdir(fz_dir);
}

static void fz_setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(fz_dir, sizeof fz_dir, "%s/strata-fuzz-tomb-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(fz_dir))
		fz_die("mkdtemp", fz_dir);
	atexit(fz_cleanup);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup();
	return 0;
}

struct fz_expect {
	uint64_t seq, segx, gen, count;
};

static void fz_write(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fz_die("open", path);
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			fz_die("write", path);
		done += (size_t)n;
	}
	close(fd);
}

/* Decode, and check what any outcome must satisfy. Returns the code. */
static int fz_decode(const uint8_t *data, size_t size, const struct fz_expect *x,
                     uint64_t **bits_out, uint64_t *deleted_out)
{
	uint64_t *const untouched = (uint64_t *)(uintptr_t)0x5a5a5a5a;
	uint64_t *bits = untouched, deleted = 0xa5a5a5a5;
	err_clear();
	int rc = tomb_decode(data, size, x->seq, x->segx, x->gen, x->count, &bits, &deleted);
	if (rc) {
		FZ_ASSERT_DATA_ERROR(rc, "tomb_decode");
		FZ_ASSERT(bits == untouched && deleted == 0xa5a5a5a5, "outputs written on failure");
		return rc;
	}
	uint64_t words = tomb_words(x->count), set = 0;
	FZ_ASSERT(size == tomb_file_size(x->count), "%zu bytes decoded as %llu nodes", size,
	          (unsigned long long)x->count);
	for (uint64_t w = 0; w < words; w++) {
		FZ_ASSERT(bits[w] == le_load64(data + TOMB_HEADER_SIZE + 8 * w), "word %llu differs",
		          (unsigned long long)w);
		set += (uint64_t)__builtin_popcountll(bits[w]);
	}
	if (x->count % 64)
		FZ_ASSERT((bits[words - 1] >> (x->count % 64)) == 0, "a bit beyond count");
	FZ_ASSERT(set == deleted && deleted <= x->count, "%llu bits set, %llu reported deleted",
	          (unsigned long long)set, (unsigned long long)deleted);
	*bits_out = bits;
	*deleted_out = deleted;
	return 0;
}

static void fz_round_trip(const uint8_t *data, size_t size, const struct fz_expect *x,
                          const uint64_t *bits)
{
	uint8_t *enc = NULL;
	size_t len = 0;
	err_clear();
	int rc = tomb_encode(x->seq, x->segx, x->gen, bits, x->count, &enc, &len);
	FZ_ASSERT(rc == 0, "tomb_encode of a decoded file: %d", rc);
	FZ_ASSERT(len == size, "re-encoded to %zu bytes, the input had %zu", len, size);
#if STRATA_FUZZ_NO_CHECKSUMS
	FZ_ASSERT(memcmp(enc, data, TOMB_OFF_BODY_XXH3) == 0 &&
	              memcmp(enc + TOMB_HEADER_SIZE, data + TOMB_HEADER_SIZE,
	                     size - TOMB_HEADER_SIZE) == 0,
	          "re-encoding changed a field");
#else
	FZ_ASSERT(memcmp(enc, data, size) == 0, "re-encoding changed the bytes");
#endif
	free(enc);
}

/* Any bitmap: the input's bytes, as many bits of them as the rng says, encode and decode back. */
static void fz_bitmap_round_trip(const uint8_t *data, size_t size, struct fz_rng *r)
{
	uint64_t count = size ? fz_u64(r) % ((uint64_t)size * 8 + 1) : 0;
	uint64_t words = tomb_words(count);
	uint64_t *in = calloc(words ? words : 1, sizeof *in), *out = NULL, deleted = 0;
	FZ_ASSERT(in != NULL, "bitmap of %llu words", (unsigned long long)words);
	memcpy(in, data, (size_t)((count + 7) / 8));
	if (count % 64)
		in[words - 1] &= ~(~0ull << (count % 64));
	struct fz_expect x = {fz_u64(r), fz_u64(r), 1 + fz_u64(r) % UINT64_MAX, count};
	uint8_t *enc = NULL;
	size_t len = 0;
	err_clear();
	int rc = tomb_encode(x.seq, x.segx, x.gen, in, count, &enc, &len);
	FZ_ASSERT(rc == 0, "tomb_encode of %llu bits: %d", (unsigned long long)count, rc);
	rc = fz_decode(enc, len, &x, &out, &deleted);
	FZ_ASSERT(rc == 0, "decode of tomb_encode's output: %d", rc);
	FZ_ASSERT(words == 0 || memcmp(in, out, (size_t)words * 8) == 0, "bits differ");
	free(out);
	free(enc);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dir[0])
		fz_setup();
	struct fz_rng r = fz_rng_of(data, size);
	struct fz_expect x = {1, 0, 1, 0};
	if (size >= TOMB_HEADER_SIZE) {
		x.seq = le_load64(data + TOMB_OFF_SEG_SEQ);
		x.segx = le_load64(data + TOMB_OFF_SEG_HEADER_XXH3);
		x.gen = le_load64(data + TOMB_OFF_GEN);
		x.count = le_load64(data + TOMB_OFF_COUNT);
		if (x.gen == 0)
			x.gen = 1;
		if (x.count > TOMB_COUNT_MAX)
			x.count = TOMB_COUNT_MAX;
	}

	uint64_t *bits = NULL, deleted = 0;
	int rc = fz_decode(data, size, &x, &bits, &deleted);
	if (rc == 0) {
		fz_round_trip(data, size, &x, bits);
		/* The same bytes expected as another file: refused, whichever binding differs. */
		struct fz_expect y = x;
		switch (fz_u32(&r) % 4) {
		case 0: y.seq ^= 1ull << (fz_u32(&r) % 64); break;
		case 1: y.segx ^= 1ull << (fz_u32(&r) % 64); break;
		case 2: y.gen = y.gen == UINT64_MAX ? 1 : y.gen + 1; break;
		default: y.count = y.count ? y.count - 1 : 1; break;
		}
		uint64_t *b2;
		uint64_t d2;
		int rc2 = fz_decode(data, size, &y, &b2, &d2);
		FZ_ASSERT(rc2 == STRATA_ECORRUPT, "decoded with another binding: %d", rc2);
		free(bits);
	}

	/* From a file: tomb_load agrees with tomb_decode, and names the file when it fails. */
	char name[TOMB_NAME_LEN + 1];
	tomb_file_name(x.seq, x.gen, name, sizeof name);
	if (fz_file[0])
		unlink(fz_file);
	snprintf(fz_file, sizeof fz_file, "%s/%s", fz_dir, name);
	fz_write(fz_file, data, size);
	err_clear();
	int lrc = tomb_load(fz_dir, x.seq, x.segx, x.gen, x.count, &bits, &deleted);
	if (size > tomb_file_size(x.count))
		FZ_ASSERT(lrc == STRATA_ECORRUPT, "tomb_load of an oversized file: %d", lrc);
	else
		FZ_ASSERT(lrc == rc, "tomb_load says %d, tomb_decode %d", lrc, rc);
	if (lrc == 0)
		free(bits);
	else
		FZ_ASSERT(strstr(err_detail(), name) != NULL, "detail \"%s\" does not name %s",
		          err_detail(), name);

	fz_bitmap_round_trip(data, size, &r);
	return 0;
}
