//! `example-custom-kind`: counts primes with a job kind of its own.
//!
//! Uses the Redis at `REDIS_URL` when it is set, the in-memory backend otherwise; then runs
//! [`example_custom_kind::demo`] and prints the typed results. The library's documentation
//! explains the kind.

use holidapp_core::redis_backend::RedisConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .map(RedisConfig::new);
    match &redis {
        Some(config) => println!("backend: Redis at {}", config.redacted_url()),
        None => println!("backend: in memory (set REDIS_URL to use Redis)"),
    }
    let backends = example_custom_kind::backends(redis.as_ref()).await?;

    let demo = example_custom_kind::demo(&backends).await?;
    for count in &demo.counted {
        match count.largest {
            Some(largest) => println!(
                "primes below {}: {} (the largest is {largest})",
                count.below, count.count
            ),
            None => println!("primes below {}: none", count.below),
        }
    }
    println!("refused at submit: {}", demo.refused);
    Ok(())
}
