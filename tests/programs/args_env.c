/* The initial process stack as the kernel lays it out: argc, argv (with the terminating NULL), the environment
 * and the auxiliary vector. Only EMU_TEST_* variables are printed, sorted, because the emulator's own
 * environment may differ in other variables and in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

extern char **environ;

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv, char **envp)
{
    printf("argc=%d argv[argc]=%s\n", argc, argv[argc] == NULL ? "NULL" : "not NULL");
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=<%s> (%zu bytes)\n", i, argv[i], strlen(argv[i]));

    const char *value = getenv("EMU_TEST_VAR");
    printf("EMU_TEST_VAR=%s\n", value ? value : "(unset)");
    printf("EMU_TEST_UNSET=%s\n", getenv("EMU_TEST_UNSET") ? "set" : "(unset)");
    printf("envp is environ: %d\n", envp == environ);

    const char *matching[64];
    int n = 0;
    for (char **e = envp; *e != NULL && n < 64; e++)
        if (strncmp(*e, "EMU_TEST_", 9) == 0)
            matching[n++] = *e;
    qsort(matching, (size_t)n, sizeof(matching[0]), by_string);
    for (int i = 0; i < n; i++)
        printf("env: %s\n", matching[i]);

    printf("AT_PAGESZ=%lu AT_SECURE=%lu AT_RANDOM present=%d\n", getauxval(AT_PAGESZ), getauxval(AT_SECURE),
           getauxval(AT_RANDOM) != 0);
    return 0;
}
