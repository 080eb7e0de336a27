/* main.c - pipeline-run: the command line in front of the runs.
 *
 * One option table drives both getopt_long and --help. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "evaluate.h"
#include "log.h"
#include "report.h"
#include "resize.h"
#include "registry.h"
#include "retrain.h"
#include "run.h"
#include "source.h"
#include "status.h"

#ifndef PIPELINE_VERSION
#define PIPELINE_VERSION "0.1.0"
#endif

#define DEFAULT_CONFIG "/etc/pipeline-run/pipeline.yaml"

enum opt_id {
	OPT_CONFIG = 'c',
	OPT_DATE = 'd',
	OPT_DRY_RUN = 'n',
	OPT_VERBOSE = 'v',
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
	OPT_PRINT_CONFIG = 256,
	OPT_DEBUG,
	OPT_TRUTH,
	OPT_LABELS,
	OPT_THRESHOLD,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_FROM_DB,
	OPT_OUT,
	OPT_LIMIT,
	OPT_STAGE,
	OPT_RESUME,
	OPT_PROMOTE,
	OPT_ROLLBACK,
};

/* The commands an option goes with; --promote and --rollback count as commands of their
 * own. An option given to a command it does not go with is a usage error rather than
 * silently ignored (--dry-run with --promote would still promote). */
enum {
	C_RUN = 1 << 0,
	C_RETRAIN = 1 << 1,
	C_MIGRATE = 1 << 2,
	C_EVALUATE = 1 << 3,
	C_STATUS = 1 << 4,
	C_REPORT = 1 << 5,
	C_PROMOTE = 1 << 6,
	C_ROLLBACK = 1 << 7,
	C_ALL = 0xff,
};

struct opt_def {
	const char *name;
	int has_arg;
	int id;
	const char *arg;
	const char *help;
	unsigned cmds; /* C_* */
};

static const struct opt_def opts[] = {
    {"config", required_argument, OPT_CONFIG, "FILE",
     "pipeline configuration (default $PIPELINE_CONFIG or " DEFAULT_CONFIG ")", C_ALL},
    {"date", required_argument, OPT_DATE, "YYYY-MM-DD",
     "backfill: only the photos created on that UTC day", C_RUN | C_REPORT},
    {"since", required_argument, OPT_SINCE, "TIME",
     "backfill from TIME (RFC 3339 or YYYY-MM-DD, UTC), inclusive", C_RUN},
    {"until", required_argument, OPT_UNTIL, "TIME",
     "backfill up to TIME (RFC 3339 or YYYY-MM-DD, UTC), exclusive", C_RUN},
    {"from-db", no_argument, OPT_FROM_DB, NULL,
     "backfill: process again the photos recorded in the database for the window", C_RUN},
    {"dry-run", no_argument, OPT_DRY_RUN, NULL, "decode and embed the photos but write nothing",
     C_RUN},
    {"threshold", required_argument, OPT_THRESHOLD, "X",
     "cosine similarity threshold for grouping (overrides the config)", C_RUN | C_REPORT},
    {"stage", required_argument, OPT_STAGE, "NAME",
     "nightly (default) or retrain: train, evaluate and register a new model", C_RUN | C_RETRAIN},
    {"resume", no_argument, OPT_RESUME, NULL, "retrain: continue from the last epoch's checkpoint",
     C_RETRAIN},
    {"promote", required_argument, OPT_PROMOTE, "MODEL_ID",
     "make a registered model the active one", C_PROMOTE},
    {"rollback", no_argument, OPT_ROLLBACK, NULL,
     "make the model that was active before the last promotion active again", C_ROLLBACK},
    {"print-config", no_argument, OPT_PRINT_CONFIG, NULL,
     "print the effective configuration and exit", C_ALL},
    {"truth", required_argument, OPT_TRUTH, "CSV",
     "evaluate: true items, columns image_id,ad_id,item", C_EVALUATE},
    {"labels", required_argument, OPT_LABELS, "CSV",
     "evaluate: labelled photos, columns image,label (retrieval mAP@k)", C_EVALUATE},
    {"out", required_argument, OPT_OUT, "DIR", "report: folder for index.html", C_REPORT},
    {"limit", required_argument, OPT_LIMIT, "N", "status: how many runs to list (default 10)",
     C_STATUS},
    {"verbose", no_argument, OPT_VERBOSE, NULL, "more log lines (debug for every category)", C_ALL},
    {"debug", required_argument, OPT_DEBUG, "LIST",
     "debug lines for categories: kafka,pg,vips,torch,all", C_ALL},
    {"version", no_argument, OPT_VERSION, NULL, "print the version and exit", C_ALL},
    {"help", no_argument, OPT_HELP, NULL, "this help", C_ALL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *out)
{
	size_t i;

	fprintf(out,
	        "usage: pipeline-run [COMMAND] [OPTIONS]\n"
	        "\n"
	        "Group the photos of each bicycle ad: read new photos, resize, embed, group by\n"
	        "cosine similarity and write a group id per photo to PostgreSQL.\n"
	        "\n"
	        "commands:\n"
	        "  run        the nightly job, or a backfill with --date (default)\n"
	        "  retrain    the weekly retraining (same as --stage retrain)\n"
	        "  migrate    apply pending database migrations\n"
	        "  evaluate   score the stored groups (--truth) and embeddings (--labels)\n"
	        "  status     last runs, the active model, pending failures, runs going now\n"
	        "  report     an HTML page of the groups of the ads of --date, into --out DIR\n"
	        "\n"
	        "options:\n");
	for (i = 0; i < NOPTS; i++) {
		char left[64];

		if (opts[i].id < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].id, opts[i].name,
			         opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name,
			         opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		fprintf(out, "  %-28s %s\n", left, opts[i].help);
	}
	fprintf(
	    out,
	    "\n"
	    "exit codes:\n"
	    "  0  ok\n"
	    "  1  failed: the run could not finish (nothing half-done is committed)\n"
	    "  2  usage or configuration error\n"
	    "  3  finished, but some photos failed (recorded with their reasons)\n"
	    "  4  stopped by SIGTERM/SIGINT: the photos in flight were written, the rest not\n"
	    "  5  busy: another run of the same date (or nightly) holds the lock; nothing done\n");
}

static void on_signal(int sig)
{
	(void)sig;
	run_request_stop();
	retrain_request_stop();
}

/* A model id: a positive whole number. */
static int parse_model_id(const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

/* libgomp (libtorch's thread pool) reads OMP_WAIT_POLICY once, when it is loaded, and by
 * default its threads spin at every barrier. With the resize threads or another process on
 * the same cores, a spinning thread waits for one the kernel has descheduled: measured on 2
 * busy cores, MobileNetV2 batches ran at ~5 photos/s spinning against ~35 passive. So the
 * process starts itself again with PASSIVE unless the environment chose a policy. */
static void omp_wait_passive(char **argv)
{
	char self[4096];
	ssize_t n;

	if (getenv("OMP_WAIT_POLICY"))
		return;
	/* exec the file by its own name, not /proc/self/exe: the process name (ps, journald's
	 * _COMM) comes from the path exec is given */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || (size_t)n >= sizeof(self) - 1)
		return;
	self[n] = '\0';
	if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0 && execv(self, argv) < 0)
		unsetenv("OMP_WAIT_POLICY");
	/* exec failed: carry on with libgomp's default (the exec costs ~0.5 s of loading) */
}

/* True unless the command line asks for something that never loads the model (help,
 * version, the printed config, migrate, evaluate, status, report): those need not start
 * twice. */
static int loads_model(int argc, char **argv)
{
	static const char *const quick[] = {"--help", "-h", "--version", "-V", "--print-config"};
	int i;
	size_t k;

	if (argc > 1 && argv[1][0] != '-' && strcmp(argv[1], "run") && strcmp(argv[1], "retrain"))
		return 0;
	for (i = 1; i < argc; i++)
		for (k = 0; k < sizeof(quick) / sizeof(quick[0]); k++)
			if (!strcmp(argv[i], quick[k]))
				return 0;
	return 1;
}

static unsigned command_bit(const char *command)
{
	static const struct {
		const char *name;
		unsigned bit;
	} cmds[] = {{"run", C_RUN},           {"retrain", C_RETRAIN}, {"migrate", C_MIGRATE},
	            {"evaluate", C_EVALUATE}, {"status", C_STATUS},   {"report", C_REPORT}};
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(command, cmds[i].name))
			return cmds[i].bit;
	return 0;
}

/* The first option of SEEN that does not go with CMD (a C_* bit), or NULL. */
static const struct opt_def *misplaced_option(const unsigned char *seen, unsigned cmd)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (seen[i] && !(opts[i].cmds & cmd))
			return &opts[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct option long_opts[NOPTS + 1];
	char short_opts[64] = "";
	const char *config_path = getenv("PIPELINE_CONFIG");
	const char *command = "run";
	const char *truth = NULL, *labels = NULL, *threshold = NULL, *out_dir = NULL;
	const char *stage = NULL, *promote = NULL;
	struct retrain_opts rto = {0, PIPELINE_VERSION};
	int64_t promote_id = 0;
	int rollback = 0;
	long limit = 10;
	struct run_opts ro = {NULL, NULL, NULL, 0, PIPELINE_VERSION};
	int from_db = 0;
	struct config *cfg = NULL;
	struct sigaction sa;
	struct err err = {0};
	int print_config = 0;
	int code = RUN_USAGE;
	unsigned char seen[NOPTS] = {0};
	const struct opt_def *misplaced;
	unsigned cmd_bit;
	size_t i, at = 0;
	int c;

	if (loads_model(argc, argv))
		omp_wait_passive(argv);

	for (i = 0; i < NOPTS; i++) {
		long_opts[i].name = opts[i].name;
		long_opts[i].has_arg = opts[i].has_arg;
		long_opts[i].flag = NULL;
		long_opts[i].val = opts[i].id;
		if (opts[i].id < 256 && at + 2 < sizeof(short_opts)) {
			short_opts[at++] = (char)opts[i].id;
			if (opts[i].has_arg)
				short_opts[at++] = ':';
		}
	}
	memset(&long_opts[NOPTS], 0, sizeof(long_opts[NOPTS]));

	if (argc > 1 && argv[1][0] != '-') {
		command = argv[1];
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		for (i = 0; i < NOPTS; i++)
			if (opts[i].id == c)
				seen[i] = 1;
		switch (c) {
		case OPT_CONFIG:
			config_path = optarg;
			break;
		case OPT_DATE:
			ro.date = optarg;
			break;
		case OPT_DRY_RUN:
			ro.dry_run = 1;
			break;
		case OPT_SINCE:
			ro.since = optarg;
			break;
		case OPT_UNTIL:
			ro.until = optarg;
			break;
		case OPT_FROM_DB:
			from_db = 1;
			break;
		case OPT_THRESHOLD:
			threshold = optarg;
			break;
		case OPT_PRINT_CONFIG:
			print_config = 1;
			break;
		case OPT_STAGE:
			stage = optarg;
			break;
		case OPT_RESUME:
			rto.resume = 1;
			break;
		case OPT_PROMOTE:
			promote = optarg;
			break;
		case OPT_ROLLBACK:
			rollback = 1;
			break;
		case OPT_TRUTH:
			truth = optarg;
			break;
		case OPT_LABELS:
			labels = optarg;
			break;
		case OPT_OUT:
			out_dir = optarg;
			break;
		case OPT_LIMIT: {
			char *end;

			limit = strtol(optarg, &end, 10);
			if (end == optarg || *end || limit < 1 || limit > 10000) {
				fprintf(stderr,
				        "pipeline-run: --limit: '%s' is not a count in "
				        "[1, 10000]\n",
				        optarg);
				return RUN_USAGE;
			}
			break;
		}
		case OPT_VERBOSE:
			log_set_debug("all");
			break;
		case OPT_DEBUG:
			if (log_set_debug(optarg)) {
				fprintf(stderr, "pipeline-run: --debug: unknown category in '%s'\n",
				        optarg);
				return RUN_USAGE;
			}
			break;
		case OPT_VERSION:
			printf("pipeline-run %s\n", PIPELINE_VERSION);
			return RUN_OK;
		case OPT_HELP:
			usage(stdout);
			return RUN_OK;
		default:
			usage(stderr);
			return RUN_USAGE;
		}
	}
	if (optind < argc) {
		if (command_bit(argv[optind]))
			fprintf(stderr,
			        "pipeline-run: the command goes first: pipeline-run %s [OPTIONS]\n",
			        argv[optind]);
		else
			fprintf(stderr, "pipeline-run: unexpected argument '%s'\n", argv[optind]);
		return RUN_USAGE;
	}
	if (!command_bit(command)) {
		fprintf(stderr, "pipeline-run: unknown command '%s' (see --help)\n", command);
		return RUN_USAGE;
	}
	if (stage && strcmp(stage, "nightly") && strcmp(stage, "retrain")) {
		fprintf(stderr, "pipeline-run: --stage: '%s' is not nightly or retrain\n", stage);
		return RUN_USAGE;
	}
	if (stage && strcmp(command, "run") && strcmp(command, stage)) {
		fprintf(stderr, "pipeline-run: --stage %s does not go with the %s command\n", stage,
		        command);
		return RUN_USAGE;
	}
	if (stage && !strcmp(stage, "retrain"))
		command = "retrain";
	if (promote && parse_model_id(promote, &promote_id)) {
		fprintf(stderr, "pipeline-run: --promote: '%s' is not a model id\n", promote);
		return RUN_USAGE;
	}
	if ((promote || rollback) && (strcmp(command, "run") || stage || (promote && rollback))) {
		fprintf(stderr,
		        "pipeline-run: --promote and --rollback go alone (with --config)\n");
		return RUN_USAGE;
	}
	cmd_bit = promote ? C_PROMOTE : rollback ? C_ROLLBACK : command_bit(command);
	misplaced = misplaced_option(seen, cmd_bit);
	if (misplaced) {
		if (promote || rollback)
			fprintf(stderr, "pipeline-run: --%s does not go with --%s\n",
			        misplaced->name, promote ? "promote" : "rollback");
		else if (misplaced->id == OPT_RESUME)
			fprintf(stderr, "pipeline-run: --resume goes with --stage retrain\n");
		else
			fprintf(stderr, "pipeline-run: --%s does not go with the %s command\n",
			        misplaced->name, command);
		return RUN_USAGE;
	}
	if (!strcmp(command, "evaluate") && !truth && !labels) {
		fprintf(stderr, "pipeline-run: evaluate needs --truth and/or --labels\n");
		return RUN_USAGE;
	}
	if (!strcmp(command, "report") && (!ro.date || !out_dir)) {
		fprintf(stderr, "pipeline-run: report needs --date and --out\n");
		return RUN_USAGE;
	}
	{
		struct source_window w;

		if (source_window_parse(ro.date, ro.since, ro.until, &w, &err)) {
			fprintf(stderr, "pipeline-run: %s%s\n", ro.date ? "--date: " : "", err.msg);
			return RUN_USAGE;
		}
		if (from_db && !w.since && !w.until) {
			fprintf(stderr,
			        "pipeline-run: --from-db needs --date or --since/--until\n");
			return RUN_USAGE;
		}
	}

	log_set_prefix(LOG_PREFIX_AUTO);
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return RUN_FAILED;
	if (config_load(cfg, config_path ? config_path : DEFAULT_CONFIG, &err) ||
	    ((print_config || cmd_bit == C_RUN || cmd_bit == C_RETRAIN) &&
	     config_check_weights(cfg, &err))) {
		fprintf(stderr, "pipeline-run: config: %s\n", err.msg);
		goto out;
	}
	log_set_prefix((enum log_prefix)cfg->log_prefix);
	if (threshold) {
		char *end;
		double t = strtod(threshold, &end);

		/* written so that NaN fails too: it would mean "auto" further on */
		if (end == threshold || *end || !(t >= -1 && t <= 1)) {
			fprintf(stderr,
			        "pipeline-run: --threshold: '%s' is not a number in "
			        "[-1, 1]\n",
			        threshold);
			goto out;
		}
		cfg->threshold = t;
	}
	if (from_db)
		cfg->source = SOURCE_DB;
	/* a dry run writes nothing: no dead letters (a real run would send them again), no
	 * metrics file (its success would hide a nightly that did not run) */
	if (ro.dry_run) {
		cfg->ks.dead_letter_topic[0] = '\0';
		cfg->metrics_dir[0] = '\0';
	}
	if (print_config) {
		config_print(cfg, stdout);
		code = RUN_OK;
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (promote) {
		code = registry_promote(cfg, promote_id);
	} else if (rollback) {
		code = registry_rollback(cfg);
	} else if (!strcmp(command, "migrate")) {
		code = run_migrate(cfg);
	} else if (!strcmp(command, "evaluate")) {
		code = eval_stored(cfg, truth, labels);
	} else if (!strcmp(command, "status")) {
		code = status_print(cfg, (int)limit, stdout);
	} else {
		/* the commands that decode photos */
		if (resize_init(argv[0], 1, &err)) {
			fprintf(stderr, "pipeline-run: %s\n", err.msg);
			code = RUN_FAILED;
			goto out;
		}
		if (!strcmp(command, "retrain"))
			code = retrain_run(cfg, &rto);
		else if (!strcmp(command, "report"))
			code = report_write(cfg, ro.date, out_dir);
		else
			code = run_nightly(cfg, &ro);
		resize_shutdown();
	}
out:
	free(cfg);
	return code;
}
