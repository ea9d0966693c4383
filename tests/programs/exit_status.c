/* exit() with the status given as argv[1]; stdout is still flushed by exit. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int status = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with status %d\n", status);
    exit(status);
}
