/* Output to both streams: buffered stdout, unbuffered stderr through stdio, perror and a raw write(2), then a
 * non-zero exit status. The streams are captured separately, so their relative order does not matter. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    printf("to stdout, line 1\n");
    fprintf(stderr, "to stderr via fprintf: %d %s\n", 42, "warning");
    FILE *missing = fopen("/nonexistent/emu-test-file", "r");
    if (missing == NULL)
        perror("fopen /nonexistent/emu-test-file");
    static const char raw[] = "to stderr via write(2)\n";
    if (write(STDERR_FILENO, raw, strlen(raw)) < 0)
        return 2;
    fputs("to stdout, line 2\n", stdout);
    fputc('!', stderr);
    fputc('\n', stderr);
    return 1;
}
