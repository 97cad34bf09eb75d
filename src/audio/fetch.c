/*
 * audio/fetch.c — remote source → cached audio file, with yt-dlp as a program.
 *
 * m2p_fetch, step by step:
 *   1. cache hit? → done (no lock, no process, no network).
 *   2. take the key's lock (one download per key across threads and
 *      processes; polled every 50 ms so a cancel is noticed while another
 *      download of the song runs), look again (someone may have just stored it).
 *   3. find yt-dlp and check its version (m2p_fetch_ytdlp_check).
 *   4. metadata: `yt-dlp -J` → refuse playlists, live streams, unknown
 *      durations (fail closed), songs over max_duration_s and, when the site
 *      says so, files over max_download_mb — before any audio is fetched.
 *   5. download with `--load-info-json` (the metadata we checked, so the same
 *      video and no second page request) into a cache temp path we chose,
 *      reading `--progress-template` lines for real fractions and stat()ing
 *      the growing file every 50 ms: past max_download_mb the process group
 *      is killed (FETCH_TOO_LARGE; headers are not trusted).
 *   6. put the file into the cache with its metadata (atomic rename), unlock.
 * Steps 4 and 5 are retried for network and rate-limit failures only,
 * fetch_retries times, with exponential backoff from fetch_retry_base_s and
 * jitter. Any failure removes the temp files: an aborted download leaves
 * nothing.
 *
 * yt-dlp always runs through posix_spawn with an argv array (never a shell),
 * --ignore-config (config files can inject --exec), --no-playlist, audio only
 * without post-processing (--fixup never: no ffmpeg), extractors limited to
 * the site the source was parsed as (the generic extractor only for the
 * test-only loopback source), stdin from /dev/null, descriptors above 2
 * closed, in its own process group so a kill reaches its helpers too.
 */
#define _GNU_SOURCE
#include "audio/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "core/log.h"

extern char **environ;

#define META_MAX_BYTES ((size_t)32 * 1024 * 1024) /* -J output cap */
#define META_TIMEOUT_S 180.0
#define DOWNLOAD_TIMEOUT_S 1800.0
#define VERSION_TIMEOUT_S 30.0
#define ERR_TAIL 6144
#define POLL_MS 50
#define MIN_VERSION_Y 2024
#define MIN_VERSION_M 7

/* ---- running a program -------------------------------------------------------------------- */

typedef struct run_opts {
    size_t stdout_cap;      /* >0: capture stdout up to this many bytes */
    const char *watch_path; /* file whose size (and <path>.part) is counted; may be NULL */
    uint64_t max_bytes;     /* kill past this many bytes in watch_path (0 = no limit) */
    double timeout_s;       /* wall-clock limit */
    const m2p_progress *progress;
} run_opts;

typedef struct run_result {
    int exit_code;  /* -1 when killed by a signal */
    bool too_large; /* killed by us for size */
    bool timed_out; /* killed by us for time */
    bool cancelled; /* killed by us on cancel */
    bool stdout_overflow;
    bool saw_max_filesize; /* yt-dlp said the file is larger than --max-filesize */
    char *out;             /* captured stdout, NUL-terminated (m2p_free) */
    size_t out_len;
    char err[ERR_TAIL + 1]; /* the last ERR_TAIL bytes of stderr */
    size_t err_len;
    uint64_t bytes; /* largest size seen of watch_path */
} run_result;

static void result_free(run_result *r) {
    m2p_free(r->out);
    r->out = NULL;
    r->out_len = 0;
}

static void append_err(run_result *r, const char *buf, size_t n) {
    if (n >= ERR_TAIL) {
        memcpy(r->err, buf + n - ERR_TAIL, ERR_TAIL);
        r->err_len = ERR_TAIL;
    } else {
        if (r->err_len + n > ERR_TAIL) {
            size_t drop = r->err_len + n - ERR_TAIL;
            memmove(r->err, r->err + drop, r->err_len - drop);
            r->err_len -= drop;
        }
        memcpy(r->err + r->err_len, buf, n);
        r->err_len += n;
    }
    r->err[r->err_len] = '\0';
}

static uint64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t watched_size(const char *path) {
    char part[M2P_PATH_MAX + 16];
    uint64_t a = file_size(path);
    int n = snprintf(part, sizeof part, "%s.part", path);
    uint64_t b = (n > 0 && (size_t)n < sizeof part) ? file_size(part) : 0;
    return a > b ? a : b;
}

/* "M2P <downloaded> <total> <estimate> <status>" from --progress-template. */
static void progress_line(const char *line, const run_opts *o, run_result *r) {
    if (strstr(line, "max-filesize") != NULL) {
        r->saw_max_filesize = true;
    }
    if (strncmp(line, "M2P ", 4) != 0) {
        return;
    }
    char *end = NULL;
    double done = strtod(line + 4, &end);
    if (end == line + 4) {
        return;
    }
    const char *p = end;
    double total = strtod(p, &end);
    if (end == p) { /* "NA" */
        total = 0;
        while (*end == ' ') {
            end++;
        }
        while (*end != ' ' && *end != '\0') {
            end++;
        }
    }
    p = end;
    double estimate = strtod(p, &end);
    if (end == p) {
        estimate = 0;
    }
    if (total <= 0) {
        total = estimate;
    }
    if (done > (double)r->bytes) {
        r->bytes = (uint64_t)done;
    }
    m2p_progress_report(o->progress, M2P_STEP_FETCH, done, total > 0 ? total : 0, "Downloading audio");
}

/* Kills yt-dlp and its helpers (its own process group). Once yt-dlp is
 * reaped its pid may be reused, so only the group is signalled then (the
 * group id stays reserved while a member is alive). */
static void kill_group(pid_t pid, bool reaped) {
    (void)kill(-pid, SIGKILL);
    if (!reaped) {
        (void)kill(pid, SIGKILL);
    }
}

/* Builds environ + PYTHONUNBUFFERED=1 (progress lines arrive as written),
 * with the program's own folder first on PATH: yt-dlp looks for its
 * JavaScript runtime (deno, which YouTube now needs) on PATH, and
 * scripts/install-deps.sh puts both side by side in tools/bin/.
 * *path_var receives the allocated "PATH=..." string (free after the spawn). */
static char **child_env(const char *prog, char **path_var) {
    *path_var = NULL;
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL) {
        n++;
    }
    char **env = m2p_malloc_array(n + 3, sizeof *env);
    if (env == NULL) {
        return NULL;
    }
    const char *old_path = getenv("PATH");
    const char *slash = strrchr(prog, '/');
    if (slash != NULL) {
        size_t dir_len = (size_t)(slash - prog);
        size_t old_len = old_path != NULL ? strlen(old_path) : 0;
        size_t cap = 5 + dir_len + 1 + old_len + 1;
        *path_var = m2p_malloc(cap);
        if (*path_var == NULL) {
            m2p_free(env);
            return NULL;
        }
        (void)snprintf(*path_var, cap, "PATH=%.*s%s%s", (int)dir_len, prog, old_len > 0 ? ":" : "",
                       old_path != NULL ? old_path : "");
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "PYTHONUNBUFFERED=", 17) == 0) {
            continue;
        }
        if (*path_var != NULL && strncmp(environ[i], "PATH=", 5) == 0) {
            continue;
        }
        env[j++] = environ[i];
    }
    env[j++] = (char *)"PYTHONUNBUFFERED=1";
    if (*path_var != NULL) {
        env[j++] = *path_var;
    }
    env[j] = NULL;
    return env;
}

/* Runs argv (argv[0] is a path) and waits for it, feeding r. */
static m2p_code run_program(char *const argv[], const run_opts *o, run_result *r, m2p_error *err) {
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    char **env = NULL;
    char *path_var = NULL;
    m2p_code rc = M2P_OK;
    pid_t pid = -1;
    char line[4096];
    size_t line_len = 0;

    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        rc = m2p_error_set(err, M2P_E_IO, "pipe: %s", strerror(errno));
        goto done;
    }
    env = child_env(argv[0], &path_var);
    if (env == NULL) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "environment");
        goto done;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "spawn actions");
        goto done;
    }
    fa_ok = true;
    if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2) != 0 ||
        posix_spawn_file_actions_addclosefrom_np(&fa, 3) != 0) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "spawn actions");
        goto done;
    }
    if (posix_spawnattr_init(&attr) != 0) {
        rc = m2p_error_set(err, M2P_E_NOMEM, "spawn attributes");
        goto done;
    }
    attr_ok = true;
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    if (posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0 ||
        posix_spawnattr_setpgroup(&attr, 0) != 0 || posix_spawnattr_setsigmask(&attr, &none) != 0 ||
        posix_spawnattr_setsigdefault(&attr, &dflt) != 0) {
        rc = m2p_error_set(err, M2P_E_INTERNAL, "spawn attributes");
        goto done;
    }
    int se = posix_spawn(&pid, argv[0], &fa, &attr, argv, env);
    if (se != 0) {
        pid = -1;
        rc = m2p_error_set(err, se == ENOENT || se == EACCES ? M2P_E_YTDLP_MISSING : M2P_E_IO, "cannot run %s: %s",
                           argv[0], strerror(se));
        goto done;
    }
    (void)close(out_pipe[1]);
    out_pipe[1] = -1;
    (void)close(err_pipe[1]);
    err_pipe[1] = -1;

    double start = m2p_now_monotonic();
    bool out_open = true, err_open = true, killed = false, reaped = false;
    int status = 0;
    double exited_at = 0;
    while ((out_open || err_open) && !killed) {
        /* A helper that outlives yt-dlp may hold the pipes open: once yt-dlp
         * itself has exited, read what is there for up to a second, then stop. */
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = true;
                exited_at = m2p_now_monotonic();
            }
        } else if (m2p_now_monotonic() - exited_at > 1.0) {
            /* Only the group: the pid itself is reaped and may be reused, but
             * the group id stays reserved while a member holds our pipes. */
            (void)kill(-pid, SIGKILL);
            break;
        }
        struct pollfd pfd[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0}, {err_open ? err_pipe[0] : -1, POLLIN, 0}};
        int pr = poll(pfd, 2, POLL_MS);
        if (pr < 0 && errno != EINTR) {
            kill_group(pid, reaped);
            break;
        }
        char buf[16384];
        if (out_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            ssize_t n = read(out_pipe[0], buf, sizeof buf);
            if (n <= 0 && !(n < 0 && errno == EINTR)) {
                out_open = false;
            } else if (n > 0) {
                if (o->stdout_cap > 0) {
                    size_t need = r->out_len + (size_t)n + 1;
                    if (need > o->stdout_cap) {
                        r->stdout_overflow = true;
                        kill_group(pid, reaped);
                        killed = true;
                    } else {
                        char *nb = m2p_realloc(r->out, need);
                        if (nb == NULL) {
                            kill_group(pid, reaped);
                            killed = true;
                            rc = m2p_error_set(err, M2P_E_NOMEM, "yt-dlp output");
                        } else {
                            r->out = nb;
                            memcpy(r->out + r->out_len, buf, (size_t)n);
                            r->out_len += (size_t)n;
                            r->out[r->out_len] = '\0';
                        }
                    }
                } else {
                    for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] == '\n' || line_len + 1 >= sizeof line) {
                            line[line_len] = '\0';
                            progress_line(line, o, r);
                            line_len = 0;
                        } else {
                            line[line_len++] = buf[i];
                        }
                    }
                }
            }
        }
        if (err_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            ssize_t n = read(err_pipe[0], buf, sizeof buf);
            if (n <= 0 && !(n < 0 && errno == EINTR)) {
                err_open = false;
            } else if (n > 0) {
                append_err(r, buf, (size_t)n);
            }
        }
        if (killed) {
            break;
        }
        if (o->watch_path != NULL) {
            uint64_t sz = watched_size(o->watch_path);
            if (sz > r->bytes) {
                r->bytes = sz;
            }
        }
        if (o->max_bytes > 0 && r->bytes > o->max_bytes) {
            r->too_large = true;
            kill_group(pid, reaped);
            killed = true;
        } else if (m2p_progress_cancelled(o->progress)) {
            r->cancelled = true;
            kill_group(pid, reaped);
            killed = true;
        } else if (m2p_now_monotonic() - start > o->timeout_s) {
            r->timed_out = true;
            kill_group(pid, reaped);
            killed = true;
        }
    }
    if (!reaped) {
        pid_t w;
        do {
            w = waitpid(pid, &status, 0);
        } while (w < 0 && errno == EINTR);
        reaped = w == pid;
    }
    if (reaped && WIFEXITED(status)) {
        r->exit_code = WEXITSTATUS(status);
    }
    if (line_len > 0) {
        line[line_len] = '\0';
        progress_line(line, o, r);
    }
done:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0) {
            (void)close(out_pipe[i]);
        }
        if (err_pipe[i] >= 0) {
            (void)close(err_pipe[i]);
        }
    }
    if (fa_ok) {
        (void)posix_spawn_file_actions_destroy(&fa);
    }
    if (attr_ok) {
        (void)posix_spawnattr_destroy(&attr);
    }
    m2p_free(env);
    m2p_free(path_var);
    return rc;
}

/* ---- yt-dlp: finding it, its version, its errors ------------------------------------------ */

static bool parse_version(const char *s, int *y, int *m, int *d) {
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return sscanf(s, "%4d.%2d.%2d", y, m, d) == 3 && *y >= 2000 && *m >= 1 && *m <= 12;
}

static bool is_executable(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Runs `<path> --version`; *current = version >= 2024.07. */
static m2p_code probe_version(const char *path, char *version, size_t vcap, bool *current, m2p_error *err) {
    *current = false;
    char *argv[] = {(char *)path, (char *)"--version", NULL};
    run_opts o = {.stdout_cap = 4096, .timeout_s = VERSION_TIMEOUT_S};
    run_result r;
    m2p_code rc = run_program(argv, &o, &r, err);
    if (rc != M2P_OK) {
        result_free(&r);
        return rc;
    }
    int y = 0, m = 0, d = 0;
    bool ok = r.exit_code == 0 && r.out != NULL && parse_version(r.out, &y, &m, &d);
    if (ok) {
        (void)snprintf(version, vcap, "%04d.%02d.%02d", y, m, d);
        *current = y > MIN_VERSION_Y || (y == MIN_VERSION_Y && m >= MIN_VERSION_M);
    } else {
        (void)snprintf(version, vcap, "unknown");
    }
    result_free(&r);
    if (!ok) {
        return m2p_error_set(err, M2P_E_YTDLP_MISSING, "%s --version did not print a version", path);
    }
    return M2P_OK;
}

/* ---- the version memo: <data_dir>/audio/.ytdlp-version ----------------------------------
 * One line "<dev> <ino> <size> <mtime_ns> <version> <path>" for the last yt-dlp
 * found current, so a download does not pay a Python start (~0.3 s) just for
 * `--version`. It only ever says "current", and only for the very same file
 * (device, inode, size and modification time all match); anything else, or no
 * memo, probes again. `m2p_fetch_ytdlp_check` (doctor) always probes. */

static bool memo_path(const m2p_config *cfg, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/audio/.ytdlp-version", cfg->data_dir);
    return n > 0 && (size_t)n < cap;
}

static bool memo_stat(const char *path, unsigned long long f[4]) {
    struct stat st;
    if (stat(path, &st) != 0) {
        return false;
    }
    f[0] = (unsigned long long)st.st_dev;
    f[1] = (unsigned long long)st.st_ino;
    f[2] = (unsigned long long)st.st_size;
    f[3] = (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec;
    return true;
}

static bool memo_read(const m2p_config *cfg, const char *ytdlp, char *version, size_t vcap) {
    char mp[M2P_PATH_MAX + 32];
    char *text = NULL;
    unsigned long long want[4], got[4];
    if (!memo_path(cfg, mp, sizeof mp) || !memo_stat(ytdlp, want) ||
        m2p_fs_read_file(mp, 4096, &text, NULL, NULL) != M2P_OK) {
        return false;
    }
    char v[32];
    int used = 0;
    bool ok = sscanf(text, "%llu %llu %llu %llu %31s %n", &got[0], &got[1], &got[2], &got[3], v, &used) == 5 &&
              used > 0 && memcmp(want, got, sizeof want) == 0;
    if (ok) {
        size_t n = strcspn(text + used, "\n");
        ok = n == strlen(ytdlp) && strncmp(text + used, ytdlp, n) == 0;
    }
    m2p_free(text);
    if (ok) {
        (void)snprintf(version, vcap, "%s", v);
    }
    return ok;
}

static void memo_write(const m2p_config *cfg, const char *ytdlp, const char *version) {
    char mp[M2P_PATH_MAX + 32];
    char line[M2P_PATH_MAX + 160];
    unsigned long long f[4];
    if (!memo_path(cfg, mp, sizeof mp) || !memo_stat(ytdlp, f)) {
        return;
    }
    int n = snprintf(line, sizeof line, "%llu %llu %llu %llu %s %s\n", f[0], f[1], f[2], f[3], version, ytdlp);
    if (n > 0 && (size_t)n < sizeof line) {
        m2p_code rc = m2p_fs_write_atomic(mp, line, (size_t)n, NULL);
        if (rc != M2P_OK) {
            M2P_DEBUG("fetch", "cannot write %s (%s); yt-dlp will be probed again", mp, m2p_errname(rc));
        }
    }
}

/* m2p_fetch_ytdlp_check, optionally trusting the memo for a candidate. */
static m2p_code ytdlp_find(const m2p_config *cfg, bool use_memo, char *path, size_t path_cap, char *version,
                           size_t version_cap, m2p_error *err) {
    char cand[8][M2P_PATH_MAX];
    int nc = 0;
    if (cfg->ytdlp[0] != '\0') {
        (void)snprintf(cand[nc++], M2P_PATH_MAX, "%s", cfg->ytdlp);
    } else {
        char exe[M2P_PATH_MAX];
        if (m2p_fs_exe_dir(exe, sizeof exe)[0] != '\0') {
            int w = snprintf(cand[nc], M2P_PATH_MAX, "%s/../tools/bin/yt-dlp", exe);
            nc += (w > 0 && w < M2P_PATH_MAX) ? 1 : 0;
            const char *base = strrchr(exe, '/');
            base = base != NULL ? base + 1 : exe;
            if (strcmp(base, "tests") == 0 || strcmp(base, "fuzz") == 0 || strcmp(base, "bench") == 0) {
                w = snprintf(cand[nc], M2P_PATH_MAX, "%s/../../tools/bin/yt-dlp", exe); /* build/tests/ */
                nc += (w > 0 && w < M2P_PATH_MAX) ? 1 : 0;
            }
        }
        const char *src = getenv("MUS2PIC_SOURCE_DIR");
        if (src != NULL && src[0] != '\0') {
            int w = snprintf(cand[nc], M2P_PATH_MAX, "%s/tools/bin/yt-dlp", src);
            nc += (w > 0 && w < M2P_PATH_MAX) ? 1 : 0;
        }
        const char *pathenv = getenv("PATH");
        const char *p = pathenv != NULL ? pathenv : "/usr/local/bin:/usr/bin:/bin";
        while (*p != '\0' && nc < 8) {
            size_t len = strcspn(p, ":");
            if (len > 0) {
                int w = snprintf(cand[nc], M2P_PATH_MAX, "%.*s/yt-dlp", (int)len, p);
                if (w > 0 && w < M2P_PATH_MAX && is_executable(cand[nc])) {
                    nc++;
                }
            }
            p += len;
            if (*p == ':') {
                p++;
            }
        }
    }
    char old_path[M2P_PATH_MAX] = "", old_version[32] = "";
    for (int i = 0; i < nc; i++) {
        if (!is_executable(cand[i])) {
            continue;
        }
        char v[32];
        bool current = false;
        if (use_memo && memo_read(cfg, cand[i], v, sizeof v)) {
            (void)snprintf(path, path_cap, "%s", cand[i]);
            (void)snprintf(version, version_cap, "%s", v);
            return M2P_OK;
        }
        m2p_code prc = probe_version(cand[i], v, sizeof v, &current, err);
        if (prc == M2P_E_NOMEM) {
            return prc; /* not yt-dlp's fault */
        }
        if (prc != M2P_OK) {
            continue;
        }
        if (current) {
            (void)snprintf(path, path_cap, "%s", cand[i]);
            (void)snprintf(version, version_cap, "%s", v);
            memo_write(cfg, cand[i], v);
            return M2P_OK;
        }
        if (old_path[0] == '\0') {
            (void)snprintf(old_path, sizeof old_path, "%s", cand[i]);
            (void)snprintf(old_version, sizeof old_version, "%s", v);
        }
    }
    if (old_path[0] != '\0') {
        (void)snprintf(path, path_cap, "%s", old_path);
        (void)snprintf(version, version_cap, "%s", old_version);
        return m2p_error_set(err, M2P_E_YTDLP_OUTDATED, "%s is version %s; 2024.07.01 or newer is needed", old_path,
                             old_version);
    }
    if (cfg->ytdlp[0] != '\0') {
        return m2p_error_set(err, M2P_E_YTDLP_MISSING, "ytdlp = %s is not an executable yt-dlp", cfg->ytdlp);
    }
    return m2p_error_set(err, M2P_E_YTDLP_MISSING, "looked in tools/bin beside the program and in PATH");
}

m2p_code m2p_fetch_ytdlp_check(const m2p_config *cfg, char *path, size_t path_cap, char *version, size_t version_cap,
                               m2p_error *err) {
    return ytdlp_find(cfg, false, path, path_cap, version, version_cap, err);
}

static bool has(const char *hay, const char *needle) {
    return strcasestr(hay, needle) != NULL;
}

m2p_code m2p_fetch_classify_error(const char *text) {
    /* Classify yt-dlp's ERROR lines when there are any (warnings can mention
     * anything), else the whole text. */
    const char *e = strstr(text, "ERROR:");
    const char *s = e != NULL ? e : text;
    if (has(s, "HTTP Error 429") || has(s, "Too Many Requests") || has(s, "rate-limit") || has(s, "rate limit") ||
        has(s, "confirm you're not a bot") || has(s, "confirm you’re not a bot")) {
        return M2P_E_FETCH_RATE_LIMITED;
    }
    if (has(s, "Private video") || has(s, "video is private") || has(s, "This video is private")) {
        return M2P_E_FETCH_PRIVATE;
    }
    if (has(s, "confirm your age") || has(s, "age-restricted") || has(s, "age restricted") ||
        has(s, "inappropriate for some users") || has(s, "age-gated")) {
        return M2P_E_FETCH_AGE_RESTRICTED;
    }
    if (has(s, "available in your country") || has(s, "blocked it in your country") || has(s, "geo restriction") ||
        has(s, "geo-restrict") || has(s, "not available in your region") || has(s, "from your location")) {
        return M2P_E_FETCH_REGION_BLOCKED;
    }
    if (has(s, "has been terminated") || has(s, "has been removed") || has(s, "removed by the uploader") ||
        has(s, "copyright claim") || has(s, "violating YouTube") || has(s, "HTTP Error 410") ||
        has(s, "no longer available")) {
        return M2P_E_FETCH_REMOVED;
    }
    if (has(s, "larger than max-filesize") || has(s, "File is larger than")) {
        return M2P_E_FETCH_TOO_LARGE;
    }
    if (has(s, "does not pass filter") && has(s, "is_live")) {
        return M2P_E_FETCH_LIVE;
    }
    if ((has(s, "does not pass filter") && has(s, "duration")) || has(s, "video is too long")) {
        return M2P_E_FETCH_TOO_LONG;
    }
    if (has(s, "live event will begin") || has(s, "Premieres in") || has(s, "is a live stream")) {
        return M2P_E_FETCH_LIVE;
    }
    if (has(s, "Requested format is not available") && has(text, "JavaScript runtime")) {
        /* Not the video's fault: YouTube needs a JS runtime (deno) beside yt-dlp. */
        return M2P_E_FETCH_FAILED;
    }
    if (has(s, "Video unavailable") || has(s, "is not available") || has(s, "HTTP Error 404") ||
        has(s, "does not exist") || has(s, "Requested format is not available") || has(s, "No video formats found") ||
        has(s, "Unsupported URL") || has(s, "Unable to extract") || has(s, "This track is not available") ||
        has(s, "HTTP Error 403")) {
        return M2P_E_FETCH_UNAVAILABLE;
    }
    if (has(s, "timed out") || has(s, "timeout") || has(s, "Connection reset") || has(s, "Connection refused") ||
        has(s, "Connection aborted") || has(s, "Temporary failure in name resolution") ||
        has(s, "Name or service not known") || has(s, "Network is unreachable") || has(s, "No route to host") ||
        has(s, "Remote end closed") || has(s, "IncompleteRead") || has(s, "urlopen error") ||
        has(s, "HTTP Error 500") || has(s, "HTTP Error 502") || has(s, "HTTP Error 503") || has(s, "HTTP Error 504") ||
        has(s, "SSL") || has(s, "Unable to download")) {
        return M2P_E_FETCH_NETWORK;
    }
    return M2P_E_FETCH_FAILED;
}

/* The ERROR line of yt-dlp's stderr (or its last line), for the detail. */
static void error_line(const char *text, char *buf, size_t cap) {
    const char *e = strstr(text, "ERROR:");
    if (e == NULL) {
        size_t n = strlen(text);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
            n--;
        }
        size_t start = n;
        while (start > 0 && text[start - 1] != '\n') {
            start--;
        }
        (void)snprintf(buf, cap, "%.*s", (int)(n - start), text + start);
        return;
    }
    size_t n = strcspn(e, "\r\n");
    (void)snprintf(buf, cap, "%.*s", (int)n, e);
}

/* ---- the two yt-dlp steps ----------------------------------------------------------------- */

typedef struct fetch_ctx {
    const m2p_config *cfg;
    const m2p_source *src;
    const m2p_progress *progress;
    char ytdlp[M2P_PATH_MAX];
    const char *extractor;
    uint64_t max_bytes;
} fetch_ctx;

static const char *extractor_for(m2p_source_kind kind) {
    switch (kind) {
    case M2P_SOURCE_YOUTUBE:
        return "youtube";
    case M2P_SOURCE_SOUNDCLOUD:
        return "soundcloud";
    case M2P_SOURCE_BANDCAMP:
        return "bandcamp";
    case M2P_SOURCE_TEST_LOOPBACK:
        return "generic";
    case M2P_SOURCE_FILE:
    case M2P_SOURCE_UPLOAD:
        break;
    }
    return NULL;
}

static m2p_code failure(const run_result *r, const char *what, m2p_error *err) {
    if (r->cancelled) {
        return m2p_error_set(err, M2P_E_CANCELLED, "%s", what);
    }
    if (r->too_large) {
        return m2p_error_set(err, M2P_E_FETCH_TOO_LARGE, "stopped after %llu bytes", (unsigned long long)r->bytes);
    }
    if (r->timed_out) {
        return m2p_error_set(err, M2P_E_FETCH_NETWORK, "%s timed out", what);
    }
    if (r->stdout_overflow) {
        return m2p_error_set(err, M2P_E_FETCH_FAILED, "%s: yt-dlp printed too much", what);
    }
    char line[300];
    error_line(r->err, line, sizeof line);
    m2p_code code = m2p_fetch_classify_error(r->err);
    if (r->saw_max_filesize) {
        code = M2P_E_FETCH_TOO_LARGE;
    }
    if (code == M2P_E_FETCH_FAILED && strstr(r->err, "JavaScript runtime") != NULL) {
        return m2p_error_set(err, code, "yt-dlp needs a JavaScript runtime (deno) for this site: install deno; %s",
                             line[0] != '\0' ? line : what);
    }
    return m2p_error_set(err, code, "%s", line[0] != '\0' ? line : what);
}

/* yt-dlp -J: the metadata, checked. On success *info_json is the text (m2p_free). */
static m2p_code read_metadata(fetch_ctx *fc, m2p_track *out, char **info_json, size_t *info_len, m2p_error *err) {
    *info_json = NULL;
    char *argv[24];
    int a = 0;
    argv[a++] = fc->ytdlp;
    argv[a++] = (char *)"--ignore-config";
    argv[a++] = (char *)"--no-playlist";
    argv[a++] = (char *)"--use-extractors";
    argv[a++] = (char *)fc->extractor;
    argv[a++] = (char *)"-f";
    argv[a++] = (char *)"bestaudio/best";
    argv[a++] = (char *)"--socket-timeout";
    argv[a++] = (char *)"20";
    argv[a++] = (char *)"--extractor-retries";
    argv[a++] = (char *)"0";
    if (fc->src->kind == M2P_SOURCE_TEST_LOOPBACK) {
        argv[a++] = (char *)"--proxy";
        argv[a++] = (char *)"";
    }
    argv[a++] = (char *)"--dump-single-json";
    argv[a++] = (char *)"--";
    argv[a++] = (char *)fc->src->url;
    argv[a] = NULL;
    run_opts o = {.stdout_cap = META_MAX_BYTES, .timeout_s = META_TIMEOUT_S, .progress = fc->progress};
    run_result r;
    m2p_code rc = run_program(argv, &o, &r, err);
    if (rc != M2P_OK) {
        result_free(&r);
        return rc;
    }
    if (r.exit_code != 0 || r.cancelled || r.timed_out || r.stdout_overflow || r.out == NULL) {
        rc = failure(&r, "reading the video's details", err);
        result_free(&r);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(r.out, r.out_len, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        result_free(&r);
        return m2p_error_set(err, M2P_E_FETCH_FAILED, "yt-dlp printed no metadata");
    }
    const char *type = json_string_value(json_object_get(root, "_type"));
    const char *live_status = json_string_value(json_object_get(root, "live_status"));
    json_t *duration = json_object_get(root, "duration");
    json_t *size = json_object_get(root, "filesize");
    if (!json_is_number(size)) {
        size = json_object_get(root, "filesize_approx");
    }
    if (type != NULL && (strcmp(type, "playlist") == 0 || strcmp(type, "multi_video") == 0)) {
        rc = m2p_error_set(err, M2P_E_FETCH_PLAYLIST, "yt-dlp returned a %s", type);
    } else if (json_is_true(json_object_get(root, "is_live")) ||
               (live_status != NULL &&
                (strcmp(live_status, "is_live") == 0 || strcmp(live_status, "is_upcoming") == 0 ||
                 strcmp(live_status, "post_live") == 0))) {
        rc = m2p_error_set(err, M2P_E_FETCH_LIVE, "live status: %s", live_status != NULL ? live_status : "is_live");
    } else if (!json_is_number(duration) || !(json_number_value(duration) > 0)) {
        rc = m2p_error_set(err, M2P_E_FETCH_DURATION_UNKNOWN, "the site gives no duration");
    } else if (json_number_value(duration) > fc->cfg->max_duration_s) {
        rc = m2p_error_set(err, M2P_E_FETCH_TOO_LONG, "%.0f s, the limit is %.0f s", json_number_value(duration),
                           fc->cfg->max_duration_s);
    } else if (json_is_number(size) && json_number_value(size) > (double)fc->max_bytes) {
        rc = m2p_error_set(err, M2P_E_FETCH_TOO_LARGE, "the site says %.0f bytes, the limit is %llu",
                           json_number_value(size), (unsigned long long)fc->max_bytes);
    }
    if (rc == M2P_OK) {
        const char *title = json_string_value(json_object_get(root, "title"));
        const char *uploader = json_string_value(json_object_get(root, "uploader"));
        static const char *k_alt[] = {"channel", "artist", "creator", "uploader_id"};
        for (size_t i = 0; uploader == NULL && i < sizeof k_alt / sizeof k_alt[0]; i++) {
            uploader = json_string_value(json_object_get(root, k_alt[i]));
        }
        (void)snprintf(out->title, sizeof out->title, "%s", title != NULL ? title : "");
        (void)snprintf(out->uploader, sizeof out->uploader, "%s", uploader != NULL ? uploader : "");
        out->duration_s = json_number_value(duration);
        *info_json = r.out;
        *info_len = r.out_len;
        r.out = NULL;
    }
    json_decref(root);
    result_free(&r);
    return rc;
}

static m2p_code download(fetch_ctx *fc, const char *info_path, const char *tmp, m2p_error *err) {
    char maxfs[32];
    (void)snprintf(maxfs, sizeof maxfs, "%llu", (unsigned long long)fc->max_bytes);
    /* -o is an output template: a '%' in data_dir must reach yt-dlp as "%%". */
    char otmpl[2 * (M2P_PATH_MAX + 128)];
    size_t j = 0;
    for (const char *p = tmp; *p != '\0'; p++) {
        if (j + 3 >= sizeof otmpl) {
            return m2p_error_set(err, M2P_E_IO, "temp path too long");
        }
        if (*p == '%') {
            otmpl[j++] = '%';
        }
        otmpl[j++] = *p;
    }
    otmpl[j] = '\0';
    char *argv[40];
    int a = 0;
    argv[a++] = fc->ytdlp;
    argv[a++] = (char *)"--ignore-config";
    argv[a++] = (char *)"--no-playlist";
    argv[a++] = (char *)"--load-info-json";
    argv[a++] = (char *)info_path;
    argv[a++] = (char *)"-f";
    argv[a++] = (char *)"bestaudio/best";
    argv[a++] = (char *)"--no-part";
    argv[a++] = (char *)"--no-continue";
    argv[a++] = (char *)"--fixup";
    argv[a++] = (char *)"never";
    argv[a++] = (char *)"--no-mtime";
    argv[a++] = (char *)"--socket-timeout";
    argv[a++] = (char *)"20";
    argv[a++] = (char *)"--max-filesize";
    argv[a++] = maxfs;
    argv[a++] = (char *)"--newline";
    argv[a++] = (char *)"--progress-template";
    argv[a++] = (char *)"download:M2P %(progress.downloaded_bytes)s %(progress.total_bytes)s "
                        "%(progress.total_bytes_estimate)s %(progress.status)s";
    if (fc->src->kind == M2P_SOURCE_TEST_LOOPBACK) {
        argv[a++] = (char *)"--proxy";
        argv[a++] = (char *)"";
    }
    argv[a++] = (char *)"-o";
    argv[a++] = otmpl;
    argv[a] = NULL;
    run_opts o = {
        .watch_path = tmp, .max_bytes = fc->max_bytes, .timeout_s = DOWNLOAD_TIMEOUT_S, .progress = fc->progress};
    run_result r;
    m2p_code rc = run_program(argv, &o, &r, err);
    if (rc == M2P_OK && (r.exit_code != 0 || r.cancelled || r.timed_out || r.too_large || r.saw_max_filesize)) {
        rc = failure(&r, "downloading", err);
    }
    if (rc == M2P_OK) {
        uint64_t sz = file_size(tmp);
        if (sz > fc->max_bytes) {
            rc = m2p_error_set(err, M2P_E_FETCH_TOO_LARGE, "%llu bytes", (unsigned long long)sz);
        } else if (sz == 0) {
            char line[300];
            error_line(r.err, line, sizeof line);
            rc = m2p_error_set(err, M2P_E_FETCH_FAILED, "no audio was written%s%s", line[0] ? ": " : "", line);
        }
    }
    result_free(&r);
    return rc;
}

double m2p_fetch_retry_delay(double base_s, int attempt, double u01) {
    if (attempt < 0) {
        attempt = 0;
    }
    if (u01 < 0) {
        u01 = 0;
    }
    if (u01 > 1) {
        u01 = 1;
    }
    double delay = base_s * (double)(1u << (attempt > 10 ? 10 : attempt)) * (0.5 + u01);
    return delay > 120.0 ? 120.0 : delay;
}

/* Sleeps m2p_fetch_retry_delay (random jitter), checking cancel every 50 ms. */
static bool backoff(const fetch_ctx *fc, int attempt, uint64_t *rng) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    double delay = m2p_fetch_retry_delay(fc->cfg->fetch_retry_base_s, attempt, (double)(*rng % 1000u) / 1000.0);
    double until = m2p_now_monotonic() + delay;
    while (m2p_now_monotonic() < until) {
        if (m2p_progress_cancelled(fc->progress)) {
            return false;
        }
        double left = until - m2p_now_monotonic();
        double step = left < 0.05 ? left : 0.05;
        if (step > 0) {
            struct timespec ts = {0, (long)(step * 1e9)};
            (void)nanosleep(&ts, NULL);
        }
    }
    return true;
}

static void remove_quietly(const char *path) {
    char part[M2P_PATH_MAX + 160];
    (void)unlink(path);
    int n = snprintf(part, sizeof part, "%s.part", path);
    if (n > 0 && (size_t)n < sizeof part) {
        (void)unlink(part);
    }
}

/* Locked part of m2p_fetch: metadata, download, put. */
static m2p_code fetch_locked(fetch_ctx *fc, m2p_cache *cache, m2p_track *out, m2p_error *err) {
    const m2p_source *src = fc->src;
    char tmp[M2P_PATH_MAX + 128], info_path[M2P_PATH_MAX + 160];
    char version[32];
    char *info = NULL;
    size_t info_len = 0;
    m2p_code rc = ytdlp_find(fc->cfg, true, fc->ytdlp, sizeof fc->ytdlp, version, sizeof version, err);
    if (rc != M2P_OK) {
        return rc;
    }
    rc = m2p_cache_tmp_path(cache, src->id, tmp, sizeof tmp, err);
    if (rc != M2P_OK) {
        return rc;
    }
    int n = snprintf(info_path, sizeof info_path, "%s.info.json", tmp);
    if (n < 0 || (size_t)n >= sizeof info_path) {
        return m2p_error_set(err, M2P_E_IO, "temp path too long");
    }
    uint64_t rng = (uint64_t)(m2p_now_monotonic() * 1e9) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
    if (rng == 0) {
        rng = 0x9e3779b97f4a7c15ull;
    }
    int retries = fc->cfg->fetch_retries;
    m2p_progress_report(fc->progress, M2P_STEP_FETCH, 0, 0, "Reading the video's details");
    for (int attempt = 0;; attempt++) {
        rc = read_metadata(fc, out, &info, &info_len, err);
        if (rc == M2P_OK || !(rc == M2P_E_FETCH_NETWORK || rc == M2P_E_FETCH_RATE_LIMITED) || attempt >= retries) {
            break;
        }
        M2P_INFO("fetch", "%s: %s, retry %d of %d", src->url, m2p_errname(rc), attempt + 1, retries);
        if (!backoff(fc, attempt, &rng)) {
            return m2p_error_set(err, M2P_E_CANCELLED, NULL);
        }
    }
    if (rc != M2P_OK) {
        return rc;
    }
    if (fc->progress != NULL) {
        char text[700];
        int secs = (int)(out->duration_s + 0.5);
        (void)snprintf(text, sizeof text, "Found: %.300s%s%.200s (%d:%02d)", out->title, out->uploader[0] ? " by " : "",
                       out->uploader, secs / 60, secs % 60);
        m2p_progress_finding(fc->progress, M2P_STEP_FETCH, "song", text);
    }
    rc = m2p_fs_write_atomic(info_path, info, info_len, err);
    m2p_free(info);
    if (rc != M2P_OK) {
        return rc;
    }
    for (int attempt = 0;; attempt++) {
        remove_quietly(tmp);
        rc = download(fc, info_path, tmp, err);
        if (rc == M2P_OK || !(rc == M2P_E_FETCH_NETWORK || rc == M2P_E_FETCH_RATE_LIMITED) || attempt >= retries) {
            break;
        }
        M2P_INFO("fetch", "%s: %s, retry %d of %d", src->url, m2p_errname(rc), attempt + 1, retries);
        if (!backoff(fc, attempt, &rng)) {
            rc = m2p_error_set(err, M2P_E_CANCELLED, NULL);
            break;
        }
    }
    (void)unlink(info_path);
    if (rc == M2P_OK) {
        out->kind = src->kind;
        (void)snprintf(out->source, sizeof out->source, "%s", src->url);
        (void)snprintf(out->video_id, sizeof out->video_id, "%s", src->id);
        out->cache_hit = false;
        rc = m2p_cache_put(cache, src->id, tmp, out, err);
    }
    if (rc != M2P_OK) {
        remove_quietly(tmp);
    }
    return rc;
}

m2p_code m2p_fetch(const m2p_config *cfg, m2p_cache *cache, const m2p_source *src, const m2p_progress *progress,
                   m2p_track *out, m2p_error *err) {
    memset(out, 0, sizeof *out);
    if (!m2p_source_is_remote(src) || src->id[0] == '\0' || src->url[0] == '\0') {
        return m2p_error_set(err, M2P_E_INVALID_ARG, "m2p_fetch needs a parsed remote source");
    }
    if (src->kind == M2P_SOURCE_TEST_LOOPBACK && !cfg->unsafe_test_loopback) {
        return m2p_error_set(err, M2P_E_URL_LOCALHOST, "test loopback sources need unsafe_test_loopback");
    }
    if (m2p_cache_get(cache, src->id, out)) {
        m2p_progress_report(progress, M2P_STEP_FETCH, 1, 1, "Audio from the cache");
        return M2P_OK;
    }
    if (m2p_progress_cancelled(progress)) {
        return m2p_error_set(err, M2P_E_CANCELLED, NULL);
    }
    m2p_cache_lock *lock = NULL;
    /* Wait for another download of the same song (thread or process), polling
     * so that a cancel is noticed while waiting. */
    m2p_code rc;
    bool told = false;
    for (;;) {
        rc = m2p_cache_try_lock_key(cache, src->id, &lock, err);
        if (rc != M2P_E_CACHE_LOCK) {
            break;
        }
        if (!told) {
            m2p_progress_report(progress, M2P_STEP_FETCH, 0, 0, "Waiting for another download of this song");
            told = true;
        }
        if (m2p_progress_cancelled(progress)) {
            return m2p_error_set(err, M2P_E_CANCELLED, "while waiting for another download of this song");
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        (void)nanosleep(&ts, NULL);
    }
    if (rc != M2P_OK) {
        return rc;
    }
    if (m2p_cache_get(cache, src->id, out)) { /* stored while we waited for the lock */
        m2p_cache_unlock(lock);
        m2p_progress_report(progress, M2P_STEP_FETCH, 1, 1, "Audio from the cache");
        return M2P_OK;
    }
    fetch_ctx *fc = m2p_calloc(1, sizeof *fc);
    if (fc == NULL) {
        m2p_cache_unlock(lock);
        return m2p_error_set(err, M2P_E_NOMEM, "fetch");
    }
    fc->cfg = cfg;
    fc->src = src;
    fc->progress = progress;
    fc->extractor = extractor_for(src->kind);
    fc->max_bytes = (uint64_t)cfg->max_download_mb * 1024u * 1024u;
    rc = fetch_locked(fc, cache, out, err);
    m2p_free(fc);
    m2p_cache_unlock(lock);
    if (rc == M2P_OK) {
        m2p_progress_report(progress, M2P_STEP_FETCH, 1, 1, "Audio downloaded");
    } else {
        memset(out, 0, sizeof *out);
    }
    return rc;
}
