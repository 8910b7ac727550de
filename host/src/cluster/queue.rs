//! A queue between the node and Redis, bounded in messages and in bytes,
//! taken whole by its one consumer.

use parking_lot::Mutex;
use tokio::sync::Notify;

/// A multi-producer, single-consumer queue that refuses what does not fit.
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    pending: Mutex<Pending<T>>,
    /// Wakes the consumer; a permit is kept when it is not waiting.
    ready: Notify,
    max_items: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct Pending<T> {
    items: Vec<T>,
    bytes: usize,
}

impl<T> BoundedQueue<T> {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> BoundedQueue<T> {
        BoundedQueue {
            pending: Mutex::new(Pending { items: Vec::new(), bytes: 0 }),
            ready: Notify::new(),
            max_items,
            max_bytes,
        }
    }

    /// Queue `item` of `bytes` bytes; false (and `item` dropped) when the
    /// queue is full in either measure.
    pub(crate) fn push(&self, item: T, bytes: usize) -> bool {
        {
            let mut pending = self.pending.lock();
            if pending.items.len() >= self.max_items || pending.bytes + bytes > self.max_bytes {
                return false;
            }
            pending.items.push(item);
            pending.bytes += bytes;
        }
        self.ready.notify_one();
        true
    }

    /// Everything queued, oldest first, once there is something.
    pub(crate) async fn take_all(&self) -> Vec<T> {
        loop {
            {
                let mut pending = self.pending.lock();
                if !pending.items.is_empty() {
                    pending.bytes = 0;
                    return std::mem::take(&mut pending.items);
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_either_bound_and_hands_out_in_order() {
        let queue = BoundedQueue::new(3, 10);
        assert!(queue.push("a", 4));
        assert!(queue.push("b", 6));
        assert!(!queue.push("c", 1), "10 bytes are queued already");
        assert_eq!(queue.take_all().await, vec!["a", "b"]);
        assert!(queue.push("c", 1) && queue.push("d", 1) && queue.push("e", 1));
        assert!(!queue.push("f", 0), "3 messages are queued already");
        assert_eq!(queue.take_all().await, vec!["c", "d", "e"]);
    }
}
