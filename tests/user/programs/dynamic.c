/* A dynamically linked program: what the dynamic linker and the kernel gave it (the auxiliary vector, the
   mappings, /proc/self), printed so that a native and an emulated run can be compared line by line. */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static int in_mapping(uintptr_t address, const char *perms) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &start, &end, p) == 3 && start <= address && address < end)
            found = strncmp(p, perms, 4) == 0;
    }
    if (maps)
        fclose(maps);
    return found;
}

static int count_objects(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    *(int *)data += strchr(info->dlpi_name, '/') != NULL;   /* shared objects from files: not the vDSO */
    return 0;
}

int main(int argc, char **argv) {
    extern char _start[];
    printf("argc=%d sqrt(2)=%.6f\n", argc, sqrt(argc + 1.0));
    printf("AT_PAGESZ=%lu AT_PHENT=%lu AT_SECURE=%lu\n", getauxval(AT_PAGESZ), getauxval(AT_PHENT),
           getauxval(AT_SECURE));
    printf("AT_ENTRY is _start: %d\n", getauxval(AT_ENTRY) == (uintptr_t)_start);
    printf("AT_BASE set: %d, AT_RANDOM set: %d\n", getauxval(AT_BASE) != 0, getauxval(AT_RANDOM) != 0);
    printf("AT_EXECFN=%s\n", (char *)getauxval(AT_EXECFN));
    printf("AT_UID matches: %d\n", getauxval(AT_UID) == getuid());
    const ElfW(Phdr) *phdr = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    int loads = 0;
    for (unsigned long i = 0; i < getauxval(AT_PHNUM); i++)
        loads += phdr[i].p_type == PT_LOAD;
    printf("PT_LOAD segments: %d\n", loads);
    int objects = 0;
    dl_iterate_phdr(count_objects, &objects);
    printf("shared objects from files: %d\n", objects);
    printf("main in r-xp: %d, a global in rw-p: %d, the stack in rw-p: %d\n",
           in_mapping((uintptr_t)main, "r-xp"), in_mapping((uintptr_t)&loads, "rw-p"),
           in_mapping((uintptr_t)&objects, "rw-p"));
    char exe[4096], real[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("/proc/self/exe is argv[0]: %d\n", realpath(argv[0], real) && strcmp(exe, real) == 0);
    FILE *auxv = fopen("/proc/self/auxv", "rb");
    ElfW(auxv_t) entry;
    unsigned long pagesz = 0;
    while (auxv && fread(&entry, sizeof entry, 1, auxv) == 1 && entry.a_type != AT_NULL)
        if (entry.a_type == AT_PAGESZ)
            pagesz = entry.a_un.a_val;
    printf("/proc/self/auxv AT_PAGESZ=%lu\n", pagesz);
    return argc == 1 ? 0 : 7;
}
