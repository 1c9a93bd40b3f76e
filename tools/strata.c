/*
 * strata.c - main() of the `strata` program: the command table and the
 * top-level --help and --version. Each command lives in cmd_<name>.c and
 * returns its exit status (cli.h); nothing here knows their options.
 * The user's manual is tools/strata.1.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "strata.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"build", cmd_build, "build a database directory from a file of vectors"},
	{"create", cmd_create, "create an empty database that takes writes"},
	{"import", cmd_import, "upsert the vectors of a file through the WAL (progress bar)"},
	{"delete", cmd_delete, "delete ids (a file, or a list like 1,2,3)"},
	{"flush", cmd_flush, "write the WAL's vectors into a segment file"},
	{"compact", cmd_compact, "merge every segment into one, dropping deleted vectors"},
	{"query", cmd_query, "search a database; report neighbours, or recall and QPS"},
	{"inspect", cmd_inspect, "describe a database, segment, manifest or bundle file"},
	{"verify", cmd_verify, "check every checksum and graph edge of a database or file"},
	{"pack", cmd_pack, "write a database as one compressed bundle file (or to stdout)"},
	{"unpack", cmd_unpack, "recreate a database from a bundle, verified before it appears"},
	{"tune", cmd_tune, "sweep ef (or build a grid of M x ef_construction): recall vs latency"},
	{"dump", cmd_dump, "print any strata file record by record, as far as damage allows"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: strata <command> [options]\n"
	           "       strata <command> --help\n"
	           "       strata --version\n\n"
	           "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nexit status: 0 success, 1 failure (or damage found), 2 usage error.\n"
	           "See strata(1).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		printf("strata %s\n", strata_version());
		return CLI_EXIT_OK;
	}
	/* "strata help build" is "strata build --help". */
	if (strcmp(name, "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
			if (strcmp(argv[2], commands[i].name) == 0) {
				char help[] = "--help";
				char *args[] = {help, NULL};
				return commands[i].run(1, args);
			}
		}
		fprintf(stderr, "strata: unknown command '%s'\ntry 'strata --help'\n", argv[2]);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].run(argc - 2, argv + 2);
	}
	if (name[0] == '-')
		fprintf(stderr, "strata: unknown option '%s'\ntry 'strata --help'\n", name);
	else
		fprintf(stderr, "strata: unknown command '%s'\ntry 'strata --help'\n", name);
	return CLI_EXIT_USAGE;
}
