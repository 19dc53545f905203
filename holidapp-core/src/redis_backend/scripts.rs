//! The Lua scripts, compiled in from the `.lua` files beside this module and hashed once.
//!
//! Each file opens with a comment stating its `KEYS` and `ARGV`. [`redis::Script`] runs a script
//! by its SHA (`EVALSHA`) and loads it when the server does not know it yet (first use, or after
//! a server restart emptied its script cache).

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
    pub(super) list: Script,
    pub(super) purge_expired: Script,
}

/// The scripts, hashed on first use.
pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(include_str!("lua/enqueue.lua")),
    lease: Script::new(include_str!("lua/lease.lua")),
    renew: Script::new(include_str!("lua/renew.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    fail: Script::new(include_str!("lua/fail.lua")),
    release: Script::new(include_str!("lua/release.lua")),
    expired: Script::new(include_str!("lua/expired.lua")),
    expire: Script::new(include_str!("lua/expire.lua")),
    delete: Script::new(include_str!("lua/delete.lua")),
    list: Script::new(include_str!("lua/list.lua")),
    purge_expired: Script::new(include_str!("lua/purge_expired.lua")),
});
