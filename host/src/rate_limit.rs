//! A token bucket: how many messages a client may send, how many log
//! records a plugin may write.

use std::time::Instant;

/// Refills `rate` tokens per second up to `burst`; each message takes one.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    /// Messages refused since the bucket was last non-empty: sustained
    /// abuse, as opposed to one burst too many, gets the client dropped.
    refused_in_a_row: u32,
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit: hand it to the plugin.
    Allow,
    /// Over the limit: drop it and tell the client (once per episode).
    Refuse { first: bool },
    /// Over the limit for a whole burst's worth of messages: disconnect.
    Disconnect,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            refilled: Instant::now(),
            refused_in_a_row: 0,
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        if f64::from(self.refused_in_a_row) > self.burst {
            Verdict::Disconnect
        } else {
            Verdict::Refuse { first: self.refused_in_a_row == 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3);
        assert_eq!(bucket.take(start), Verdict::Allow);
        assert_eq!(bucket.take(start), Verdict::Allow);
        assert_eq!(bucket.take(start), Verdict::Allow);
        assert_eq!(bucket.take(start), Verdict::Refuse { first: true });
        assert_eq!(bucket.take(start), Verdict::Refuse { first: false });
        // A tenth of a second later one more token has dripped in.
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Verdict::Allow);
    }

    #[test]
    fn sustained_abuse_disconnects() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1, 2);
        let verdicts: Vec<Verdict> = (0..6).map(|_| bucket.take(start)).collect();
        assert_eq!(verdicts[..2], [Verdict::Allow, Verdict::Allow]);
        assert_eq!(verdicts[2..4], [Verdict::Refuse { first: true }, Verdict::Refuse { first: false }]);
        assert_eq!(verdicts[4], Verdict::Disconnect);
    }
}
