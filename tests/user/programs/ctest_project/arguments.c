/* CTest passes the arguments through the emulator unchanged. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc != 4 || strcmp(argv[1], "two words") || strcmp(argv[2], "--flag") || strcmp(argv[3], "")) {
        fprintf(stderr, "unexpected arguments (%d)\n", argc);
        return 1;
    }
    puts("arguments ok");
    return 0;
}
