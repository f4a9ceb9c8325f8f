//! In-process single-flight: concurrent misses of one key share one load.
//!
//! The first caller to miss becomes the leader and runs its body; callers
//! that miss while it runs wait for what it publishes: the entry's bytes
//! (each waiter decodes its own copy, so values need not be `Clone`), or a
//! failure. After a failure, or when the leader's future is dropped,
//! waiters start a new round in which one of them leads, so a failing
//! source sees one load at a time per key, never a stampede.
//!
//! An invalidation detaches the flight of its keys: callers arriving after
//! it start a new load rather than wait for one that may have read the
//! source before the write. (Whether the old load may store is the lease's
//! business: the invalidation deleted it.)

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// What a leader tells its waiters.
#[derive(Debug, Clone)]
pub(crate) enum Shared {
    /// The entry the load produced, encoded as stored: a value or a null
    /// marker.
    Entry(Bytes),
    /// The body failed, or the leader went away: try again.
    Retry,
}

#[derive(Debug)]
struct Flight {
    tx: watch::Sender<Option<Shared>>,
}

/// The loads in flight in one cache, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

/// A caller's part in a load.
pub(crate) enum Role<'a> {
    /// Run the body, then publish through the guard.
    Leader(Leader<'a>),
    /// Wait for the leader.
    Waiter(Waiter),
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins the load of `key`, leading it when none is in flight.
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Role<'a> {
        let mut map = self.lock();
        if let Some(flight) = map.get(key) {
            return Role::Waiter(Waiter(flight.tx.subscribe()));
        }
        let flight = Arc::new(Flight {
            tx: watch::Sender::new(None),
        });
        map.insert(key.to_owned(), Arc::clone(&flight));
        Role::Leader(Leader {
            flights: self,
            key,
            flight,
        })
    }

    /// Whether a load of `key` is in flight in this cache.
    pub(crate) fn in_flight(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Detaches the loads in flight for `keys`: a caller arriving after the
    /// invalidation starts a new load instead of waiting for a value read
    /// before the write. Callers already waiting keep waiting.
    pub(crate) fn invalidate(&self, keys: &[String]) {
        let mut map = self.lock();
        if map.is_empty() {
            return;
        }
        for key in keys {
            map.remove(key.as_str());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The leader's handle. Dropping it ends the flight; waiters that saw no
/// publication retry.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    flight: Arc<Flight>,
}

impl Leader<'_> {
    /// Hands the outcome to every waiter, present and joining.
    pub(crate) fn publish(&self, shared: Shared) {
        self.flight.tx.send_replace(Some(shared));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Leave the map first, so that waiters told to retry start a new
        // flight rather than find this one again.
        {
            let mut map = self.flights.lock();
            if map
                .get(self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(self.key);
            }
        }
        if self.flight.tx.borrow().is_none() {
            self.flight.tx.send_replace(Some(Shared::Retry));
        }
    }
}

/// A waiter's handle.
pub(crate) struct Waiter(watch::Receiver<Option<Shared>>);

impl Waiter {
    /// What the leader published.
    pub(crate) async fn outcome(mut self) -> Shared {
        match self.0.wait_for(Option::is_some).await {
            Ok(shared) => shared.clone().unwrap_or(Shared::Retry),
            Err(_) => Shared::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_receive_what_the_leader_publishes() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Waiter(w1) = flights.join("k") else {
            panic!("second caller waits")
        };
        leader.publish(Shared::Entry(Bytes::from_static(b"v")));
        // A caller joining after publication, before the leader is gone.
        let Role::Waiter(w2) = flights.join("k") else {
            panic!("still in flight")
        };
        drop(leader);
        assert_eq!(flights.len(), 0);
        for w in [w1, w2] {
            assert!(matches!(w.outcome().await, Shared::Entry(b) if b == "v"));
        }
        assert!(
            matches!(flights.join("k"), Role::Leader(_)),
            "a new flight starts"
        );
    }

    #[tokio::test]
    async fn a_dropped_leader_tells_waiters_to_retry() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Waiter(w) = flights.join("k") else {
            panic!()
        };
        drop(leader);
        assert!(matches!(w.outcome().await, Shared::Retry));
    }

    #[tokio::test]
    async fn invalidation_detaches_only_its_keys() {
        let flights = Flights::default();
        let Role::Leader(a) = flights.join("a") else {
            panic!()
        };
        let Role::Leader(_b) = flights.join("b") else {
            panic!()
        };
        flights.invalidate(&["a".to_owned(), "zzz".to_owned()]);
        let Role::Leader(a2) = flights.join("a") else {
            panic!("a caller after the invalidation must not wait for the old load")
        };
        assert!(matches!(flights.join("b"), Role::Waiter(_)));
        drop(a);
        assert!(
            matches!(flights.join("a"), Role::Waiter(_)),
            "the old leader leaves the new flight alone"
        );
        drop(a2);
    }
}
