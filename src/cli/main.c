/*
 * ctxpack: the command table and dispatch (git's style: one table, one
 * cmd_<name>.c per command).
 */
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/registry.h"

/* The options that change what entries and modes the context has. */
#define MODE_HELP \
	"      --classic           walk as Docker's classic builder does (DOCKER_BUILDKIT=0):\n" \
	"                          .dockerignore only, a wildcard exception under an excluded\n" \
	"                          directory lost, such directories 0755 (build chooses it)\n" \
	"      --docker-client V   walk as the docker client of version V does (e.g.\n" \
	"                          20.10.24, Debian 12's): before 23, its pattern matcher\n" \
	"                          and, for BuildKit (not --classic), its file sync of 2020\n" \
	"                          (build asks COMMAND's client when not given)\n" \
	"      --normalize-modes   git-style modes: 0755 when any exec bit is set, else 0644,\n" \
	"                          directories 0755 (default: the modes as found, as Docker\n" \
	"                          keeps them; this makes the bytes the same for any umask)\n" \
	"      --no-hardlinks      every path a file of its own (default: later paths of an\n" \
	"                          inode are hard links to the first, as Docker sends them)\n"

static const struct cli_cmd commands[] = {
	{"build", cmd_build,
	 "ctxpack build [pack options] [--send auto|pipe|dir|direct] [DIR] -- COMMAND [ARG...]",
	 "hand the context to COMMAND (docker build, buildah, podman...) and run it",
	 "  Packs the context like `ctxpack pack` (same options except -o and --json) and\n"
	 "  runs COMMAND, without a shell, with the context the way it reads it, e.g.\n"
	 "  `ctxpack build -- docker build -t app -`,\n"
	 "  `ctxpack build -f app.Dockerfile -- docker build -f app.Dockerfile -t app -`,\n"
	 "  `ctxpack build -- buildah build -f Dockerfile -`.  COMMAND's context must be -.\n"
	 "  What COMMAND gets (docs/build.md):\n"
	 "    docker, classic builder  a tar on its stdin: uncompressed for a daemon on a\n"
	 "                             local socket, gzip for tcp:// or ssh:// (DOCKER_HOST,\n"
	 "                             docker's -H or context); the context walked as that\n"
	 "                             builder walks it (--classic)\n"
	 "    docker, BuildKit         DIR itself (its - becomes DIR, a -f a path from here):\n"
	 "                             docker syncs it to the builder incrementally, by its\n"
	 "                             own rules, as docker build DIR does (--send direct);\n"
	 "                             with --ignore-file, --classic, --normalize-modes or\n"
	 "                             --no-hardlinks, a directory holding exactly that\n"
	 "                             context, kept under $XDG_CACHE_HOME/ctxpack/build and\n"
	 "                             updated in place (--send dir).  Not a pipe: BuildKit\n"
	 "                             takes a piped tar as it is (an excluded Dockerfile\n"
	 "                             would be in COPY's view)\n"
	 "    buildah, podman          zstd on its stdin; the context walked as they walk\n"
	 "                             it (they filter it again): Containerfile before\n"
	 "                             Dockerfile; FILE.dockerignore, FILE.containerignore,\n"
	 "                             .containerignore, .dockerignore; the old matcher\n"
	 "    anything else            an uncompressed tar on its stdin\n"
	 "  Docker's builder is decided as docker decides it: buildx build, DOCKER_BUILDKIT,\n"
	 "  else buildx for a client >= 23 that has the plugin, else the daemon's default.\n"
	 "  A docker client before 23 walks with the matcher of its time (and for BuildKit\n"
	 "  the file sync of 2020): its version is asked of it (and kept per binary), or\n"
	 "  given with --docker-client V.\n"
	 "      --send MODE           force the hand-over: auto (as above), pipe, dir or\n"
	 "                            direct\n"
	 "      --compress C          force the pipe's format (zstd, gzip or none)\n"
	 "  -f is relative to the working directory; docker's -f names a path in the context.\n"
	 "  A -f given to only one of them is warned about (and passed on or taken over).\n"
	 "  SIGINT, SIGTERM and SIGHUP are passed on to COMMAND; COMMAND gets SIGTERM if\n"
	 "  ctxpack dies.  When docker reads DIR itself, ctxpack becomes COMMAND (exec).\n"
	 "  Exit status: COMMAND's (128+N if killed by signal N); COMMAND's\n"
	 "  or 1 when it exited before reading every entry; 1 when packing failed\n"
	 "  (COMMAND gets SIGTERM first) or the Dockerfile is missing; 2 usage.\n"},
	{"cache", cmd_cache,
	 "ctxpack cache (save|restore|run|ls|prune|stats|why) [options]",
	 "save and restore dependency directories keyed like actions/cache",
	 "  save    --key KEY [--store STORE] [--force|--update] PATH...\n"
	 "  restore --key KEY [--restore-key PREFIX]... [--store STORE] [--fail-on-miss]\n"
	 "          [--lookup-only] [--read-only] [--json] PATH...\n"
	 "  run     --key-file FILE... [--key-prefix P] [--path PATH]... [--store STORE]\n"
	 "          [--restore-key PREFIX]... [--no-save|--read-only|--save-on-failure]\n"
	 "          -- COMMAND [ARG...]\n"
	 "  ls      [--store STORE] [--json]\n"
	 "  prune   [--store STORE] [--older-than D] [--keep N] [--prefix P] [--dry-run]\n"
	 "          [--gc-grace D]\n"
	 "  stats   [--store STORE] [--prefix P] [--json]\n"
	 "  why     [--store STORE] [--json] KEY, or the run's --key-file, --key-prefix,\n"
	 "          --path [-- COMMAND]\n"
	 "  STORE is a registry repository (host[:port]/repo) or oci:DIR; the default is\n"
	 "  $CTXPACK_STORE, else oci:$XDG_CACHE_HOME/ctxpack/store.  All take --insecure,\n"
	 "  --ca-file F and --timeout SECS.  'ctxpack cache SUBCOMMAND --help' for details; docs/ci.md.\n"},
	{"du", cmd_du,
	 "ctxpack du [-f DOCKERFILE] [--ignore-file F] [-n N] [--json] [DIR]",
	 "report the context size and suggest ignore lines",
	 "  -f, --file DOCKERFILE   the Dockerfile (selects DOCKERFILE.dockerignore)\n"
	 "      --ignore-file F     use F as the ignore file\n"
	 "  -n N                    show the N largest directories and files (default 10)\n"
	 "      --classic           walk as Docker's classic builder does (DOCKER_BUILDKIT=0)\n"
	 "      --docker-client V   walk as the docker client of version V does (see ls)\n"
	 "      --json              machine-readable report\n"},
	{"hash", cmd_hash,
	 "ctxpack hash [-f DOCKERFILE] [--ignore-file F] [--index DIR] [--threads N] [--json] [DIR]",
	 "print the context digest",
	 "  -f, --file DOCKERFILE   the Dockerfile (selects DOCKERFILE.dockerignore)\n"
	 "      --ignore-file F     use F as the ignore file\n"
	 "      --index DIR         the content index (default $CTXPACK_INDEX, else\n"
	 "                          $XDG_CACHE_HOME/ctxpack/index)\n"
	 "      --threads N         reader threads for files not in the index\n"
	 "                          (default: CPUs, 2 to 4; at most 16)\n"
	 "      --json              {\"digest\",\"entries\",\"files\",\"hashed\",\"reused\",\"bytes_hashed\",...}\n"
	 MODE_HELP
	 "  The digest (xxh128:...) covers each included entry's path, type, archive\n"
	 "  mode, size, link target and content, not mtimes, owners or inode numbers.\n"},
	{"image", cmd_image,
	 "ctxpack image --from REF|scratch [--layer SRC:DEST]... [config options] [-t REF]... [--json]",
	 "assemble an OCI image from a base and directories, and push it",
	 "      --from REF          the base: host[:port]/repo[:tag|@sha256:...], oci:DIR[:tag]\n"
	 "                          or scratch; only its manifest and config are read\n"
	 "      --platform P        os/arch[/variant] to pick from an index (default\n"
	 "                          linux/amd64)\n"
	 "      --layer SRC:DEST    one layer: directory SRC (its .dockerignore applies, as\n"
	 "                          to `COPY . DEST` with SRC as the context) below the\n"
	 "                          absolute path DEST (repeatable, in order)\n"
	 "      --ignore-file F     the ignore file of the --layer options after it, its\n"
	 "                          patterns matched relative to their SRC (--ignore-file ''\n"
	 "                          goes back to each SRC's own)\n"
	 "      --workdir DIR       WORKDIR (relative: from the base's)\n"
	 "      --env NAME=VALUE    ENV (repeatable; $NAME and ${NAME} expand: quote them)\n"
	 "      --entrypoint CMD    ENTRYPOINT: a JSON array (exec form) or a string run by\n"
	 "                          /bin/sh -c; resets the base's CMD\n"
	 "      --cmd CMD           CMD, the same way\n"
	 "      --user USER         USER (name, uid, uid:gid)\n"
	 "      --expose PORT[/P]   EXPOSE (repeatable; tcp unless /udp or /sctp)\n"
	 "      --label KEY=VALUE   LABEL (repeatable)\n"
	 "  -t, --tag REF           push to REF (registry, default tag latest) or write\n"
	 "                          oci:DIR[:tag] (repeatable); none: compute the digest only\n"
	 "      --compress C        gzip (default: every Docker pulls it), zstd or none\n"
	 "      --level N           gzip 1-9 (default 6), zstd 1-19 (default 3)\n"
	 "      --threads N         pack workers (default one per CPU)\n"
	 "      --index DIR         the content index (default $CTXPACK_INDEX, else\n"
	 "                          $XDG_CACHE_HOME/ctxpack/index)\n"
	 "      --no-cache          pack every layer cold, record nothing\n"
	 "      --cache-max SIZE    bound of the frame store (default 2G)\n"
	 CLI_REG_HELP
	 "      --json              {\"digest\",\"config\",\"base\",\"layers\":[...],\"outputs\":[...]}\n"
	 "  Prints the manifest digest.  A layer whose files did not change since the last\n"
	 "  run is known from the index (one stat per file) and is neither packed nor sent\n"
	 "  again; base layers are mounted or skipped where the registry has them.\n"
	 "  SOURCE_DATE_EPOCH sets every file's mtime and the image's created time (default\n"
	 "  2000-01-01T00:00:00Z): the same inputs give the same digest.  docs/image.md\n"},
	{"ls", cmd_ls,
	 "ctxpack ls [-f DOCKERFILE] [--ignore-file F] [--why] [--excluded] [-l] [-0] [DIR]",
	 "list what the builder's COPY would see",
	 "  -f, --file DOCKERFILE   the Dockerfile (selects DOCKERFILE.dockerignore)\n"
	 "      --ignore-file F     use F as the ignore file\n"
	 "      --why               append the deciding file:line:pattern\n"
	 "      --excluded          list what was left out instead\n"
	 "  -l, --long              type, mode, size and link target too\n"
	 "  -0, --null              end entries with NUL instead of newline\n"
	 "      --json              one JSON object per entry (JSON lines)\n"
	 MODE_HELP},
	{"pack", cmd_pack,
	 "ctxpack pack [-f DOCKERFILE] [--ignore-file F] [-o FILE|-] [--compress zstd|gzip|none] [--level N] [--threads N] [--index DIR] [--no-cache] [--cache-max SIZE] [--json] [DIR]",
	 "write the context as a deterministic tar.zst (or tar.gz, tar)",
	 "  -f, --file DOCKERFILE   the Dockerfile (selects DOCKERFILE.dockerignore); always in\n"
	 "                          the archive\n"
	 "      --ignore-file F     use F as the ignore file (always in the archive when\n"
	 "                          inside DIR)\n"
	 "  -o, --output FILE|-     write FILE (temporary name, then rename) or - for stdout;\n"
	 "                          default stdout, refused when it is a terminal\n"
	 "      --compress C        zstd (default), gzip or none\n"
	 "      --level N           zstd 1-19 (default 3), gzip 1-9 (default 6)\n"
	 "      --threads N         workers, 1-64 (default one per CPU); at most 4\n"
	 "                          run at once (memory); never changes the bytes\n"
	 "      --index DIR         the content index (default $CTXPACK_INDEX, else\n"
	 "                          $XDG_CACHE_HOME/ctxpack/index)\n"
	 "      --no-cache          pack cold: no index, no frame or archive reuse\n"
	 "      --cache-max SIZE    bound of the frame and archive store (default\n"
	 "                          $CTXPACK_PACK_CACHE_MAX, else 2G); least recently used\n"
	 "                          files are evicted\n"
	 "      --json              print {digest,bytes,entries,compress,level,added} and the\n"
	 "                          cache's counts (needs -o FILE)\n"
	 MODE_HELP
	 "  An unchanged context is served from $XDG_CACHE_HOME/ctxpack (archives/,\n"
	 "  frames/); after a change only the frames holding it are compressed.  The\n"
	 "  bytes are always those of a --no-cache pack.\n"
	 "  SOURCE_DATE_EPOCH sets every entry's mtime (default 2000-01-01T00:00:00Z).\n"
	 "  Summary on stderr: sha256:<hex> <bytes> <entries>.  Format: docs/archive-format.md\n"},
	{"pull", cmd_pull,
	 "ctxpack pull [-o FILE|-] [--force] [--ca-file F] [--insecure] [--timeout SECS] REF",
	 "download the layer of an artifact from a registry or oci: layout",
	 "  REF is host[:port]/repo[:tag|@sha256:...] (default tag latest) or oci:DIR[:tag].\n"
	 "  -o, --output FILE|-     where to write the layer (default: the layer's title\n"
	 "                          in the current directory; names with '/' or '..' or\n"
	 "                          control characters are refused); - is standard output\n"
	 "      --force             without -o, replace a file of the title's name (by\n"
	 "                          default an existing file is never overwritten)\n"
	 CLI_REG_HELP
	 "      --json              {\"digest\",\"ref\",\"output\",\"layer\":{...}}\n"
	 "  The layer is sha256-verified before it is renamed into place.\n"},
	{"push", cmd_push,
	 "ctxpack push [--artifact-type T] [--annotation K=V]... [--ca-file F] [--insecure] [--timeout SECS] FILE REF",
	 "upload FILE as the single layer of an OCI artifact",
	 "  REF is host[:port]/repo[:tag] (default tag latest) or oci:DIR[:tag].\n"
	 "  Prints the manifest digest.\n"
	 "      --artifact-type T   artifact type (default application/vnd.ctxpack.artifact.v1)\n"
	 "  -a, --annotation K=V    manifest annotation (repeatable)\n"
	 "      --title NAME        layer title annotation (default: FILE's base name)\n"
	 "      --media-type MT     layer media type (default by content: tar+zstd,\n"
	 "                          tar+gzip or tar)\n"
	 "      --mount-from REPO   try a cross-repository mount from REPO on the same registry\n"
	 CLI_REG_HELP
	 "      --json              {\"digest\",\"size\",\"ref\",\"layer\":{...},\"uploaded\"}\n"
	 "  Credentials come from $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or\n"
	 "  ~/.docker/config.json (auths, credHelpers, credsStore); they are never printed.\n"},
};

const struct cli_cmd *cli_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void main_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ctxpack [-h|--help] [--version] COMMAND [ARGS]\n\n"
		   "ctxpack packs Docker build contexts (honouring .dockerignore exactly as\n"
		   "BuildKit does) into deterministic tar.zst archives, and saves and restores\n"
		   "dependency caches in any OCI registry or a local OCI layout.\n\n"
		   "commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n" CLI_GLOBAL_HELP
		   "      --version         print the version and those of the libraries it runs\n"
		   "                        with (first argument only)\n"
		   "\n'ctxpack help COMMAND' or 'ctxpack COMMAND --help' shows a command's options.\n"
		   "exit status: 0 success, 1 failure, 2 usage error\n");
}

/* Interrupted: the temporaries go (atomic_unlink_all), then the signal
 * does what it does by default.  `build` has a handler of its own. */
static void on_fatal_signal(int sig)
{
	atomic_unlink_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line per library: "libzstd 1.5.4", with what else it says. */
static void print_lib(void *arg, const char *name, const char *version, const char *built,
		      const char *detail)
{
	printf("%s %s", name, version);
	if (detail || built)
		printf(" (%s%s%s%s)", detail ? detail : "", detail && built ? "; " : "",
		       built ? "built with " : "", built ? built : "");
	putchar('\n');
}

/* The version, then the libraries it runs with (each module asks its own). */
static void print_version(void)
{
	printf("ctxpack %s\n", CTXPACK_VERSION);
	pack_lib_info(print_lib, NULL);
	idx_lib_info(print_lib, NULL);
	reg_lib_info(print_lib, NULL);
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;

	/* every variable ctxpack reads, read here and nowhere else (util.h) */
	env_load();
	/* Pinned: archive names are converted from UTF-8 (docs/determinism). */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "C.utf8");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);

	if (argc < 2) {
		main_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		main_help(stdout);
		return cli_finish(EXIT_OK);
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		print_version();
		return cli_finish(EXIT_OK);
	}
	if (!strcmp(argv[1], "help")) {
		if (argc < 3) {
			main_help(stdout);
			return cli_finish(EXIT_OK);
		}
		cmd = cli_find(argv[2]);
		if (!cmd) {
			fprintf(stderr, "ctxpack: '%s' is not a command; see 'ctxpack --help'\n",
				argv[2]);
			return EXIT_USAGE;
		}
		cli_help(cmd);
	}
	cmd = cli_find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "ctxpack: '%s' is not a command; see 'ctxpack --help'\n",
			argv[1]);
		return EXIT_USAGE;
	}
	return cli_finish(cmd->fn(argc - 1, argv + 1));
}
