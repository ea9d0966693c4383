/* Returning from main: the C runtime passes main's result to exit. */
#include <stdio.h>

int main(void)
{
    puts("returning 3 from main");
    return 3;
}
