/* File I/O inside the directory given as argv[1]: stdio (fopen/fwrite/fread/fseek/ftell/fprintf/fgets, append
 * mode), POSIX calls (open/write/lseek/pread/stat/rename/mkdir/rmdir/unlink) and a sorted directory listing.
 * Everything it creates is removed again, and no path or timestamp is printed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { BLOCK = 10000 };

static int failed;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s (%s)\n", what, strerror(errno));
        failed = 1;
    }
}

static void binary_file(void)
{
    static unsigned char out[BLOCK], in[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        out[i] = (unsigned char)(i * 31 + 7);

    FILE *f = fopen("data.bin", "wb");
    check(f != NULL, "fopen data.bin for writing");
    printf("fwrite wrote %zu items\n", fwrite(out, 1, BLOCK, f));
    printf("ftell after write = %ld\n", ftell(f));
    check(fclose(f) == 0, "fclose data.bin");

    f = fopen("data.bin", "rb");
    check(f != NULL, "fopen data.bin for reading");
    check(fseek(f, 0, SEEK_END) == 0, "fseek to end");
    printf("size via fseek/ftell = %ld\n", ftell(f));
    check(fseek(f, 4096, SEEK_SET) == 0, "fseek to 4096");
    size_t got = fread(in, 1, 100, f);
    printf("read %zu bytes at 4096, match=%d, now at %ld\n", got, memcmp(in, out + 4096, 100) == 0, ftell(f));
    check(fseek(f, -10, SEEK_CUR) == 0, "fseek back 10");
    long position = ftell(f);
    printf("after SEEK_CUR -10: %ld, next byte %d (expected %d)\n", position, fgetc(f), out[4186]);
    rewind(f);
    got = fread(in, 1, BLOCK + 50, f);
    printf("full read %zu bytes, match=%d, eof=%d\n", got, memcmp(in, out, BLOCK) == 0, feof(f) != 0);
    check(fclose(f) == 0, "fclose data.bin after reading");
}

static void text_file(void)
{
    FILE *f = fopen("notes.txt", "w");
    check(f != NULL, "fopen notes.txt");
    for (int i = 1; i <= 5; i++)
        fprintf(f, "line %d: %s %5.2f\n", i, i % 2 ? "odd" : "even", i * 1.25);
    fclose(f);

    f = fopen("notes.txt", "a");
    check(f != NULL, "fopen notes.txt for append");
    fputs("appended line\n", f);
    fclose(f);

    f = fopen("notes.txt", "r");
    check(f != NULL, "fopen notes.txt for reading");
    char line[128];
    int count = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        printf("%d> %s", ++count, line);
    fclose(f);
}

static void posix_calls(void)
{
    int fd = open("raw.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
    check(fd >= 0, "open raw.dat");
    check(write(fd, "0123456789", 10) == 10, "write raw.dat");
    printf("lseek to 100 = %ld\n", (long)lseek(fd, 100, SEEK_SET));
    check(write(fd, "tail", 4) == 4, "write after hole");
    char buf[8] = {0};
    printf("pread at 3 = %zd \"%.4s\"\n", pread(fd, buf, 4, 3), buf);
    ssize_t got = pread(fd, buf, 1, 50);
    printf("read in the hole = %zd, byte %d\n", got, buf[0]);
    check(close(fd) == 0, "close raw.dat");

    struct stat st;
    check(stat("raw.dat", &st) == 0, "stat raw.dat");
    printf("stat size=%ld regular=%d mode=%o\n", (long)st.st_size, S_ISREG(st.st_mode), st.st_mode & 0777);
    check(rename("raw.dat", "renamed.dat") == 0, "rename");
    int result = stat("raw.dat", &st);
    printf("stat old name: %d (%s)\n", result, strerror(errno));

    check(mkdir("subdir", 0755) == 0, "mkdir subdir");
    check(stat("subdir", &st) == 0 && S_ISDIR(st.st_mode), "subdir is a directory");
    FILE *f = fopen("subdir/inner.txt", "w");
    check(f != NULL, "fopen subdir/inner.txt");
    fclose(f);
    errno = 0;
    FILE *missing = fopen("no/such/file", "r");
    printf("fopen missing: %s, errno=%s\n", missing ? "opened" : "NULL", strerror(errno));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void listing(const char *path)
{
    DIR *dir = opendir(path);
    check(dir != NULL, "opendir");
    char *names[32];
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && n < 32) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            names[n++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof(names[0]), by_name);
    printf("listing of %s:", path);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fileio DIRECTORY\n");
        return 2;
    }
    umask(022);
    if (chdir(argv[1]) != 0) {
        perror("chdir");
        return 2;
    }
    binary_file();
    text_file();
    posix_calls();
    listing(".");
    listing("subdir");

    check(unlink("subdir/inner.txt") == 0, "unlink subdir/inner.txt");
    check(rmdir("subdir") == 0, "rmdir subdir");
    check(unlink("data.bin") == 0 && unlink("notes.txt") == 0 && unlink("renamed.dat") == 0, "unlink files");
    int result = unlink("data.bin");
    printf("unlink again: %d (%s)\n", result, strerror(errno));
    listing(".");
    return failed;
}
