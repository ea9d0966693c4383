/* Write a file in the build tree, read it back, remove it. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%d squares: %d\n", 12, 12 * 12) < 0 || fclose(f)) return 1;
    char line[64] = {0};
    f = fopen(argv[1], "r");
    if (!f || !fgets(line, sizeof line, f)) return 1;
    fclose(f);
    remove(argv[1]);
    printf("read back: %s", line);
    return strcmp(line, "12 squares: 144\n") != 0;
}
