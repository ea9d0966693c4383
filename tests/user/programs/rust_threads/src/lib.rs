//! Threads from Rust's standard library, run by emu as a `cargo test --no-run` binary (libtest itself
//! runs each test on a thread of its own).

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread;

    #[test]
    fn spawn_and_join_results() {
        let handles: Vec<_> = (0..8u64).map(|i| thread::spawn(move || i * i)).collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 140);
    }

    #[test]
    fn mutex_counter_in_arc() {
        let counter = Arc::new(Mutex::new(0u32));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    for _ in 0..500 {
                        *counter.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*counter.lock().unwrap(), 3000);
    }

    #[test]
    fn channels_between_threads() {
        let (tx, rx) = mpsc::channel();
        for id in 0..4u32 {
            let tx = tx.clone();
            thread::spawn(move || {
                for n in 0..25u32 {
                    tx.send(id * 100 + n).unwrap();
                }
            });
        }
        drop(tx);
        let got: Vec<u32> = rx.iter().collect();
        assert_eq!(got.len(), 100);
        assert_eq!(got.iter().sum::<u32>(), 16200);
    }

    #[test]
    fn condvar_and_atomics() {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let pair = Arc::clone(&pair);
            let hits = Arc::clone(&hits);
            thread::spawn(move || {
                let (lock, ready) = &*pair;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = ready.wait(go).unwrap();
                }
                hits.fetch_add(1, Ordering::SeqCst)
            })
        };
        hits.fetch_add(10, Ordering::SeqCst);
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        assert_eq!(waiter.join().unwrap(), 10);
        assert_eq!(hits.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn thread_names_and_scoped_threads() {
        let mut data = vec![1, 2, 3, 4];
        thread::scope(|s| {
            for x in data.iter_mut() {
                s.spawn(move || *x *= 10);
            }
        });
        assert_eq!(data, vec![10, 20, 30, 40]);
        let name = thread::Builder::new()
            .name("worker-7".into())
            .spawn(|| thread::current().name().unwrap().to_string())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(name, "worker-7");
    }
}
