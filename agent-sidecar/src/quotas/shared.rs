//! Shared counters in Redis: one key per scope, limit and window
//! (`agent-sidecar:quota:{org}:{scope}:{name}:{window}`), incremented and
//! checked by one Lua script so that concurrent sidecars never overshoot a
//! limit; a refused increment is not counted. Keys expire with their
//! window. Every command has a short timeout: an unreachable Redis is an
//! error the caller turns into the limit's `on_unavailable`.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// Adds ARGV[1] to KEYS[1] if the sum stays within ARGV[2]; sets the
/// expiry ARGV[3] seconds on first use. Returns {1, sum} or {0, current}.
const INCR_CHECK: &str = r"
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur + n > limit then
  return {0, cur}
end
local sum = redis.call('INCRBY', KEYS[1], n)
if sum == n then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return {1, sum}
";

/// A connection to the Redis that holds the shared counters. Clones share
/// the connection.
#[derive(Clone)]
pub struct SharedCounters {
    conn: ConnectionManager,
    script: Script,
    timeout: Duration,
}

/// Why a shared counter could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SharedError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

impl SharedCounters {
    /// Connects to `url` (`redis://host:port/db`). Reconnects by itself
    /// after Redis comes back. `timeout` bounds every command.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "timed out connecting to the quota redis",
                url.to_string(),
            ))
        })??;
        Ok(SharedCounters {
            conn,
            script: Script::new(INCR_CHECK),
            timeout,
        })
    }

    /// Adds `n` to `key` within `limit`: `Ok(Ok(sum))`, `Ok(Err(current))`
    /// when refused, `Err` when Redis cannot be reached.
    pub(super) async fn try_add(
        &self,
        key: &str,
        n: u64,
        limit: u64,
        ttl_secs: u64,
    ) -> Result<Result<u64, u64>, SharedError> {
        let mut conn = self.conn.clone();
        let mut inv = self.script.prepare_invoke();
        inv.key(key).arg(n).arg(limit).arg(ttl_secs);
        let fut = inv.invoke_async::<(u8, u64)>(&mut conn);
        let (ok, v) = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| SharedError::Timeout(self.timeout))??;
        Ok(if ok == 1 { Ok(v) } else { Err(v) })
    }

    /// Takes back `n` from `key`.
    pub(super) async fn sub(&self, key: &str, n: u64) -> Result<(), SharedError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("DECRBY");
        cmd.arg(key).arg(n);
        let fut = cmd.query_async::<i64>(&mut conn);
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| SharedError::Timeout(self.timeout))??;
        Ok(())
    }
}
