// Goroutines on several OS threads: channels, sync.WaitGroup, a mutex, atomics, locked threads, timers,
// run by emu as a `go test -c` binary.
package gothreads

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestChannelsPipeline(t *testing.T) {
	numbers := make(chan int)
	squares := make(chan int, 4)
	go func() {
		for i := 1; i <= 100; i++ {
			numbers <- i
		}
		close(numbers)
	}()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range numbers {
				squares <- n * n
			}
		}()
	}
	go func() { wg.Wait(); close(squares) }()
	sum := 0
	for s := range squares {
		sum += s
	}
	if sum != 338350 {
		t.Fatalf("sum of squares 1..100 = %d, want 338350", sum)
	}
}

func TestMutexAndAtomics(t *testing.T) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var plain, atomicCount int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				plain++
				mu.Unlock()
				atomic.AddInt64(&atomicCount, 1)
				if i%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	if plain != 8000 || atomicCount != 8000 {
		t.Fatalf("counts %d and %d, want 8000", plain, atomicCount)
	}
}

func TestLockedThreads(t *testing.T) {
	results := make(chan int, 4)
	for g := 0; g < 4; g++ {
		go func(id int) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			results <- id
		}(g)
	}
	seen := 0
	for i := 0; i < 4; i++ {
		seen |= 1 << <-results
	}
	if seen != 15 {
		t.Fatalf("goroutines seen %b, want 1111", seen)
	}
}

func TestTimersAndSleep(t *testing.T) {
	start := time.Now()
	time.Sleep(2 * time.Millisecond)
	if time.Since(start) < 2*time.Millisecond {
		t.Fatal("time.Sleep returned early")
	}
	select {
	case <-time.After(5 * time.Millisecond):
	case <-time.After(10 * time.Second):
		t.Fatal("the shorter timer did not fire first")
	}
	ticker := time.NewTicker(time.Millisecond)
	for i := 0; i < 3; i++ {
		<-ticker.C
	}
	ticker.Stop()
}
