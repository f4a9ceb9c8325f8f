//! [`Spec`]: the per-function options the macros pass to the runtime.

use crate::builder::Config;
pub use crate::refresh::Refresh;
use std::time::Duration;

/// How much longer than the lease TTL a caller waits for another caller's
/// load by default: long enough for a crashed holder's lease to expire
/// while its waiters still wait, so that one of them takes over.
const WAIT_PAST_LEASE: Duration = Duration::from_secs(1);

/// The options of one annotated function. Built by generated code with
/// `const` calls; `None` means "the cache's default".
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The function's path, for logs.
    pub name: &'static str,
    /// Time to live of a value.
    pub ttl: Option<Duration>,
    /// Time to live of a cached `None`; zero turns negative caching off.
    pub null_ttl: Option<Duration>,
    /// Whether misses are coordinated: one load per key in this process
    /// (single-flight) and across processes (lease). `true` by default.
    pub lock: bool,
    /// How long a lease lasts: past it, another caller may load.
    pub lease_ttl: Option<Duration>,
    /// The longest a caller leading a load in this process waits for a
    /// lease held elsewhere before it runs the body itself (and does not
    /// store the result).
    pub lease_wait: Option<Duration>,
    /// How long a value is kept past its TTL, served stale while it is
    /// refreshed in the background (and while refreshing fails).
    pub stale: Option<Duration>,
    /// When a fresh value is refreshed ahead of its expiry.
    pub refresh: Refresh,
}

impl Spec {
    /// Options with every setting at the cache's default.
    pub const fn new(name: &'static str) -> Spec {
        Spec {
            name,
            ttl: None,
            null_ttl: None,
            lock: true,
            lease_ttl: None,
            lease_wait: None,
            stale: None,
            refresh: Refresh::Never,
        }
    }

    /// Sets the TTL.
    pub const fn ttl(mut self, ttl: Duration) -> Spec {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the TTL in milliseconds.
    pub const fn ttl_ms(self, ms: u64) -> Spec {
        self.ttl(Duration::from_millis(ms))
    }

    /// Sets the null TTL in milliseconds.
    pub const fn null_ttl_ms(mut self, ms: u64) -> Spec {
        self.null_ttl = Some(Duration::from_millis(ms));
        self
    }

    /// Turns miss coordination (single-flight and lease) on or off.
    pub const fn lock(mut self, lock: bool) -> Spec {
        self.lock = lock;
        self
    }

    /// Sets the lease TTL in milliseconds.
    pub const fn lease_ttl_ms(mut self, ms: u64) -> Spec {
        self.lease_ttl = Some(Duration::from_millis(ms));
        self
    }

    /// Sets the longest wait for another caller's load, in milliseconds.
    pub const fn lease_wait_ms(mut self, ms: u64) -> Spec {
        self.lease_wait = Some(Duration::from_millis(ms));
        self
    }

    /// Keeps values `ms` milliseconds past their TTL (see [`Spec::stale`]).
    pub const fn stale_ms(mut self, ms: u64) -> Spec {
        self.stale = Some(Duration::from_millis(ms));
        self
    }

    /// Refreshes values ahead of expiry (see [`Refresh`]).
    pub const fn refresh(mut self, refresh: Refresh) -> Spec {
        self.refresh = refresh;
        self
    }

    /// How long values are kept past their TTL: zero without `stale`.
    pub(crate) fn stale_grace(&self) -> Duration {
        self.stale.unwrap_or(Duration::ZERO)
    }

    /// The lease TTL: the function's, else the cache's; at least 1 ms.
    pub(crate) fn lease_ttl(&self, config: &Config) -> Duration {
        self.lease_ttl
            .unwrap_or(config.lease_ttl)
            .max(Duration::from_millis(1))
    }

    /// The longest wait for another caller's load: the function's, else the
    /// cache's, else the lease TTL plus a second.
    pub(crate) fn lease_wait(&self, config: &Config) -> Duration {
        self.lease_wait
            .or(config.lease_wait)
            .unwrap_or_else(|| self.lease_ttl(config).saturating_add(WAIT_PAST_LEASE))
    }

    /// The TTL of a value, given the cache's default.
    pub(crate) fn value_ttl(&self, default: Duration) -> Duration {
        self.ttl.unwrap_or(default)
    }

    /// The TTL of a cached `None`: the function's `null_ttl`, else the
    /// cache's default capped at the value TTL. Zero means "do not cache".
    pub(crate) fn null_ttl(&self, default_ttl: Duration, default_null_ttl: Duration) -> Duration {
        self.null_ttl
            .unwrap_or_else(|| default_null_ttl.min(self.value_ttl(default_ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn defaults_and_overrides() {
        let spec = Spec::new("f");
        assert_eq!(spec.value_ttl(60 * S), 60 * S);
        assert_eq!(spec.null_ttl(60 * S, 30 * S), 30 * S);
        let short = Spec::new("f").ttl_ms(5_000);
        assert_eq!(
            short.null_ttl(60 * S, 30 * S),
            5 * S,
            "null TTL capped at the TTL"
        );
        let off = Spec::new("f").ttl_ms(5_000).null_ttl_ms(0);
        assert_eq!(off.null_ttl(60 * S, 30 * S), Duration::ZERO);
        let long = Spec::new("f").ttl_ms(5_000).null_ttl_ms(9_000);
        assert_eq!(
            long.null_ttl(60 * S, 30 * S),
            9 * S,
            "an explicit null_ttl stands"
        );
    }

    #[test]
    fn lease_settings_fall_back_to_the_cache_then_follow_the_lease_ttl() {
        let config = crate::Cache::memory().inner.config.clone();
        let spec = Spec::new("f");
        assert!(spec.lock);
        assert_eq!(spec.lease_ttl(&config), 5 * S);
        assert_eq!(spec.lease_wait(&config), 6 * S);
        let long = Spec::new("f").lease_ttl_ms(30_000);
        assert_eq!(
            long.lease_wait(&config),
            31 * S,
            "waiters outlast a longer lease"
        );
        let explicit = long.lease_wait_ms(2_000);
        assert_eq!(explicit.lease_wait(&config), 2 * S);
        let cache_wide = crate::Cache::builder()
            .lease_ttl(2 * S)
            .lease_wait(10 * S)
            .memory()
            .inner
            .config
            .clone();
        assert_eq!(spec.lease_ttl(&cache_wide), 2 * S);
        assert_eq!(spec.lease_wait(&cache_wide), 10 * S);
        assert_eq!(explicit.lease_wait(&cache_wide), 2 * S);
        assert!(!Spec::new("f").lock(false).lock);
    }
}
