/* C string and memory functions (glibc picks SSE2/AVX2/EVEX variants through IFUNC, so every comparison result is
 * printed as its sign only), number parsing with strtol/strtoul/strtod and formatting with snprintf/sscanf. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void lengths_and_searches(void)
{
    static const char *const words[] = {"", "a", "hello", "hello, world", "0123456789abcdef0123456789abcdef!",
                                        "a much longer string that crosses several sixteen byte boundaries......"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        const char *w = words[i];
        const char *comma = strchr(w, ',');
        const char *last_a = strrchr(w, 'a');
        const char *nul = strchr(w, '\0');
        printf("strlen=%zu strnlen4=%zu comma@%td last_a@%td nul@%td span=%zu cspan=%zu\n", strlen(w), strnlen(w, 4),
               comma ? comma - w : -1, last_a ? last_a - w : -1, nul - w, strspn(w, "abcdefhlo"), strcspn(w, " !"));
    }

    const char *hay = "the quick brown fox jumps over the lazy dog; the end";
    static const char *const needles[] = {"the", "fox", "lazy dog", "dog;", "cat", "", "end", "the end!"};
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++) {
        const char *hit = strstr(hay, needles[i]);
        printf("strstr(%s)=%td\n", needles[i], hit ? hit - hay : -1);
    }
}

static void comparisons(void)
{
    static const char *const pairs[][2] = {
        {"abc", "abc"}, {"abc", "abd"}, {"abd", "abc"}, {"ab", "abc"}, {"", ""}, {"\x80", "\x7f"},
        {"Hello", "hello"}, {"same prefix, long enough to use vectors: x", "same prefix, long enough to use vectors: y"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *a = pairs[i][0], *b = pairs[i][1];
        printf("cmp %zu: strcmp=%d strncmp2=%d strcasecmp=%d memcmp=%d\n", i, sign(strcmp(a, b)),
               sign(strncmp(a, b, 2)), sign(strcasecmp(a, b)), sign(memcmp(a, b, strlen(a) < strlen(b) ? strlen(a)
                                                                                                       : strlen(b))));
    }
}

static void memory_moves(void)
{
    unsigned char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)i;

    memmove(buf + 10, buf, 100); /* overlapping, forward */
    memmove(buf + 150, buf + 160, 90); /* overlapping, backward */
    memset(buf + 3, 0xee, 5);
    memcpy(buf + 120, "copied!", 7);
    unsigned sum = 0;
    for (int i = 0; i < 256; i++)
        sum = sum * 33 + buf[i];
    printf("memmove: %u %u %u %u %u sum=%08x\n", buf[9], buf[10], buf[109], buf[150], buf[239], sum);

    char big[5000], copy[5000];
    for (size_t len = 0; len < sizeof(big); len = len * 3 + 1) {
        memset(big, 'a' + (int)(len % 26), len);
        memcpy(copy, big, len);
        copy[len] = big[len] = '\0';
        if (len > 0)
            copy[len - 1] = '!';
        const char *found = memchr(copy, '!', len);
        printf("len %zu: memcmp=%d strlen=%zu memchr=%td\n", len, sign(memcmp(big, copy, len)), strlen(copy),
               found ? found - copy : -1);
    }
}

static void parsing(void)
{
    static const char *const inputs[] = {"42", "-17xyz", "  +0x1fZ", "0777", "9223372036854775807",
                                         "9223372036854775808", "-9223372036854775809", "zz", "0b101"};
    static const int bases[] = {10, 10, 0, 0, 10, 10, 10, 36, 0};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        char *end;
        errno = 0;
        long v = strtol(inputs[i], &end, bases[i]);
        int err = errno;
        printf("strtol(\"%s\", %d) = %ld, consumed %td, erange=%d\n", inputs[i], bases[i], v, end - inputs[i],
               err == ERANGE);
    }
    errno = 0;
    unsigned long u = strtoul("18446744073709551615", NULL, 10);
    int err = errno;
    printf("strtoul max = %lu errno=%d, strtoul(-1) = %lu\n", u, err, strtoul("-1", NULL, 10));
    printf("strtod: %.17g %.17g %g %g\n", strtod("3.14159265358979", NULL), strtod("1e-5", NULL),
           strtod("-0x1.8p3", NULL), strtod("inf", NULL));
    printf("atoi: %d %d\n", atoi("  123abc"), atoi("-2147483648"));

    int day, year, n;
    char month[16];
    unsigned hex;
    double ratio;
    int matched = sscanf("Date: 14 March 2015 ff 0.625 tail", "Date: %d %15s %d %x %lf%n", &day, month, &year, &hex,
                         &ratio, &n);
    printf("sscanf matched=%d day=%d month=%s year=%d hex=%u ratio=%g consumed=%d\n", matched, day, month, year, hex,
           ratio, n);
    printf("sscanf partial=%d\n", sscanf("12 abc", "%d %d", &day, &year));
}

static void formatting(void)
{
    char small[8];
    int needed = snprintf(small, sizeof(small), "%s-%d", "truncated", 12345);
    printf("snprintf needed=%d got=\"%s\"\n", needed, small);
    char line[128];
    snprintf(line, sizeof(line), "[%5s|%-5s|%.2s|%c|%%|%5.1f]", "ab", "cd", "efgh", 'x', 2.25);
    printf("%s\n", line);

    char joined[64] = "start";
    strcat(joined, "+more");
    strncat(joined, "+partial", 4);
    char dup[64];
    strcpy(dup, joined);
    char *saved = strdup(dup);
    printf("joined=%s dup=%s saved=%s\n", joined, dup, saved);
    free(saved);

    char text[] = "alpha,beta,,gamma;delta";
    for (char *state, *tok = strtok_r(text, ",;", &state); tok; tok = strtok_r(NULL, ",;", &state))
        printf("token <%s>\n", tok);
}

int main(void)
{
    lengths_and_searches();
    comparisons();
    memory_moves();
    parsing();
    formatting();
    return 0;
}
