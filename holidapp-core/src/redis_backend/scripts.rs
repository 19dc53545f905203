//! The Lua scripts, compiled in from the `.lua` files beside this module and hashed once.
//!
//! Each file opens with a comment stating its `KEYS` and `ARGV`. [`redis::Script`] runs a script
//! by its SHA (`EVALSHA`) and loads it when the server does not know it yet (first use, or after
//! a server restart emptied its script cache). Every script opens with `lua/clock.lua`,
//! `lua/levels.lua` and `lua/events.lua`, the time, priority-level and event helpers they share.

use std::sync::LazyLock;

use redis::Script;

/// Every script the backend runs.
pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) lease: Script,
    pub(super) renew: Script,
    pub(super) complete: Script,
    pub(super) fail: Script,
    pub(super) release: Script,
    pub(super) expired: Script,
    pub(super) expire: Script,
    pub(super) delete: Script,
    pub(super) cancel: Script,
    pub(super) retry: Script,
    pub(super) progress: Script,
    pub(super) counts: Script,
    pub(super) list: Script,
    pub(super) purge_expired: Script,
    pub(super) worker_beat: Script,
    pub(super) worker_leave: Script,
    pub(super) workers: Script,
}

/// A script from its `.lua` file, with the shared time helpers before it.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/clock.lua"),
            include_str!("lua/levels.lua"),
            include_str!("lua/events.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, hashed on first use.
pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script!("enqueue.lua"),
    lease: script!("lease.lua"),
    renew: script!("renew.lua"),
    complete: script!("complete.lua"),
    fail: script!("fail.lua"),
    release: script!("release.lua"),
    expired: script!("expired.lua"),
    expire: script!("expire.lua"),
    delete: script!("delete.lua"),
    cancel: script!("cancel.lua"),
    retry: script!("retry.lua"),
    progress: script!("progress.lua"),
    counts: script!("counts.lua"),
    list: script!("list.lua"),
    purge_expired: script!("purge_expired.lua"),
    worker_beat: script!("worker_beat.lua"),
    worker_leave: script!("worker_leave.lua"),
    workers: script!("workers.lua"),
});
