#include <stdio.h>
int main(void) {
    puts("hello from x86-64");
    return 0;
}
