//! The plugins' key-value stores when clustered: one Redis hash per plugin,
//! shared by every node, with the same limits as the in-memory store,
//! checked by the script that writes (so that two nodes cannot both take
//! the last slot), and a compare-and-swap that is atomic across nodes.

use std::sync::LazyLock;

use ::redis::{RedisError, Script};

use super::Cluster;

/// Set, delete or compare-and-swap one key, within the store's limits.
/// KEYS: the hash, its byte count. ARGV: key, mode (`set` or `cas`),
/// whether a value is expected (`1`/`0`), the expected value, whether
/// there is a new value (`1`/`0`, else delete), the new value, the most
/// keys, the most bytes. Returns 1 (done; for a delete: the key existed),
/// 0 (not done: no such key, or the expected value differs), -1 (one key
/// too many), -2 (too many bytes).
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == 'cas' then
  if ARGV[3] == '1' then
    if old ~= ARGV[4] then return 0 end
  elseif old then
    return 0
  end
end
local oldlen = 0
if old then oldlen = #ARGV[1] + #old end
if ARGV[5] == '0' then
  if old then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('DECRBY', KEYS[2], oldlen)
    return 1
  end
  if ARGV[2] == 'cas' then return 1 end
  return 0
end
if not old and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then return -1 end
local bytes = tonumber(redis.call('GET', KEYS[2]) or '0') - oldlen + #ARGV[1] + #ARGV[6]
if bytes > tonumber(ARGV[8]) then return -2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
redis.call('SET', KEYS[2], bytes)
return 1
",
    )
});

/// What a write asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write<'a> {
    /// Set the key (or delete it, with `None`).
    Set(Option<&'a [u8]>),
    /// Set (or delete) the key only if it holds `expected` (`None`: absent).
    CompareAndSwap { expected: Option<&'a [u8]>, value: Option<&'a [u8]> },
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Done (a delete: the key was there).
    Done,
    /// Not done: the key was absent (a delete) or held something else (a
    /// compare-and-swap).
    NotDone,
    /// Refused: one key too many.
    TooManyKeys,
    /// Refused: too many bytes of keys and values.
    TooManyBytes,
}

/// The hash of `plugin`'s store, and its byte count.
fn keys(plugin: &str) -> (String, String) {
    (format!("sb:kv:{}:{plugin}", plugin.len()), format!("sb:kvb:{}:{plugin}", plugin.len()))
}

impl Cluster {
    /// The value under `key` in `plugin`'s shared store.
    pub(crate) async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        let mut connection = self.commands.clone();
        ::redis::cmd("HGET").arg(keys(plugin).0).arg(key).query_async(&mut connection).await
    }

    /// Write `key` of `plugin`'s shared store, within `max_keys` and
    /// `max_bytes` (sizes of the key and value are the caller's to check).
    pub(crate) async fn kv_write(
        &self,
        plugin: &str,
        key: &str,
        write: Write<'_>,
        max_keys: usize,
        max_bytes: usize,
    ) -> Result<Written, RedisError> {
        let (hash, bytes) = keys(plugin);
        let (mode, expected, value) = match write {
            Write::Set(value) => ("set", None, value),
            Write::CompareAndSwap { expected, value } => ("cas", expected, value),
        };
        let flag = |present: bool| if present { "1" } else { "0" };
        let mut invocation = WRITE.key(hash);
        invocation
            .key(bytes)
            .arg(key)
            .arg(mode)
            .arg(flag(expected.is_some()))
            .arg(expected.unwrap_or_default())
            .arg(flag(value.is_some()))
            .arg(value.unwrap_or_default())
            .arg(max_keys)
            .arg(max_bytes);
        let mut connection = self.commands.clone();
        let answer: i64 = invocation.invoke_async(&mut connection).await?;
        Ok(match answer {
            1 => Written::Done,
            -1 => Written::TooManyKeys,
            -2 => Written::TooManyBytes,
            _ => Written::NotDone,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::config::ClusterSettings;
    use crate::metrics::ClusterMetrics;

    /// A private `redis-server`, killed when dropped.
    struct Redis(Child);

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn cluster() -> (Redis, std::sync::Arc<Cluster>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Redis(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed"),
        );
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..500 {
            if let Ok(cluster) = Cluster::join(&ClusterSettings::default(), &url, ClusterMetrics::default()).await {
                return (server, cluster);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server did not answer");
    }

    #[tokio::test]
    async fn the_shared_store_keeps_its_limits_and_swaps_atomically() {
        let (_redis, cluster) = cluster().await;
        let write = |key: &'static str, write: Write<'static>| {
            let cluster = std::sync::Arc::clone(&cluster);
            async move { cluster.kv_write("p", key, write, 2, 20).await.unwrap() }
        };
        assert_eq!(write("k1", Write::Set(Some(b"aaaa"))).await, Written::Done);
        assert_eq!(write("k2", Write::Set(Some(b"bbbb"))).await, Written::Done);
        assert_eq!(write("k3", Write::Set(Some(b""))).await, Written::TooManyKeys);
        assert_eq!(write("k1", Write::Set(Some(&[0; 14]))).await, Written::TooManyBytes, "2+14 + 2+4 > 20");
        assert_eq!(write("k1", Write::Set(Some(&[0; 12]))).await, Written::Done, "2+12 + 2+4 = 20");
        let swap = |expected, value| Write::CompareAndSwap { expected, value };
        assert_eq!(write("k1", swap(Some(b"aaaa"), Some(b"c"))).await, Written::NotDone, "it holds 12 zeros");
        assert_eq!(write("k1", swap(Some(&[0; 12]), Some(b"c"))).await, Written::Done);
        assert_eq!(write("k1", swap(None, Some(b"d"))).await, Written::NotDone, "present is not absent");
        assert_eq!(write("k9", swap(None, Some(b"d"))).await, Written::TooManyKeys);
        assert_eq!(write("k2", Write::Set(None)).await, Written::Done);
        assert_eq!(write("k2", Write::Set(None)).await, Written::NotDone, "already gone");
        assert_eq!(write("k2", swap(None, None)).await, Written::Done, "absent as expected");
        assert_eq!(write("k1", swap(Some(b"c"), None)).await, Written::Done);
        assert_eq!(cluster.kv_get("p", "k1").await.unwrap(), None);
        assert_eq!(write("k3", Write::Set(Some(&[0; 18]))).await, Written::Done, "every byte was given back");
        assert_eq!(cluster.kv_get("p", "k3").await.unwrap(), Some(vec![0; 18]));
        assert_eq!(cluster.kv_get("other", "k3").await.unwrap(), None, "one store per plugin");
        cluster.stop();
    }
}
