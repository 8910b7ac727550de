//! A connection's queue of outgoing frames: any task may add to it, the
//! connection's own task takes everything queued at once and writes it.
//!
//! Not tokio's bounded `mpsc`: a fan-out to 10,000 connections touches each
//! one's queue once, and at that size every touch is a cache miss. A send
//! on tokio's channel touches five cache lines (the semaphore, the tail,
//! the slot, the block's ready bits, the receiver's waker, each padded apart
//! so that threads do not contend); everything a send here needs is in one
//! 64-byte line. The reader swaps its empty buffer for the full one, so it
//! takes one lock per batch instead of one per frame.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::deflate::Deflate;

/// A frame in a connection's queue.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A frame for this connection alone.
    Own(Message),
    /// One message for many connections (a fan-out), so that it is
    /// compressed at most once: by the first recipient that speaks
    /// permessage-deflate, when it writes it; the others share the result.
    /// Which recipients do is theirs to know: the publisher touches nothing
    /// of a recipient but its queue.
    Shared(Arc<SharedFrame>),
}

#[derive(Debug)]
pub(crate) struct SharedFrame {
    message: Message,
    /// The message as deflate-speaking recipients get it.
    deflated: OnceLock<Message>,
}

impl Outgoing {
    /// A message for many: clone the result for each.
    pub(crate) fn shared(message: Message) -> Outgoing {
        Outgoing::Shared(Arc::new(SharedFrame { message, deflated: OnceLock::new() }))
    }

    pub(crate) fn message(&self) -> &Message {
        match self {
            Outgoing::Own(message) => message,
            Outgoing::Shared(shared) => &shared.message,
        }
    }

    /// The frame to write to a connection that speaks `deflate`, if any.
    pub(crate) fn into_message(self, deflate: Option<Deflate>) -> Message {
        match (self, deflate) {
            (Outgoing::Own(message), None) => message,
            (Outgoing::Own(message), Some(deflate)) => deflate.frame(&message),
            (Outgoing::Shared(shared), None) => shared.message.clone(),
            (Outgoing::Shared(shared), Some(deflate)) => {
                shared.deflated.get_or_init(|| deflate.frame(&shared.message)).clone()
            }
        }
    }
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Outgoing {
        Outgoing::Own(message)
    }
}

impl PartialEq<Message> for Outgoing {
    fn eq(&self, other: &Message) -> bool {
        self.message() == other
    }
}

/// A batch the reader keeps for next time, up to this many frames of
/// capacity; a larger one (after a burst) is freed so that an idle
/// connection does not hold a burst's worth of memory.
const KEEP_CAPACITY: usize = 64;

/// Frames waiting for one connection's task. Aligned to a cache line, so
/// that a fan-out reads exactly one line per recipient.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Outbox {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Queued frames, oldest first. Starts without an allocation: an idle
    /// connection's queue costs nothing beyond this struct.
    frames: VecDeque<Outgoing>,
    /// The connection task, when it waits for frames.
    reader: Option<Waker>,
    /// Most frames queued at once; 0 once the connection takes no more
    /// frames (closed), which saves a flag and keeps the queue in one line.
    capacity: u32,
    /// Payload bytes that may still be queued: a client that does not read
    /// cannot make the server's memory grow past `capacity` frames and the
    /// byte budget (plus one batch being written). Reset by the reader when
    /// it takes the queue.
    bytes_left: u32,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its most frames or bytes: the client does not keep up.
    Full,
    /// The connection is closing or gone.
    Closed,
}

impl Outbox {
    /// A queue of at most `frames` frames and `bytes` payload bytes.
    pub(crate) fn new(frames: usize, bytes: usize) -> Outbox {
        let capacity = u32::try_from(frames.max(1)).unwrap_or(u32::MAX);
        let bytes_left = clamp_bytes(bytes);
        Outbox { state: Mutex::new(State { frames: VecDeque::new(), reader: None, capacity, bytes_left }) }
    }

    /// Queue a frame and wake the reader if it waits.
    pub(crate) fn push(&self, frame: Outgoing) -> Result<(), Refused> {
        let size = u32::try_from(frame.message().len()).unwrap_or(u32::MAX);
        let reader = {
            let mut state = self.state.lock();
            if state.capacity == 0 {
                return Err(Refused::Closed);
            }
            if state.frames.len() >= state.capacity as usize || size > state.bytes_left {
                return Err(Refused::Full);
            }
            state.bytes_left -= size;
            state.frames.push_back(frame);
            state.reader.take()
        };
        // Woken outside the lock: the reader's first move is to take it.
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// Wait until frames are queued, then move all of them into `batch`,
    /// which must be empty (its allocation is handed back to the queue).
    /// `bytes` is the queue's byte budget, which the empty queue gets back.
    pub(crate) async fn take(&self, batch: &mut VecDeque<Outgoing>, bytes: usize) {
        poll_fn(|cx| self.poll_take(cx, batch, bytes)).await;
    }

    fn poll_take(&self, cx: &mut Context<'_>, batch: &mut VecDeque<Outgoing>, bytes: usize) -> Poll<()> {
        debug_assert!(batch.is_empty(), "the previous batch was not written");
        if batch.capacity() > KEEP_CAPACITY {
            *batch = VecDeque::new();
        }
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            match &mut state.reader {
                Some(reader) if reader.will_wake(cx.waker()) => {}
                reader => *reader = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        std::mem::swap(&mut state.frames, batch);
        state.bytes_left = clamp_bytes(bytes);
        Poll::Ready(())
    }

    /// Take whatever is queued, without waiting (for the test kit, which
    /// reads a connection's frames after each step instead of waiting).
    pub(crate) fn take_now(&self, bytes: usize) -> VecDeque<Outgoing> {
        let mut state = self.state.lock();
        state.bytes_left = clamp_bytes(bytes);
        std::mem::take(&mut state.frames)
    }

    /// Stop waking the reader until it waits again: for a reader that will
    /// look at the queue anyway before it waits.
    pub(crate) fn forget_reader(&self) {
        self.state.lock().reader = None;
    }

    /// Take no more frames; returns those still queued.
    pub(crate) fn close(&self) -> VecDeque<Outgoing> {
        let mut state = self.state.lock();
        state.capacity = 0;
        state.reader = None;
        std::mem::take(&mut state.frames)
    }
}

fn clamp_bytes(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn fits_in_one_cache_line() {
        assert_eq!(std::mem::size_of::<Outbox>(), 64);
    }

    #[test]
    fn refuses_past_its_capacity_and_after_close() {
        let outbox = Outbox::new(2, 1 << 20);
        assert_eq!(outbox.push(Message::text("a").into()), Ok(()));
        assert_eq!(outbox.push(Message::text("b").into()), Ok(()));
        assert_eq!(outbox.push(Message::text("c").into()), Err(Refused::Full));
        let left = outbox.close();
        assert_eq!(left, [Message::text("a"), Message::text("b")]);
        assert_eq!(outbox.push(Message::text("d").into()), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_waiting_reader_gets_the_whole_queue_in_order() {
        let outbox = Arc::new(Outbox::new(8, 1 << 20));
        let writer = Arc::clone(&outbox);
        let reader = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            let mut got = Vec::new();
            while got.len() < 5 {
                outbox.take(&mut batch, 1 << 20).await;
                got.extend(batch.drain(..));
            }
            got
        });
        for text in ["1", "2", "3", "4", "5"] {
            writer.push(Message::text(text).into()).expect("room in the queue");
            tokio::task::yield_now().await;
        }
        let got = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("reader woken").expect("reader");
        assert_eq!(got, ["1", "2", "3", "4", "5"].map(Message::text));
    }

    #[test]
    fn refuses_past_its_byte_budget_until_the_reader_takes_the_queue() {
        let outbox = Outbox::new(100, 10);
        assert_eq!(outbox.push(Message::binary(vec![0; 6]).into()), Ok(()));
        assert_eq!(outbox.push(Message::binary(vec![0; 5]).into()), Err(Refused::Full), "6 + 5 bytes > 10");
        assert_eq!(outbox.push(Message::binary(vec![0; 4]).into()), Ok(()), "6 + 4 bytes fit");
        let mut batch = VecDeque::new();
        assert!(outbox.poll_take(&mut Context::from_waker(Waker::noop()), &mut batch, 10).is_ready());
        assert_eq!(batch.len(), 2);
        assert_eq!(outbox.push(Message::binary(vec![0; 10]).into()), Ok(()), "the budget is back once taken");
    }

    #[test]
    fn a_shared_frame_is_compressed_once_for_all_its_recipients() {
        let deflate = Deflate::new(&crate::config::Compression::default());
        let message = Message::text("a message long enough to be worth compressing, ".repeat(10));
        let shared = Outgoing::shared(message.clone());
        let (first, second) = (shared.clone().into_message(Some(deflate)), shared.clone().into_message(Some(deflate)));
        let (Message::Frame(first), Message::Frame(second)) = (first, second) else { panic!("not compressed") };
        assert_eq!(first.payload().as_ptr(), second.payload().as_ptr(), "the same bytes, not a second compression");
        assert_eq!(shared.into_message(None), message, "a recipient without deflate gets the message as it is");
        // A frame for one connection is compressed for it.
        assert!(matches!(Outgoing::from(message).into_message(Some(deflate)), Message::Frame(_)));
    }

    #[test]
    fn frees_a_burst_sized_batch() {
        let outbox = Outbox::new(1000, 1 << 20);
        let mut batch = VecDeque::with_capacity(KEEP_CAPACITY * 4);
        outbox.push(Message::text("x").into()).expect("room in the queue");
        let waker = Waker::noop();
        assert!(outbox.poll_take(&mut Context::from_waker(waker), &mut batch, 1 << 20).is_ready());
        assert_eq!(batch.len(), 1);
        // The queue got the reader's empty buffer, not the oversized one.
        assert!(outbox.state.lock().frames.capacity() <= KEEP_CAPACITY);
    }
}
