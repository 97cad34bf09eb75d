/*
 * tests/unit/audio/test_audio_source.c — m2p_source_parse: a table of URL
 * forms people paste (with the canonical URL and id each must give) and of
 * refusals (each with its exact code), plus local paths and uploads.
 */
#include "test_util.h"

#include <sys/stat.h>

#include "audio/source.h"
#include "core/config.h"
#include "core/error.h"

typedef struct url_case {
    const char *input;
    m2p_code code;
    m2p_source_kind kind;
    const char *id;
    const char *url;
} url_case;

#define YT "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
#define OKYT(in)                                                                                                       \
    { in, M2P_OK, M2P_SOURCE_YOUTUBE, "dQw4w9WgXcQ", YT }
#define BAD(in, c)                                                                                                     \
    { in, M2P_E_##c, 0, NULL, NULL }

/* Configuration: all three sites allowed (the site-disabled cases use the defaults). */
static const url_case k_cases[] = {
    /* YouTube, every form people paste */
    OKYT("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("http://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("https://youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("https://m.youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share"),
    OKYT("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s"),
    OKYT("https://www.youtube.com/watch?feature=youtu.be&v=dQw4w9WgXcQ"),
    OKYT("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI&index=3"),
    OKYT("https://www.youtube.com/watch?v=dQw4w9WgXcQ#comments"),
    OKYT("https://youtu.be/dQw4w9WgXcQ"),
    OKYT("https://youtu.be/dQw4w9WgXcQ?si=AbCdEfGhIjKlMnOp"),
    OKYT("https://youtu.be/dQw4w9WgXcQ?t=10"),
    OKYT("https://www.youtube.com/shorts/dQw4w9WgXcQ"),
    OKYT("https://youtube.com/shorts/dQw4w9WgXcQ?feature=share"),
    OKYT("https://www.youtube.com/embed/dQw4w9WgXcQ"),
    OKYT("https://www.youtube.com/live/dQw4w9WgXcQ?si=xyz"),
    OKYT("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ?start=5"),
    OKYT("HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ"),
    OKYT("https://www.youtube.com./watch?v=dQw4w9WgXcQ"),
    OKYT("youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("www.youtube.com/watch?v=dQw4w9WgXcQ"),
    OKYT("youtu.be/dQw4w9WgXcQ"),
    OKYT("  https://youtu.be/dQw4w9WgXcQ \n"),
    OKYT("dQw4w9WgXcQ"),
    {"_-aBc12345Z", M2P_OK, M2P_SOURCE_YOUTUBE, "_-aBc12345Z", "https://www.youtube.com/watch?v=_-aBc12345Z"},
    /* SoundCloud and Bandcamp tracks */
    {"https://soundcloud.com/artist-name/track_name-1", M2P_OK, M2P_SOURCE_SOUNDCLOUD,
     "soundcloud:artist-name/track_name-1", "https://soundcloud.com/artist-name/track_name-1"},
    {"https://m.soundcloud.com/Artist/Song?in=x", M2P_OK, M2P_SOURCE_SOUNDCLOUD, "soundcloud:artist/song",
     "https://soundcloud.com/artist/song"},
    {"https://someband.bandcamp.com/track/a-song", M2P_OK, M2P_SOURCE_BANDCAMP, "bandcamp:someband/a-song",
     "https://someband.bandcamp.com/track/a-song"},
    /* YouTube pages that are not one video */
    BAD("https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI", URL_PLAYLIST),
    BAD("https://www.youtube.com/watch?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI", URL_PLAYLIST),
    BAD("https://www.youtube.com/embed/videoseries?list=PLx", URL_PLAYLIST),
    BAD("https://www.youtube.com/@someone", URL_CHANNEL),
    BAD("https://www.youtube.com/@someone/videos", URL_CHANNEL),
    BAD("https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw", URL_CHANNEL),
    BAD("https://www.youtube.com/c/SomeName", URL_CHANNEL),
    BAD("https://www.youtube.com/user/someone", URL_CHANNEL),
    BAD("https://www.youtube.com/results?search_query=never+gonna", URL_SEARCH),
    BAD("https://www.youtube.com/", URL_NO_VIDEO),
    BAD("https://www.youtube.com/watch?v=short", URL_NO_VIDEO),
    BAD("https://www.youtube.com/watch?v=dQw4w9WgXcQQ", URL_NO_VIDEO),
    BAD("https://youtu.be/", URL_NO_VIDEO),
    BAD("https://www.youtube.com/feed/trending", URL_NO_VIDEO),
    /* SoundCloud and Bandcamp pages that are not one track */
    BAD("https://soundcloud.com/artist/sets/album", URL_PLAYLIST),
    BAD("https://soundcloud.com/artist", URL_CHANNEL),
    BAD("https://soundcloud.com/artist/likes", URL_CHANNEL),
    BAD("https://soundcloud.com/search?q=song", URL_SEARCH),
    BAD("https://someband.bandcamp.com/album/an-album", URL_PLAYLIST),
    BAD("https://someband.bandcamp.com/", URL_CHANNEL),
    /* empty, not a URL, too long */
    BAD("", URL_EMPTY),
    BAD("   \t\n", URL_EMPTY),
    BAD("hello world", URL_NOT_URL),
    BAD("never gonna give you up", URL_NOT_URL),
    BAD("https://", URL_NOT_URL),
    BAD("https://www.youtube.com\\@evil.com/watch?v=dQw4w9WgXcQ", URL_NOT_URL),
    BAD("https://www.youtube.com:8080/watch?v=dQw4w9WgXcQ", URL_NOT_URL),
    BAD("https://ex%61mple.com/", URL_NOT_URL),
    /* schemes */
    BAD("file:///etc/passwd", URL_SCHEME),
    BAD("ftp://example.com/song.mp3", URL_SCHEME),
    BAD("data:audio/mp3;base64,AAAA", URL_SCHEME),
    BAD("javascript:alert(1)", URL_SCHEME),
    BAD("gopher://example.com/", URL_SCHEME),
    BAD("ws://www.youtube.com/watch?v=dQw4w9WgXcQ", URL_SCHEME),
    /* credentials */
    BAD("https://user:pass@www.youtube.com/watch?v=dQw4w9WgXcQ", URL_CREDENTIALS),
    BAD("https://www.youtube.com@evil.example/watch?v=dQw4w9WgXcQ", URL_CREDENTIALS),
    /* IP literals, including the decimal/hex/octal spellings of 127.0.0.1 */
    BAD("http://8.8.8.8/", URL_IP_LITERAL),
    BAD("http://[2606:4700:4700::1111]/", URL_IP_LITERAL),
    BAD("http://134744072/", URL_IP_LITERAL),
    BAD("http://999.1.1.1/", URL_IP_LITERAL),
    BAD("http://2130706433/", URL_LOCALHOST),
    BAD("http://0x7f000001/", URL_LOCALHOST),
    BAD("http://017700000001/", URL_LOCALHOST),
    BAD("http://0x7f.1/", URL_LOCALHOST),
    BAD("http://127.1/", URL_LOCALHOST),
    BAD("http://127.0.0.1:8000/song", URL_LOCALHOST),
    BAD("http://[::1]/", URL_LOCALHOST),
    BAD("http://[::ffff:127.0.0.1]/", URL_LOCALHOST),
    /* localhost names */
    BAD("http://localhost/", URL_LOCALHOST),
    BAD("http://LOCALHOST:6379/", URL_LOCALHOST),
    BAD("localhost:6379", URL_LOCALHOST),
    BAD("http://foo.localhost/", URL_LOCALHOST),
    /* private, link-local, CGNAT, ULA, internal names */
    BAD("http://10.0.0.1/", URL_PRIVATE),
    BAD("http://172.16.5.4/", URL_PRIVATE),
    BAD("http://192.168.1.1/", URL_PRIVATE),
    BAD("http://169.254.169.254/latest/meta-data/", URL_PRIVATE),
    BAD("http://100.64.0.1/", URL_PRIVATE),
    BAD("http://0.0.0.0/", URL_PRIVATE),
    BAD("http://[fd00::1]/", URL_PRIVATE),
    BAD("http://[fe80::1%25eth0]/", URL_PRIVATE),
    BAD("http://[::ffff:10.0.0.1]/", URL_PRIVATE),
    BAD("10.0.0.1:6379", URL_PRIVATE),
    BAD("http://metadata.google.internal/", URL_PRIVATE),
    BAD("http://redis:6379/", URL_PRIVATE),
    BAD("http://printer.local/", URL_PRIVATE),
    /* manifests */
    BAD("https://cdn.example.com/live/stream.m3u8", URL_MANIFEST),
    BAD("https://www.youtube.com/api/manifest/dash/x.mpd", URL_MANIFEST),
    BAD("https://cdn.example.com/a/master.M3U8?token=1", URL_MANIFEST),
    /* other sites */
    BAD("https://vimeo.com/12345", URL_SITE_UNSUPPORTED),
    BAD("https://www.youtube.com.evil.example/watch?v=dQw4w9WgXcQ", URL_SITE_UNSUPPORTED),
    BAD("https://notyoutube.com/watch?v=dQw4w9WgXcQ", URL_SITE_UNSUPPORTED),
    BAD("https://a.b.bandcamp.com/track/x", URL_SITE_UNSUPPORTED),
};

static void check_case(const url_case *c, const m2p_config *cfg) {
    m2p_source src;
    m2p_error err;
    m2p_error_clear(&err);
    m2p_code rc = m2p_source_parse(c->input, cfg, false, &src, &err);
    if (rc != c->code) {
        fail_msg("input '%s': got %s (%s), want %s", c->input, m2p_errname(rc), err.detail, m2p_errname(c->code));
    }
    if (c->code == M2P_OK) {
        if (src.kind != c->kind || strcmp(src.id, c->id) != 0 || strcmp(src.url, c->url) != 0) {
            fail_msg("input '%s': got kind %s id '%s' url '%s', want %s '%s' '%s'", c->input,
                     m2p_source_kind_name(src.kind), src.id, src.url, m2p_source_kind_name(c->kind), c->id, c->url);
        }
        assert_true(m2p_source_is_remote(&src));
    }
}

static void all_sites(m2p_config *cfg) {
    m2p_config_defaults(cfg);
    m2p_error err;
    assert_int_equal(m2p_config_set(cfg, "allowed_sites", "youtube,soundcloud,bandcamp", &err), M2P_OK);
}

static void test_url_table(void **state) {
    (void)state;
    m2p_config cfg;
    all_sites(&cfg);
    size_t n = sizeof k_cases / sizeof k_cases[0];
    assert_true(n >= 40);
    for (size_t i = 0; i < n; i++) {
        check_case(&k_cases[i], &cfg);
    }
}

static void test_canonical_is_stable(void **state) {
    /* Parsing the canonical URL again gives the same source. */
    (void)state;
    m2p_config cfg;
    all_sites(&cfg);
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        if (k_cases[i].code != M2P_OK) {
            continue;
        }
        m2p_source a, b;
        assert_int_equal(m2p_source_parse(k_cases[i].input, &cfg, false, &a, NULL), M2P_OK);
        assert_int_equal(m2p_source_parse(a.url, &cfg, false, &b, NULL), M2P_OK);
        assert_string_equal(a.url, b.url);
        assert_string_equal(a.id, b.id);
    }
}

static void test_sites_disabled_by_default(void **state) {
    (void)state;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    m2p_source s;
    assert_int_equal(m2p_source_parse("https://soundcloud.com/artist/track", &cfg, false, &s, NULL),
                     M2P_E_URL_SITE_DISABLED);
    assert_int_equal(m2p_source_parse("https://someband.bandcamp.com/track/a-song", &cfg, false, &s, NULL),
                     M2P_E_URL_SITE_DISABLED);
    assert_int_equal(m2p_source_parse("https://youtu.be/dQw4w9WgXcQ", &cfg, false, &s, NULL), M2P_OK);
    m2p_error err;
    assert_int_equal(m2p_config_set(&cfg, "allowed_sites", "soundcloud", &err), M2P_OK);
    assert_int_equal(m2p_source_parse("https://youtu.be/dQw4w9WgXcQ", &cfg, false, &s, NULL), M2P_E_URL_SITE_DISABLED);
    assert_int_equal(m2p_source_parse("https://soundcloud.com/artist/track", &cfg, false, &s, NULL), M2P_OK);
}

static void test_too_long(void **state) {
    (void)state;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    size_t n = 5000;
    char *s = malloc(n + 1);
    assert_non_null(s);
    const char *prefix = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&x=";
    size_t plen = strlen(prefix);
    memcpy(s, prefix, plen);
    memset(s + plen, 'a', n - plen);
    s[n] = '\0';
    m2p_source src;
    assert_int_equal(m2p_source_parse(s, &cfg, false, &src, NULL), M2P_E_URL_TOO_LONG);
    s[2000] = '\0'; /* under the cap it parses */
    assert_int_equal(m2p_source_parse(s, &cfg, false, &src, NULL), M2P_OK);
    free(s);
    assert_int_equal(m2p_source_parse(NULL, &cfg, false, &src, NULL), M2P_E_URL_EMPTY);
}

static void test_loopback_only_when_enabled(void **state) {
    (void)state;
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    m2p_source s;
    const char *url = "http://127.0.0.1:8123/song";
    assert_int_equal(m2p_source_parse(url, &cfg, false, &s, NULL), M2P_E_URL_LOCALHOST);
    m2p_error err;
    assert_int_equal(m2p_config_set(&cfg, "unsafe_test_loopback", "true", &err), M2P_OK);
    assert_int_equal(m2p_source_parse(url, &cfg, false, &s, NULL), M2P_OK);
    assert_int_equal(s.kind, M2P_SOURCE_TEST_LOOPBACK);
    assert_string_equal(s.url, url);
    assert_true(strncmp(s.id, "test-", 5) == 0);
    /* Only 127.0.0.1 itself, only http with a port: other tricks still refused. */
    assert_int_equal(m2p_source_parse("http://2130706433:8123/song", &cfg, false, &s, NULL), M2P_E_URL_LOCALHOST);
    assert_int_equal(m2p_source_parse("http://10.0.0.1:8123/song", &cfg, false, &s, NULL), M2P_E_URL_PRIVATE);
    assert_int_equal(m2p_source_parse("http://127.0.0.1/song", &cfg, false, &s, NULL), M2P_E_URL_LOCALHOST);
    assert_int_equal(m2p_source_parse("http://u:p@127.0.0.1:8123/song", &cfg, false, &s, NULL), M2P_E_URL_CREDENTIALS);
}

static void test_paths(void **state) {
    (void)state;
    char dir[64];
    m2p_test_tmpdir(dir, sizeof dir);
    char path[160];
    snprintf(path, sizeof path, "%s/song.mp3", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
    m2p_config cfg;
    m2p_config_defaults(&cfg);
    m2p_source s;
    m2p_error err;
    assert_int_equal(m2p_source_parse(path, &cfg, true, &s, &err), M2P_OK);
    assert_int_equal(s.kind, M2P_SOURCE_FILE);
    assert_string_equal(s.path, path);
    assert_false(m2p_source_is_remote(&s));
    /* Paths are not accepted where only links are (the server). */
    assert_int_equal(m2p_source_parse(path, &cfg, false, &s, &err), M2P_E_URL_NOT_URL);
    assert_int_equal(m2p_source_parse(dir, &cfg, true, &s, &err), M2P_E_FILE_NOT_REGULAR);
    assert_int_equal(m2p_source_parse("/no/such/song.mp3", &cfg, true, &s, &err), M2P_E_FILE_NOT_FOUND);
    assert_int_equal(m2p_source_parse("missing-song.flac", &cfg, true, &s, &err), M2P_E_FILE_NOT_FOUND);
    /* URLs still parse as URLs when paths are allowed. */
    assert_int_equal(m2p_source_parse("https://youtu.be/dQw4w9WgXcQ", &cfg, true, &s, &err), M2P_OK);
    assert_int_equal(s.kind, M2P_SOURCE_YOUTUBE);
    assert_int_equal(m2p_source_parse("file:///etc/passwd", &cfg, true, &s, &err), M2P_E_URL_SCHEME);
    m2p_test_rmdir(dir);
}

static void test_upload(void **state) {
    (void)state;
    m2p_source s;
    const char *h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert_int_equal(m2p_source_upload(h, "/tmp/x", &s, NULL), M2P_OK);
    assert_int_equal(s.kind, M2P_SOURCE_UPLOAD);
    assert_string_equal(s.id, h);
    assert_string_equal(m2p_source_kind_name(s.kind), "upload");
    assert_false(m2p_source_is_remote(&s));
    assert_int_equal(m2p_source_upload("../etc", NULL, &s, NULL), M2P_E_INVALID_ARG);
    assert_int_equal(
        m2p_source_upload("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", NULL, &s, NULL),
        M2P_E_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_canonical_is_stable),
        cmocka_unit_test(test_sites_disabled_by_default),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_loopback_only_when_enabled),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_upload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
