//! # A job kind of your own
//!
//! This example adds a job kind that has nothing to do with plots: `primes`, which counts the
//! prime numbers below a bound. It shows every part of a kind:
//!
//! - **typed parameters**: [`PrimesParams`], a plain serde struct;
//! - **a check at submit time**: [`Renderer::validate`] refuses a bound that is too large with
//!   [`Error::InvalidParams`], so a bad job is never stored;
//! - **the work**: [`Renderer::render`] runs the sieve on a blocking thread, since it is CPU work;
//! - **a typed result**: [`PrimeCount`], stored as JSON through [`Json`] and read back as a
//!   `PrimeCount` with [`Jobs::result_of`].
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p example-custom-kind                                     # in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p example-custom-kind    # on Redis
//! ```
//!
//! `src/main.rs` only picks the backend and prints what [`demo`] answers; everything else is here,
//! so that the tests in `tests/` run exactly what the program runs.

use std::sync::Arc;
use std::time::Duration;

use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::{
    Backends, Context, Error, Jobs, Json, Kinds, MemoryBackend, Outcome, Processor, QueueName,
    QueueSettings, Renderer, Result, ResultState, async_trait,
};
use serde::{Deserialize, Serialize};

/// The largest bound a `primes` job may ask for. The sieve holds one byte per number, so this
/// keeps one job under 10 MB of memory and well under a second of work.
pub const MAX_BELOW: u64 = 10_000_000;

/// What a `primes` job asks for: count the primes below `below`.
///
/// This is what clients send as the job's `params` (`{"below": 100}`). Unknown fields are refused
/// rather than ignored: a client sending `{"below": 100, "above": 50}` learns at submit time that
/// this kind has no `above`, instead of getting a result that silently ignored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimesParams {
    /// The exclusive upper bound.
    pub below: u64,
}

/// What a `primes` job answers, stored as JSON: `{"below": 100, "count": 25, "largest": 97}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimeCount {
    /// The bound the job was given.
    pub below: u64,
    /// How many primes are below it.
    pub count: u64,
    /// The largest of them, if there is one.
    pub largest: Option<u64>,
}

/// The `primes` kind: its renderer. It holds no state; a kind that needs a database pool or an
/// HTTP client would keep it here.
#[derive(Clone, Copy, Debug, Default)]
pub struct Primes;

#[async_trait]
impl Renderer for Primes {
    // The name jobs are submitted under (`{"kind": "primes", ...}` over HTTP).
    const KIND: &'static str = "primes";
    type Params = PrimesParams;
    // `Json<T>` stores the result as `application/json`; `result_of::<Primes>` reads it back as
    // `Json<PrimeCount>`.
    type Output = Json<PrimeCount>;

    // Runs when a job is submitted (and again before each attempt). It must be cheap and look
    // only at the parameters: the message goes back to whoever submitted the job.
    fn validate(&self, params: &PrimesParams) -> Result<()> {
        if params.below > MAX_BELOW {
            return Err(Error::InvalidParams(format!(
                "`below` must be at most {MAX_BELOW}, got {}",
                params.below
            )));
        }
        Ok(())
    }

    async fn render(&self, params: PrimesParams, _ctx: &Context) -> Result<Json<PrimeCount>> {
        // The sieve is CPU work: run it on tokio's blocking pool so that it does not hold up the
        // other tasks of the runtime (heartbeats, other jobs, HTTP requests).
        let below = params.below;
        let counted = tokio::task::spawn_blocking(move || count_primes(below))
            .await
            // Only a panic in the sieve gets here: a bug, which retrying would not fix.
            .map_err(|e| Error::Internal(format!("the sieve did not finish: {e}")))?;
        Ok(Json(counted))
    }
}

/// Counts the primes below `below` with the sieve of Eratosthenes.
pub fn count_primes(below: u64) -> PrimeCount {
    let n = usize::try_from(below).expect("bounds up to MAX_BELOW fit in memory");
    let mut is_prime = vec![true; n];
    for slot in is_prime.iter_mut().take(2) {
        *slot = false;
    }
    let mut i = 2;
    while i * i < n {
        if is_prime[i] {
            for multiple in (i * i..n).step_by(i) {
                is_prime[multiple] = false;
            }
        }
        i += 1;
    }
    PrimeCount {
        below,
        count: is_prime.iter().filter(|&&p| p).count() as u64,
        largest: is_prime.iter().rposition(|&p| p).map(|i| i as u64),
    }
}

/// The queue `primes` jobs wait in.
///
/// Not `default`: on a Redis shared with other programs, the `default` queue may hold jobs of
/// kinds this program does not know, and a worker that leased them would only fail them back.
pub fn queue() -> QueueName {
    QueueName::new("primes").expect("a valid queue name")
}

/// How long a worker holds a job before another may take it over.
pub const LEASE: Duration = Duration::from_secs(30);

/// The backend to run on: Redis when `redis` is given, the in-memory backend otherwise.
///
/// Both offer the same capabilities (store, producer, consumer, maintenance), so nothing else in
/// the program depends on which one it got.
pub async fn backends(redis: Option<&RedisConfig>) -> Result<Backends> {
    Ok(match redis {
        Some(config) => Backends::single(Arc::new(
            RedisBackend::connect(config, QueueSettings::default()).await?,
        )),
        None => Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default()))),
    })
}

/// What [`demo`] did.
#[derive(Debug)]
pub struct Demo {
    /// The result of each job it submitted, in the order it submitted them.
    pub counted: Vec<PrimeCount>,
    /// Why the job that asked for too much was refused.
    pub refused: Error,
}

/// The bounds [`demo`] submits jobs for.
pub const DEMO_BOUNDS: [u64; 3] = [10, 100, 1_000_000];

/// Submits a `primes` job for each of [`DEMO_BOUNDS`] and one that asks for too much, runs the
/// accepted ones, and reads their results back as [`PrimeCount`]s.
pub async fn demo(backends: &Backends) -> anyhow::Result<Demo> {
    // The registry of the kinds this program knows. The submitting side needs it to check
    // parameters; the working side needs it to run jobs. Here one program is both.
    let kinds = Kinds::new().with(Primes);
    let jobs = Jobs::new(backends, kinds.clone()).with_default_queue(queue());

    // `submit_as` takes the typed parameters: no JSON to build by hand, and the compiler checks
    // that they are the parameters of `Primes`.
    let mut ids = Vec::new();
    for below in DEMO_BOUNDS {
        let job = jobs.submit_as::<Primes>(&PrimesParams { below }).await?;
        ids.push(job.id);
    }

    // `validate` refuses this one: the submit fails and nothing is stored.
    let too_many = PrimesParams {
        below: 1_000_000_000,
    };
    let refused = match jobs.submit_as::<Primes>(&too_many).await {
        Err(refused) => refused,
        Ok(job) => anyhow::bail!("job {} should have been refused", job.id),
    };

    // What a worker does, one job at a time: lease the next job of its queues, run it with its
    // kind's renderer, store the result. `Idle` means nothing is left to do.
    let processor = Processor::new(backends.consumer.clone(), kinds, LEASE).with_queues([queue()]);
    while let Outcome::Processed(_) = processor.process_one("example-custom-kind").await? {}

    // `result_of::<Primes>` reads the stored JSON back as the kind's own output type.
    let mut counted = Vec::new();
    for id in ids {
        match jobs.result_of::<Primes>(id).await? {
            Some(ResultState::Ready(Json(count))) => counted.push(count),
            other => anyhow::bail!("job {id} did not complete: {other:?}"),
        }
    }
    Ok(Demo { counted, refused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sieve_counts_the_primes_strictly_below_the_bound() {
        let count = |below| {
            let c = count_primes(below);
            (c.count, c.largest)
        };
        assert_eq!(count(0), (0, None));
        assert_eq!(count(2), (0, None));
        assert_eq!(count(3), (1, Some(2)));
        assert_eq!(count(8), (4, Some(7)));
        // 7 is prime, but not below 7.
        assert_eq!(count(7), (3, Some(5)));
        assert_eq!(count(26), (9, Some(23)));
        // 25 = 5 * 5 must be crossed out.
        assert_eq!(count(27), (9, Some(23)));
    }

    #[test]
    fn validate_refuses_a_bound_above_the_limit_and_accepts_the_limit() {
        assert!(Primes.validate(&PrimesParams { below: MAX_BELOW }).is_ok());
        match Primes.validate(&PrimesParams {
            below: MAX_BELOW + 1,
        }) {
            Err(Error::InvalidParams(message)) => {
                assert!(message.contains("at most 10000000"), "{message}")
            }
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }
}
