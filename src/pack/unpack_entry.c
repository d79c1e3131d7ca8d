/*
 * unpack_entry.c: one archive entry extracted: its name cleaned, its
 * parent directory found through the chain of open directories (created
 * as needed, never through a link), then the file, directory, symlink,
 * FIFO or hard link made, within the bounds of the options.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unpack_internal.h"

/* Before anything that may depend on the queued files. */
static int drain(struct unpacker *u)
{
	int ret = 0;

	if (u->pool && u->pending.n) {
		ret = up_pool_drain(u->pool, u->e);
		up_pset_clear(&u->pending);
	}
	return ret;
}

/* ---- the chain of open parent directories ---- */

/* Close the chain down to `keep` open levels. */
void up_chain_trim(struct unpacker *u, size_t keep)
{
	while (u->depth > keep) {
		u->depth--;
		up_dnode_put(u->dirs[u->depth + 1]);
		free(u->names[u->depth]);
	}
}

/* Open (creating when missing) directory comp below dfd, never through a
 * symlink. */
static int open_dir(struct unpacker *u, int dfd, const char *comp)
{
	int fd, tried = 0;

	for (;;) {
		fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == ENOENT && !tried) {
			tried = 1;
			if (mkdirat(dfd, comp, 0755) && errno != EEXIST)
				return err_errno(u->e, "cannot create directory %s", u->name.data);
			continue;
		}
		if (errno == ELOOP || errno == ENOTDIR)
			return err_set(u->e, ERR_CORRUPT, "refused '%s': it goes through a symlink "
				       "or a file", u->name.data);
		return err_errno(u->e, "cannot open directory for %s", u->name.data);
	}
}

/*
 * The directory holding the current entry (u->name), the parents created
 * as needed (borrowed from the chain).  *base gets the last component.
 */
static struct dnode *parent_dir(struct unpacker *u, const char **base)
{
	char *path = u->name.data;
	char *slash = strrchr(path, '/');
	size_t level = 0;
	char *p = path;

	*base = slash ? slash + 1 : path;
	if (!slash) {
		up_chain_trim(u, 0);
		return u->dirs[0];
	}
	while (p < slash) {
		char *s = p, *end = p, *comp;
		size_t n;
		int fd;

		while (end < slash && *end != '/')
			end++;
		n = (size_t)(end - s);
		p = end + 1;
		if (level < u->depth && strlen(u->names[level]) == n &&
		    !memcmp(u->names[level], s, n)) {
			level++;
			continue;
		}
		up_chain_trim(u, level);
		/* a name queued as a file must be there before it is a parent */
		if (u->pool && u->pending.n) {
			char c = *end;

			*end = '\0';
			if (up_pset_has(&u->pending, path) && drain(u)) {
				*end = c;
				return NULL;
			}
			*end = c;
		}
		comp = xstrndup(s, n);
		fd = open_dir(u, u->dirs[level]->fd, comp);
		if (fd < 0) {
			free(comp);
			return NULL;
		}
		u->names[level] = comp;
		u->dirs[level + 1] = up_dnode_new(fd, 1);
		u->depth = ++level;
	}
	up_chain_trim(u, level);
	return u->dirs[level];
}

/* ---- entries ---- */

static int read_error(struct unpacker *u, struct archive *a)
{
	return err_set(u->e, ERR_CORRUPT, "%s: %s", u->name.data,
		       archive_error_string(a) ? archive_error_string(a) : "cannot read data");
}

/* The bounds checked as the stream goes: its length and the deadline. */
int up_check_stream(struct unpacker *u)
{
	const struct unpack_opts *o = u->o;

	if (!o)
		return 0;
	if (o->max_stream && (uint64_t)archive_filter_bytes(u->a, 0) > o->max_stream)
		return err_set(u->e, ERR_CORRUPT, "the archive is longer than the %llu bytes "
			       "it was declared to have", (unsigned long long)o->max_stream);
	if (o->deadline_ms && time_mono_ms() >= o->deadline_ms)
		return err_set(u->e, ERR_FAIL, "timed out while extracting %s", u->name.data);
	return 0;
}

/* A file's declared size, holes included, against max_bytes: checked
 * before anything is written, so a sparse file cannot grow past it. */
static int count_bytes(struct unpacker *u, uint64_t n)
{
	if (u->o && u->o->max_bytes &&
	    (n > u->o->max_bytes || u->st->bytes > u->o->max_bytes - n))
		return err_set(u->e, ERR_CORRUPT, "archive holds more than %llu bytes of files "
			       "(at %s)", (unsigned long long)u->o->max_bytes, u->name.data);
	u->st->bytes += n;
	return 0;
}

/* A small file: its data read into memory, written by a worker. */
static int queue_file(struct unpacker *u, struct archive *a, struct dnode *dir,
		      const char *base, uint64_t size, mode_t mode)
{
	struct job *j = xcalloc(1, sizeof(*j));
	const void *blk;
	size_t n;
	la_int64_t off;
	int r;

	j->name = xstrdup(u->name.data);
	j->base = j->name + (base - u->name.data);
	j->size = (size_t)size;
	j->data = size ? xcalloc(1, (size_t)size) : NULL; /* zeros: sparse holes */
	j->mode = mode;
	for (;;) {
		r = archive_read_data_block(a, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK || off < 0 || (uint64_t)off > size || n > size - (uint64_t)off) {
			up_job_free(j);
			return r != ARCHIVE_OK ? read_error(u, a)
				: err_set(u->e, ERR_CORRUPT, "%s: bad data offset", u->name.data);
		}
		memcpy(j->data + off, blk, n);
		if (up_check_stream(u)) {
			up_job_free(j);
			return u->e->code;
		}
	}
	j->dir = up_dnode_get(dir);
	j->seq = u->seq++;
	up_pset_add(&u->pending, u->name.data, j->seq);
	if (u->pending.n > PSET_PURGE)
		up_pset_rebuild(&u->pending, up_pool_oldest(u->pool));
	u->st->files++;
	return up_pool_submit(u->pool, j, u->e);
}

static int extract_file(struct unpacker *u, struct archive *a, struct archive_entry *ent,
			struct dnode *dir, const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;
	la_int64_t size = archive_entry_size(ent), off, pos = 0;
	const void *blk;
	size_t n;
	int fd, r, ret = 0;

	if (size < 0)
		size = 0;
	if (count_bytes(u, (uint64_t)size))
		return u->e->code;
	if (u->pool && (uint64_t)size <= UNPACK_SMALL_FILE)
		return queue_file(u, a, dir, base, (uint64_t)size, mode);
	fd = up_create_file(dir->fd, base, u->name.data, mode, u->e);
	if (fd < 0)
		return fd;
	for (;;) {
		r = archive_read_data_block(a, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			ret = read_error(u, a);
			break;
		}
		if (off < pos || off > size || (la_int64_t)n > size - off) {
			ret = err_set(u->e, ERR_CORRUPT, "%s: bad data offset", u->name.data);
			break;
		}
		if (off != pos) {
			/* a sparse file's hole: skipped, the final size covers it */
			if (lseek(fd, off, SEEK_SET) < 0) {
				ret = err_errno(u->e, "cannot seek in %s", u->name.data);
				break;
			}
			pos = off;
		}
		if (n && write_all(fd, blk, n)) {
			ret = err_errno(u->e, "cannot write %s", u->name.data);
			break;
		}
		pos += (la_int64_t)n;
		if ((ret = up_check_stream(u)))
			break;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	ret = up_finish_file(fd, u->name.data, (uint64_t)pos, (uint64_t)size, mode, u->um, u->e);
	if (!ret)
		u->st->files++;
	return ret;
}

static int extract_dir(struct unpacker *u, struct archive_entry *ent, int dfd,
		       const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;
	mode_t made = (mode | 0700) & 0777; /* its owner may fill it meanwhile */
	struct stat st;

	if (!mkdirat(dfd, base, made)) {
		if (mode != (made & ~u->um))
			up_defer_mode(u, u->name.data, mode);
		u->st->dirs++;
		return 0;
	}
	if (errno != EEXIST)
		return err_errno(u->e, "cannot create directory %s", u->name.data);
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW))
		return err_errno(u->e, "cannot stat %s", u->name.data);
	if (!S_ISDIR(st.st_mode))
		return err_set(u->e, ERR_CORRUPT, "refused directory '%s': a file or symlink "
			       "of that name came first", u->name.data);
	/* made earlier as a parent, or named twice: this entry's mode wins */
	if ((st.st_mode & 07777) != mode)
		up_defer_mode(u, u->name.data, mode);
	u->st->dirs++;
	return 0;
}

static int extract_symlink(struct unpacker *u, struct archive_entry *ent, int dfd,
			   const char *base)
{
	const char *target = archive_entry_symlink(ent);

	if (!target)
		target = archive_entry_symlink_utf8(ent);
	if (!target)
		return err_set(u->e, ERR_CORRUPT, "symlink %s has no target", u->name.data);
	if (u->o && u->o->safe_links && !unpack_link_inside(u->name.data, target))
		return err_set(u->e, ERR_CORRUPT, "refused symlink '%s' -> '%s': it leads out of "
			       "the directory (--safe-links)", u->name.data, target);
	if (symlinkat(target, dfd, base)) {
		if (errno != EEXIST)
			return err_errno(u->e, "cannot create symlink %s", u->name.data);
		if (up_make_room(dfd, base, u->name.data, u->e))
			return u->e->code;
		if (symlinkat(target, dfd, base))
			return err_errno(u->e, "cannot create symlink %s", u->name.data);
	}
	if (u->o && u->o->safe_links && buf_add(&u->links, u->name.data, u->name.len + 1))
		return err_set(u->e, ERR_NOMEM, "too many symlinks");
	u->st->symlinks++;
	return 0;
}

/* A FIFO, with its exact mode. */
static int extract_fifo(struct unpacker *u, struct archive_entry *ent, int dfd,
			const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;

	if (up_make_room(dfd, base, u->name.data, u->e))
		return u->e->code;
	if (mkfifoat(dfd, base, mode & 0777))
		return err_errno(u->e, "cannot create fifo %s", u->name.data);
	/* the name is the FIFO just made in a directory of the extraction's
	 * own; AT_SYMLINK_NOFOLLOW says so too where the C library can */
	if (up_needs_chmod(mode, u->um) && fchmodat(dfd, base, mode, AT_SYMLINK_NOFOLLOW) &&
	    ((errno != EOPNOTSUPP && errno != ENOSYS) || fchmodat(dfd, base, mode, 0)))
		return err_errno(u->e, "cannot chmod %s", u->name.data);
	u->st->files++;
	return 0;
}

/*
 * A hard link: the target must be an entry of this archive extracted
 * before it (the directory is the archive's own: nothing else is there),
 * not a directory.  Its directories are opened without following links.
 */
static int extract_hardlink(struct unpacker *u, const char *target, int dfd,
			    const char *base)
{
	struct buf t = BUF_INIT;
	struct stat st;
	const char *tbase, *slash;
	int tfd = u->dirs[0]->fd, ret = 0, owned = 0;

	ret = unpack_clean_name(target, &t, u->e);
	if (ret) {
		if (ret > 0)
			ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' to the root",
				      u->name.data);
		else
			err_wrap(u->e, "hard link %s", u->name.data);
		goto out;
	}
	slash = strrchr(t.data, '/');
	tbase = slash ? slash + 1 : t.data;
	if (slash) {
		/* open the target's directory without the chain: no creation */
		char *p = t.data;

		while (p < slash) {
			char *end = strchr(p, '/'), *comp;
			int fd;

			comp = xstrndup(p, (size_t)(end - p));
			fd = openat(tfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			free(comp);
			if (owned)
				close(tfd);
			owned = 0;
			if (fd < 0) {
				ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': "
					      "no such entry before it in the archive", u->name.data,
					      target);
				goto out;
			}
			tfd = fd;
			owned = 1;
			p = end + 1;
		}
	}
	if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW)) {
		ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': no such entry "
			      "before it in the archive", u->name.data, target);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': a directory",
			      u->name.data, target);
		goto out;
	}
	/* flags 0: a link to a symlink is a link to the symlink itself */
	if (linkat(tfd, tbase, dfd, base, 0)) {
		if (errno != EEXIST) {
			ret = err_errno(u->e, "cannot link %s", u->name.data);
			goto out;
		}
		ret = up_make_room(dfd, base, u->name.data, u->e);
		if (!ret && linkat(tfd, tbase, dfd, base, 0))
			ret = err_errno(u->e, "cannot link %s", u->name.data);
	}
	if (!ret)
		u->st->hardlinks++;
out:
	if (owned)
		close(tfd);
	buf_release(&t);
	return ret;
}

int up_extract_entry(struct unpacker *u, struct archive *a, struct archive_entry *ent)
{
	const char *path = archive_entry_pathname(ent), *hl, *base;
	mode_t type = archive_entry_filetype(ent);
	struct dnode *dir;
	int ret;

	if (!path)
		path = archive_entry_pathname_utf8(ent);
	if (!path)
		return err_set(u->e, ERR_CORRUPT, "an entry has no name");
	ret = unpack_clean_name(path, &u->name, u->e);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		if (type != AE_IFDIR)
			return err_set(u->e, ERR_CORRUPT, "refused entry '%s' at the root itself",
				       path);
		/* "./": the directory's own mode, set last */
		up_defer_mode(u, "", archive_entry_perm(ent) & 07777);
		u->st->skipped++;
		return 0;
	}
	hl = archive_entry_hardlink(ent);
	if (!hl)
		hl = archive_entry_hardlink_utf8(ent);
	if (!hl && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)) {
		u->st->skipped++;
		return 0;
	}
	/* the same name again, or a link to a queued file: let the queue
	 * finish first, so later entries win as in a sequential extraction */
	if (u->pool && (hl || up_pset_has(&u->pending, u->name.data)) && drain(u))
		return u->e->code;
	dir = parent_dir(u, &base);
	if (!dir)
		return u->e->code;
	if (hl)
		return extract_hardlink(u, hl, dir->fd, base);
	switch (type) {
	case AE_IFREG:
		return extract_file(u, a, ent, dir, base);
	case AE_IFDIR:
		return extract_dir(u, ent, dir->fd, base);
	case AE_IFLNK:
		return extract_symlink(u, ent, dir->fd, base);
	case AE_IFIFO:
		return extract_fifo(u, ent, dir->fd, base);
	default:
		return err_set(u->e, ERR_CORRUPT, "refused '%s': unknown entry type 0%o", path,
			       (unsigned)type);
	}
}

