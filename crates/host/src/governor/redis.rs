//! Accounts in Redis, for several host processes acting for one user: the service's limits are
//! per user across every client it has, so their governors must share one account.
//!
//! Each step is one Lua script, so it is atomic across processes, and reads the time from the
//! Redis server (`TIME`), so the processes' clocks do not matter. A running request is a lease
//! (a sorted-set member scored by its start) rather than a counter, so a process that dies
//! mid-request frees its slots after `LEASE_MS` instead of holding them for ever. Every key
//! expires with its window.

use std::sync::Mutex;
use std::time::Duration;

use super::{Budget, Counters, memory::BUSY_WAIT};

/// A request still running after this long is taken to be lost with its process.
const LEASE_MS: u64 = 15 * 60 * 1000;

/// How long one Redis round trip may take before the governor falls back to its own memory.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys: running, starts, executions, executed, paused, hint.
/// Arguments: lease, window ms, requests, execution ms, concurrent, initial parallelism,
/// lease ms. Answers 0 (started), -1 (at its parallelism) or the milliseconds to wait.
const START: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[7])
local paused = redis.call('PTTL', KEYS[5])
if paused > 0 then return paused end
local concurrent = tonumber(ARGV[5])
local parallelism = tonumber(redis.call('GET', KEYS[6]) or ARGV[6])
if parallelism > concurrent then parallelism = concurrent end
if parallelism < 1 then parallelism = 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease_ms)
if redis.call('ZCARD', KEYS[1]) >= parallelism then return -1 end
local horizon = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. horizon)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. horizon)
if #gone > 0 then
  local spent = 0
  for _, member in ipairs(gone) do
    spent = spent + tonumber(string.match(member, '^(%d+):'))
  end
  redis.call('DECRBY', KEYS[4], spent)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. horizon)
end
if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if oldest[2] then return math.max(1, tonumber(oldest[2]) + window - now) end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
redis.call('PEXPIRE', KEYS[2], window)
return 0
";

/// Keys: running, executions, executed. Arguments: lease, execution ms, window ms.
const FINISH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[2] .. ':' .. ARGV[1])
redis.call('INCRBY', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 0
";

/// Keys: paused. Arguments: pause ms. A shorter pause never cuts a longer one.
const PAUSE: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
";

/// Accounts in one Redis database, under `dynamics:governor:<account>:…`.
pub struct RedisCounters {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    start: redis::Script,
    finish: redis::Script,
    pause: redis::Script,
}

impl RedisCounters {
    /// Counters in the Redis at `url` (`redis://host:port/db`); checks that it answers.
    pub fn connect(url: &str) -> anyhow::Result<RedisCounters> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("the governor's Redis URL is not usable: {e}"))?;
        let counters = RedisCounters {
            client,
            connection: Mutex::new(None),
            start: redis::Script::new(START),
            finish: redis::Script::new(FINISH),
            pause: redis::Script::new(PAUSE),
        };
        counters.with(|connection| {
            redis::cmd("PING").query::<String>(connection)?;
            Ok(())
        })?;
        Ok(counters)
    }

    /// Runs `step` on the shared connection, opening it first if needed; a failed step drops
    /// the connection so the next one reconnects.
    fn with<T>(
        &self,
        step: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> anyhow::Result<T> {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(IO_TIMEOUT)
                .map_err(|e| anyhow::anyhow!("connecting to the governor's Redis: {e}"))?;
            connection.set_read_timeout(Some(IO_TIMEOUT))?;
            connection.set_write_timeout(Some(IO_TIMEOUT))?;
            *slot = Some(connection);
        }
        let Some(connection) = slot.as_mut() else {
            anyhow::bail!("no connection to the governor's Redis");
        };
        match step(connection) {
            Ok(value) => Ok(value),
            Err(problem) => {
                *slot = None;
                Err(anyhow::anyhow!("the governor's Redis failed: {problem}"))
            }
        }
    }
}

fn key(account: &str, part: &str) -> String {
    format!("dynamics:governor:{account}:{part}")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Counters for RedisCounters {
    fn try_start(
        &self,
        account: &str,
        lease: &str,
        budget: &Budget,
    ) -> anyhow::Result<Option<Duration>> {
        let answer: i64 = self.with(|connection| {
            self.start
                .key(key(account, "running"))
                .key(key(account, "starts"))
                .key(key(account, "executions"))
                .key(key(account, "executed"))
                .key(key(account, "paused"))
                .key(key(account, "hint"))
                .arg(lease)
                .arg(millis(budget.counted_window()))
                .arg(budget.requests)
                .arg(millis(budget.execution))
                .arg(budget.concurrent)
                .arg(budget.initial_parallelism)
                .arg(LEASE_MS)
                .invoke(connection)
        })?;
        Ok(match answer {
            0 => None,
            wait if wait < 0 => Some(BUSY_WAIT * 2),
            wait => Some(Duration::from_millis(wait as u64)),
        })
    }

    fn finish(
        &self,
        account: &str,
        lease: &str,
        execution: Duration,
        budget: &Budget,
    ) -> anyhow::Result<()> {
        self.with(|connection| {
            self.finish
                .key(key(account, "running"))
                .key(key(account, "executions"))
                .key(key(account, "executed"))
                .arg(lease)
                .arg(millis(execution))
                .arg(millis(budget.counted_window()))
                .invoke::<i64>(connection)
        })?;
        Ok(())
    }

    fn pause(&self, account: &str, pause: Duration) -> anyhow::Result<()> {
        self.with(|connection| {
            self.pause
                .key(key(account, "paused"))
                .arg(millis(pause).max(1))
                .invoke::<i64>(connection)
        })?;
        Ok(())
    }

    fn set_hint(&self, account: &str, hint: u32, budget: &Budget) -> anyhow::Result<()> {
        let hint = hint.clamp(1, budget.concurrent.max(1));
        self.with(|connection| {
            redis::cmd("SET")
                .arg(key(account, "hint"))
                .arg(hint)
                .arg("PX")
                .arg(millis(budget.counted_window()))
                .query::<()>(connection)
        })?;
        Ok(())
    }
}
