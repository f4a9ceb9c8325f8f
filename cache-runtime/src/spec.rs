//! [`Spec`]: the per-function options the macros pass to the runtime.

use std::time::Duration;

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
}

impl Spec {
    /// Options with every setting at the cache's default.
    pub const fn new(name: &'static str) -> Spec {
        Spec {
            name,
            ttl: None,
            null_ttl: None,
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
}
