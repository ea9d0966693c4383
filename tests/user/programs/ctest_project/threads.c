/* Four threads sum parts of a range under a mutex. */
#include <pthread.h>
#include <stdio.h>

static long total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg) {
    long first = (long)arg * 1000, sum = 0;
    for (long i = first; i < first + 1000; i++) sum += i;
    pthread_mutex_lock(&lock);
    total += sum;
    pthread_mutex_unlock(&lock);
    return 0;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        if (pthread_create(&t[i], 0, work, (void *)i)) { perror("pthread_create"); return 1; }
    for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
    printf("total %ld\n", total);
    return total != 3999L * 4000 / 2;
}
