/* Registered with WILL_FAIL: the test passes only if the exit status 3 reaches CTest through emu. */
int main(void) {
    return 3;
}
